package server_test

import (
	"fmt"
	"strings"
	"testing"

	"meshgate/server"
	"meshgate/shard"
)

func fragmentBomb(n int) string {
	var b strings.Builder
	b.WriteString("query { ...F0 }\n")
	for i := range n {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Query { me { user } }\n", n)
	return b.String()
}

// TestHTTP_FragmentBombIsRefusedBeforeExpansion: a 3 KB document whose
// fragments expand to 2^64 fields is refused with LIMIT_EXCEEDED, and the
// node answers it (the client's 30 s timeout would fail an expansion),
// then serves the next request.
func TestHTTP_FragmentBombIsRefusedBeforeExpansion(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop")
	for _, n := range []int{24, 64} {
		if r := g.do(alice, fragmentBomb(n), nil); r.code() != "LIMIT_EXCEEDED" {
			t.Fatalf("bomb %d: %d %+v", n, r.status, r.Errors)
		}
	}
	// A legitimate use of fragments still runs.
	var me struct{ User string }
	g.must(alice, `query { ...M } fragment M on Query { me { user } }`, nil, "me", &me)
	if me.User != "alice" {
		t.Fatalf("me %+v", me)
	}
}
