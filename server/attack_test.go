package server_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"golang.org/x/net/http2"

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

// rawHTTP opens a TLS connection to g (HTTP/1.1) and sends head, a
// request without its body.
func (g *gateway) rawHTTP(t *testing.T, head string) *tls.Conn {
	t.Helper()
	cfg := g.client.Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	u, _ := url.Parse(g.url)
	c, err := tls.Dial("tcp", u.Host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHTTP_SlowBodies: a request that declares a body and trickles it
// gets its 401 at once when it has no token (on every transport), and
// with a token is ended after BodyTimeout: unauthenticated work is
// bounded by headers, authenticated work by the body deadline.
func TestHTTP_SlowBodies(t *testing.T) {
	g := start(t, server.Config{BodyTimeout: 500 * time.Millisecond}, shard.Config{})
	alice := g.token("alice", "laptop")
	u, _ := url.Parse(g.url)
	for _, tc := range []struct {
		name, accept, auth string
		want               int
	}{
		{"POST, no token", "application/json", "", 401},
		{"SSE POST, no token", "text/event-stream", "", 401},
		{"POST, token, body never comes", "application/json", "Bearer " + alice, 408},
		// On a stream transport the error is a result in the stream (200).
		{"SSE POST, token, body never comes", "text/event-stream", "Bearer " + alice, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := "POST /graphql HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/json\r\nAccept: " + tc.accept + "\r\nContent-Length: 100000\r\n"
			if tc.auth != "" {
				head += "Authorization: " + tc.auth + "\r\n"
			}
			c := g.rawHTTP(t, head+"\r\n{\"qu")
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.auth != "" && !strings.Contains(string(body), "did not arrive") {
				t.Fatalf("body %q", body)
			}
			// The server lets go of the connection: no drain of the
			// body it refused.
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("connection still open after the answer: %v", err)
			}
		})
	}
}

// TestHTTP2_StreamsPerConnectionAreBounded: the server announces its
// per-connection stream limit in its first SETTINGS frame.
func TestHTTP2_StreamsPerConnectionAreBounded(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	cfg := g.client.Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	u, _ := url.Parse(g.url)
	c, err := tls.Dial("tcp", u.Host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %T", f)
	}
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v > 100 {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d (%v), want at most 100", v, ok)
	}
}

// hostileLiterals are number literals gqlparser cannot turn into Go
// values (it panics in ast/argmap.go): the seeds of FuzzGraphQLRequest too.
var hostileLiterals = []string{
	`query($q:String!){ notifications(queue:$q, after: 9223372036854775808) { lastSeq } }`,
	`query($q:String!){ notifications(queue:$q, after: 1e400) { lastSeq } }`,
	`mutation { publish(resource:"user:alice/a", etag:"e", payload: {id: 18446744073709551615}) }`,
	`mutation { publish(resource:"user:alice/a", etag:"e", payload: [1, [2, {x: -99999999999999999999}]]) }`,
}

// hostileDefault is refused by gqlparser's variable coercion, before any
// panic can happen (GRAPHQL_VALIDATION_FAILED).
const hostileDefault = `query($q:String!, $a: Seq = 99999999999999999999){ notifications(queue:$q, after: $a) { lastSeq } }`

// TestOversizedLiterals: every transport answers BAD_USER_INPUT, and a
// WebSocket keeps its other operations.
func TestOversizedLiterals(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	vars := map[string]any{"q": q}
	for _, lit := range hostileLiterals {
		if r := g.do(alice, lit, vars); r.code() != "BAD_USER_INPUT" {
			t.Fatalf("HTTP %s: %d %+v", lit, r.status, r.Errors)
		}
	}
	for _, lit := range hostileLiterals { // SSE: the error is the stream's one result
		body, _ := json.Marshal(map[string]any{"query": lit, "variables": vars})
		req, _ := http.NewRequest(http.MethodPost, g.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+alice)
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "BAD_USER_INPUT") {
			t.Fatalf("SSE %s: %d %q", lit, resp.StatusCode, b)
		}
	}
	if r := g.do(alice, hostileDefault, vars); r.code() == "" {
		t.Fatalf("HTTP %s: %d %+v", hostileDefault, r.status, r.Errors)
	}
	c := g.dial("graphql-transport-ws")
	c.init(alice)
	g.subscribe(alice, q, "user:alice/a")
	c.subscribe("s", streamQuery, map[string]any{"q": q})
	for i, lit := range hostileLiterals {
		id := fmt.Sprint("bad", i)
		c.subscribe(id, lit, vars)
		if m := c.read(); m.Type != "error" || m.ID != id || !strings.Contains(string(m.Payload), "BAD_USER_INPUT") {
			t.Fatalf("WS %s: %+v %s", lit, m, m.Payload)
		}
	}
	g.publish(alice, "user:alice/a", "e1", nil)
	if n := c.next("s"); n.Seq != 1 {
		t.Fatalf("the stream after the bad literals: %+v", n)
	}
}

// TestHTTP_OneLongPollPerRequest: 250 aliased long-polls fit the
// complexity limit but would park 250 goroutines: refused, directly or
// through fragments; one long-poll and any number of plain reads are fine.
func TestHTTP_OneLongPollPerRequest(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop")
	q := g.createQueue(alice)
	vars := map[string]any{"q": q}
	var b strings.Builder
	b.WriteString("query($q:String!){")
	for i := range 250 {
		fmt.Fprintf(&b, " a%d: notifications(queue:$q, waitSeconds:1) { lastSeq }", i)
	}
	b.WriteString("}")
	for _, doc := range []string{
		b.String(),
		`query($q:String!){ ...W ...W } fragment W on Query { notifications(queue:$q, waitSeconds:1) { lastSeq } }`,
		`query($q:String!, $w:Int){ a: notifications(queue:$q, waitSeconds:$w) { lastSeq } b: notifications(queue:$q, waitSeconds:$w) { lastSeq } }`,
	} {
		if r := g.do(alice, doc, vars); r.code() != "LIMIT_EXCEEDED" {
			t.Fatalf("%.80s: %d %+v", doc, r.status, r.Errors)
		}
	}
	g.must(alice, `query($q:String!){ a: notifications(queue:$q, waitSeconds:0) { lastSeq } b: notifications(queue:$q) { lastSeq } c: notifications(queue:$q, waitSeconds:1) { lastSeq } }`, vars, "", nil)
}

// TestAttacks_ReturnToBaseline runs the attacks of issue 13 together
// against one node and checks that once the attackers are gone, the
// node's goroutines come back to where they were (the heap is logged:
// go test -v -run TestAttacks_ReturnToBaseline ./server).
func TestAttacks_ReturnToBaseline(t *testing.T) {
	g := start(t, server.Config{BodyTimeout: time.Second}, shard.Config{})
	alice := g.token("alice", "laptop")
	q := g.createQueue(alice)
	settle := func() (int, uint64) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc
	}
	g.client.CloseIdleConnections()
	baseG, baseHeap := settle()
	var wg sync.WaitGroup
	var conns []io.Closer
	u, _ := url.Parse(g.url)
	// Ping floods from clients that never read.
	for range 10 {
		c := g.rawDial("graphql-transport-ws")
		conns = append(conns, c.nc)
		var flood []byte
		for range 500 {
			flood = append(flood, clientFrame(true, ws.OpPing, make([]byte, 125))...)
		}
		_, _ = c.nc.Write(flood)
	}
	// Fragment bombs, aliased long-polls, oversized literals.
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.do(alice, fragmentBomb(40+i), nil)
			var b strings.Builder
			b.WriteString("query($q:String!){")
			for j := range 250 {
				fmt.Fprintf(&b, " a%d: notifications(queue:$q, waitSeconds:5) { lastSeq }", j)
			}
			b.WriteString("}")
			g.do(alice, b.String(), map[string]any{"q": q})
			g.do(alice, hostileLiterals[0], map[string]any{"q": q})
		}()
	}
	// Slow bodies, with and without a token.
	for i := range 40 {
		head := "POST /graphql HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"
		if i%2 == 0 {
			head += "Authorization: Bearer " + alice + "\r\n"
		}
		conns = append(conns, g.rawHTTP(t, head+"\r\n{"))
	}
	wg.Wait()
	_, duringHeap := settle()
	duringG := runtime.NumGoroutine()
	// The attackers leave.
	for _, c := range conns {
		c.Close()
	}
	g.client.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	var afterG int
	var afterHeap uint64
	for {
		afterG, afterHeap = settle()
		if afterG <= baseG+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("goroutines: baseline %d, under attack %d, after %d", baseG, duringG, afterG)
	t.Logf("heap: baseline %.1f MiB, under attack %.1f MiB, after %.1f MiB", mib(baseHeap), mib(duringHeap), mib(afterHeap))
	if afterG > baseG+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines did not return to baseline (%d > %d):\n%s", afterG, baseG, buf[:runtime.Stack(buf, true)])
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
