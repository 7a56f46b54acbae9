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
	pb "meshgate/shard/cluster/peerpb"
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
	ca, caKey := devCA(t)
	g := newGate()
	defer g.free()
	x := startNodeWith(t, "x", ca, caKey, "", g.holding("/Take")) // x's take asks y for rD
	y := startNode(t, "y", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, y.testNode}, 2)
	ctx := context.Background()
	rD := ownedBy(y.testNode, "y", "d") // a list y owns, so it lives there
	q := subscribed(t, x.testNode, allowAll{}, alice, rD)
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
	go func() { k, _ := x.GiveKeys("z", []string{q}, nil); gave <- k }()
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
	ca, caKey := devCA(t)
	g := newGate()
	defer g.free()
	x := startNodeWith(t, "x", ca, caKey, "", g.holding("/Take")) // x's take asks y: held until z's take is given rB
	y := startNode(t, "y", ca, caKey, x.gossip)
	z := startNode(t, "z", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, y.testNode, z.testNode}, 3)
	ctx := context.Background()
	rD, rB := ownedBy(x.testNode, "y", "d"), ownedBy(x.testNode, "x", "b") // where their lists start
	qx := newQueue(t, x.testNode, alice)
	bob := shard.Principal{User: "alice", Device: "tablet"}
	qy := newQueue(t, y.testNode, bob)
	subscribe(t, x.testNode, allowAll{}, alice, qx, rD)
	subscribe(t, y.testNode, allowAll{}, bob, qy, rB)
	if _, ok := y.store.HasResource(rD); !ok {
		t.Fatal("rD's list is not at y")
	}
	if _, ok := x.store.HasResource(rB); !ok {
		t.Fatal("rB's list is not at x")
	}

	g.armed.Store(true)
	xTook := make(chan error, 1)
	go func() { xTook <- x.TakeKeys(ctx, "y", []string{qy}, []string{rD}) }()
	select {
	case <-g.held: // qy and rD are in flight to x
	case <-time.After(20 * time.Second):
		t.Fatal("x's take never asked y")
	}
	zTook := make(chan error, 1)
	go func() {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a Handoff's deadline
		defer cancel()
		zTook <- z.TakeKeys(hctx, "x", []string{qx}, []string{rB})
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
	}{{x.testNode, qy, rD}, {z.testNode, qx, rB}} {
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
	ca, caKey := devCA(t)
	x := startNode(t, "x", ca, caKey, "")
	g := newGate()
	defer g.free()
	y := startNodeWith(t, "y", ca, caKey, x.gossip, g.holding("/Push")) // y's outbox: held back
	z := startNode(t, "z", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, y.testNode, z.testNode}, 3)
	ctx := context.Background()
	rY, rX := ownedBy(x.testNode, "y", "y"), ownedBy(x.testNode, "x", "x")
	q := subscribed(t, x.testNode, allowAll{}, alice, rY, rX)
	if _, ok := x.store.HasResource(rX); !ok {
		t.Fatal("rX's list is not at x")
	}
	g.armed.Store(true)
	publish(t, y.testNode, rY, "v1")
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	took := make(chan error, 1)
	go func() { took <- z.TakeKeys(hctx, "x", []string{q}, []string{rX}) }()
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
	if !waitFor(10*time.Second, func() bool { _, ok := z.store.HasResource(rX); return ok && z.store.Has(q) }) {
		_, ok := z.store.HasResource(rX)
		t.Fatalf("z holds the queue x gave it: %v, the list: %v; x holds the queue: %v", z.store.Has(q), ok, x.store.Has(q))
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

// lostAnswer sets up the answer-never-reaches-the-taker cases: x holds a
// queue subscribed to a list x holds too. It returns them.
func lostAnswer(t *testing.T, x *testNode) (queue, list string) {
	t.Helper()
	list = ownedBy(x, x.Name(), "l")
	return subscribed(t, x, allowAll{}, alice, list), list
}

// reaches publishes etag on list through n until the publish lands, and
// waits until queue, read through n, holds it: the queue and its
// subscription are alive somewhere in the cluster.
func reaches(t *testing.T, n *testNode, queue, list, etag string) {
	t.Helper()
	ctx := context.Background()
	published := waitFor(30*time.Second, func() bool {
		_, err := n.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: list, Etag: etag, Time: time.Now()})
		return err == nil
	})
	if !published {
		t.Fatalf("the publish of %s never landed", etag)
	}
	var last error
	if !waitFor(20*time.Second, func() bool {
		pg, err := n.Poll(ctx, alice, queue, 0, 100, 0)
		last = err
		for _, it := range pg.Items {
			if it.Event.Etag == etag {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("queue %s never got %s (last poll: %v)", queue, etag, last)
	}
}

// TestHandoff_TakeWhoseAnswerIsLostAsksAgain: z's take asks x for a queue
// and its list; x exports them, and the answer never reaches z (here the
// connection breaks, and stays down for the take's next calls). The keys are then
// only in x's tombs, kept for z: z must ask again until it has them. Before,
// its take failed and nobody asked again: the queue was lost (x's tombs
// sent its calls to z, which did not hold it).
func TestHandoff_TakeWhoseAnswerIsLostAsksAgain(t *testing.T) {
	ca, caKey := devCA(t)
	var x started
	var armed atomic.Bool
	var takes atomic.Int32
	var queue, list string
	cut := func(_ context.Context, method string) error {
		if !armed.Load() || !strings.HasSuffix(method, "/Take") {
			return nil
		}
		switch k := takes.Add(1); {
		case k == 2: // 1 lists the queue's resources; 2 takes
			// The giver runs the Take, and its answer is lost on the way.
			x.GiveKeys("z", []string{queue}, []string{list})
			return fmt.Errorf("%w: connection reset", shard.ErrUnavailable)
		case k <= 4: // and the connection stays down a while
			return fmt.Errorf("%w: connection refused", shard.ErrUnavailable)
		}
		return nil
	}
	x = startNode(t, "x", ca, caKey, "")
	z := startNodeWith(t, "z", ca, caKey, x.gossip, cut)
	waitRing(t, []*testNode{x.testNode, z.testNode}, 2)
	queue, list = lostAnswer(t, x.testNode)
	armed.Store(true)
	if err := z.TakeKeys(context.Background(), "x", []string{queue}, []string{list}); err == nil {
		t.Fatal("the take whose answer was lost succeeded")
	}
	if x.store.Has(queue) {
		t.Fatal("x still holds the queue it exported")
	}
	if !waitFor(20*time.Second, func() bool { return x.store.Has(queue) || z.store.Has(queue) }) {
		t.Fatal("neither node holds the queue: it was lost in x's tombs")
	}
	reaches(t, z.testNode, queue, list, "v2")
	reaches(t, x.testNode, queue, list, "v3")
}

// TestHandoff_KeysGivenToATakerThatDiesComeBack: x gives a queue and its
// list to z (z's Take), and z dies before it imported them (its answer
// never arrived). x must take them back: no node but x has them. Before,
// they stayed in x's tombs until those expired: the queue was lost.
func TestHandoff_KeysGivenToATakerThatDiesComeBack(t *testing.T) {
	ca, caKey := devCA(t)
	x := startNode(t, "x", ca, caKey, "")
	z := startNode(t, "z", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, z.testNode}, 2)
	queue, list := lostAnswer(t, x.testNode)
	if q, r := x.GiveKeys("z", []string{queue}, []string{list}); q != 1 || r != 1 {
		t.Fatalf("x gave %d queues and %d lists; want 1 and 1", q, r)
	}
	z.Close() // dies with its take unfinished
	waitRing(t, []*testNode{x.testNode}, 1)
	if !waitFor(40*time.Second, func() bool { return x.store.Has(queue) }) {
		t.Fatal("x never took back the queue its dead taker did not get")
	}
	reaches(t, x.testNode, queue, list, "v2")
}

// TestHandoff_EventsWhileATakeAsksAgainAreKept: z takes a queue from x
// (its list stays at x); x lets it go and the answer is lost, so z asks
// again a moment later (retake). z is in the list since its first try,
// so x sends z the events stamped meanwhile: z must keep them for the
// queue on its way, as during any take. Before, z kept them only while a
// take call was running, dropped those that came between two tries, and
// the queue, landed, announced them lost with a RESYNC.
func TestHandoff_EventsWhileATakeAsksAgainAreKept(t *testing.T) {
	ca, caKey := devCA(t)
	var x started
	var armed atomic.Bool
	var takes atomic.Int32
	var queue string
	cut := func(_ context.Context, method string) error {
		if !armed.Load() || !strings.HasSuffix(method, "/Take") {
			return nil
		}
		switch k := takes.Add(1); {
		case k == 1: // z is enlisted in the list
			return nil
		case k == 2: // the take, whose answer is lost
			x.GiveKeys("z", []string{queue}, nil)
			return fmt.Errorf("%w: connection reset", shard.ErrUnavailable)
		case k <= 4: // and the connection stays down a while
			return fmt.Errorf("%w: connection refused", shard.ErrUnavailable)
		}
		return nil
	}
	x = startNode(t, "x", ca, caKey, "")
	z := startNodeWith(t, "z", ca, caKey, x.gossip, cut)
	waitRing(t, []*testNode{x.testNode, z.testNode}, 2)
	list := ownedBy(x.testNode, "x", "kept")
	queue = ownedQueue(t, x.testNode, alice)
	subscribe(t, x.testNode, allowAll{}, alice, queue, list)
	publish(t, x.testNode, list, "v1")
	armed.Store(true)
	if err := z.TakeKeys(context.Background(), "x", []string{queue}, nil); err == nil {
		t.Fatal("the take whose answer was lost succeeded")
	}
	publish(t, x.testNode, list, "v2") // while z asks again: x sends it to z
	if !waitFor(20*time.Second, func() bool { return z.store.Has(queue) }) {
		t.Fatal("z never got the queue")
	}
	publish(t, x.testNode, list, "v3")
	r, l := attach(t, x.testNode, alice, queue) // the queue is x's: it goes back there

	defer r.Close()
	got, err := collect(t, r, l, 3, 10*time.Second)
	var es []string
	for _, n := range got {
		es = append(es, n.Event.Kind.String()+" "+n.Event.Etag)
	}
	if err != nil || strings.Join(es, ",") != "CHANGED v1,CHANGED v2,CHANGED v3" {
		t.Fatalf("the queue holds %v (%v), want [CHANGED v1 CHANGED v2 CHANGED v3]", es, err)
	}
}

// TestHandoff_QueueEnlistsInAListOnItsWayToo: z takes a queue from x and,
// in another take, the queue's list from y; y has let the list go when
// the queue's take enlists z in it. z must be in the list as it lands:
// the list stamps events for z's queues from then on, and x lets the
// queue go without waiting for z's own interest. Before, the enlist
// failed ("key not held here"), and the list landed counting only x.
func TestHandoff_QueueEnlistsInAListOnItsWayToo(t *testing.T) {
	w := onItsWay(t, "onitsway", false)
	x, z, list, q, land, gave := w.x, w.z, w.list, w.q, w.land, w.gave
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	z.Enlist(ctx, x.Name(), []string{q})
	land(gave)
	if k, held := z.store.HasResource(list); !held || k != 2 {
		t.Fatalf("the list landed at z counts %d subscribers (held %v); want 2: x's queue, and z for it", k, held)
	}
}

// TestHandoff_AListLandingWithOnlyAnEnlistKeepsItsStream: a list whose
// other entries all count 0 as it lands (its last queue at x left while
// it travelled) lands with the enlist of the queue coming to z: it keeps
// its epoch and etag, and is not dropped as empty first.
func TestHandoff_AListLandingWithOnlyAnEnlistKeepsItsStream(t *testing.T) {
	w := onItsWay(t, "onlyenlist", true)
	x, z, list, q, land, gave := w.x, w.z, w.list, w.q, w.land, w.gave
	for _, in := range gave.GetNodes() { // x's word, merged in y's tomb: its queue left
		in.Count, in.Ver = 0, in.GetVer()+1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	z.Enlist(ctx, x.Name(), []string{q})
	land(gave)
	st, held := z.store.ExportResource(list)
	if !held || st.Etag != "v1" || st.Pos.Epoch != gave.GetEpoch() {
		t.Fatalf("the list landed at z: held %v, etag %q, epoch %d; want etag v1 in epoch %d (the list given goes on)", held, st.Etag, st.Pos.Epoch, gave.GetEpoch())
	}
}

// TestHandoff_AnEnlistOnItsWayDoesNotOutvoteTheNodesNewerWord: the list
// landing at z holds a word of z newer than z's enlist (z's queues came
// and left while the list travelled): the enlist, a Ver 0 "make sure z
// is in", does not count z's queue again.
func TestHandoff_AnEnlistOnItsWayDoesNotOutvoteTheNodesNewerWord(t *testing.T) {
	w := onItsWay(t, "outvote", false)
	x, z, list, q, land, gave := w.x, w.z, w.list, w.q, w.land, w.gave
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	z.Enlist(ctx, x.Name(), []string{q})
	// z sends a word after the enlist (here about another resource: it
	// moves z's counter), and its word about list says 0.
	subscribed(t, z, allowAll{}, alice, ownedBy(z, z.Name(), "elsewhere"))
	gave.Nodes = append(gave.Nodes, &pb.Interest{Node: z.Name(), Count: 0, Ver: z.store.InterestVer()})
	land(gave)
	if k, held := z.store.HasResource(list); !held || k != 1 {
		t.Fatalf("the list landed at z counts %d subscribers (held %v); want 1: x's queue, z's newer word is 0", k, held)
	}
}

// TestHandoff_AnOlderWordOfTheNodeDoesNotOutvoteItsEnlistOnItsWay: z's
// word on a list on its way to z, sent before z's enlist in it was kept
// (z's last queue of the list left while it travelled), waits for the
// landing (whenLanded) and is applied after it: it is older than the
// enlist (its Ver is below the enlist's floor) and must not take z, with
// the queue coming, out of the list the enlist put it in.
func TestHandoff_AnOlderWordOfTheNodeDoesNotOutvoteItsEnlistOnItsWay(t *testing.T) {
	w := onItsWay(t, "olderword", false)
	x, z, list, q, land, gave := w.x, w.z, w.list, w.q, w.land, w.gave
	// z's "0" on list, sent now: it finds the list in flight to z.
	subscribed(t, z, allowAll{}, alice, ownedBy(z, z.Name(), "elsewhere")) // z's counter has moved
	z.Interest(list, shard.Interest{Node: z.Name(), Count: 0, Ver: z.store.InterestVer()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	z.Enlist(ctx, x.Name(), []string{q}) // kept: its floor is above z's "0"
	// y, the list's owner here, asked z for the enlist (its tomb): that
	// Link, waiting at z for the landing, ends once the cancel reaches
	// it. Landed before, it would put z in after the word, by chance.
	time.Sleep(300 * time.Millisecond)
	land(gave)
	if waitFor(time.Second, func() bool { k, held := z.store.HasResource(list); return !held || k != 2 }) {
		k, held := z.store.HasResource(list)
		t.Fatalf("the list landed at z counts %d subscribers (held %v) once z's older word was applied; want 2: x's queue, and z for the queue coming", k, held)
	}
}

// TestHandoff_AnOlderWordOfTheNodeDoesNotOutvoteItsEnlistOnceLanded: as
// above, but the list has landed by the time z records its enlist
// (enlistOnLanding finds it held): z's word sent before the enlist,
// applied after it (it waited for the landing), must not take z, with
// the queue coming, out of the list.
func TestHandoff_AnOlderWordOfTheNodeDoesNotOutvoteItsEnlistOnceLanded(t *testing.T) {
	w := onItsWay(t, "olderlanded", false)
	z, list := w.z, w.list
	w.land(w.gave)
	older := shard.Interest{Node: z.Name(), Count: 0, Ver: z.store.InterestVer()}
	if !z.EnlistOnLanding(list, shard.Interest{Node: z.Name(), Count: 1}) {
		t.Fatal("the enlist was not recorded; the list is held at z")
	}
	z.Interest(list, older)
	if k, held := z.store.HasResource(list); !held || k != 2 {
		t.Fatalf("the list at z counts %d subscribers (held %v) once z's older word was applied; want 2: x's queue, and z for the queue coming", k, held)
	}
}

// listOnItsWay is the set-up of the enlist-on-its-way cases: x holds a
// queue q subscribed to list, whose holder y gave it to z (gave), and z
// has not landed it yet (land).
type listOnItsWay struct {
	x, y, z *testNode
	list, q string
	land    func(*pb.ResourceState)
	gave    *pb.ResourceState
}

// onItsWay sets up a listOnItsWay on three nodes; published: the list
// delivered v1 first.
func onItsWay(t *testing.T, prefix string, published bool) listOnItsWay {
	t.Helper()
	nodes := startNodes(t, 3)
	w := listOnItsWay{x: nodes[0], y: nodes[1], z: nodes[2]}
	w.list = ownedBy(w.y, w.y.Name(), prefix)
	w.q = ownedQueue(t, w.x, alice)
	subscribe(t, w.x, allowAll{}, alice, w.q, w.list)
	if published {
		publish(t, w.x, w.list, "v1")
	}
	w.land = w.z.BringList(w.list, w.y.Name())
	if w.gave = w.y.GiveList(w.z.Name(), w.list); w.gave == nil {
		t.Fatal("y gave no list")
	}
	return w
}
