package shard

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// authFunc is an Authorizer made of a function.
type authFunc func(ctx context.Context, p Principal, res, proof string) (string, error)

func (f authFunc) Authorize(ctx context.Context, p Principal, res, proof string) (string, error) {
	return f(ctx, p, res, proof)
}

// drainAll polls q from the start and returns every notification as
// "KIND etag".
func drainAll(t *testing.T, s *Store, p Principal, q string) []string {
	t.Helper()
	var got []string
	var after uint64
	for {
		pg := poll(t, s, p, q, after, 100)
		if len(pg.Items) == 0 {
			return got
		}
		for _, n := range pg.Items {
			got = append(got, n.Kind.String()+" "+n.Etag)
		}
		after = pg.LastSeq
	}
}

// A client re-subscribing (with the etag it knows) while a publish lands
// never gets an answer older than what its queue was delivered, and its
// queue's memory of the resource is not rewound: the publisher read v1,
// v2 was published and delivered, then the publisher's v1 came back.
func TestSubscribe_AgainRacingPublishNeverAnswersOlderThanDelivered(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	const res = "user:alice/x"
	if _, err := s.Subscribe(context.Background(), allowAll{"v0"}, alice, q, res, "", ""); err != nil {
		t.Fatal(err)
	}
	racing := authFunc(func(context.Context, Principal, string, string) (string, error) {
		read := "v1"          // the publisher's etag as read
		publish(s, res, "v2") // a publish lands before the answer is used
		return read, nil
	})
	info, err := s.Subscribe(context.Background(), racing, alice, q, res, "", "v0")
	if err != nil {
		t.Fatal(err)
	}
	if info.Etag != "v2" {
		t.Errorf("subscribe answered %q after delivering v2", info.Etag)
	}
	got := drainAll(t, s, alice, q)
	if len(got) == 0 || !strings.HasSuffix(got[len(got)-1], " v2") {
		t.Errorf("queue %v does not end with v2: a reader following the protocol is stale", got)
	}
	subs, err := s.Subscriptions(context.Background(), alice, q)
	if err != nil || len(subs) != 1 || subs[0].Etag != "v2" {
		t.Errorf("the subscription remembers %+v (err %v), want etag v2", subs, err)
	}
	// What the queue tells a list rebuilt after its holder died.
	if h := s.LocalInterests()[res]; len(h.Queues) != 1 || h.Hint.Etag != "v2" {
		t.Errorf("re-link hint %+v, want etag v2", h)
	}
}

// listEpoch is the epoch of res's list held by s.
func listEpoch(t *testing.T, s *Store, res string) uint64 {
	t.Helper()
	s.res.mu.RLock()
	defer s.res.mu.RUnlock()
	r := s.res.m[res]
	if r == nil {
		t.Fatalf("no list for %s", res)
	}
	return r.pos.Epoch
}

// A repair whose re-link failed announces the loss with a RESYNC that
// knows no position; the subscription must still refuse an event older
// than the ones it appended (a frozen holder's outbox flushing late):
// once a reader saw v60, it never gets v53 after it.
func TestResync_WithoutPositionKeepsRefusingOlderEvents(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	const res = "user:alice/x"
	mustSub(t, s, alice, q, res)
	epoch := listEpoch(t, s, res)
	at := func(o uint64) *Event {
		return &Event{Kind: Changed, Resource: res, Etag: "v" + strconv.FormatUint(o, 10), Pos: Position{Epoch: epoch, Offset: o}}
	}
	for i := uint64(1); i <= 60; i++ {
		s.DeliverLocal(at(i))
	}
	if n := s.Resync(res, Linked{Etag: "v60"}, []string{q}); n != 1 {
		t.Fatalf("Resync reached %d queues, want 1", n)
	}
	s.DeliverLocal(at(53)) // an old event, late
	got := drainAll(t, s, alice, q)
	if last := got[len(got)-1]; last != "RESYNC v60" {
		t.Errorf("the queue ends %v: an event older than one appended came after the RESYNC", got[len(got)-3:])
	}
	s.DeliverLocal(at(61)) // the next one still goes on
	if got := drainAll(t, s, alice, q); len(got) == 0 || got[len(got)-1] != "CHANGED v61" {
		t.Errorf("the next event after the RESYNC was not appended: %v", got)
	}
}

// A link's answer that an event stamped before it overtook (the queue
// appended the event at the link's position already, with its etag)
// announces nothing: CHANGED v2 is not followed by RESYNC v2.
func TestResync_AtTheLinksPositionAlreadyAnnouncesNothing(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	const res = "user:alice/x"
	mustSub(t, s, alice, q, res)
	epoch := listEpoch(t, s, res)
	ev := &Event{Kind: Changed, Resource: res, Etag: "v2", Pos: Position{Epoch: epoch, Offset: 1, At: 7}}
	s.DeliverLocal(ev)
	if n := s.Resync(res, Linked{Etag: "v2", Pos: ev.Pos}, []string{q}); n != 0 {
		t.Errorf("Resync at the position the queue has appended a RESYNC: %v", drainAll(t, s, alice, q))
	}
	if n := s.Resync(res, Linked{Etag: "v3", Pos: Position{Epoch: epoch, Offset: 2, At: 8}}, []string{q}); n != 1 {
		t.Errorf("Resync past the queue's position reached %d queues, want 1", n)
	}
}

// An event held behind a gap (it overtook an earlier one) is not lost
// when its queue moves to another node: the reader ends with its etag,
// even when the gap fills at the new node and nothing is published
// after.
func TestExportQueue_EventsHeldBehindAGapAreNotLost(t *testing.T) {
	a, _ := newStore(t, Config{})
	b, _ := newStore(t, Config{})
	const res = "user:alice/x"
	q := mustQueue(t, a, alice)
	mustSub(t, a, alice, q, res)
	epoch := listEpoch(t, a, res)
	at := func(o uint64) *Event {
		return &Event{Kind: Changed, Resource: res, Etag: "v" + strconv.FormatUint(o, 10), Pos: Position{Epoch: epoch, Offset: o}}
	}
	a.DeliverLocal(at(1))
	a.DeliverLocal(at(3)) // overtook v2: held in the subscription
	st, ok := a.ExportQueue(q)
	if !ok {
		t.Fatal("ExportQueue: not held")
	}
	if !b.ImportQueue(st) {
		t.Fatal("ImportQueue refused")
	}
	b.DeliverLocal(at(2)) // the gap fills at the new holder
	got := drainAll(t, b, alice, q)
	if len(got) == 0 || !strings.HasSuffix(got[len(got)-1], " v3") {
		t.Errorf("the reader ends with %v: v3, delivered to the old holder, is lost", got)
	}
}

// A client refreshing a subscription while its queue moves to another
// node keeps receiving: the moved queue carries the subscription, so its
// new node is interested in the list and a publish reaches it there (the
// subscribe itself answers ErrMoved and is retried at the new node).
func TestSubscribe_RefreshDuringQueueMoveKeepsTheQueueInTheList(t *testing.T) {
	a, _ := newStore(t, Config{})
	b, _ := newStore(t, Config{})
	const res = "user:alice/x"
	q := mustQueue(t, a, alice)
	mustSub(t, a, alice, q, res)
	moving := authFunc(func(context.Context, Principal, string, string) (string, error) {
		st, _ := a.ExportQueue(q) // the queue is handed to b meanwhile
		b.ImportQueue(st)
		return "e0", nil
	})
	if _, err := a.Subscribe(context.Background(), moving, alice, q, res, "", ""); !errors.Is(err, ErrMoved) {
		t.Fatalf("subscribe during the move: %v, want ErrMoved", err)
	}
	subs, err := b.Subscriptions(context.Background(), alice, q)
	if err != nil || len(subs) != 1 {
		t.Fatalf("the moved queue lists %v (err %v), want its subscription", subs, err)
	}
	if n, held := a.HasResource(res); held {
		t.Errorf("the old node's list still counts %d queues of its own", n)
	}
	publish(b, res, "v1")
	if got := drainAll(t, b, alice, q); len(got) == 0 || !strings.HasSuffix(got[len(got)-1], " v1") {
		t.Errorf("after the move the queue holds %v: the publish did not reach it", got)
	}
}

// A new subscription that receives, while the publisher is asked, a late
// event from before it was linked (sent to an earlier subscription of the
// same queue) neither answers that older etag nor takes its position:
// it goes on from the list's position at the link.
func TestSubscribe_LateEventFromBeforeTheLinkIsNotTheAnswer(t *testing.T) {
	s, _ := newStore(t, Config{})
	const res = "user:alice/x"
	other := mustQueue(t, s, bob)
	mustSub(t, s, bob, other, res) // keeps the list alive
	for i := 1; i <= 5; i++ {
		publish(s, res, "v"+strconv.Itoa(i))
	}
	epoch := listEpoch(t, s, res)
	q := mustQueue(t, s, alice)
	late := authFunc(func(context.Context, Principal, string, string) (string, error) {
		// An event of offset 3 still on its way to this queue.
		s.DeliverLocal(&Event{Kind: Changed, Resource: res, Etag: "v3", Pos: Position{Epoch: epoch, Offset: 3}})
		return "v5", nil
	})
	info, err := s.Subscribe(context.Background(), late, alice, q, res, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Etag != "v5" {
		t.Errorf("subscribe answered %q, older than the list's v5 at the link", info.Etag)
	}
	publish(s, res, "v6")
	if got := drainAll(t, s, alice, q); len(got) != 1 || got[0] != "CHANGED v6" {
		t.Errorf("after the subscribe the queue holds %v, want [CHANGED v6] at once", got)
	}
}

// A queue handed to this node misses nothing that its list sent here
// between its export at the old node and its import here: the old node
// let it go only once this node was interested, and what arrived
// meanwhile is kept for it (Arriving) and offered at the import, each
// event once and in order.
func TestImportQueue_EventsThatArrivedFirstAreAppended(t *testing.T) {
	a, _ := newStore(t, Config{})
	b, _ := newStore(t, Config{})
	const res = "user:alice/x"
	q := mustQueue(t, a, alice)
	mustSub(t, a, alice, q, res)
	publish(a, res, "v1")
	epoch := listEpoch(t, a, res)
	at := func(o uint64) *Event {
		return &Event{Kind: Changed, Resource: res, Etag: "v" + strconv.FormatUint(o, 10), Pos: Position{Epoch: epoch, Offset: o}}
	}
	b.Arriving(1) // the hand-off to b begins
	st, ok := a.ExportQueue(q)
	if !ok {
		t.Fatal("ExportQueue: not held")
	}
	b.DeliverLocal(at(1)) // sent to b too, before the export: a duplicate
	b.DeliverLocal(at(2))
	b.DeliverLocal(at(3))
	if !b.ImportQueue(st) {
		t.Fatal("ImportQueue refused")
	}
	b.DeliverLocal(at(4)) // after the import
	b.Arriving(-1)
	b.DeliverLocal(at(5))
	if got, want := strings.Join(drainAll(t, b, alice, q), ","), "CHANGED v1,CHANGED v2,CHANGED v3,CHANGED v4,CHANGED v5"; got != want {
		t.Errorf("the moved queue holds %s, want %s", got, want)
	}
}

// A queue that moves while it waits for a gap to fill goes on waiting at
// its new node: the events of the gap, sent to the new node too (it was
// interested before the old one let the queue go), are appended there in
// order, and nothing is announced lost. Given up at the export, the gap
// became a RESYNC and the events that came to fill it were dropped as
// older (the churn test's join: "change v222 arrived 0 times").
func TestExportQueue_AGapGoesOnFillingAtTheNewNode(t *testing.T) {
	a, _ := newStore(t, Config{})
	b, _ := newStore(t, Config{})
	const res = "user:alice/x"
	q := mustQueue(t, a, alice)
	mustSub(t, a, alice, q, res)
	epoch := listEpoch(t, a, res)
	at := func(o uint64) *Event {
		return &Event{Kind: Changed, Resource: res, Etag: "v" + strconv.FormatUint(o, 10), Pos: Position{Epoch: epoch, Offset: o}}
	}
	a.DeliverLocal(at(1))
	a.DeliverLocal(at(4)) // overtook v2 and v3: held
	b.Arriving(1)
	st, ok := a.ExportQueue(q)
	if !ok {
		t.Fatal("ExportQueue: not held")
	}
	b.DeliverLocal(at(2)) // the gap's events reach the new node
	if !b.ImportQueue(st) {
		t.Fatal("ImportQueue refused")
	}
	b.DeliverLocal(at(3))
	b.Arriving(-1)
	if got, want := strings.Join(drainAll(t, b, alice, q), ","), "CHANGED v1,CHANGED v2,CHANGED v3,CHANGED v4"; got != want {
		t.Errorf("the moved queue holds %s, want %s", got, want)
	}
}

// A gap that never fills after its queue moved is announced at the new
// node once it has waited its time (holdGap): a RESYNC with the newest
// event held.
func TestExportQueue_AGapThatNeverFillsIsAnnouncedAtTheNewNode(t *testing.T) {
	a, _ := newStore(t, Config{})
	b, _ := newStore(t, Config{})
	const res = "user:alice/x"
	q := mustQueue(t, a, alice)
	mustSub(t, a, alice, q, res)
	epoch := listEpoch(t, a, res)
	a.DeliverLocal(&Event{Kind: Changed, Resource: res, Etag: "v1", Pos: Position{Epoch: epoch, Offset: 1}})
	a.DeliverLocal(&Event{Kind: Changed, Resource: res, Etag: "v3", Pos: Position{Epoch: epoch, Offset: 3}})
	st, ok := a.ExportQueue(q)
	if !ok || !b.ImportQueue(st) {
		t.Fatal("the queue did not move")
	}
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if got = append(got, drainAll(t, b, alice, q)...); len(got) > 0 && got[len(got)-1] == "RESYNC v3" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Join(got, ",") != "CHANGED v1,RESYNC v3" {
		t.Errorf("the moved queue holds %v, want [CHANGED v1 RESYNC v3]", got)
	}
}

// An event that fills a gap but is dropped as older than the etag the
// subscription holds (olderAt: the subscription was moved to a newer
// etag at the list's offset) still lets the events held behind the gap
// go on at once: the gap is filled.
func TestGap_FilledByAnOlderEventLetsTheHeldOnesGoOn(t *testing.T) {
	s, _ := newStore(t, Config{})
	const res = "user:alice/x"
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, res)
	epoch := listEpoch(t, s, res)
	at := func(o, a uint64) *Event {
		return &Event{Kind: Changed, Resource: res, Etag: "v" + strconv.FormatUint(o, 10), Pos: Position{Epoch: epoch, Offset: o, At: a}}
	}
	s.DeliverLocal(at(1, 10))
	s.Resync(res, Linked{Etag: "vX", Pos: Position{Epoch: epoch, Offset: 1, At: 50}}, []string{q})
	s.DeliverLocal(at(3, 60)) // held: offset 2 has not come
	s.DeliverLocal(at(2, 20)) // fills the gap, older than vX: dropped
	if got, want := strings.Join(drainAll(t, s, alice, q), ","), "CHANGED v1,RESYNC vX,CHANGED v3"; got != want {
		t.Errorf("the queue holds %s, want %s at once", got, want)
	}
}

// A revoke made at a node while queues are on their way to it is applied
// to those it covers when they land: the revoked device's queue lands
// with a REVOKED and no subscription; another device's queue, and one
// subscribed after the revoke, land subscribed.
func TestArrive_RevokeMadeWhileTheQueueWasOnItsWay(t *testing.T) {
	a, aClock := newStore(t, Config{})
	b, _ := newStore(t, Config{})
	const res = "user:alice/x"
	revoked, other := mustQueue(t, a, alice), mustQueue(t, a, alice2)
	mustSub(t, a, alice, revoked, res)
	mustSub(t, a, alice2, other, res)
	b.Arriving(1)
	defer b.Arriving(-1)
	b.DeliverLocal(stampedRevoke(a, res, alice))
	later := mustQueue(t, a, alice)
	aClock.Add(-time.Second) // subscribed after the revoke, whatever a's clock says
	mustSub(t, a, alice, later, res)
	for _, q := range []string{revoked, other, later} {
		st, ok := a.ExportQueue(q)
		if !ok || !b.ImportQueue(st) {
			t.Fatalf("queue %s not handed over", q)
		}
	}
	for _, c := range []struct {
		q      string
		p      Principal
		subbed bool
	}{{revoked, alice, false}, {other, alice2, true}, {later, alice, true}} {
		subs, err := b.Subscriptions(context.Background(), c.p, c.q)
		if err != nil || (len(subs) == 1) != c.subbed {
			t.Errorf("queue of %s (subscribed after the revoke: %v) landed subscribed to %v (err %v); want subscribed: %v", c.p.Device, c.q == later, subs, err, c.subbed)
		}
		got := drainAll(t, b, c.p, c.q)
		if revokedLast := len(got) > 0 && strings.HasPrefix(got[len(got)-1], "REVOKED"); revokedLast == c.subbed {
			t.Errorf("queue of %s holds %v; want a REVOKED at its end: %v", c.p.Device, got, !c.subbed)
		}
	}
}

// A revoke kept while one hand-off was in progress stays kept when that
// hand-off ends and another has begun by the time the end's walk reaches
// the table: the queue the second one brings lands revoked.
func TestArrive_ARevokeKeptOutlivesTheEndOfAnEarlierHandOff(t *testing.T) {
	a, _ := newStore(t, Config{})
	b, _ := newStore(t, Config{})
	const res = "user:alice/x"
	q := mustQueue(t, a, alice)
	mustSub(t, a, alice, q, res)
	b.Arriving(1) // hand-off A
	b.DeliverLocal(stampedRevoke(a, res, alice))
	f := b.local.get(res)
	if f == nil {
		t.Fatal("no table kept the revoke")
	}
	f.mu.Lock() // A's end walks the tables: hold it at this one
	ended := make(chan struct{})
	go func() { b.Arriving(-1); close(ended) }()
	for b.arriving.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	b.Arriving(1) // hand-off B begins before A's walk reaches the table
	defer b.Arriving(-1)
	f.mu.Unlock()
	<-ended
	st, ok := a.ExportQueue(q)
	if !ok || !b.ImportQueue(st) {
		t.Fatal("queue not handed over")
	}
	if subs, err := b.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 0 {
		t.Errorf("queue landed subscribed to %v (err %v) after a revoke kept for it; want revoked", subs, err)
	}
}

// stampedRevoke stamps a revoke of p's subscriptions to res in s's list,
// as its holder does, without fanning it out here: the revoke another
// node interested in the list gets.
func stampedRevoke(s *Store, res string, p Principal) *Event {
	ev := RevokeEvent(res, p.User, p.Device)
	r := s.lockList(res, nil)
	r.stampLocked(ev, s.cfg.Now())
	r.mu.Unlock()
	return ev
}

// A revoke that reaches a node again (a tail announcement, an op handed
// on) leaves alone a subscription its principal made after it, and the
// subscription then gets the next change with no gap: positions say
// which came first, and a revoke is a place in the stream (in one epoch:
// one of another epoch is revoked, to be safe; see Event.revokes).
func TestRevoke_SentAgainLeavesASubscriptionMadeAfterIt(t *testing.T) {
	s, clock := newStore(t, Config{})
	const res = "user:alice/x"
	q, other := mustQueue(t, s, alice), mustQueue(t, s, bob)
	mustSub(t, s, alice, q, res)
	mustSub(t, s, bob, other, res) // the list lives on: one stream
	publish(s, res, "e1")
	ev := RevokeEvent(res, alice.User, "")
	if n := s.Deliver(ev); n != 1 {
		t.Fatalf("the revoke reached %d queues; want 1", n)
	}
	clock.Add(-time.Minute) // the clock says nothing of which came first
	mustSub(t, s, alice, q, res)
	if n := s.DeliverLocal(ev); n != 0 {
		t.Fatalf("the revoke sent again removed %d subscriptions; want 0", n)
	}
	publish(s, res, "e2")
	if got, want := drainAll(t, s, alice, q), []string{"CHANGED e1", "REVOKED e1", "CHANGED e2"}; !slices.Equal(got, want) {
		t.Fatalf("the queue holds %q; want %q", got, want)
	}
}

// A subscription being made (pending) that is handed another
// principal's revoke before a change stamped ahead of it (the two on
// their way from the list's holder, out of order) answers the change's
// etag, which the revoke carries: the change, come late, is older than
// the revoke's position and dropped, and must not be lost.
func TestRevoke_AnotherPrincipalsRevokeSeenWhileSubscribingIsTheNewestEtag(t *testing.T) {
	r := newRouted(t)
	const res = "user:alice/x"
	other := mustQueue(t, r.node, bob)
	mustSub(t, r.node, bob, other, res)
	publish(r.holder, res, "v0")
	r.release()
	q := mustQueue(t, r.node, alice)
	auth := authFunc(func(context.Context, Principal, string, string) (string, error) {
		publish(r.holder, res, "v1")
		r.holder.Revoke(res, "carol", "")
		r.mu.Lock()
		evs := r.outbox
		r.outbox = nil
		r.mu.Unlock()
		for i := len(evs) - 1; i >= 0; i-- { // the revoke first
			r.node.DeliverLocal(evs[i])
		}
		return "v0", nil // read before v1 was published
	})
	info, err := r.node.Subscribe(context.Background(), auth, alice, q, res, "", "")
	if err != nil {
		t.Fatal(err)
	}
	checkWatch(t, info.Etag, drainAll(t, r.node, alice, q), "v1")
	if got := drainAll(t, r.node, bob, other); len(got) == 0 || got[len(got)-1] != "CHANGED v1" {
		t.Fatalf("bob's queue holds %q; want it to end with CHANGED v1", got)
	}
}

// A revoke sent again (a tail announcement) while its principal,
// allowed again, subscribes once more is older than the new
// subscription, which it must leave alone.
func TestRevoke_SentAgainWhileItsPrincipalSubscribesAgainLeavesItAlone(t *testing.T) {
	r := newRouted(t)
	const res = "user:alice/x"
	other, q := mustQueue(t, r.node, bob), mustQueue(t, r.node, alice)
	mustSub(t, r.node, bob, other, res) // the list lives on: one stream
	mustSub(t, r.node, alice, q, res)
	r.holder.Revoke(res, alice.User, "")
	r.mu.Lock()
	revoke := r.outbox[len(r.outbox)-1]
	r.mu.Unlock()
	r.release()
	auth := authFunc(func(context.Context, Principal, string, string) (string, error) {
		r.node.DeliverLocal(revoke) // the tail, while pending
		return "", nil
	})
	if _, err := r.node.Subscribe(context.Background(), auth, alice, q, res, "", ""); err != nil {
		t.Fatalf("subscribing again after the revoke: %v", err)
	}
	if subs, err := r.node.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 1 {
		t.Fatalf("the queue subscribes to %v (%v); want the resource", subs, err)
	}
}

// A revoke handed to its list again (a retry after a lost reply, a
// gone peer's outbox handed on) gets the position it had, and the
// list's etag: a queue that missed the first copy and takes this one
// for a RESYNC (another epoch, a gap given up) is told the list's etag,
// not "".
func TestRevoke_SentToItsListAgainCarriesTheListsEtag(t *testing.T) {
	s, _ := newStore(t, Config{})
	const res = "user:alice/x"
	q := mustQueue(t, s, bob)
	mustSub(t, s, bob, q, res)
	publish(s, res, "v1")
	first := RevokeEvent(res, "carol", "")
	s.Deliver(first)
	again := RevokeEvent(res, "carol", "")
	again.ID = first.ID
	s.Deliver(again)
	if again.Pos != first.Pos || again.Etag != "v1" {
		t.Fatalf("sent again, the revoke stands at %+v with etag %q; want %+v with v1", again.Pos, again.Etag, first.Pos)
	}
}

// A subscription being made that sees another principal's revoke of a
// list that knows no etag yet still answers the publisher's etag: the
// revoke says nothing of the resource's version.
func TestRevoke_AnotherPrincipalsRevokeOfAListWithNoEtagLeavesThePublishersAnswer(t *testing.T) {
	r := newRouted(t)
	const res = "user:alice/x"
	other := mustQueue(t, r.node, bob)
	if _, err := r.node.Subscribe(context.Background(), allowAll{""}, bob, other, res, "", ""); err != nil {
		t.Fatal(err)
	}
	q := mustQueue(t, r.node, alice)
	auth := authFunc(func(context.Context, Principal, string, string) (string, error) {
		r.holder.Revoke(res, "carol", "")
		r.release()
		return "v5", nil
	})
	info, err := r.node.Subscribe(context.Background(), auth, alice, q, res, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Etag != "v5" {
		t.Fatalf("the subscribe answered %q; want the publisher's v5", info.Etag)
	}
}
