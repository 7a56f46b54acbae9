package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"meshgate/shard"
	"meshgate/shard/ring"
)

type etagAuth string

func (e etagAuth) Authorize(context.Context, shard.Principal, string, string) (string, error) {
	return string(e), nil
}

// loneNode starts node "a" of no cluster on a store of its own; the
// caller closes both.
func loneNode(t *testing.T) (*Node, *shard.Store) {
	t.Helper()
	store, err := shard.New(shard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Name: "a"}, store)
	if err != nil {
		t.Fatal(err)
	}
	return n, store
}

// subscribedAt makes a queue for p at n, subscribed in n's store to res
// as of etag, and returns its name.
func subscribedAt(t *testing.T, n *Node, p shard.Principal, res, etag string) string {
	t.Helper()
	ctx := context.Background()
	q, err := n.CreateQueue(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.store.Subscribe(ctx, etagAuth(etag), p, q.Name, res, "", ""); err != nil {
		t.Fatal(err)
	}
	return q.Name
}

// held lists what p's queue holds in store, oldest first, as "KIND etag".
func held(t *testing.T, store *shard.Store, p shard.Principal, queue string) []string {
	t.Helper()
	pg, err := store.Poll(context.Background(), p, queue, 0, 100, 0)
	if err != nil || len(pg.Items) == 0 {
		t.Fatalf("poll: %d items, err %v", len(pg.Items), err)
	}
	var out []string
	for _, it := range pg.Items {
		out = append(out, it.Kind.String()+" "+it.Etag)
	}
	return out
}

// The post-settle audit re-links a subscription missing from its list.
// When the list itself was lost, the list it re-creates learns the
// newest etag the queues delivered, and the RESYNC carries it: a client
// that saw v5 is never told "" ("never published").
func TestAudit_RelinkKeepsTheEtagTheQueueDelivered(t *testing.T) {
	n, store := loneNode(t)
	defer store.Close()
	defer n.Close()
	ctx := context.Background()
	alice := shard.Principal{User: "alice", Device: "d"}
	const res = "user:alice/x"
	q := subscribedAt(t, n, alice, res, "v4")
	store.Deliver(&shard.Event{Kind: shard.Changed, Resource: res, Etag: "v5"})
	store.ForgetNodes(func(string) bool { return true }) // the list is lost (a failed hand-off)
	n.audit()
	subs, err := store.Subscriptions(ctx, alice, q)
	if err != nil || len(subs) != 1 {
		t.Fatalf("subscriptions %v, err %v", subs, err)
	}
	pg, err := store.Poll(ctx, alice, q, 0, 10, 0)
	if err != nil || len(pg.Items) == 0 {
		t.Fatalf("poll: %v items, err %v", len(pg.Items), err)
	}
	last := pg.Items[len(pg.Items)-1]
	if subs[0].Etag != "v5" || last.Etag != "v5" {
		t.Errorf("after the audit the subscription's etag is %q and the queue ends with %s %q; want v5", subs[0].Etag, last.Kind, last.Etag)
	}
	if got := store.ResourcesWithScheme("user")[res]; got != "v5" {
		t.Errorf("the re-created list knows etag %q, want v5", got)
	}
	// The audit is a safety net that counts what it repairs: one RESYNC
	// here, none when it runs again and finds nothing.
	if got := n.Stats().Audited.Load(); got != 1 {
		t.Errorf("the audit counted %d RESYNCs, want 1", got)
	}
	n.audit()
	if got := n.Stats().Audited.Load(); got != 1 {
		t.Errorf("a second audit that found nothing counted %d RESYNCs in all, want 1", got)
	}
}

// A repair whose link failed retries it; once it succeeds the
// subscription goes on from the list's real position: the changes it
// missed are announced (RESYNC with the list's etag) and the next
// publish is appended at once, not held behind a false gap.
func TestRelinkLater_SubscriptionGoesOnFromTheListsPosition(t *testing.T) {
	n, store := loneNode(t)
	defer store.Close()
	defer n.Close()
	alice := shard.Principal{User: "alice", Device: "d"}
	const res = "user:alice/x"
	q := subscribedAt(t, n, alice, res, "v0")
	subscribedAt(t, n, shard.Principal{User: "bob", Device: "d"}, res, "v0")
	publish := func(etag string) { store.Deliver(&shard.Event{Kind: shard.Changed, Resource: res, Etag: etag}) }
	publish("v1")
	store.AddInterest(res, shard.Interest{Node: "b", Count: 1, Ver: 1}, shard.Hint{}) // another node keeps the list going
	li := store.LocalInterests()[res]
	store.ForgetNodes(func(node string) bool { return node == "a" }) // this node's interest is lost with a dead holder
	publish("v2")
	publish("v3")
	// The repair's first link failed: the loss is announced with no position.
	li.Hint = shard.Hint{Etag: "v1"}
	store.Resync(res, shard.Linked{Etag: li.Hint.Etag}, []string{q})
	n.relinkLater(res, li, true)
	publish("v4")
	got := held(t, store, alice, q)
	if want := "CHANGED v4"; got[len(got)-1] != want || got[len(got)-2] != "RESYNC v3" {
		t.Errorf("the queue holds %v, want it to end with RESYNC v3, CHANGED v4", got)
	}
}

// A repair whose link fails announces the loss at once, with the newest
// etag its queues held when it looked (the hint), and retries the link.
// An event that reaches a queue after that look (an op of the old list
// still arriving while the repair asks the publisher and links) is newer
// than the hint: the RESYNC leaves that subscription alone rather than
// announce the older etag after it. Seen under load in
// TestFaultsOnPeerCalls: CHANGED e18, then RESYNC e17.
func TestRelink_FailedLinkNeverAnnouncesAnOlderEtag(t *testing.T) {
	n, store := loneNode(t)
	defer store.Close()
	defer n.Close()
	ctx := context.Background()
	alice := shard.Principal{User: "alice", Device: "d"}
	two := map[string]int{"a": 1, "b": 1}
	res := ""
	for i := 0; res == ""; i++ { // a list node b owns once it is in the ring
		if r := fmt.Sprintf("user:alice/x%d", i); ring.New(1, two).Owner(r) == "b" {
			res = r
		}
	}
	q := subscribedAt(t, n, alice, res, "v0")
	store.Deliver(&shard.Event{Kind: shard.Changed, Resource: res, Etag: "v1"})
	pg, err := store.Poll(ctx, alice, q, 0, 10, 0)
	if err != nil || len(pg.Items) != 1 {
		t.Fatalf("poll: %d items, err %v", len(pg.Items), err)
	}
	v1 := pg.Items[0].Pos
	// While the relink asks the publisher, the list's next event arrives.
	n.cfg.Current = func(context.Context, []string) map[string]string {
		store.DeliverLocal(&shard.Event{Kind: shard.Changed, Resource: res, Etag: "v2", Pos: shard.Position{Epoch: v1.Epoch, Offset: v1.Offset + 1, At: v1.At + 1}})
		return nil
	}
	defer n.Believe(two)() // b, which owns the list now, cannot be reached: the link fails
	n.RejoinedAt(time.Now())
	got := held(t, store, alice, q)
	if last := got[len(got)-1]; last != "CHANGED v2" {
		t.Errorf("the queue holds %v: after CHANGED v2 it went back to an older etag", got)
	}
	subs, err := store.Subscriptions(ctx, alice, q)
	if err != nil || len(subs) != 1 || subs[0].Etag != "v2" {
		t.Errorf("subscriptions %v, err %v; want the etag v2 it delivered", subs, err)
	}
}
