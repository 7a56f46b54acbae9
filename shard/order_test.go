package shard

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Two lists of one resource lived at once (a node taken for dead kept
// its list while another node made one in a later epoch): b's list, the
// later epoch, delivered v1 to qb; then a's list, the earlier epoch,
// delivered v2, published after v1. The epochs say nothing of which etag
// is newer; the time each was stamped does.
type splitLists struct {
	a, b   *Store
	qa, qb string
}

const splitRes = "user:alice/split"

func newSplitLists(t *testing.T) splitLists {
	t.Helper()
	ctx := context.Background()
	a, _ := newStore(t, Config{})
	b, _ := newStore(t, Config{})
	qa, qb := mustQueue(t, a, alice), mustQueue(t, b, bob)
	if _, err := a.Subscribe(ctx, allowAll{"v0"}, alice, qa, splitRes, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(ctx, allowAll{"v0"}, bob, qb, splitRes, "", ""); err != nil {
		t.Fatal(err)
	}
	if ea, eb := listEpoch(t, a, splitRes), listEpoch(t, b, splitRes); ea >= eb {
		t.Fatalf("a's list epoch %d is not before b's %d", ea, eb)
	}
	publish(b, splitRes, "v1")
	publish(a, splitRes, "v2")
	return splitLists{a, b, qa, qb}
}

// hint is what s's queues know of splitRes, as relink and the audit send it.
func hintOf(t *testing.T, s *Store) LocalInterest {
	t.Helper()
	h := s.LocalInterests()[splitRes]
	if len(h.Queues) != 1 {
		t.Fatalf("local interest %+v", h)
	}
	return h
}

// lastEtag is the etag of the last notification of q.
func lastEtag(t *testing.T, s *Store, p Principal, q string) (all []string, last string) {
	t.Helper()
	all = drainAll(t, s, p, q)
	if len(all) > 0 {
		last = all[len(all)-1]
	}
	return all, last
}

// TestOrder_RelinkAcrossEpochsNeverResyncsAnOlderEtag: qb (which saw v1
// in the later epoch) is linked into a's list (which delivered v2 since).
// The list must keep v2 and send nobody a RESYNC with v1: qa had v2.
// Before, the list adopted v1 because its position's epoch was greater,
// and RESYNCed v1 to qa (review 12 finding 10; the chaos test's "went
// from p572 back to p512 (RESYNC)").
func TestOrder_RelinkAcrossEpochsNeverResyncsAnOlderEtag(t *testing.T) {
	sl := newSplitLists(t)
	h := hintOf(t, sl.b)
	h.Node = "b"
	_, l := sl.a.AddInterest(splitRes, h.Interest, h.Hint)
	if l.Etag != "v2" {
		t.Errorf("the list answers etag %q after the link, want v2 (v1 is older)", l.Etag)
	}
	if all, last := lastEtag(t, sl.a, alice, sl.qa); last != "CHANGED v2" {
		t.Errorf("qa holds %v: it went back from v2", all)
	}
	// qb's side applies the list's answer: it learns v2.
	sl.b.Resync(splitRes, l, []string{sl.qb})
	if all, last := lastEtag(t, sl.b, bob, sl.qb); last != "RESYNC v2" {
		t.Errorf("qb holds %v, want it to end with RESYNC v2", all)
	}
}

// TestOrder_ResyncFromAnOlderEtagIsNotAppended: qa (v2) is linked into
// b's list (later epoch, but v1 is older). The list learns v2 from qa's
// hint; whatever it answers, qa never appends a RESYNC older than v2, and
// qb gets v2.
func TestOrder_ResyncFromAnOlderEtagIsNotAppended(t *testing.T) {
	sl := newSplitLists(t)
	ev := lastEventOf(t, sl.b, bob, sl.qb, "v1")
	h := hintOf(t, sl.a)
	h.Node = "a"
	_, l := sl.b.AddInterest(splitRes, h.Interest, h.Hint)
	sl.a.Resync(splitRes, l, []string{sl.qa})
	if all, last := lastEtag(t, sl.a, alice, sl.qa); last != "CHANGED v2" && last != "RESYNC v2" {
		t.Errorf("qa holds %v: it went back from v2", all)
	}
	if all, last := lastEtag(t, sl.b, bob, sl.qb); last != "RESYNC v2" {
		t.Errorf("qb holds %v, want it to end with RESYNC v2 (the list learned the newer etag)", all)
	}
	sl.a.DeliverLocal(ev) // as below, after the re-link
	if got := drainAll(t, sl.a, alice, sl.qa); len(got) != 0 {
		t.Errorf("qa appended %v after v2, from a late v1 of the later epoch", got)
	}
}

// TestOrder_LateEventOfALaterEpochWithAnOlderEtagIsDropped: an event of
// b's list (v1, the later epoch, stamped before v2) reaches qa, which
// appended v2, as an outbox flushed after a freeze would deliver it. qa
// drops it; before, the newer epoch made it a RESYNC v1 after v2.
func TestOrder_LateEventOfALaterEpochWithAnOlderEtagIsDropped(t *testing.T) {
	sl := newSplitLists(t)
	ev := lastEventOf(t, sl.b, bob, sl.qb, "v1")
	sl.a.DeliverLocal(ev)
	if all, last := lastEtag(t, sl.a, alice, sl.qa); last != "CHANGED v2" {
		t.Errorf("qa holds %v: it went back from v2", all)
	}
	// A newer event of b's list (v3, stamped after v2) is the newest
	// there is: qa announces it.
	publish(sl.b, splitRes, "v3")
	sl.a.DeliverLocal(lastEventOf(t, sl.b, bob, sl.qb, "v3"))
	if all, last := lastEtag(t, sl.a, alice, sl.qa); last != "RESYNC v3" {
		t.Errorf("qa holds %v, want RESYNC v3 (a later etag of another epoch)", all)
	}
}

// lastEventOf is the event with etag in q.
func lastEventOf(t *testing.T, s *Store, p Principal, q, etag string) *Event {
	t.Helper()
	pg := poll(t, s, p, q, 0, 100)
	for i := len(pg.Items) - 1; i >= 0; i-- {
		if pg.Items[i].Etag == etag {
			return pg.Items[i].Event
		}
	}
	t.Fatalf("no %s in %s", etag, q)
	return nil
}

// TestOrder_MergeAcrossEpochsKeepsTheNewerEtag: a list handed over from
// an older epoch that delivered v10 after the list here learned v9 is
// merged: the merged list remembers v10 (review 12 finding 10; the
// reviewer's TestReview_ImportMergePicksOlderEtagAcrossEpochs).
func TestOrder_MergeAcrossEpochsKeepsTheNewerEtag(t *testing.T) {
	sl := newSplitLists(t)
	st, ok := sl.a.ExportResource(splitRes)
	if !ok {
		t.Fatal("a holds no list")
	}
	sl.b.ImportResource(st)
	if got := sl.b.ResourcesWithScheme("user")[splitRes]; got != "v2" {
		t.Errorf("the merged list remembers %q; v2 was delivered after v1", got)
	}
}

// TestOrder_SubscribeNeverAnswersAStalePublisherOverTheList: a client
// whose queue was lost subscribes again knowing v2, which the list
// delivered; the resource's publisher keeps etags in memory and, owner
// only lately, answers v1. The answer is the list's v2, and no RESYNC
// takes the new queue back to v1 (the chaos test's "went from p137 back
// to p77 (RESYNC)" after a node was killed).
func TestOrder_SubscribeNeverAnswersAStalePublisherOverTheList(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	q1 := mustQueue(t, s, alice)
	if _, err := s.Subscribe(ctx, allowAll{"v0"}, alice, q1, splitRes, "", ""); err != nil {
		t.Fatal(err)
	}
	publish(s, splitRes, "v1")
	publish(s, splitRes, "v2")
	q2 := mustQueue(t, s, alice)
	info, err := s.Subscribe(ctx, allowAll{"v1"}, alice, q2, splitRes, "", "v2")
	if err != nil {
		t.Fatal(err)
	}
	if info.Etag != "v2" {
		t.Errorf("subscribe answered %q; the list delivered v2", info.Etag)
	}
	if got := drainAll(t, s, alice, q2); len(got) != 0 {
		t.Errorf("the new queue holds %v, want nothing (the client knew v2)", got)
	}
}

// TestOrder_OfferTailCatchesUpAQueueInItsListThatMissedIt: q is in its
// node's table but missed v2 (lost on its way, and the tail
// announcements too, while its route was wrong). A relink's catch-up
// offers the list's last event again (OfferTail): q appends v2 itself,
// with its payload, q2, up to date, drops it, and a second offer
// appends nothing. Then q misses v4 and v5: offered v5, it holds it
// behind the gap and announces the gap with one RESYNC v5 after
// holdGap. (Before, the relinking node moved its queues to the
// position its link answered, with a RESYNC: an event still on its way
// then was dropped when it came.)
func TestOrder_OfferTailCatchesUpAQueueInItsListThatMissedIt(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	q, q2 := mustQueue(t, s, alice), mustQueue(t, s, alice)
	for _, x := range []string{q, q2} {
		if _, err := s.Subscribe(ctx, allowAll{"v0"}, alice, x, splitRes, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	sub := s.get(q).subs[splitRes]
	miss := func(etags ...string) { // q misses them, then is in its table again
		s.leaveLocal(splitRes, sub)
		for _, e := range etags {
			publish(s, splitRes, e)
		}
		in, _ := s.joinLocal(splitRes, s.get(q), sub)
		s.AddInterest(splitRes, in, Hint{})
	}
	publish(s, splitRes, "v1")
	miss("v2")
	drainAll(t, s, alice, q2)
	if got := drainAll(t, s, alice, q); len(got) != 1 || got[0] != "CHANGED v1" {
		t.Fatalf("q holds %v before the catch-up, want [CHANGED v1]", got)
	}
	s.OfferTail(splitRes, s.name)
	pg := poll(t, s, alice, q, 0, 10)
	if len(pg.Items) != 1 || pg.Items[0].Kind != Changed || pg.Items[0].Etag != "v2" || string(pg.Items[0].Payload) != `{"v":"v2"}` {
		t.Errorf("q holds %v after the catch-up, want v2 itself", pg.Items)
	}
	drainAll(t, s, alice, q)
	s.OfferTail(splitRes, s.name)
	if got := drainAll(t, s, alice, q2); len(got) != 0 {
		t.Errorf("q2, up to date, got %v", got)
	}
	if got := drainAll(t, s, alice, q); len(got) != 0 {
		t.Errorf("a second offer appended %v", got)
	}
	publish(s, splitRes, "v3") // q goes on from v2: appended at once
	if got := drainAll(t, s, alice, q); len(got) != 1 || got[0] != "CHANGED v3" {
		t.Errorf("q holds %v after v3, want [CHANGED v3]", got)
	}
	miss("v4", "v5")
	s.OfferTail(splitRes, s.name)
	var got []string
	for deadline := time.Now().Add(holdGap + 5*time.Second); time.Now().Before(deadline) && len(got) == 0; time.Sleep(20 * time.Millisecond) {
		got = drainAll(t, s, alice, q)
	}
	if len(got) != 1 || got[0] != "RESYNC v5" {
		t.Errorf("q, behind by two, holds %v after the catch-up, want [RESYNC v5]", got)
	}
}

// TestOrder_LateEventOfAnOlderListIsDroppedByAnUnstampedSubscription: qb
// subscribed to a list made in a later epoch that knows only a
// publisher's answer (v9, At unknown); a late event of an older list (v1:
// a frozen node's outbox flushed after it came back) reaches qb. qb drops
// it: an unknown At leaves the epochs to decide. With unknown At counted
// as oldest, qb took it (a RESYNC), went on in the old list's epoch and
// appended its stale events as CHANGED (a v8 chaos run: 1468 watches went
// back, "p2726 back to p866 (CHANGED)").
func TestOrder_LateEventOfAnOlderListIsDroppedByAnUnstampedSubscription(t *testing.T) {
	ctx := context.Background()
	a, _ := newStore(t, Config{})
	qa := mustQueue(t, a, alice)
	if _, err := a.Subscribe(ctx, allowAll{"v0"}, alice, qa, splitRes, "", ""); err != nil {
		t.Fatal(err)
	}
	publish(a, splitRes, "v1")
	late := lastEventOf(t, a, alice, qa, "v1")
	b, _ := newStore(t, Config{})
	qb := mustQueue(t, b, bob)
	if _, err := b.Subscribe(ctx, allowAll{"v9"}, bob, qb, splitRes, "", ""); err != nil {
		t.Fatal(err)
	}
	b.DeliverLocal(late)
	if got := drainAll(t, b, bob, qb); len(got) != 0 {
		t.Errorf("qb appended %v from a late event of an older list", got)
	}
}

// TestOrder_TwoCopiesOfOneEpochMergeIntoANewEpoch: a list's state given
// twice (once, and again, stale, from a tomb) makes two copies of one
// epoch: one at offset 0 here, the other went on and stamped v1 at offset
// 1. Merged, the list goes on in a new epoch, so its next event (v2) does
// not get a position the other copy already gave v1, and a queue that
// appended the late v1 does not drop v2. Before, the merge kept the epoch
// and offset 0 (a v10 chaos run: 9973 watches went back through CHANGED,
// "p2691 back to p1491", after queues were linked at such an offset 0).
func TestOrder_TwoCopiesOfOneEpochMergeIntoANewEpoch(t *testing.T) {
	ctx := context.Background()
	a, _ := newStore(t, Config{})
	qa := mustQueue(t, a, alice)
	if _, err := a.Subscribe(ctx, allowAll{"v0"}, alice, qa, splitRes, "", ""); err != nil {
		t.Fatal(err)
	}
	stale, ok := a.ExportResource(splitRes) // given once, at offset 0
	if !ok {
		t.Fatal("no list")
	}
	a.ImportResource(stale) // the copy that goes on
	publish(a, splitRes, "v1")
	late := lastEventOf(t, a, alice, qa, "v1")
	cur, _ := a.ExportResource(splitRes)
	b, _ := newStore(t, Config{})
	b.ImportResource(stale) // the stale copy, given again
	qb := mustQueue(t, b, bob)
	if _, err := b.Subscribe(ctx, allowAll{"v0"}, bob, qb, splitRes, "", ""); err != nil {
		t.Fatal(err)
	}
	b.ImportResource(cur) // the copy that went on, merged into it
	b.DeliverLocal(late)
	publish(b, splitRes, "v2")
	if all, last := lastEtag(t, b, bob, qb); !strings.HasSuffix(last, " v2") {
		t.Errorf("qb holds %v: the list's next event after the merge was dropped", all)
	}
}

// TestOrder_RefreshSubscribeMovesThePositionWithTheEtag: q's subscription
// is left at the position of a list it followed once (epoch A, offset 0)
// with a newer etag, v5: a repair whose link failed announced v5 with no
// position (Resync with a zero Linked.Pos keeps the position). The list
// is now another one (epoch B, made by the refresh's link), and the
// publisher answers v5. A refresh subscribe answers v5 and moves q on to
// the link's position, so a late event of the old list at (A, 1) is not
// taken for q's next one. Before, only the etag moved, and q appended
// the old change after v5 (a v10 chaos run: 4440 watches went back
// through CHANGED, subscriptions at offset 0 or 1 of an old epoch with a
// recent etag). Nothing but the refresh moves q's position here: no
// event of list B reaches q before the late one.
func TestOrder_RefreshSubscribeMovesThePositionWithTheEtag(t *testing.T) {
	ctx := context.Background()
	a, _ := newStore(t, Config{})
	q := mustQueue(t, a, alice)
	if _, err := a.Subscribe(ctx, allowAll{"v0"}, alice, q, splitRes, "", ""); err != nil {
		t.Fatal(err)
	}
	old, ok := a.ExportResource(splitRes) // the list q followed (epoch A, offset 0) goes away
	if !ok {
		t.Fatal("no list")
	}
	c, _ := newStore(t, Config{})
	qc := mustQueue(t, c, bob)
	c.ImportResource(old) // it goes on elsewhere and stamps v1 at (A, 1)
	if _, err := c.Subscribe(ctx, allowAll{"v0"}, bob, qc, splitRes, "", ""); err != nil {
		t.Fatal(err)
	}
	publish(c, splitRes, "v1")
	late := lastEventOf(t, c, bob, qc, "v1")
	if a.Resync(splitRes, Linked{Etag: "v5"}, []string{q}) != 1 { // the failed repair link
		t.Fatal("no RESYNC")
	}
	info, err := a.Subscribe(ctx, allowAll{"v5"}, alice, q, splitRes, "", "") // the refresh: a new list (epoch B)
	if err != nil || info.Etag != "v5" {
		t.Fatalf("refresh answered %q, %v; want v5", info.Etag, err)
	}
	drainAll(t, a, alice, q)
	a.DeliverLocal(late)
	if got := drainAll(t, a, alice, q); len(got) != 0 {
		t.Errorf("q appended %v after the refresh answered v5", got)
	}
}
