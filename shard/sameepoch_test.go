package shard

import (
	"slices"
	"testing"
	"time"
)

// Reproduction (ring1-4 chaos run): a subscription linked at a list whose
// etag is newer than its position (the list adopted a queue's etag from
// another list, by a learn or a link hint, without stamping) goes on from
// that position with the newer etag. An event of the same epoch at the
// next offset, stamped before that etag (a late delivery of the epoch's
// other copy, or of its old holder), is then taken for the next change
// and appended as CHANGED: the watch goes from the newer etag back to an
// older one, which Position.Before (At across epochs) would have refused.
func TestOrder_SameEpochEventStampedBeforeTheDeliveredEtagIsDropped(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	const res = "user:alice/chaos/5"
	mustSub(t, s, alice, q, res)
	e := listEpoch(t, s, res)
	publish(s, res, "p1443")
	publish(s, res, "p1444")
	s.res.mu.RLock()
	t0 := s.res.m[res].pos.At
	s.res.mu.RUnlock()
	at := func(o, a uint64, etag string) *Event {
		return &Event{Kind: Changed, Resource: res, Etag: etag, Pos: Position{Epoch: e, Offset: o, At: a}}
	}
	// The list learns p2165, stamped later (At) by another list of this
	// resource, of an earlier epoch (a node taken for dead kept its list
	// while this one was made), as a learn op or a link hint does: its
	// etag moves, its position does not.
	s.AddInterest(res, Interest{}, Hint{Etag: "p2165", Pos: Position{Epoch: e - 1, Offset: 7, At: t0 + uint64(time.Second)}})
	_, l := s.AddInterest(res, Interest{Node: "c1", Count: 1}, Hint{})
	if l.Etag != "p2165" || l.Pos.Epoch != e || l.Pos.Offset != 2 {
		t.Fatalf("linked %+v: want p2165 at the list's own position (%d, 2)", l, e)
	}
	// A relink's RESYNC: the subscription goes on from l.
	s.Resync(res, l, []string{q})
	// p1445, stamped at offset 3 of this epoch before p2165, arrives late.
	s.DeliverLocal(at(3, t0+1, "p1445"))
	// p1446, stamped after p2165 was adopted, is the next change.
	s.DeliverLocal(at(4, t0+uint64(2*time.Second), "p1446"))
	got := drainAll(t, s, alice, q)
	if want := []string{"CHANGED p1443", "CHANGED p1444", "RESYNC p2165", "CHANGED p1446"}; !slices.Equal(got, want) {
		t.Fatalf("queue holds %v, want %v: an older etag after a newer one, or the next change lost", got, want)
	}
}
