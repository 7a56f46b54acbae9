package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"meshgate/internal/certs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"meshgate/internal/testkit"
	"meshgate/shard"
)

// TestNodeRecoveryGuide runs the guide's Node client (graphql-ws, no SDK)
// against a real gateway: it sees changes, and after its queue is lost it
// makes a new one and reports the change it missed. Nobody knowing a
// version (a RESYNC flagged etagUnknown, a subscribe answering "" for a
// resource it knew an etag of) it reports as ETAG_UNKNOWN, keeping the
// etag it knew (OTHER-LANGUAGES.md, steps 2 and 5).
func TestNodeRecoveryGuide(t *testing.T) {
	dir, _ := filepath.Abs("../server/testdata/node")
	node := testkit.Node(t, dir, "graphql-ws")
	gw := startGateway()
	defer gw.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tok := gw.token("browser", time.Hour)
	lines := runRecovery(ctx, t, node, dir, strings.Replace(gw.URL, "127.0.0.1", "localhost", 1), tok, gw.dir, "user:alice/notes", "user:alice/forgot")
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

	// Nobody knows notes' version (as the gateway's repair says when it
	// made a list again and no one knew it).
	gw.store.Deliver(&shard.Event{Kind: shard.Resync, EtagUnknown: true, Resource: "user:alice/notes", Time: time.Now()})
	if m := expect("ETAG_UNKNOWN", ""); m["resource"] != "user:alice/notes" {
		t.Fatalf("ETAG_UNKNOWN of %v; want user:alice/notes", m["resource"])
	}
	// forgot changes to f1 without its publisher (the built-in user: one,
	// which remembers etags in memory) hearing of it, as after the
	// publisher restarted: subscribed again, it answers "".
	gw.store.Deliver(&shard.Event{Kind: shard.Changed, Resource: "user:alice/forgot", Etag: "f1", Time: time.Now()})
	ready = expect("CHANGED", "f1")
	if err := gw.do(tok, `mutation($q:String!){ deleteQueue(name:$q) }`, map[string]any{"q": ready["queue"]}); err != nil {
		t.Fatal(err)
	}
	// On the new queue: notes is at a3, the etag it kept; forgot's "" is
	// not "never published".
	var unknown []any
	for {
		m, ok := <-lines
		if !ok {
			t.Fatal("the Node client exited")
		}
		if m["kind"] == "READY" {
			break
		}
		switch m["kind"] {
		case "ETAG_UNKNOWN":
			unknown = append(unknown, m["resource"])
		default:
			t.Errorf("on the new queue before READY: %v", m)
		}
	}
	if len(unknown) != 1 || unknown[0] != "user:alice/forgot" {
		t.Errorf("ETAG_UNKNOWN on the new queue for %v; want [user:alice/forgot]", unknown)
	}
	gw.publish("user:alice/notes", "a4")
	expect("CHANGED", "a4")
}

// TestNodeRecoveryGuide_Overflow runs the guide's Node client through a
// reader that falls behind: its connection is cut and refused while its
// queue (4 notifications) drops the oldest. Back, it reads the OVERFLOW and
// what is still queued, subscribes again naming the etags it holds
// (OTHER-LANGUAGES.md, step 5), and a RESYNC after what is queued brings
// each resource that moved to its current etag: on the same queue, and no
// etag goes back.
func TestNodeRecoveryGuide_Overflow(t *testing.T) {
	dir, _ := filepath.Abs("../server/testdata/node")
	node := testkit.Node(t, dir, "graphql-ws")
	gw := startGatewayWith(shard.Config{BufferSize: 4, RetainDelivered: 4})
	defer gw.stop()
	px := startTCPProxy(t, strings.TrimSuffix(strings.TrimPrefix(gw.URL, "https://"), "/graphql"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tok := gw.token("browser", time.Hour)
	lines := runRecovery(ctx, t, node, dir, "https://localhost:"+px.port+"/graphql", tok, gw.dir, "user:alice/a", "user:alice/b")
	var seen []map[string]any
	// await reads the client's lines until one satisfies cond, or fails.
	await := func(what string, d time.Duration, cond func(m map[string]any) bool) bool {
		t.Helper()
		timeout := time.After(d)
		for {
			select {
			case m, ok := <-lines:
				if !ok {
					t.Fatalf("the Node client exited waiting for %s", what)
				}
				seen = append(seen, m)
				if cond(m) {
					return true
				}
			case <-timeout:
				return false
			}
		}
	}
	is := func(kind, etag string) func(map[string]any) bool {
		return func(m map[string]any) bool { return m["kind"] == kind && (etag == "" || m["etag"] == etag) }
	}
	if !await("READY", 20*time.Second, is("READY", "")) {
		t.Fatal("no READY from the Node client")
	}
	queue := seen[len(seen)-1]["queue"]
	// READY comes before its stream is attached: publish until a change
	// is delivered.
	n := 0
	for ; ; n++ {
		if n == 80 {
			t.Fatal("the Node client's stream delivered nothing in 20 s")
		}
		gw.publish("user:alice/a", fmt.Sprintf("a%03d", n))
		if await("a CHANGED", 250*time.Millisecond, is("CHANGED", "")) {
			break
		}
	}
	// The client falls behind: b's change is dropped, and the oldest of a's.
	px.setDown(true)
	gw.publish("user:alice/b", "b001")
	for range 9 {
		n++
		gw.publish("user:alice/a", fmt.Sprintf("a%03d", n))
	}
	lastA := fmt.Sprintf("a%03d", n)
	mark := len(seen)
	px.setDown(false)
	at := map[string]string{}
	current := func(m map[string]any) bool {
		if r, ok := m["resource"].(string); ok {
			at[r], _ = m["etag"].(string)
		}
		return at["user:alice/a"] == lastA && at["user:alice/b"] == "b001"
	}
	ok := await("a at "+lastA+" and b at b001", 40*time.Second, current)
	// Once a change made now is in, everything queued before it is.
	n++
	if ok {
		gw.publish("user:alice/a", fmt.Sprintf("a%03d", n))
		ok = await("the change after", 20*time.Second, is("CHANGED", fmt.Sprintf("a%03d", n)))
	}
	after := seen[mark:]
	var trace []string
	for _, m := range after {
		trace = append(trace, fmt.Sprintf("%v(%v %v)", m["kind"], m["resource"], m["etag"]))
	}
	t.Logf("after the client is back: %s", strings.Join(trace, " "))
	if !ok {
		t.Fatal("the Node client did not come current")
	}
	overflows := 0
	prev := map[string]string{}
	for _, m := range after {
		if m["queue"] != queue {
			t.Errorf("%v on queue %v; want the queue it had, %v", m["kind"], m["queue"], queue)
		}
		switch m["kind"] {
		case "OVERFLOW":
			overflows++
		case "CHANGED", "RESYNC", "CHANGED_WHILE_AWAY":
			if m["kind"] == "CHANGED_WHILE_AWAY" {
				t.Errorf("a new queue after the OVERFLOW: CHANGED_WHILE_AWAY %v", m["etag"])
			}
			r, e := m["resource"].(string), m["etag"].(string)
			if e < prev[r] {
				t.Errorf("%s went back from %s to %v %s", r, prev[r], m["kind"], e)
			}
			prev[r] = e
		default:
			t.Errorf("unexpected %v after the OVERFLOW", m["kind"])
		}
	}
	if overflows != 1 {
		t.Errorf("%d OVERFLOWs; want 1", overflows)
	}
}

// tcpProxy forwards loopback TCP connections to a gateway; setDown(true)
// cuts them and refuses new ones (a network that drops the device).
type tcpProxy struct {
	port  string
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{port: strconv.Itoa(l.Addr().(*net.TCPAddr).Port)}
	t.Cleanup(func() { l.Close(); p.setDown(true) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			if !down {
				p.conns = append(p.conns, c)
			}
			p.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			go func() {
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				p.mu.Lock()
				p.conns = append(p.conns, up)
				p.mu.Unlock()
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	return p
}

func (p *tcpProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.cut()
	}
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// runRecovery starts the guide's Node client (recovery.mjs in dir) on
// url with token tok, trusting the development certificate in certDir,
// watching resources, until ctx ends; it returns the JSON lines it prints.
func runRecovery(ctx context.Context, t *testing.T, node, dir, url, tok, certDir string, resources ...string) <-chan map[string]any {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, append([]string{"recovery.mjs"}, resources...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MESHGATE_URL="+url, "MESHGATE_TOKEN="+tok, "NODE_EXTRA_CA_CERTS="+filepath.Join(certDir, certs.DevCertFile))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan map[string]any, 64)
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
	return lines
}
