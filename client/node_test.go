package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"meshgate/internal/certs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshgate/internal/testkit"
)

// TestNodeRecoveryGuide runs the guide's Node client (graphql-ws, no SDK)
// against a real gateway: it sees changes, and after its queue is lost it
// makes a new one and reports the change it missed.
func TestNodeRecoveryGuide(t *testing.T) {
	dir, _ := filepath.Abs("../server/testdata/node")
	node := testkit.Node(t, dir, "graphql-ws")
	gw := startGateway()
	defer gw.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tok := gw.token("browser", time.Hour)
	cmd := exec.CommandContext(ctx, node, "recovery.mjs", "user:alice/notes")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MESHGATE_URL="+strings.Replace(gw.URL, "127.0.0.1", "localhost", 1),
		"MESHGATE_TOKEN="+tok, "NODE_EXTRA_CA_CERTS="+filepath.Join(gw.dir, certs.DevCertFile))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan map[string]any, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	// await returns the client's next line of kind (and etag, unless ""),
	// skipping others, or false after d.
	await := func(kind, etag string, d time.Duration) (map[string]any, bool) {
		t.Helper()
		timeout := time.After(d)
		for {
			select {
			case m, ok := <-lines:
				if !ok {
					t.Fatalf("the Node client exited waiting for %s %s", kind, etag)
				}
				if m["kind"] == kind && (etag == "" || m["etag"] == etag) {
					return m, true
				}
			case <-timeout:
				return nil, false
			}
		}
	}
	expect := func(kind, etag string) map[string]any {
		t.Helper()
		m, ok := await(kind, etag, 20*time.Second)
		if !ok {
			t.Fatalf("no %s %s from the Node client", kind, etag)
		}
		return m
	}
	ready := expect("READY", "")
	// READY comes before its stream is attached, and a stream opened
	// without `after` may start past an earlier publish: publish (a new
	// etag each time) until one is delivered.
	for i := 0; ; i++ {
		gw.publish("user:alice/notes", fmt.Sprintf("a1-%d", i))
		if _, ok := await("CHANGED", "", 250*time.Millisecond); ok {
			break
		}
		if i == 80 {
			t.Fatal("the Node client's stream delivered nothing in 20 s")
		}
	}
	// The queue is lost (as when its node dies) and the resource changes
	// before the client is back.
	if err := gw.do(tok, `mutation($q:String!){ deleteQueue(name:$q) }`, map[string]any{"q": ready["queue"]}); err != nil {
		t.Fatal(err)
	}
	gw.publish("user:alice/notes", "a2")
	m := expect("CHANGED_WHILE_AWAY", "a2")
	if m["queue"] == ready["queue"] {
		t.Fatal("the Node client kept the lost queue")
	}
	expect("READY", "")
	gw.publish("user:alice/notes", "a3")
	expect("CHANGED", "a3")
}
