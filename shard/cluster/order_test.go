package cluster_test

import (
	"context"
	"testing"
	"time"

	"meshgate/shard"
)

// TestRepair_DeliveredEtagWinsOverTheNewOwnersPublisher: a resource's
// list dies with its node after delivering v5. The new owner's publisher
// answers Current with what it knows ("current@<node>": a publisher that
// keeps etags in memory knows only what it saw as owner). The repair's
// RESYNC carries v5, which the queue delivered, never the publisher's
// word over it; before, it carried "current@…" (the chaos test's RESYNCs
// going back after a kill -9).
func TestRepair_DeliveredEtagWinsOverTheNewOwnersPublisher(t *testing.T) {
	nodes := startNodes(t, 3)
	ctx := context.Background()
	dead := nodes[2]
	res := ownedBy(dead, dead.Name(), "d")
	q := subscribed(t, nodes[0], allowAll{}, alice, res)
	publish(t, nodes[1], res, "v5")
	last := func() string {
		pg, err := nodes[0].Poll(ctx, alice, q, 0, 10, 0)
		if err != nil || len(pg.Items) == 0 {
			return ""
		}
		n := pg.Items[len(pg.Items)-1]
		return n.Kind.String() + " " + n.Etag
	}
	if !waitFor(10*time.Second, func() bool { return last() == "CHANGED v5" }) {
		t.Fatalf("v5 never arrived: %q", last())
	}
	dead.Close()
	waitRing(t, nodes[:2], 2)
	if !waitFor(10*time.Second, func() bool { return last() != "CHANGED v5" }) {
		t.Fatalf("no RESYNC after the crash")
	}
	if got := last(); got != "RESYNC v5" {
		t.Errorf("after the crash the queue ends with %q, want RESYNC v5 (the etag it delivered)", got)
	}
}

// TestRepair_ListHeldByACrashedNonOwnerIsMadeAgain: a resource's list is
// held by a node that does not own it (a hand-off not finished) when
// that node crashes. The survivors make the list again at once from
// their queues; before, only lists whose owner crashed were repaired, and
// a publish found no list (answered as delivered to no one) until
// membership settled and the audit ran.
func TestRepair_ListHeldByACrashedNonOwnerIsMadeAgain(t *testing.T) {
	nodes := startNodes(t, 3)
	ctx := context.Background()
	owner, qnode, holder := nodes[0], nodes[1], nodes[2]
	res := ownedBy(owner, owner.Name(), "h")
	q := ownedQueue(t, qnode, alice)
	subscribe(t, qnode, allowAll{}, alice, q, res)
	st, ok := owner.store.ExportResource(res)
	if !ok {
		t.Fatal("the owner holds no list")
	}
	holder.store.ImportResource(st) // held by a node that does not own it
	holder.Close()
	waitRing(t, nodes[:2], 2)
	if !waitFor(10*time.Second, func() bool { k, _ := owner.store.HasResource(res); return k == 1 }) {
		t.Fatalf("the list of %s was not made again at its owner", res)
	}
	if k, err := owner.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v1", Time: time.Now()}); err != nil || k != 1 {
		t.Fatalf("a publish after the crash reached %d queues (err %v), want 1", k, err)
	}
}
