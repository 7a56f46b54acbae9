package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"meshgate/shard"
)

// TestTail_DroppedLastEventIsAnnounced: the last change of a resource is
// dropped on its way to a subscriber's node (every Push to it fails until
// the outbox gives up), and nothing is published after. The subscriber
// still ends with that change, because its list announces its tail; it
// stayed stale for good before (review 12 finding 5; the test is the one
// review12 wrote for its owed RESYNC).
func TestTail_DroppedLastEventIsAnnounced(t *testing.T) {
	ca, caKey := devCA(t)
	n1 := startNode(t, "n1", ca, caKey, "")
	var failPush atomic.Bool
	n2 := startNodeWith(t, "n2", ca, caKey, n1.gossip, func(_ context.Context, m string) error {
		if failPush.Load() && strings.HasSuffix(m, "/Push") {
			return fmt.Errorf("push refused by the test")
		}
		return nil
	})
	waitRing(t, []*testNode{n1.testNode, n2.testNode}, 2)
	ctx := context.Background()
	res := ownedBy(n1.testNode, "n2", "r")
	q := ownedQueue(t, n1.testNode, alice)
	subscribe(t, n1.testNode, allowAll{}, alice, q, res)
	n2.Deliver(&shard.Event{Kind: shard.Changed, Resource: res, Etag: "e1", Time: time.Now()})
	if !waitFor(10*time.Second, func() bool {
		pg, err := n1.Poll(ctx, alice, q, 0, 10, 0)
		return err == nil && len(pg.Items) == 1
	}) {
		t.Fatal("e1 never arrived")
	}
	failPush.Store(true)
	dropped := n2.Stats().Dropped.Load()
	n2.Deliver(&shard.Event{Kind: shard.Changed, Resource: res, Etag: "e2", Time: time.Now()})
	if !waitFor(20*time.Second, func() bool { return n2.Stats().Dropped.Load() > dropped }) {
		t.Fatal("the event was never dropped")
	}
	failPush.Store(false)
	var items []shard.Notification
	if !waitFor(15*time.Second, func() bool {
		pg, err := n1.Poll(ctx, alice, q, 0, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		items = pg.Items
		return len(items) > 0 && items[len(items)-1].Etag == "e2"
	}) {
		t.Fatalf("15 s after the drop the queue holds %d notifications, the last not e2: the subscriber is stale for good", len(items))
	}
	if k := len(items); k != 2 || items[0].Etag != "e1" || items[1].Kind != shard.Changed {
		t.Errorf("the queue holds %v, want CHANGED e1, CHANGED e2 (the same publication, sent again)", items)
	}
}

// TestDeliver_ListOutOfReachIsUnavailable: a publish whose event cannot
// reach its resource's subscriber list (every call to the list's holder
// fails) answers UNAVAILABLE, so the publisher tries again; before, the
// cluster answered it as delivered to 0 queues and the change was lost
// for every subscriber (the chaos test's "p71, the publisher p131").
func TestDeliver_ListOutOfReachIsUnavailable(t *testing.T) {
	ca, caKey := devCA(t)
	var failPush atomic.Bool
	n1 := startNodeWith(t, "n1", ca, caKey, "", func(_ context.Context, m string) error {
		if failPush.Load() && strings.HasSuffix(m, "/Push") {
			return fmt.Errorf("push refused by the test")
		}
		return nil
	})
	n2 := startNode(t, "n2", ca, caKey, n1.gossip)
	waitRing(t, []*testNode{n1.testNode, n2.testNode}, 2)
	res := ownedBy(n1.testNode, "n2", "r")
	ctx := context.Background()
	failPush.Store(true)
	_, err := n1.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "e1", Time: time.Now()})
	if !errors.Is(err, shard.ErrUnavailable) {
		t.Fatalf("a publish its list's holder never got answered %v, want shard.ErrUnavailable", err)
	}
	failPush.Store(false)
	if _, err := n1.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "e2", Time: time.Now()}); err != nil {
		t.Fatalf("a publish with the holder reachable: %v", err)
	}
}

// TestDeliver_GivenUpPublishIsNotStamped: a publish whose caller gave up
// (its context ended while the event waited on the way) is not stamped by
// the list afterwards: the publisher tried it again, and a late stamp
// would put that older change after the newer ones published since (the
// chaos test's "went from p1837 back to p637 (CHANGED)").
func TestDeliver_GivenUpPublishIsNotStamped(t *testing.T) {
	ca, caKey := devCA(t)
	n1 := startNode(t, "n1", ca, caKey, "")
	ctx := context.Background()
	const res = "user:alice/given-up"
	q := subscribed(t, n1.testNode, allowAll{}, alice, res)
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := n1.DeliverChecked(gone, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "late", Time: time.Now()}); !errors.Is(err, shard.ErrUnavailable) {
		t.Errorf("a publish given up on answered %v, want shard.ErrUnavailable", err)
	}
	if _, err := n1.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v1", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	pg, err := n1.Poll(ctx, alice, q, 0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Items) != 1 || pg.Items[0].Etag != "v1" {
		t.Errorf("the queue holds %d notifications (first %v), want only v1", len(pg.Items), pg.Items)
	}
}
