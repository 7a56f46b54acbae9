package shard

import (
	"context"
	"strings"
	"testing"
	"time"
)

// An event forwarded to a node is sent again when its reply was lost. Whatever the reader acknowledged meanwhile, the queue appends it
// once: its position is at or below the last one the subscription appended.
func TestDeliverTo_OpSentAgainAfterAckIsNotDuplicated(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, "user:alice/x")
	ev := &Event{Kind: Changed, Resource: "user:alice/x", Etag: "e1"}
	if n := s.Deliver(ev); n != 1 {
		t.Fatalf("delivered to %d queues, want 1", n)
	}
	pg := poll(t, s, alice, q, 0, 10)
	if len(pg.Items) != 1 {
		t.Fatalf("got %d notifications, want 1", len(pg.Items))
	}
	poll(t, s, alice, q, pg.LastSeq, 0) // acknowledged: it leaves the buffer
	for range 3 {                       // the same op, sent again
		if n := s.DeliverLocal(ev); n != 1 {
			t.Fatalf("DeliverLocal = %d, want 1", n)
		}
	}
	if pg := poll(t, s, alice, q, pg.LastSeq, 10); len(pg.Items) != 0 {
		t.Fatalf("the op sent again was appended again: %+v", pg.Items[0])
	}
	publish(s, "user:alice/x", "e2")
	pg = poll(t, s, alice, q, pg.LastSeq, 10)
	if len(pg.Items) != 1 || pg.Items[0].Kind != Changed || pg.Items[0].Etag != "e2" || pg.Items[0].Seq != 2 {
		t.Fatalf("after the duplicate, the next change: %+v", pg.Items)
	}
}

// Positions decide what a queue appends for events that arrive late, twice
// or after a gap: an event overtaken by a newer one waits for the one
// before it (and both are appended in order); an older epoch is dropped;
// a newer epoch, or a gap that does not fill, becomes one RESYNC with the
// newest etag.
func TestDeliverTo_PositionsOrderWhatArrives(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, "user:alice/x")
	s.res.mu.RLock()
	epoch := s.res.m["user:alice/x"].pos.Epoch
	s.res.mu.RUnlock()
	at := func(e, o uint64, etag string) *Event {
		return &Event{Kind: Changed, Resource: "user:alice/x", Etag: etag, Pos: Position{Epoch: e, Offset: o}}
	}
	s.DeliverLocal(at(epoch, 1, "v1"))
	s.DeliverLocal(at(epoch, 3, "v3"))    // overtook v2: held
	s.DeliverLocal(at(epoch, 3, "v3"))    // twice: held once
	s.DeliverLocal(at(epoch, 2, "v2"))    // fills the gap: v2, v3
	s.DeliverLocal(at(epoch, 2, "v2"))    // again: dropped
	s.DeliverLocal(at(epoch, 4, "v4"))    // next: CHANGED
	s.DeliverLocal(at(epoch-1, 9, "old")) // an older epoch: dropped
	s.DeliverLocal(at(epoch+1, 1, "w1"))  // a newer epoch: RESYNC
	s.DeliverLocal(at(epoch+1, 3, "w3"))  // w2 is lost: held, then RESYNC
	want := []string{"CHANGED v1", "CHANGED v2", "CHANGED v3", "CHANGED v4", "RESYNC w1", "RESYNC w3"}
	var got []string
	var after uint64
	deadline := time.Now().Add(10 * holdGap)
	for len(got) < len(want) && time.Now().Before(deadline) {
		pg, err := s.Poll(context.Background(), alice, q, after, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range pg.Items {
			got = append(got, n.Kind.String()+" "+n.Etag)
		}
		after = pg.LastSeq
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", got, want)
	}
	subs, _ := s.Subscriptions(context.Background(), alice, q)
	if subs[0].Etag != "w3" {
		t.Fatalf("subscription's etag %q, want w3", subs[0].Etag)
	}
}
