package cluster_test

import (
	"math/rand/v2"
	"meshgate/internal/certs"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"meshgate/shard"
	"meshgate/shard/cluster"
	"meshgate/shard/ring"
)

type allowAll struct{}

func (allowAll) Authorize(_ context.Context, _ shard.Principal, res, _ string) (string, error) {
	return "e0", nil
}

// noEtag allows everything and knows no etag: "" (never published).
type noEtag struct{}

func (noEtag) Authorize(context.Context, shard.Principal, string, string) (string, error) {
	return "", nil
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	if lvl := os.Getenv("CLUSTER_LOG"); lvl != "" && !strings.Contains(string(p), "memberlist") && (lvl != "warn" || strings.Contains(string(p), "level=WARN")) {
		fmt.Fprintln(os.Stderr, w.name, strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

type testNode struct {
	*cluster.Node
	store *shard.Store
}

// startNodes starts k nodes in this process, each joining the first.
func startNodes(t *testing.T, k int) []*testNode {
	t.Helper()
	ca, caKey := devCA(t)
	var nodes []*testNode
	var seed string
	for i := range k {
		n := startNode(t, fmt.Sprintf("n%d", i+1), ca, caKey, seed)
		if seed == "" {
			seed = n.gossip
		}
		nodes = append(nodes, n.testNode)
	}
	waitRing(t, nodes, k)
	return nodes
}

// devCA makes a development cluster CA in a temporary directory and
// returns its certificate's and key's paths.
func devCA(t *testing.T) (ca, caKey string) {
	t.Helper()
	ca, caKey, _, err := certs.EnsureDevCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca, caKey
}

type started struct {
	*testNode
	gossip string
}

func startNode(t *testing.T, name, ca, caKey, seed string) started {
	t.Helper()
	return startNodeWith(t, name, ca, caKey, seed, nil)
}

func startNodeWith(t *testing.T, name, ca, caKey, seed string, intercept func(context.Context, string) error) started {
	t.Helper()
	return startNodeOn(t, name, ca, caKey, seed, intercept, shard.Config{})
}

// startNodeOn is startNodeWith around a store made with storeCfg.
func startNodeOn(t *testing.T, name, ca, caKey, seed string, intercept func(context.Context, string) error, storeCfg shard.Config, opts ...func(*cluster.Config)) started {
	t.Helper()
	store, err := shard.New(storeCfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, cli, err := certs.TLSFromCA(ca, caKey, name)
	if err != nil {
		t.Fatal(err)
	}
	// A port freePort gave may be taken again before the node binds it
	// (by another test's node, or this node's other port): a start that
	// finds its address in use is tried again on new ports.
	var n *cluster.Node
	var gossip string
	for attempt := 0; ; attempt++ {
		gossip = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
		cfg := cluster.Config{
			Name: name, Gossip: gossip, RPC: fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp")),
			ServerTLS: srv, ClientTLS: cli, Auth: allowAll{}, ProbeInterval: 200 * time.Millisecond,
			Logger:    slog.New(slog.NewTextHandler(testWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Intercept: intercept,
			Current: func(_ context.Context, rs []string) map[string]string {
				out := map[string]string{}
				for _, r := range rs {
					out[r] = "current@" + name
				}
				return out
			},
		}
		if cfg.RPC == gossip {
			continue
		}
		if seed != "" {
			cfg.Join = []string{seed}
		}
		for _, o := range opts {
			o(&cfg)
		}
		if n, err = cluster.New(cfg, store); err != nil {
			t.Fatal(err)
		}
		err = n.Start(context.Background())
		if err == nil {
			break
		}
		n.Close()
		if attempt == 4 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { n.Close(); store.Close() })
	return started{&testNode{n, store}, gossip}
}

func waitRing(t *testing.T, nodes []*testNode, k int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		for _, n := range nodes {
			if len(n.Ring().Nodes()) != k {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range nodes {
		t.Logf("%s sees %v", n.Name(), n.Ring().Nodes())
	}
	t.Fatalf("the nodes did not agree on a ring of %d", k)
}

type listener struct{ ch chan struct{} }

func (l *listener) Notify() {
	select {
	case l.ch <- struct{}{}:
	default:
	}
}

// collect reads r until it has want notifications or the time is up.
func collect(t *testing.T, r shard.Reader, l *listener, want int, timeout time.Duration, got ...shard.Notification) ([]shard.Notification, error) {
	t.Helper()
	deadline := time.After(timeout)
	for len(got) < want {
		var err error
		got, err = r.Next(got, 100)
		if err != nil {
			return got, err
		}
		if len(got) >= want {
			break
		}
		select {
		case <-l.ch:
		case <-deadline:
			return got, fmt.Errorf("timed out with %d of %d", len(got), want)
		}
	}
	return got, nil
}

var alice = shard.Principal{User: "alice", Device: "phone"}

// ownedBy returns the first resource user:alice/<prefix><i> that n's ring
// gives owner.
func ownedBy(n *testNode, owner, prefix string) string {
	for i := 0; ; i++ {
		if r := fmt.Sprintf("user:alice/%s%d", prefix, i); n.Ring().Owner(r) == owner {
			return r
		}
	}
}

// untilAvailable runs call until it answers anything but
// shard.ErrUnavailable, for at most 10 s, as README asks of a client
// (UNAVAILABLE is tried again), and returns its last error. On a loaded
// machine memberlist may take a live node for dead for a moment (a
// probe's ack late), and a call sent on the ring of that moment answers
// UNAVAILABLE, as it must: the receiver's ring never matches it. The
// tests that use it ask for the answer once membership is still, not
// for the first try's.
func untilAvailable(call func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := call()
		if !errors.Is(err, shard.ErrUnavailable) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The set-up fixtures below try UNAVAILABLE again, as a client does
// (untilAvailable): under load a node may take another for dead for a
// moment right after start, and a call then answers that the nodes
// disagree on the ring. A call whose answer a test checks is made
// directly, not through them.

// newQueue makes a queue for p through n and returns its name.
func newQueue(t *testing.T, n *testNode, p shard.Principal) string {
	t.Helper()
	var q shard.QueueInfo
	if err := untilAvailable(func() (err error) { q, err = n.CreateQueue(context.Background(), p, 0); return err }); err != nil {
		t.Fatal(err)
	}
	return q.Name
}

// ownedQueue makes a queue for p through n that n's ring gives n (the
// ring n made it on may have changed since).
func ownedQueue(t *testing.T, n *testNode, p shard.Principal) string {
	t.Helper()
	for range 100 {
		if q := newQueue(t, n, p); n.Ring().Owner(q) == n.Name() {
			return q
		}
	}
	t.Fatal("no queue owned by", n.Name())
	return ""
}

// subscribe subscribes p's queue to each resource through n.
func subscribe(t *testing.T, n *testNode, auth shard.Authorizer, p shard.Principal, queue string, resources ...string) {
	t.Helper()
	for _, res := range resources {
		if err := untilAvailable(func() error {
			_, err := n.Subscribe(context.Background(), auth, p, queue, res, "", "")
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// subscribed makes a queue for p through n, subscribed to each resource,
// and returns its name.
func subscribed(t *testing.T, n *testNode, auth shard.Authorizer, p shard.Principal, resources ...string) string {
	t.Helper()
	q := newQueue(t, n, p)
	subscribe(t, n, auth, p, q, resources...)
	return q
}

// publish publishes a change of res to etag through n.
func publish(t *testing.T, n *testNode, res, etag string) {
	t.Helper()
	if err := untilAvailable(func() error {
		_, err := n.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: etag, Time: time.Now()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// attach reads p's queue from its start through n; the caller closes the
// reader.
func attach(t *testing.T, n *testNode, p shard.Principal, queue string) (shard.Reader, *listener) {
	t.Helper()
	l := &listener{ch: make(chan struct{}, 1)}
	var r shard.Reader
	if err := untilAvailable(func() (err error) { r, err = n.Attach(context.Background(), p, queue, 0, l); return err }); err != nil {
		t.Fatal(err)
	}
	return r, l
}

func TestClusterRoutesEverything(t *testing.T) {
	nodes := startNodes(t, 3)
	ctx := context.Background()
	// One queue per node, each subscribed to 30 resources spread over the ring.
	var queues []string
	for _, n := range nodes {
		q := newQueue(t, n, alice)
		if !n.Owns(q) {
			t.Fatalf("%s made queue %s it does not own", n.Name(), q)
		}
		queues = append(queues, q)
	}
	for i, q := range queues {
		for r := range 30 {
			subscribe(t, nodes[(i+1)%3], allowAll{}, alice, q, fmt.Sprintf("user:alice/r%d", r)) // through another node
		}
		subs, err := nodes[(i+2)%3].Subscriptions(ctx, alice, q)
		if err != nil || len(subs) != 30 {
			t.Fatalf("subscriptions via a third node: %d, %v", len(subs), err)
		}
	}
	total := 0
	for _, n := range nodes {
		total += n.store.SubscriberCount()
	}
	if total != 90 {
		t.Fatalf("subscriber lists hold %d entries; want 90", total)
	}
	// Publish each resource from a node that does not own it; every queue gets 30.
	for r := range 30 {
		ev := &shard.Event{Kind: shard.Changed, Resource: fmt.Sprintf("user:alice/r%d", r), Etag: "e1", Time: time.Now()}
		if k := nodes[r%3].Deliver(ev); k != 3 {
			t.Fatalf("publish of r%d reached %d queues; want 3", r, k)
		}
	}
	for i, q := range queues {
		deadline := time.Now().Add(5 * time.Second)
		for {
			pg, err := nodes[(i+1)%3].Poll(ctx, alice, q, 0, 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(pg.Items) == 30 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("queue %d has %d of 30 notifications", i, len(pg.Items))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A relayed stream: attached at n1 to n2's queue.
	r, l := attach(t, nodes[0], alice, queues[1])
	defer r.Close()
	got, err := collect(t, r, l, 30, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nodes[2].Deliver(&shard.Event{Kind: shard.Changed, Resource: "user:alice/r0", Etag: "e2", Time: time.Now()})
	got, err = collect(t, r, l, 31, 5*time.Second, got...)
	if err != nil || got[30].Seq != 31 || got[30].Etag != "e2" {
		t.Fatalf("relay: %d notifications, %v", len(got), err)
	}
	// Another device's queue, through another node, is not found.
	if _, err := nodes[2].Queue(ctx, shard.Principal{User: "bob", Device: "x"}, queues[0]); !errors.Is(err, shard.ErrQueueNotFound) {
		t.Fatalf("bob reading alice's queue: %v", err)
	}
	mem := nodes[0].Members(ctx)
	if len(mem) != 3 || !mem[1].Up || mem[1].Queues != 1 {
		t.Fatalf("members: %+v", mem)
	}
}

// TestGracefulLeaveMovesEverything publishes while a node leaves: the
// streams of its queues continue elsewhere with every seq once.
func TestGracefulLeaveMovesEverything(t *testing.T) {
	nodes := startNodes(t, 3)
	ctx := context.Background()
	leaving := nodes[1]
	type reader struct {
		q string
		r shard.Reader
		l *listener
	}
	var readers []reader
	for i := range 20 {
		q := subscribed(t, nodes[i%3], allowAll{}, alice, "user:alice/feed")
		at := nodes[(i+1)%3]
		if at == leaving {
			at = nodes[0]
		}
		r, l := attach(t, at, alice, q)
		defer r.Close()
		readers = append(readers, reader{q, r, l})
	}
	const events = 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range events {
			ev := &shard.Event{Kind: shard.Changed, Resource: "user:alice/feed", Etag: fmt.Sprint("e", i), Time: time.Now()}
			for nodes[0].Deliver(ev) != 20 {
				time.Sleep(5 * time.Millisecond) // the list is moving: publishers retry
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	time.Sleep(50 * time.Millisecond)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := leaving.Leave(lctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
	for _, rd := range readers {
		got, err := collect(t, rd.r, rd.l, events, 10*time.Second)
		if err != nil {
			t.Fatalf("queue %s: %v", rd.q, err)
		}
		for i, n := range got {
			if n.Seq != uint64(i+1) || n.Etag != fmt.Sprint("e", i) {
				var es []string
				for _, x := range got[:min(len(got), i+6)] {
					es = append(es, fmt.Sprintf("%d:%s", x.Seq, x.Etag))
				}
				t.Fatalf("queue %s: notification %d is seq %d etag %s: %v", rd.q, i, n.Seq, n.Etag, es)
			}
		}
	}
	if st := leaving.store.Stats(); st.Queues+st.Resources != 0 {
		t.Fatalf("the leaver still holds %+v", st)
	}
}

// TestCrashRepairs kills a node without a word: the lists it held are
// rebuilt from the queues with a RESYNC, and its queues are gone.
func TestCrashRepairs(t *testing.T) {
	nodes := startNodes(t, 3)
	ctx := context.Background()
	dead := nodes[2]
	res := ownedBy(dead, dead.Name(), "c") // its list lives on the node that will die
	var qs []string
	for _, n := range nodes[:2] {
		qs = append(qs, subscribed(t, n, allowAll{}, alice, res))
	}
	lost := newQueue(t, dead, alice)
	start := time.Now()
	dead.Close()
	waitRing(t, nodes[:2], 2)
	t.Logf("crash detected in %v", time.Since(start).Round(10*time.Millisecond))
	// The RESYNC carries the etag the resource's new owner's publishers
	// know, whichever node repairs the queue.
	want := "current@" + nodes[0].Ring().Owner(res)
	for i, q := range qs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			pg, err := nodes[i].Poll(ctx, alice, q, 0, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(pg.Items) == 1 {
				if n := pg.Items[0]; n.Kind != shard.Resync || n.Etag != want || n.Resource != res {
					t.Fatalf("after the crash: %+v, want a RESYNC with etag %q", n, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no RESYNC in %s", q)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The list was rebuilt: a publish reaches both queues again. A link
	// the repair sent before every survivor dropped the dead node is
	// retried (every 500 ms), after the RESYNC is already in its queue.
	holder := nodes[0]
	if nodes[1].Owns(res) {
		holder = nodes[1]
	}
	if !waitFor(10*time.Second, func() bool { k, _ := holder.store.HasResource(res); return k == 2 }) {
		k, _ := holder.store.HasResource(res)
		t.Fatalf("the list of %s at %s has %d entries, want 2", res, holder.Name(), k)
	}
	if k := nodes[0].Deliver(&shard.Event{Kind: shard.Changed, Resource: res, Etag: "after", Time: time.Now()}); k != 2 {
		t.Fatalf("publish after repair reached %d", k)
	}
	if _, err := nodes[0].Queue(ctx, alice, lost); !errors.Is(err, shard.ErrQueueNotFound) {
		t.Fatalf("a queue of the dead node: %v", err)
	}
}

// TestJoinMovesKeysUnderLoad adds a node while events flow: keys the ring
// now gives it move there, and local streams follow their queues.
func TestJoinMovesKeysUnderLoad(t *testing.T) {
	ca, caKey := devCA(t)
	first := startNode(t, "n1", ca, caKey, "")
	second := startNode(t, "n2", ca, caKey, first.gossip)
	nodes := []*testNode{first.testNode, second.testNode}
	waitRing(t, nodes, 2)
	ctx := context.Background()
	type reader struct {
		r shard.Reader
		l *listener
		q string
	}
	var readers []reader
	for i := range 40 {
		n := nodes[i%2]
		dev := shard.Principal{User: "alice", Device: fmt.Sprint("d", i)}
		q := subscribed(t, n, allowAll{}, dev, fmt.Sprintf("user:alice/j%d", i%7))
		r, l := attach(t, n, dev, q) // local streams
		defer r.Close()
		readers = append(readers, reader{r, l, q})
	}
	const rounds = 60
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range rounds {
			for k := range 7 {
				ev := &shard.Event{Kind: shard.Changed, Resource: fmt.Sprintf("user:alice/j%d", k), Etag: fmt.Sprint("e", i), Time: time.Now()}
				// As README asks of a publisher: UNAVAILABLE (a list
				// moving) is tried again; success means it was stamped.
				for try := 0; ; try++ {
					_, err := nodes[i%2].DeliverChecked(ctx, ev)
					if err == nil {
						break
					}
					if !errors.Is(err, shard.ErrUnavailable) || try == 50 {
						t.Errorf("publish %s %s: %v", ev.Resource, ev.Etag, err)
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	third := startNode(t, "n3", ca, caKey, first.gossip)
	all := append(nodes, third.testNode)
	waitRing(t, all, 3)
	wg.Wait()
	for i, rd := range readers {
		got, err := collect(t, rd.r, rd.l, rounds, 10*time.Second)
		if err != nil {
			res := fmt.Sprintf("user:alice/j%d", i%7)
			for _, n := range all {
				k, held := n.store.HasResource(res)
				t.Logf("%s: holds queue %v, list of %s: %v with %d; owns q %v owns r %v", n.Name(), n.store.Has(rd.q), res, held, k, n.Owns(rd.q), n.Owns(res))
			}
			for j, g := range got {
				if j >= len(got)-3 || g.Etag != fmt.Sprint("e", j) {
					t.Logf("reader %d (queue %s): notification %d: %s %s", i, rd.q, j, g.Kind, g.Etag)
				}
			}
			t.Fatalf("reader %d: %v", i, err)
		}
		for j, n := range got {
			if n.Seq != uint64(j+1) || n.Etag != fmt.Sprint("e", j) {
				t.Fatalf("reader %d: notification %d is seq %d etag %s", i, j, n.Seq, n.Etag)
			}
		}
	}
	// Settled: every key is where the ring says, once.
	deadline := time.Now().Add(15 * time.Second)
	for {
		misplaced, queues := 0, 0
		for _, m := range all[0].Members(ctx) {
			misplaced += m.Misplaced
			queues += m.Queues
		}
		if misplaced == 0 && queues == 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the join: %d misplaced, %d queues", misplaced, queues)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if third.store.Stats().Queues == 0 {
		t.Fatal("the new node took no queue")
	}
}

// TestFaultsOnPeerCalls injects failures and delays into every node-to-node
// call: callers retry what failed before it ran, the outboxes retry their
// pushes, and every notification still arrives once, in order.
//
// Gossip is not faulted, but under machine load memberlist may take a
// live node for dead for a moment (a probe's ack late), and the cluster
// repairs that as a crash: lists made again are announced with RESYNC,
// and a reader whose node took the queue's node for dead is told the
// queue is lost (QUEUE_NOT_FOUND: a client makes it again). Only when
// the ring changed are those allowed, and then what the protocol
// promises is checked instead: queue order, each CHANGED the next
// change (or, after a RESYNC announced a loss, a later one), each RESYNC
// an etag no older than the last one delivered, and the last change
// reached.
func TestFaultsOnPeerCalls(t *testing.T) {
	ca, caKey := devCA(t)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	faulty := func(ctx context.Context, _ string) error {
		mu.Lock()
		x, y := rng.Float64(), rng.Float64()
		mu.Unlock()
		if y < 0.2 {
			time.Sleep(5 * time.Millisecond)
		}
		if x < 0.1 {
			return status.Error(codes.Unavailable, "injected fault")
		}
		return nil
	}
	var nodes []*testNode
	seed := ""
	for i := range 3 {
		n := startNodeWith(t, fmt.Sprint("f", i+1), ca, caKey, seed, faulty)
		if seed == "" {
			seed = n.gossip
		}
		nodes = append(nodes, n.testNode)
	}
	waitRing(t, nodes, 3)
	ringChanges := func() (k uint64) {
		for _, n := range nodes {
			k += n.Stats().RingChanges.Load() + n.Stats().Repairs.Load()
		}
		return k
	}
	still := ringChanges()
	type reader struct {
		r shard.Reader
		l *listener
	}
	var readers []reader
	for i := range 12 {
		dev := shard.Principal{User: "alice", Device: fmt.Sprint("f", i)}
		q := newQueue(t, nodes[i%3], dev)
		// The publisher knows no etag (""): every etag a reader sees is
		// a publish of this test's or a RESYNC's.
		subscribe(t, nodes[(i+1)%3], noEtag{}, dev, q, fmt.Sprintf("user:alice/f%d", i%4))
		r, l := attach(t, nodes[(i+2)%3], dev, q)
		defer r.Close()
		readers = append(readers, reader{r, l})
	}
	const events = 50
	for i := range events {
		for k := range 4 {
			ev := &shard.Event{Kind: shard.Changed, Resource: fmt.Sprintf("user:alice/f%d", k), Etag: fmt.Sprint("e", i), Time: time.Now()}
			for nodes[i%3].Deliver(ev) == 0 { // failed before it ran: nothing delivered, try again
			}
		}
	}
	final := fmt.Sprint("e", events-1)
	reached := func(got []shard.Notification) bool { return len(got) > 0 && got[len(got)-1].Etag == final }
	for i, rd := range readers {
		// Up to the events published, or fewer if the last change comes
		// sooner: a RESYNC stands for every change it announces lost.
		var got []shard.Notification
		var err error
		for err == nil && len(got) < events && !reached(got) {
			got, err = collect(t, rd.r, rd.l, len(got)+1, 20*time.Second, got...)
		}
		if ringChanges() == still {
			if err != nil {
				t.Fatalf("reader %d: %v", i, err)
			}
			for j, n := range got {
				if n.Seq != uint64(j+1) || n.Etag != fmt.Sprint("e", j) {
					t.Fatalf("reader %d: notification %d is seq %d etag %s", i, j, n.Seq, n.Etag)
				}
			}
			continue
		}
		for err == nil && !reached(got) { // RESYNCs took places: read on
			got, err = collect(t, rd.r, rd.l, len(got)+1, 20*time.Second, got...)
		}
		if errors.Is(err, shard.ErrQueueNotFound) {
			t.Logf("reader %d: its node took the queue's node for dead: the queue is lost to it", i)
			continue
		}
		var held strings.Builder
		for _, n := range got {
			fmt.Fprintf(&held, " %d %v %s;", n.Seq, n.Kind, n.Etag)
		}
		if err != nil {
			t.Fatalf("reader %d, after the ring changed: %v; it holds%s", i, err, held.String())
		}
		last := -1        // the index of the last etag delivered (-1: none published yet)
		resynced := false // a loss was announced since the last CHANGED: changes may be skipped
		for j, n := range got {
			k := -1
			if e, ok := strings.CutPrefix(n.Etag, "e"); ok {
				k, _ = strconv.Atoi(e)
			}
			ok := n.Seq == uint64(j+1) &&
				(n.Kind == shard.Changed && (k == last+1 || resynced && k > last) || n.Kind == shard.Resync && k >= last)
			if !ok {
				t.Fatalf("reader %d, after the ring changed: notification %d is seq %d %v %q after %q; it holds%s", i, j, n.Seq, n.Kind, n.Etag, fmt.Sprint("e", last), held.String())
			}
			last, resynced = k, n.Kind == shard.Resync
		}
	}
}

// TestJustAfterJoinKeysGoToTheirOwners checks routing in the minutes after
// a join, while nodes still ask past owners for keys they own but do not
// hold: a new subscriber list starts at its ring owner (not wherever a
// call bounced to), and an event for a resource nobody watches is asked
// about once, neither sent round the nodes nor dropped as lost.
func TestJustAfterJoinKeysGoToTheirOwners(t *testing.T) {
	ca, caKey := devCA(t)
	first := startNode(t, "n1", ca, caKey, "")
	second := startNode(t, "n2", ca, caKey, first.gossip)
	nodes := []*testNode{first.testNode, second.testNode}
	waitRing(t, nodes, 2)
	for i, n := range nodes {
		dev := shard.Principal{User: "alice", Device: fmt.Sprint("d", i)}
		q := newQueue(t, n, dev)
		for k := range 20 {
			subscribe(t, n, allowAll{}, dev, q, fmt.Sprintf("user:alice/w%d", k))
		}
	}
	// Before any periodic rebalance could move a misplaced list.
	for k := range 20 {
		res := fmt.Sprintf("user:alice/w%d", k)
		for _, n := range nodes {
			subs, held := n.store.HasResource(res)
			if held != n.Owns(res) {
				t.Errorf("%s: %s holds its list %v (%d subscribers) but owns it %v", res, n.Name(), held, subs, n.Owns(res))
			}
		}
	}
	forwarded := func() (k uint64) {
		for _, n := range nodes {
			for _, c := range n.Stats().Forwarded() {
				k += c
			}
		}
		return k
	}
	before, dropped := forwarded(), first.Stats().Dropped.Load()+second.Stats().Dropped.Load()
	const events = 40
	for i := range events {
		ev := &shard.Event{Kind: shard.Changed, Resource: fmt.Sprintf("user:alice/nobody%d", i), Etag: "e", Time: time.Now()}
		if k := nodes[i%2].Deliver(ev); k != 0 {
			t.Fatalf("an unwatched resource reached %d queues", k)
		}
	}
	// From the non-owner: one call to the owner; from the owner: at most
	// one question to the past owner. Before the fix, each bounced
	// between the two nodes until the hop limit.
	if sent := forwarded() - before; sent > 2*events {
		t.Errorf("%d events for unwatched resources cost %d node-to-node calls; want at most %d", events, sent, 2*events)
	}
	if d := first.Stats().Dropped.Load() + second.Stats().Dropped.Load() - dropped; d != 0 {
		t.Errorf("%d events for unwatched resources were counted as lost", d)
	}
}

// TestOutboxOfALeftPeerIsHandedOn holds a delivery in n1's outbox to n2
// while n2 leaves: once n1 drops n2, the delivery goes on to wherever
// n2's queue went, once, and before the next one.
func TestOutboxOfALeftPeerIsHandedOn(t *testing.T) {
	ca, caKey := devCA(t)
	var hold atomic.Bool
	release := make(chan struct{})
	first := startNodeWith(t, "n1", ca, caKey, "", func(ctx context.Context, method string) error {
		if hold.Load() && strings.HasSuffix(method, "/Push") {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	second := startNode(t, "n2", ca, caKey, first.gossip)
	third := startNode(t, "n3", ca, caKey, first.gossip)
	n1, n2 := first.testNode, second.testNode
	waitRing(t, []*testNode{n1, n2, third.testNode}, 3)
	ctx := context.Background()
	res := ownedBy(n1, "n1", "o") // a list n1 holds, with or without n2
	q := subscribed(t, n2, allowAll{}, alice, res)
	if !waitFor(10*time.Second, func() bool { _, held := n1.store.HasResource(res); return held }) {
		t.Fatalf("n1 does not hold the list of %s", res)
	}
	hold.Store(true)
	n1.Deliver(&shard.Event{Kind: shard.Changed, Resource: res, Etag: "e1", Time: time.Now()}) // waits in n1's outbox to n2
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := n2.Leave(lctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if !waitFor(10*time.Second, func() bool {
		for _, m := range n1.Members(ctx) {
			if m.Name == "n2" {
				return false
			}
		}
		return true
	}) {
		t.Fatal("n1 still lists n2")
	}
	time.Sleep(200 * time.Millisecond) // n1 closes its client of n2
	hold.Store(false)
	close(release)
	n1.Deliver(&shard.Event{Kind: shard.Changed, Resource: res, Etag: "e2", Time: time.Now()})
	l := &listener{ch: make(chan struct{}, 1)}
	r, err := n1.Attach(ctx, alice, q, 0, l)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := collect(t, r, l, 2, 10*time.Second)
	if err != nil {
		t.Fatalf("%v: %+v", err, got)
	}
	if len(got) != 2 || got[0].Etag != "e1" || got[1].Etag != "e2" || got[0].Seq != 1 || got[1].Seq != 2 {
		t.Fatalf("got %+v; want e1 then e2, seqs 1 and 2", got)
	}
}

// waitFor polls cond every 20 ms for up to limit.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// TestGracefulLeave_ListsForgetTheLeaver: a node that left gracefully
// handed every queue away, so no list may go on naming it. A list whose
// leaver's last interest op was lost on the way (seen in the churn test:
// a list went on counting one queue of a node that had left, and sent
// its events to a node that was gone) forgets it once it is gone.
func TestGracefulLeave_ListsForgetTheLeaver(t *testing.T) {
	nodes := startNodes(t, 3)
	holder, reader, leaver := nodes[0], nodes[1], nodes[2]
	res := ownedBy(holder, holder.Name(), "leaver")
	q := ownedQueue(t, reader, alice)
	subscribe(t, reader, allowAll{}, alice, q, res)
	if k, held := holder.store.HasResource(res); !held || k != 1 {
		t.Fatalf("the holder counts %d subscribers (held %v); want 1", k, held)
	}
	// The leaver's "no more queues" never came.
	holder.store.SetInterest(res, shard.Interest{Node: leaver.Name(), Count: 1, Ver: math.MaxInt64})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaver.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { k, _ := holder.store.HasResource(res); return k == 1 }) {
		k, _ := holder.store.HasResource(res)
		t.Fatalf("the holder counts %d subscribers after the leaver left; want 1 (the reader's)", k)
	}
	publish(t, holder, res, "v1")
	r, l := attach(t, reader, alice, q)
	defer r.Close()
	if _, err := collect(t, r, l, 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestGracefulLeave_ALateInterestOpOfTheLeaverIsNotRecordedAgain: an
// interest op of the leaver still on its way when forgetLeft ran (one
// relayed by a former holder of the list, or kept by whenLanded until the
// list landed) is applied as it comes (applyHere's SetInterest): the
// entry forgetLeft removed is recorded again, with nothing left to say
// it is stale (its Ver went with it), and the list counts a queue of a
// node that is gone.
func TestGracefulLeave_ALateInterestOpOfTheLeaverIsNotRecordedAgain(t *testing.T) {
	nodes := startNodes(t, 3)
	holder, reader, leaver := nodes[0], nodes[1], nodes[2]
	res := ownedBy(holder, holder.Name(), "late")
	q := ownedQueue(t, reader, alice)
	subscribe(t, reader, allowAll{}, alice, q, res)
	// The leaver's last word (Ver 2000, no more queues) was lost; an
	// earlier one (Ver 1000, one queue) is still on its way.
	holder.store.SetInterest(res, shard.Interest{Node: leaver.Name(), Count: 1, Ver: 1500})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaver.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { k, _ := holder.store.HasResource(res); return k == 1 }) {
		t.Fatal("forgetLeft did not run at the holder")
	}
	holder.store.SetInterest(res, shard.Interest{Node: leaver.Name(), Count: 1, Ver: 1000})
	if k, _ := holder.store.HasResource(res); k != 1 {
		t.Fatalf("the holder counts %d subscribers after the leaver's late op; want 1 (the reader's): an op older than the entry forgetLeft dropped named %s again", k, leaver.Name())
	}
}

// TestGracefulLeave_AListOnItsWayWhenTheLeaverLeftForgetsIt: a list in
// flight to z when the leaver left (or in its giver's tomb, given again
// later) still counts the leaver's lost "no more queues": it forgets the
// leaver as it lands, as the lists held everywhere did when it left.
func TestGracefulLeave_AListOnItsWayWhenTheLeaverLeftForgetsIt(t *testing.T) {
	nodes := startNodes(t, 4)
	reader, holder, taker, leaver := nodes[0], nodes[1], nodes[2], nodes[3]
	res := ownedBy(holder, holder.Name(), "onitsway")
	q := ownedQueue(t, reader, alice)
	subscribe(t, reader, allowAll{}, alice, q, res)
	holder.store.SetInterest(res, shard.Interest{Node: leaver.Name(), Count: 1, Ver: math.MaxInt64}) // its last word lost
	land := taker.BringList(res, holder.Name())
	gave := holder.GiveList(taker.Name(), res)
	if gave == nil {
		t.Fatal("the holder gave no list")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaver.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return !slices.Contains(taker.GossipMembers(), leaver.Name()) }) {
		t.Fatal("the taker never saw the leaver go")
	}
	time.Sleep(500 * time.Millisecond) // the taker's lists forgot it (it holds none yet)
	land(gave)
	count := func() (k int) { // wherever it is now: the owner may take it back
		for _, n := range nodes[:3] {
			if c, held := n.store.HasResource(res); held {
				k += c
			}
		}
		return k
	}
	if !waitFor(5*time.Second, func() bool { return count() == 1 }) {
		t.Fatalf("the list landed at the taker counts %d subscribers; want 1 (the reader's): it names %s, gone", count(), leaver.Name())
	}
}

// TestGracefulLeave_ANodeBackBeforeItsLeaveIsForgottenKeepsItsInterest:
// the forgetting of a node that left runs on its own goroutine, started
// by the ring rebuild that saw it go; when it runs late, after the node
// is a member again (it rejoined under its name), it must not take the
// node's new interest out of the lists.
func TestGracefulLeave_ANodeBackBeforeItsLeaveIsForgottenKeepsItsInterest(t *testing.T) {
	nodes := startNodes(t, 2)
	holder, back := nodes[0], nodes[1]
	res := ownedBy(holder, holder.Name(), "backsoon")
	subscribed(t, back, allowAll{}, alice, res)
	holder.ForgetLeft([]string{back.Name()}) // late: back is a member
	if k, held := holder.store.HasResource(res); !held || k != 1 {
		t.Fatalf("the list counts %d subscribers (held %v); want 1: the queue of %s, a member", k, held, back.Name())
	}
}

// TestGracefulLeave_ALeaveWhoseFlushSpentItsTimeStillSaysDone: a node
// that handed everything off and then spent its Leave's time sending the
// ops still queued (a slow peer) tells the others it is done all the
// same: it left, and they must not repair it as one that crashed (a
// repair re-links every list and RESYNCs the queues of those it owned).
func TestGracefulLeave_ALeaveWhoseFlushSpentItsTimeStillSaysDone(t *testing.T) {
	ca, caKey := devCA(t)
	a := startNode(t, "n1", ca, caKey, "")
	b := startNode(t, "n2", ca, caKey, a.gossip)
	slow := func(_ context.Context, method string) error {
		if strings.HasSuffix(method, "/Push") {
			time.Sleep(1500 * time.Millisecond) // a peer slow to take ops in
		}
		return nil
	}
	leaver := startNodeWith(t, "n3", ca, caKey, a.gossip, slow)
	nodes := []*testNode{a.testNode, b.testNode, leaver.testNode}
	waitRing(t, nodes, 3)
	// An op in the leaver's outbox: its word on a list a holds.
	leaver.Interest(ownedBy(a.testNode, a.Name(), "slowflush"), shard.Interest{Node: leaver.Name(), Count: 0, Ver: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = leaver.Leave(ctx) // its time runs out in the flush
	if !waitFor(10*time.Second, func() bool { return !slices.Contains(a.GossipMembers(), leaver.Name()) }) {
		t.Fatal("n1 never saw the leaver go")
	}
	time.Sleep(500 * time.Millisecond) // n1's ring rebuild runs its repair, if any
	if k := a.Stats().Repairs.Load() + b.Stats().Repairs.Load(); k != 0 {
		t.Fatalf("the other nodes ran %d crash repairs after the leaver left; want 0: it handed everything off", k)
	}
}

// TestInterest_AtAnOwnerThatHoldsNoListStartsIt: a node's interest op
// (a queue arriving, or one leaving while others stay) for a resource
// whose owner holds no list, nor does any node it asks, starts the list
// at the owner, as a link would. Before, the owner sent the op to the
// nodes that may hold the list, each answered "not held", and the op
// was dropped: the queues got nothing until the audit (the churn test's
// join: 18 s).
func TestInterest_AtAnOwnerThatHoldsNoListStartsIt(t *testing.T) {
	ca, caKey := devCA(t)
	x := startNode(t, "x", ca, caKey, "")
	y := startNode(t, "y", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, y.testNode}, 2)
	z := startNode(t, "z", ca, caKey, x.gossip) // it takes over keys x or y owned
	waitRing(t, []*testNode{x.testNode, y.testNode, z.testNode}, 3)
	res := ownedBy(z.testNode, "z", "nowhere")
	z.Interest(res, shard.Interest{Node: "z", Count: 1, Ver: 1})
	if !waitFor(5*time.Second, func() bool { k, held := z.store.HasResource(res); return held && k == 1 }) {
		k, held := z.store.HasResource(res)
		t.Fatalf("the owner's list counts %d (held %v); want z's queue", k, held)
	}
}

// TestInterest_AtAnOwnerThatHoldsNoListKeepsTheNewestWord: z owns a
// resource and holds no list; z's "1 queue" starts it through a link
// (held at its first ask), and z's "0 queues" comes meanwhile. The list
// ends with the newest word: none of z's queues.
func TestInterest_AtAnOwnerThatHoldsNoListKeepsTheNewestWord(t *testing.T) {
	ca, caKey := devCA(t)
	x := startNode(t, "x", ca, caKey, "")
	y := startNode(t, "y", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, y.testNode}, 2)
	g := newGate()
	z := startNodeWith(t, "z", ca, caKey, x.gossip, g.holding("/Link"))
	waitRing(t, []*testNode{x.testNode, y.testNode, z.testNode}, 3)
	res := ownedBy(z.testNode, "z", "newest")
	sent := func() (k uint64) {
		for _, v := range z.Stats().Forwarded() {
			k += v
		}
		return k
	}
	before := sent()
	g.armed.Store(true)
	z.Interest(res, shard.Interest{Node: "z", Count: 1, Ver: 1})
	select {
	case <-g.held:
	case <-time.After(5 * time.Second):
		t.Fatal("z asked nobody for the list")
	}
	z.Interest(res, shard.Interest{Node: "z", Count: 0, Ver: 2})
	g.free()
	if !waitFor(5*time.Second, func() bool { return sent() > before }) {
		t.Fatal("z's held link never ended")
	}
	counts := func() bool { k, held := z.store.HasResource(res); return !held || k == 0 }
	if !waitFor(3*time.Second, counts) {
		k, held := z.store.HasResource(res)
		t.Fatalf("the owner's list counts %d (held %v); want 0: z's newest word", k, held)
	}
	time.Sleep(300 * time.Millisecond) // the link's last step, had it one
	if !counts() {
		k, _ := z.store.HasResource(res)
		t.Fatalf("the owner's list counts %d; want 0: z's newest word", k)
	}
}

// TestInterest_AnOwnersLinkCutByARingChangeIsTriedOnTheNewRing: x's "1
// queue" reaches z, the resource's owner, which holds no list and starts
// one through a link; a node joins while the link asks the other nodes
// (it is held), and the joiner owns the resource now. The link, sent on
// the old ring, answers UNAVAILABLE; nothing else would record x's
// interest (no audit runs for 15 s), so the owner tries it again on the
// new ring, where it goes to the joiner.
func TestInterest_AnOwnersLinkCutByARingChangeIsTriedOnTheNewRing(t *testing.T) {
	ca, caKey := devCA(t)
	x := startNode(t, "x", ca, caKey, "")
	y := startNode(t, "y", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, y.testNode}, 2)
	g := newGate()
	z := startNodeWith(t, "z", ca, caKey, x.gossip, g.holding("/Link"))
	waitRing(t, []*testNode{x.testNode, y.testNode, z.testNode}, 3)
	before, after := ring.New(0, map[string]int{"x": 1, "y": 1, "z": 1}), ring.New(0, map[string]int{"x": 1, "y": 1, "z": 1, "w": 1})
	var res string
	for i := 0; res == ""; i++ {
		if r := fmt.Sprintf("user:alice/cut%d", i); before.Owner(r) == "z" && after.Owner(r) == "w" {
			res = r
		}
	}
	g.armed.Store(true)
	x.Interest(res, shard.Interest{Node: "x", Count: 1, Ver: 1})
	select {
	case <-g.held:
	case <-time.After(5 * time.Second):
		t.Fatal("z asked nobody for the list")
	}
	w := startNode(t, "w", ca, caKey, x.gossip)
	nodes := []*testNode{x.testNode, y.testNode, z.testNode, w.testNode}
	waitRing(t, nodes, 4)
	g.free()
	count := func() (k int) {
		for _, n := range nodes {
			if c, held := n.store.HasResource(res); held {
				k += c
			}
		}
		return k
	}
	if !waitFor(5*time.Second, func() bool { return count() == 1 }) {
		t.Fatalf("the lists of %s count %d subscribers; want 1: x's queue", res, count())
	}
}
