package cluster_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meshgate/shard"
	"meshgate/shard/cluster"
)

// TestHandoff_GiveWhileTakingDoesNotWaitForTheTake: node x takes a list
// (rD) from y while it gives away a queue subscribed to that list. The
// queue's leaving tells rD's holder x's interest now, and rD is in flight
// to x. The give must finish while x's take still waits for y's answer:
// in the churn test the taker of that give was itself waiting, holding a
// key x's take enlisted through, and the three waited on each other until
// the takes' 10 s deadlines broke the cycle (n3 taking from a leaving n2
// while giving to a joined n4; issue 12). The give waited for the take
// before (it hangs here until the test gives up).
func TestHandoff_GiveWhileTakingDoesNotWaitForTheTake(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, _, err := cluster.EnsureDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate()
	defer g.free()
	x := startNodeWith(t, "x", ca, caKey, "", g.holding("/Take")) // x's take asks y for rD
	y := startNode(t, "y", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, y.testNode}, 2)
	ctx := context.Background()
	rD := ""
	for i := 0; rD == ""; i++ { // a list y owns, so it lives there
		if r := fmt.Sprintf("user:alice/d%d", i); y.Ring().Owner(r) == "y" {
			rD = r
		}
	}
	q, err := x.CreateQueue(ctx, alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Subscribe(ctx, allowAll{}, alice, q.Name, rD, "", ""); err != nil {
		t.Fatal(err)
	}
	if k, ok := y.store.HasResource(rD); !ok || k != 1 {
		t.Fatalf("y holds rD's list: %v with %d queues; want it, with x's queue", ok, k)
	}

	g.armed.Store(true)
	took := make(chan error, 1)
	go func() { took <- x.TakeKeys(ctx, "y", nil, []string{rD}) }()
	select {
	case <-g.held: // rD is in flight to x: its take waits for y's answer
	case <-time.After(20 * time.Second):
		t.Fatal("x's take never asked y")
	}
	gave := make(chan int, 1)
	go func() { k, _ := x.GiveKeys("z", []string{q.Name}, nil); gave <- k }()
	select {
	case k := <-gave:
		if k != 1 {
			t.Fatalf("gave %d queues, want 1", k)
		}
	case <-time.After(20 * time.Second):
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "%s\n", buf[:runtime.Stack(buf, true)])
		t.Fatal("the give waited for a take in flight to its own node (stacks above)")
	}
	g.free()
	select {
	case err := <-took:
		if err != nil {
			t.Fatalf("take: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the take did not finish")
	}
	// The queue's leaving reached the list once it landed at x: no queue
	// is subscribed to it any more (it came with x's queue counted), so it
	// is dropped.
	if _, ok := y.store.HasResource(rD); ok {
		t.Fatal("y still holds rD's list after x took it")
	}
	if !waitFor(10*time.Second, func() bool { k, ok := x.store.HasResource(rD); return !ok || k == 0 }) {
		k, _ := x.store.HasResource(rD)
		t.Fatalf("after the hand-offs x's copy of rD's list counts %d queues; want none", k)
	}
}

// TestHandoff_OverlappingTakesDoNotWaitOnEachOther is the churn test's
// stall with three nodes in one process: x takes a queue and a list (rD)
// from y, as n3 took from the leaving n2, while z takes from x a queue
// subscribed to rD and a list (rB) that y's queue subscribes to, as the
// joined n4 took from n3. x gives rB to z, then its queue, whose leaving
// tells rD's holder x's interest; x's take enlists in rB, which follows
// rB's tomb to z, where rB is in flight. Each take waited for the other
// until the first deadline: z's take (10 s, as a Handoff's) failed after
// x had given it the keys, and they were lost. Both must succeed.
func TestHandoff_OverlappingTakesDoNotWaitOnEachOther(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, _, err := cluster.EnsureDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate()
	defer g.free()
	x := startNodeWith(t, "x", ca, caKey, "", g.holding("/Take")) // x's take asks y: held until z's take is given rB
	y := startNode(t, "y", ca, caKey, x.gossip)
	z := startNode(t, "z", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, y.testNode, z.testNode}, 3)
	ctx := context.Background()
	owned := func(by, prefix string) string {
		for i := 0; ; i++ {
			if r := fmt.Sprintf("user:alice/%s%d", prefix, i); x.Ring().Owner(r) == by {
				return r
			}
		}
	}
	rD, rB := owned("y", "d"), owned("x", "b") // where their lists start
	qx, err := x.CreateQueue(ctx, alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	bob := shard.Principal{User: "alice", Device: "tablet"}
	qy, err := y.CreateQueue(ctx, bob, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Subscribe(ctx, allowAll{}, alice, qx.Name, rD, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := y.Subscribe(ctx, allowAll{}, bob, qy.Name, rB, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := y.store.HasResource(rD); !ok {
		t.Fatal("rD's list is not at y")
	}
	if _, ok := x.store.HasResource(rB); !ok {
		t.Fatal("rB's list is not at x")
	}

	g.armed.Store(true)
	xTook := make(chan error, 1)
	go func() { xTook <- x.TakeKeys(ctx, "y", []string{qy.Name}, []string{rD}) }()
	select {
	case <-g.held: // qy and rD are in flight to x
	case <-time.After(20 * time.Second):
		t.Fatal("x's take never asked y")
	}
	zTook := make(chan error, 1)
	go func() {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a Handoff's deadline
		defer cancel()
		zTook <- z.TakeKeys(hctx, "x", []string{qx.Name}, []string{rB})
	}()
	if !waitFor(20*time.Second, func() bool { _, ok := x.store.HasResource(rB); return !ok }) {
		t.Fatal("x never gave rB to z")
	}
	g.free() // x's take goes on: it enlists in rB, now in flight to z
	for name, ch := range map[string]chan error{"x from y": xTook, "z from x": zTook} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("take %s: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("take %s did not end", name)
		}
	}
	for _, c := range []struct {
		n     *testNode
		queue string
		list  string
	}{{x.testNode, qy.Name, rD}, {z.testNode, qx.Name, rB}} {
		_, ok := c.n.store.HasResource(c.list)
		if !c.n.store.Has(c.queue) || !ok {
			t.Errorf("%s holds the queue it took: %v, the list: %v", c.n.Name(), c.n.store.Has(c.queue), ok)
		}
	}
}

// TestHandoff_TakeReadsItsKeysAfterItsCallerGaveUp: the giver exports
// keys on the taker's Take, whether or not the Handoff that started the
// take is still waited for. Here the caller gives up while x's give is
// under way (its queue waits for an event y's outbox holds back): z
// must still read x's answer and hold the keys. It gave up with the
// caller before, and the keys, given, were nowhere but in x's tombs: the
// churn test's lost queue after its stalled hand-off.
func TestHandoff_TakeReadsItsKeysAfterItsCallerGaveUp(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, _, err := cluster.EnsureDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	x := startNode(t, "x", ca, caKey, "")
	g := newGate()
	defer g.free()
	y := startNodeWith(t, "y", ca, caKey, x.gossip, g.holding("/Push")) // y's outbox: held back
	z := startNode(t, "z", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, y.testNode, z.testNode}, 3)
	ctx := context.Background()
	owned := func(by, prefix string) string {
		for i := 0; ; i++ {
			if r := fmt.Sprintf("user:alice/%s%d", prefix, i); x.Ring().Owner(r) == by {
				return r
			}
		}
	}
	rY, rX := owned("y", "y"), owned("x", "x")
	q, err := x.CreateQueue(ctx, alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{rY, rX} {
		if _, err := x.Subscribe(ctx, allowAll{}, alice, q.Name, r, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := x.store.HasResource(rX); !ok {
		t.Fatal("rX's list is not at x")
	}
	g.armed.Store(true)
	if _, err := y.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: rY, Etag: "v1", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	took := make(chan error, 1)
	go func() { took <- z.TakeKeys(hctx, "x", []string{q.Name}, []string{rX}) }()
	if !waitFor(20*time.Second, func() bool { _, ok := x.store.HasResource(rX); return !ok }) {
		t.Fatal("x never gave rX to z")
	}
	cancel() // the Handoff's caller gives up while x's give goes on
	select {
	case err := <-took:
		if err != nil {
			t.Errorf("take: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the take did not end")
	}
	if !waitFor(10*time.Second, func() bool { _, ok := z.store.HasResource(rX); return ok && z.store.Has(q.Name) }) {
		_, ok := z.store.HasResource(rX)
		t.Fatalf("z holds the queue x gave it: %v, the list: %v; x holds the queue: %v", z.store.Has(q.Name), ok, x.store.Has(q.Name))
	}
}

// gate holds a node's outgoing calls of one method, once armed, until it
// is freed (or the call's context ends); held is closed when the first
// one is held.
type gate struct {
	armed         atomic.Bool
	held, release chan struct{}
	once, unblock sync.Once
}

func newGate() *gate {
	return &gate{held: make(chan struct{}), release: make(chan struct{})}
}

// holding is an interceptor for startNodeWith that holds calls whose
// method ends in suffix.
func (g *gate) holding(suffix string) func(ctx context.Context, method string) error {
	return func(ctx context.Context, method string) error {
		if !g.armed.Load() || !strings.HasSuffix(method, suffix) {
			return nil
		}
		g.once.Do(func() { close(g.held) })
		select {
		case <-g.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *gate) free() { g.unblock.Do(func() { close(g.release) }) }
