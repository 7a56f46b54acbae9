package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"meshgate/shard"
	"meshgate/shard/ring"
)

type answers string

func (a answers) Authorize(context.Context, shard.Principal, string, string) (string, error) {
	return string(a), nil
}

// A publish n1 remembered before the cluster took it for dead is not
// served after it returns, as the lists it held then are not (rejoined):
// meanwhile the others acknowledged newer publishes. Here: n1 remembers
// v1 (no list), n2 takes n1 for dead and acknowledges v2 (no list
// either), n1 hears it was taken for dead; a fresh subscribe, whose
// publisher answers v2, must answer v2.
func TestRejoined_PublishRememberedBeforeTheDeathIsNotServed(t *testing.T) {
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	res := ownedBy(n1, "n1", "unheld")
	n1.RememberUnheldNow() // a ring change here lately
	if _, err := n1.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v1", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	restore := n2.Believe(map[string]int{"n2": 1}) // n2 takes n1 for dead
	if _, err := n2.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v2", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	deadAt := time.Now()
	restore()
	n2.Tick()
	time.Sleep(10 * time.Millisecond)
	n1.RejoinedAt(deadAt)

	if etag := freshSubscribe(t, n2, res, "v2"); etag != "v2" {
		t.Errorf("subscribe answered %q, the publish n1 remembered before it was taken for dead, over the publisher's v2", etag)
	}
}

// A key that moves away and back between two of its node's rebalances
// (a rebalance waits for rebalMu while another one's hand-offs run, and
// reads the ring when it gets it) keeps the publish remembered before:
// rebalance's ForgetUnheld sees only the ring of its time, where the key
// is this node's again. Meanwhile its owner of the moment acknowledged a
// newer publish (no list there either), which that node forgets at its
// own rebalance. A fresh subscribe then answers the older etag over the
// publisher's.
func TestUnheld_KeyAwayAndBackBetweenRebalancesForgetsWhatItRemembered(t *testing.T) {
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	away := map[string]int{"n1": 1, "n2": 1000}
	var res string
	for i := 0; ; i++ {
		res = fmt.Sprintf("user:alice/flap%d", i)
		if n1.Ring().Owner(res) == "n1" && ring.New(1, away).Owner(res) == "n2" {
			break
		}
	}
	n1.RememberUnheldNow() // a ring change here lately
	if _, err := n1.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v1", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	back1, back2 := n1.Believe(away), n2.Believe(away) // res is n2's
	if _, err := n2.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v2", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	back1() // and n1's again, before n1's rebalance ran
	back2()
	n2.Tick()
	n1.Tick()

	if etag := freshSubscribe(t, n2, res, "v2"); etag != "v2" {
		t.Errorf("subscribe answered %q, remembered before the key went away, over the publisher's v2", etag)
	}
}

// freshSubscribe subscribes a new queue of n to res, whose publisher
// answers etag (and so does the client), and returns the etag the
// subscribe answered.
func freshSubscribe(t *testing.T, n *testNode, res, etag string) string {
	t.Helper()
	q := newQueue(t, n, alice)
	var info shard.SubscriptionInfo
	if err := untilAvailable(func() error {
		var err error
		info, err = n.Store().Subscribe(context.Background(), answers(etag), alice, q, res, "", etag)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return info.Etag
}

// A publish remembered for a key whose ownership then moves goes to the
// new owner with the keys (rebalance), and the list a late link makes
// there starts from it. Here: n1 drops its list of res (it was taken for
// dead) and tells n2, whose queue was in it, to link again, which n2
// does late; a publish meanwhile finds no list at n1 and is remembered
// there. Then res moves to n3 and n1 rebalances. n1 forgot v2 (a key it
// no longer owns), so n2's late link made n3's list from its queue's v1,
// and the queue held v1 for good while the last change acknowledged was
// v2.
func TestUnheld_ARememberedPublishMovesToTheKeysNewOwner(t *testing.T) {
	nodes := startNodes(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	moved := map[string]int{"n2": 1, "n3": 1} // n1 leaving
	var res string
	for i := 0; ; i++ {
		res = fmt.Sprintf("user:alice/moved%d", i)
		if n1.Ring().Owner(res) == "n1" && ring.New(1, moved).Owner(res) == "n3" {
			break
		}
	}
	q := ownedQueue(t, n2, alice)
	for ring.New(1, moved).Owner(q) != "n2" { // the queue stays at n2
		q = ownedQueue(t, n2, alice)
	}
	lostAndPublishedAgain(t, n1, n2, n3, q, res)
	for _, n := range nodes {
		n.Believe(moved) // res is n3's, on every node
	}
	n1.Tick() // rebalance

	// n2 links 6 s after it was told, at n3; its RESYNC comes then.
	var got []string
	if !waitFor(15*time.Second, func() bool { got = queued(t, n2, q); return len(got) > 0 && strings.HasSuffix(got[len(got)-1], " v2") }) {
		t.Errorf("n2's queue holds %v: its last etag is not v2, the last change acknowledged", got)
	}
}

// A queue whose list was lost, and which moves to another node before
// its node links it again, is linked again where it lands: its node, told
// to link (relinkTold), no longer has it when it does. Here, as in
// TestUnheld_ARememberedPublishMovesToTheKeysNewOwner, but the queue
// moves to n3 with res: it landed with its subscription in the lost
// list's epoch, n3's list (made by its enlist) in another with v2, and
// nothing told the queue until the audit, or the next publish.
func TestRejoined_AQueueMovingBeforeItsRelinkIsLinkedAgainWhereItLands(t *testing.T) {
	nodes := startNodes(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	// n1 leaving and n3 weighing more, q is n3's. A queue's owner moves
	// to n3 only if one of n3's added points lands before it, and a weight
	// stops at ring.MaxWeight: look for a queue that moves, not for a
	// weight that moves a given queue (which may not exist).
	q, moved := movingQueue(t, n2, "n3")
	var res string
	for i := 0; ; i++ {
		res = fmt.Sprintf("user:alice/moved%d", i)
		if n1.Ring().Owner(res) == "n1" && ring.New(1, moved).Owner(res) == "n3" {
			break
		}
	}
	lostAndPublishedAgain(t, n1, n2, n3, q, res)
	for _, n := range nodes {
		n.Believe(moved)
	}
	n1.Tick() // hands v2 to n3
	n2.Tick() // hands q to n3

	// No audit runs: n2's relink (6 s after it was told) finds no queue.
	var got []string
	if !waitFor(10*time.Second, func() bool { got = queued(t, n3, q); return len(got) > 0 && strings.HasSuffix(got[len(got)-1], " v2") }) {
		t.Errorf("q holds %v at n3: its last etag is not v2, the last change acknowledged", got)
	}
}

// movingQueue returns a queue of alice's owned by n, and weights of a
// ring without n1 in which that queue is to's.
func movingQueue(t *testing.T, n *testNode, to string) (string, map[string]int) {
	t.Helper()
	for range 100 {
		q := ownedQueue(t, n, alice)
		for w := 1; w <= ring.MaxWeight; w++ {
			if moved := map[string]int{n.Name(): 1, to: w}; ring.New(1, moved).Owner(q) == to {
				return q, moved
			}
		}
	}
	t.Fatalf("no queue of %s's moves to %s in 100", n.Name(), to)
	return "", nil
}

// lostAndPublishedAgain subscribes n2's queue q to res, owned by n1,
// which delivers v1 to it; then n3 takes n1 for dead and tells it, so n1
// drops its list and tells n2 to link again, which n2 does 6 s later;
// meanwhile v2 is published and acknowledged, finding no list at n1.
func lostAndPublishedAgain(t *testing.T, n1, n2, n3 *testNode, q, res string) {
	t.Helper()
	subscribe(t, n2, allowAll{}, alice, q, res)
	if k, err := n1.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v1", Time: time.Now()}); err != nil || k != 1 {
		t.Fatalf("the first publish reached %d queues (err %v); want n2's queue", k, err)
	}
	time.Sleep(10 * time.Millisecond) // the list is older than n3's repair
	n2.DelayRelinks(6 * time.Second)
	n3.RepairAsDead("n1")
	n3.Rebuild()
	if !waitFor(10*time.Second, func() bool { return n1.Stats().Repairs.Load() > 0 }) {
		t.Fatal("n1 never heard it had been taken for dead")
	}
	var err error
	if !waitFor(10*time.Second, func() bool {
		_, err = n1.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v2", Time: time.Now()})
		return err == nil
	}) {
		t.Fatalf("the publish was never acknowledged: %v", err)
	}
}

// A list made again after its holder lost it learns, from a fresh
// subscribe's link, the newest etag the subscribing node's queues hold,
// before the publisher is asked: the answer is never older than an etag
// the gateway delivered to a queue of that node. Here n1 drops its list
// of res (it was taken for dead) and n2, whose queue q got v1 from it,
// links again only 6 s later; meanwhile a client that knew v1 subscribes
// again through a fresh queue of n2, and the publisher answers v0 (it
// keeps etags per node, as the built-in user: does, and saw only v0). The
// list, made anew and knowing no etag, believed v0: the client's view
// went back from v1 to v0 (a RESYNC) until the relink raised the list
// again (the chaos test: "a watch went back", converged later).
func TestSubscribe_AListMadeAgainLearnsTheSubscribingNodesNewestEtag(t *testing.T) {
	nodes := startNodes(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	res := ownedBy(n1, "n1", "again")
	q := ownedQueue(t, n2, alice)
	subscribe(t, n2, allowAll{}, alice, q, res)
	if k, err := n1.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v1", Time: time.Now()}); err != nil || k != 1 {
		t.Fatalf("the publish reached %d queues (err %v); want n2's queue", k, err)
	}
	time.Sleep(10 * time.Millisecond) // the list is older than n3's repair
	n2.DelayRelinks(6 * time.Second)
	n3.RepairAsDead("n1")
	n3.Rebuild()
	if !waitFor(10*time.Second, func() bool { return n1.Stats().Repairs.Load() > 0 }) {
		t.Fatal("n1 never heard it had been taken for dead")
	}

	q2 := ownedQueue(t, n2, alice)
	var info shard.SubscriptionInfo
	if err := untilAvailable(func() error {
		var err error
		info, err = n2.Store().Subscribe(context.Background(), answers("v0"), alice, q2, res, "", "v1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if info.Etag != "v1" {
		t.Errorf("subscribe answered %q, older than v1, which the gateway delivered to n2's queue q", info.Etag)
	}
	if got := queued(t, n2, q2); len(got) != 0 {
		t.Errorf("the fresh queue holds %v; want nothing (the client knew the answer)", got)
	}
}
