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

// ownedBy finds a resource the ring gives to node.
func ownedBy(n *testNode, node, prefix string) string {
	for i := 0; ; i++ {
		if res := fmt.Sprintf("%s%d", prefix, i); n.Ring().Owner(res) == node {
			return res
		}
	}
}

// Review finding 7: an unsubscribe's interest change travels through the
// outbox (asynchronously) and a re-subscribe's link is a direct call, so
// the link can arrive first. The late change (an older Interest.Ver) must
// not take the re-subscribed node out of the list: the publish after the
// re-subscribe reaches the queue.
func TestInterest_LateUnsubscribeDoesNotUndoAResubscribe(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, _, err := cluster.EnsureDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	var hold atomic.Bool
	var pushes atomic.Int32
	release := make(chan struct{})
	n1 := startNodeWith(t, "n1", ca, caKey, "", func(_ context.Context, m string) error {
		if hold.Load() && strings.HasSuffix(m, "/Push") {
			if pushes.Add(1) == 1 {
				<-release // the unsubscribe's interest change waits here
			}
		}
		return nil
	})
	n2 := startNode(t, "n2", ca, caKey, n1.gossip)
	waitRing(t, []*testNode{n1.testNode, n2.testNode}, 2)
	ctx := context.Background()
	q, err := n1.CreateQueue(ctx, alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	res := ownedBy(n1.testNode, "n2", "user:alice/r")
	other := ownedBy(n1.testNode, "n2", "user:alice/other")
	if _, err := n1.Subscribe(ctx, allowAll{}, alice, q.Name, res, "", ""); err != nil {
		t.Fatal(err)
	}
	hold.Store(true)
	if ok, err := n1.Unsubscribe(ctx, alice, q.Name, res); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if !waitFor(5*time.Second, func() bool { return pushes.Load() >= 1 }) {
		t.Fatal("the unsubscribe's interest change was not pushed")
	}
	if _, err := n1.Subscribe(ctx, allowAll{}, alice, q.Name, res, "", ""); err != nil {
		t.Fatal(err)
	}
	close(release)
	// A second async change through the same outbox: once it is pushed,
	// the first one has been applied at n2 (one Push at a time, in order).
	if _, err := n1.Subscribe(ctx, allowAll{}, alice, q.Name, other, "", ""); err != nil {
		t.Fatal(err)
	}
	if ok, err := n1.Unsubscribe(ctx, alice, q.Name, other); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if !waitFor(5*time.Second, func() bool { return pushes.Load() >= 2 }) {
		t.Fatal("the second interest change was not pushed")
	}
	if k, err := n2.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "e1", Time: time.Now()}); err != nil || k != 1 {
		t.Errorf("the publish after the re-subscribe reached %d queues (err %v), want 1: the late unsubscribe took the node out of the list", k, err)
	}
	pg, err := n1.Poll(ctx, alice, q.Name, 0, 10, 3*time.Second)
	if err != nil || len(pg.Items) != 1 || pg.Items[0].Etag != "e1" {
		t.Fatalf("queue got %+v (err %v), want the one CHANGED e1", pg.Items, err)
	}
}
