package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"meshgate/shard"
)

// TestHandoff_InterestOpOnAListBetweenATakeAndItsRetakeIsNotLost: z
// takes a queue and the list it subscribes to from x, and the Take's
// answer is lost (x exported both: they are only in x's tombs until z
// asks again). The queue's leaving x tells the list's holder that x has
// no queue in it any more; that op reaches z, the list's owner, while
// the list is neither held nor in flight there (the take failed, the
// retake has not asked yet). z asks x (a past owner), and x, which
// holds no list and whose tomb points to z, the owner, drops it: the
// list given again from the tomb counts x's queue for ever, and its
// events go to x after x has no queue (the churn test's list that kept
// counting a node that had left).
func TestHandoff_InterestOpOnAListBetweenATakeAndItsRetakeIsNotLost(t *testing.T) {
	ca, caKey := devCA(t)
	var x started
	var armed atomic.Bool
	var takes atomic.Int32
	var queue, list string
	cut := func(_ context.Context, method string) error {
		if !armed.Load() || !strings.HasSuffix(method, "/Take") {
			return nil
		}
		if takes.Add(1) == 2 { // 1 lists the queue's resources; 2 takes
			// The giver runs the Take, and its answer is lost on the way.
			x.GiveKeys("z", []string{queue}, []string{list})
			return fmt.Errorf("%w: connection reset", shard.ErrUnavailable)
		}
		return nil
	}
	x = startNode(t, "x", ca, caKey, "")
	z := startNodeWith(t, "z", ca, caKey, x.gossip, cut)
	waitRing(t, []*testNode{x.testNode, z.testNode}, 2)
	// The queue and its list are z's (their owner's, so no rebalance
	// moves them once z has them), held by x for now.
	list = ownedBy(z.testNode, "z", "l")
	queue = ownedQueue(t, z.testNode, alice)
	subscribe(t, z.testNode, allowAll{}, alice, queue, list)
	if err := x.TakeKeys(context.Background(), "z", []string{queue}, []string{list}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { k, ok := x.store.HasResource(list); return ok && k == 1 }) {
		k, ok := x.store.HasResource(list)
		t.Fatalf("x holds the list: %v, counting %d queues; want it, with 1", ok, k)
	}
	armed.Store(true)
	if err := z.TakeKeys(context.Background(), "x", []string{queue}, []string{list}); err == nil {
		t.Fatal("the take whose answer was lost succeeded")
	}
	if !waitFor(20*time.Second, func() bool { _, ok := z.store.HasResource(list); return ok && z.store.Has(queue) }) {
		t.Fatal("z never got the queue and the list again")
	}
	// x's last word (no queue) is applied wherever the list is: it
	// counts z's queue only, not x's too.
	if !waitFor(5*time.Second, func() bool { k, _ := z.store.HasResource(list); return k == 1 }) {
		k, _ := z.store.HasResource(list)
		t.Fatalf("z's list counts %d queues; want 1 (its own): x's no-more-queues op was lost", k)
	}
}
