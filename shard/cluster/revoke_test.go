package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"meshgate/shard"
	"meshgate/shard/cluster"
)

// TestRevoke_AQueueOnItsWayIsRevokedWhenItLands: z takes back a queue
// subscribed to z's list, and the Take's answer is lost (x exported the
// queue: it is only in x's tomb until z asks again). A revoke of its
// owner's subscriptions to the list, made then at the list's holder (z),
// reaches no table holding the queue: x let it go, z has not imported
// it. The queue must still land revoked, not subscribed.
func TestRevoke_AQueueOnItsWayIsRevokedWhenItLands(t *testing.T) {
	ca, caKey := devCA(t)
	var x started
	var armed atomic.Bool
	var takes atomic.Int32
	var queue string
	cut := func(_ context.Context, method string) error {
		if !armed.Load() || !strings.HasSuffix(method, "/Take") {
			return nil
		}
		if takes.Add(1) == 2 { // 1 lists the queue's resources; 2 takes
			x.GiveKeys("z", []string{queue}, nil)
			return fmt.Errorf("%w: connection reset", shard.ErrUnavailable)
		}
		return nil
	}
	x = startNode(t, "x", ca, caKey, "")
	z := startNodeWith(t, "z", ca, caKey, x.gossip, cut)
	waitRing(t, []*testNode{x.testNode, z.testNode}, 2)
	list := ownedBy(z.testNode, "z", "rv")
	queue = ownedQueue(t, z.testNode, alice)
	subscribe(t, z.testNode, allowAll{}, alice, queue, list)
	if err := x.TakeKeys(context.Background(), "z", []string{queue}, nil); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return x.store.Has(queue) }) {
		t.Fatal("x never got the queue")
	}
	armed.Store(true)
	if err := z.TakeKeys(context.Background(), "x", []string{queue}, nil); err == nil {
		t.Fatal("the take whose answer was lost succeeded")
	}
	if z.store.Has(queue) || x.store.Has(queue) {
		t.Fatal("the queue is held somewhere: the take's answer was not lost")
	}
	z.Revoke(list, alice.User, "")
	if !waitFor(20*time.Second, func() bool { return z.store.Has(queue) }) {
		t.Fatal("z never got the queue again")
	}
	wantRevoked(t, z.testNode, queue)
	page, err := z.Poll(context.Background(), alice, queue, 0, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, it := range page.Items {
		kinds = append(kinds, it.Kind.String()+" "+it.Resource)
	}
	if len(kinds) == 0 || kinds[len(kinds)-1] != "REVOKED "+list {
		t.Fatalf("the queue holds %v; want it to end with REVOKED %s", kinds, list)
	}
}

// TestRevoke_OnAListBetweenATakeAndItsRetakeReachesItsQueues: z takes
// the list of a resource y's queue subscribes to from x, and the Take's
// answer is lost (the list is only in x's tomb until z asks again). A
// revoke made then goes to z, the list's owner, which holds no list and
// asks x, which holds only the tomb: the queues in the list must still
// be revoked.
func TestRevoke_OnAListBetweenATakeAndItsRetakeReachesItsQueues(t *testing.T) {
	ca, caKey := devCA(t)
	var x started
	var armed atomic.Bool
	var list string
	cut := func(_ context.Context, method string) error {
		if !armed.Load() || !strings.HasSuffix(method, "/Take") {
			return nil
		}
		if armed.CompareAndSwap(true, false) {
			x.GiveKeys("z", nil, []string{list})
			return fmt.Errorf("%w: connection reset", shard.ErrUnavailable)
		}
		return nil
	}
	x = startNode(t, "x", ca, caKey, "")
	y := startNode(t, "y", ca, caKey, x.gossip)
	z := startNodeWith(t, "z", ca, caKey, x.gossip, cut)
	waitRing(t, []*testNode{x.testNode, y.testNode, z.testNode}, 3)
	list = ownedBy(z.testNode, "z", "rl")
	queue := ownedQueue(t, y.testNode, alice)
	subscribe(t, y.testNode, allowAll{}, alice, queue, list)
	if err := x.TakeKeys(context.Background(), "z", nil, []string{list}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { _, ok := x.store.HasResource(list); return ok }) {
		t.Fatal("x never got the list")
	}
	armed.Store(true)
	if err := z.TakeKeys(context.Background(), "x", nil, []string{list}); err == nil {
		t.Fatal("the take whose answer was lost succeeded")
	}
	y.Revoke(list, alice.User, "")
	// The retake asks again after 500 ms; the list it lands counts no
	// queue once the revoke is applied, and is dropped.
	if !waitFor(10*time.Second, func() bool {
		subs, err := y.Subscriptions(context.Background(), alice, queue)
		return err == nil && len(subs) == 0
	}) {
		subs, _ := y.Subscriptions(context.Background(), alice, queue)
		t.Fatalf("the queue is subscribed to %v after its owner's subscription was revoked; want none", subs)
	}
}

// TestRevoke_ReachingTheOldNodeAfterItLetTheQueueGoStillRevokesIt: z
// takes y's queue, subscribed to x's list, right after a revoke of its
// owner's subscriptions was made at x, while x's ops to y are slow (600
// ms). z enlists in the list after the revoke, so only y gets it; if y
// let the queue go before the revoke came, it found nothing there, and
// the queue landed at z subscribed. The queue must end revoked.
func TestRevoke_ReachingTheOldNodeAfterItLetTheQueueGoStillRevokesIt(t *testing.T) {
	revokeLateAtTheOldNode(t, 600*time.Millisecond, "z", nil, time.Second)
}

// TestRevoke_AQueueFromANodeWhoseClockIsAheadLandsRevoked is
// TestRevoke_AQueueOnItsWayIsRevokedWhenItLands with the queue
// subscribed at a node whose clock is 5 s ahead of the revoking node's:
// whether a subscription came before a revoke is a matter of the list's
// stream, not of two nodes' clocks.
func TestRevoke_AQueueFromANodeWhoseClockIsAheadLandsRevoked(t *testing.T) {
	ahead := func() time.Time { return time.Now().Add(5 * time.Second) }
	revokeOnItsWay(t, shard.Config{Now: ahead}, func(z started, list string) {
		z.Revoke(list, alice.User, alice.Device)
	})
}

// TestRevoke_EveryRevokeMadeWhileAQueueIsOnItsWayReachesIt: 100 other
// principals are revoked after the queue's owner, while the queue is on
// its way: the first revoke still reaches it.
func TestRevoke_EveryRevokeMadeWhileAQueueIsOnItsWayReachesIt(t *testing.T) {
	revokeOnItsWay(t, shard.Config{}, func(z started, list string) {
		z.Revoke(list, alice.User, "")
		for i := range 100 {
			z.Revoke(list, fmt.Sprintf("user%d", i), "")
		}
	})
}

// revokeOnItsWay: x makes a queue of alice's (x's store made with xCfg)
// subscribed to z's list; z takes it, and the Take's answer is lost (x
// exported it: only x's tomb has it until z asks again). revoke runs
// then; the queue must land at z revoked.
func revokeOnItsWay(t *testing.T, xCfg shard.Config, revoke func(z started, list string)) {
	t.Helper()
	ca, caKey := devCA(t)
	var x started
	var armed atomic.Bool
	var takes atomic.Int32
	var queue string
	cut := func(_ context.Context, method string) error {
		if armed.Load() && strings.HasSuffix(method, "/Take") && takes.Add(1) == 2 { // 1 lists the queue's resources; 2 takes
			x.GiveKeys("z", []string{queue}, nil)
			return fmt.Errorf("%w: connection reset", shard.ErrUnavailable)
		}
		return nil
	}
	x = startNodeOn(t, "x", ca, caKey, "", nil, xCfg)
	z := startNodeWith(t, "z", ca, caKey, x.gossip, cut)
	waitRing(t, []*testNode{x.testNode, z.testNode}, 2)
	list := ownedBy(z.testNode, "z", "rc")
	queue = ownedQueue(t, x.testNode, alice)
	subscribe(t, x.testNode, allowAll{}, alice, queue, list)
	armed.Store(true)
	if err := z.TakeKeys(context.Background(), "x", []string{queue}, nil); err == nil {
		t.Fatal("the take whose answer was lost succeeded")
	}
	if z.store.Has(queue) || x.store.Has(queue) {
		t.Fatal("the queue is held somewhere: the take's answer was not lost")
	}
	revoke(z, list)
	if !waitFor(20*time.Second, func() bool { return z.store.Has(queue) }) {
		t.Fatal("z never got the queue")
	}
	wantRevoked(t, z.testNode, queue)
}

// wantRevoked fails unless alice's queue, read through n, holds no
// subscription.
func wantRevoked(t *testing.T, n *testNode, queue string) {
	t.Helper()
	subs, err := n.Subscriptions(context.Background(), alice, queue)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 0 {
		t.Fatalf("the queue landed subscribed to %v after its owner's subscription was revoked; want none", subs)
	}
}

// TestRevoke_MoreThanASecondLateAtTheOldNodeStillReachesTheQueue is
// TestRevoke_ReachingTheOldNodeAfterItLetTheQueueGoStillRevokesIt with
// x's ops to y 1.5 s late: y lets the queue go before the revoke comes
// (it waits a second for the events stamped before the taker enlisted),
// and a change published right after the hand-off reaches the queue at
// its taker past the gap the revoke left, which the queue gives up on.
// The queue must still end revoked, at a taker that is another node (z)
// as at the list's holder (x).
func TestRevoke_MoreThanASecondLateAtTheOldNodeStillReachesTheQueue(t *testing.T) {
	for _, taker := range []string{"z", "x"} {
		t.Run("taken by "+taker, func(t *testing.T) {
			revokeLateAtTheOldNode(t, 1500*time.Millisecond, taker, func(x *testNode, list string) {
				publish(t, x, list, "v2")
			}, 20*time.Second)
		})
	}
}

// revokeLateAtTheOldNode: in a cluster of x, y and z, alice's queue at y
// and bob's are subscribed to x's list; x's ops to y are late by late
// while x revokes alice's subscriptions and taker (x or z) takes alice's
// queue from y; then runs after the hand-off. Alice's queue must end
// revoked at taker within wait, and bob's stay subscribed.
func revokeLateAtTheOldNode(t *testing.T, late time.Duration, taker string, then func(x *testNode, list string), wait time.Duration) {
	t.Helper()
	ca, caKey := devCA(t)
	var armed atomic.Bool
	slow := func(_ context.Context, method string) error {
		if armed.Load() && strings.HasSuffix(method, "/Push") {
			time.Sleep(late)
		}
		return nil
	}
	x := startNodeWith(t, "x", ca, caKey, "", slow)
	y := startNode(t, "y", ca, caKey, x.gossip)
	z := startNode(t, "z", ca, caKey, x.gossip)
	waitRing(t, []*testNode{x.testNode, y.testNode, z.testNode}, 3)
	to := map[string]started{"x": x, "z": z}[taker]
	list := ownedBy(x.testNode, "x", "ro")
	queue := ownedQueue(t, y.testNode, alice)
	subscribe(t, y.testNode, allowAll{}, alice, queue, list)
	bob := shard.Principal{User: "bob", Device: "phone"}
	other := subscribed(t, y.testNode, allowAll{}, bob, list) // another principal's queue at y: not revoked
	armed.Store(true)
	x.Revoke(list, alice.User, "")
	if err := to.TakeKeys(context.Background(), "y", []string{queue}, nil); err != nil {
		t.Fatal(err)
	}
	armed.Store(false)
	if !to.store.Has(queue) {
		t.Fatalf("%s did not get the queue", taker)
	}
	if then != nil {
		then(x.testNode, list)
	}
	if !waitFor(wait, func() bool {
		subs, err := to.Subscriptions(context.Background(), alice, queue)
		return err == nil && len(subs) == 0
	}) {
		wantRevoked(t, to.testNode, queue)
	}
	if subs, err := y.Subscriptions(context.Background(), bob, other); err != nil || len(subs) != 1 {
		t.Fatalf("another principal's queue is subscribed to %v (%v); want the list", subs, err)
	}
}

// TestRevoke_LostWithItsListsHolderReachesTheQueueAfterTheRepair: d
// holds the list y's queues subscribe to, stamps a revoke of alice's
// subscriptions while its pushes to y fail, and dies with the revoke in
// its outbox (its last revokes die with it too). The list is made again
// from y's queues; alice's publisher no longer allows her (it said so
// with the revoke), so her queue must end revoked, and bob's stay.
func TestRevoke_LostWithItsListsHolderReachesTheQueueAfterTheRepair(t *testing.T) {
	ca, caKey := devCA(t)
	var denied atomic.Bool
	auth := func(c *cluster.Config) { c.Auth = denyAlice{&denied} }
	var armed atomic.Bool
	cut := func(_ context.Context, method string) error {
		if armed.Load() && strings.HasSuffix(method, "/Push") {
			return fmt.Errorf("%w: connection reset", shard.ErrUnavailable)
		}
		return nil
	}
	x := startNodeOn(t, "x", ca, caKey, "", nil, shard.Config{}, auth)
	y := startNodeOn(t, "y", ca, caKey, x.gossip, nil, shard.Config{}, auth)
	d := startNodeOn(t, "d", ca, caKey, x.gossip, cut, shard.Config{}, auth)
	waitRing(t, []*testNode{x.testNode, y.testNode, d.testNode}, 3)
	list := ownedBy(d.testNode, "d", "rd")
	queue := ownedQueue(t, y.testNode, alice)
	subscribe(t, y.testNode, allowAll{}, alice, queue, list)
	bob := shard.Principal{User: "bob", Device: "phone"}
	other := subscribed(t, y.testNode, allowAll{}, bob, list)
	armed.Store(true)
	denied.Store(true)
	if k := d.Revoke(list, alice.User, ""); k != 0 {
		t.Fatalf("the revoke reached %d queues at d; want none there", k)
	}
	time.Sleep(200 * time.Millisecond) // its push to y tried and failed
	d.Close()
	waitRing(t, []*testNode{x.testNode, y.testNode}, 2)
	if !waitFor(20*time.Second, func() bool {
		subs, err := y.Subscriptions(context.Background(), alice, queue)
		return err == nil && len(subs) == 0
	}) {
		wantRevoked(t, y.testNode, queue)
	}
	if subs, err := y.Subscriptions(context.Background(), bob, other); err != nil || len(subs) != 1 {
		t.Fatalf("another principal's queue is subscribed to %v (%v); want the list", subs, err)
	}
}

// denyAlice allows everyone, and alice only until denied.
type denyAlice struct{ denied *atomic.Bool }

func (a denyAlice) Authorize(_ context.Context, p shard.Principal, res, _ string) (string, error) {
	if p.User == alice.User && a.denied.Load() {
		return "", fmt.Errorf("%w: alice may not read %s", shard.ErrForbidden, res)
	}
	return "e0", nil
}

// TestRevoke_LostBeyondTheLastRevokesIsRecheckedAtTheGap: d holds the
// list y's queues subscribe to and stamps a revoke of alice's while its
// pushes to y fail (dropped after their retries), then revokes more
// principals than a list keeps as its last revokes, so alice's falls out
// of what the list announces again with its tail. Her queue at y sees
// the gap only (the tail's events, past it) and gives it up with a
// RESYNC; the revoke is in no event that reaches y. Her publisher no
// longer allows her (it said so with the revoke), so her queue must end
// revoked, and bob's stay.
func TestRevoke_LostBeyondTheLastRevokesIsRecheckedAtTheGap(t *testing.T) {
	ca, caKey := devCA(t)
	var denied atomic.Bool
	auth := func(c *cluster.Config) { c.Auth = denyAlice{&denied} }
	var armed atomic.Bool
	cut := func(_ context.Context, method string) error {
		if armed.Load() && strings.HasSuffix(method, "/Push") {
			return fmt.Errorf("%w: connection reset", shard.ErrUnavailable)
		}
		return nil
	}
	x := startNodeOn(t, "x", ca, caKey, "", nil, shard.Config{}, auth)
	y := startNodeOn(t, "y", ca, caKey, x.gossip, nil, shard.Config{}, auth)
	d := startNodeOn(t, "d", ca, caKey, x.gossip, cut, shard.Config{}, auth)
	waitRing(t, []*testNode{x.testNode, y.testNode, d.testNode}, 3)
	list := ownedBy(d.testNode, "d", "rd")
	queue := ownedQueue(t, y.testNode, alice)
	subscribe(t, y.testNode, allowAll{}, alice, queue, list)
	bob := shard.Principal{User: "bob", Device: "phone"}
	other := subscribed(t, y.testNode, allowAll{}, bob, list)
	armed.Store(true)
	denied.Store(true)
	d.Revoke(list, alice.User, "")
	for i := range 40 {
		d.Revoke(list, fmt.Sprintf("gone%d", i), "")
	}
	time.Sleep(2500 * time.Millisecond) // the pushes to y tried and dropped
	armed.Store(false)
	if !waitFor(30*time.Second, func() bool {
		subs, err := y.Subscriptions(context.Background(), alice, queue)
		return err == nil && len(subs) == 0
	}) {
		wantRevoked(t, y.testNode, queue)
	}
	if subs, err := y.Subscriptions(context.Background(), bob, other); err != nil || len(subs) != 1 {
		t.Fatalf("another principal's queue is subscribed to %v (%v); want the list", subs, err)
	}
}
