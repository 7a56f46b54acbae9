package shard

import (
	"context"
	"testing"
	"time"
)

// takerPeers is the Peers of a store that takes holder's list in a
// hand-off: what it forwards goes to node through the same outbox.
type takerPeers struct{ r *routed }

func (takerPeers) Link(context.Context, string, Interest, Hint) (Linked, error) {
	return Linked{}, nil
}
func (takerPeers) Learn(string, Hint)        {}
func (takerPeers) Interest(string, Interest) {}
func (p takerPeers) Forward(ev *Event, nodes []string) {
	for range nodes {
		p.r.mu.Lock()
		p.r.outbox = append(p.r.outbox, ev)
		p.r.mu.Unlock()
	}
}

// A list handed whole to a node that acknowledged a publish of its
// resource while it held none (remembered) goes on from that publish
// (ImportResource), in the list's own epoch. Its queues elsewhere that
// have the list's last event must hear of the remembered publish (a
// RESYNC naming it, the tail), not take the next publish as the next
// change after the last one they had.
func TestLoss_RememberedPublishReachesQueuesAtTheImportedListsPosition(t *testing.T) {
	r := newRouted(t)
	taker, clk := newStore(t, Config{})
	taker.SetPeers(takerPeers{r}, "t")
	const res = "user:alice/feed/24"
	q := mustQueue(t, r.node, alice)
	mustSub(t, r.node, alice, q, res)
	publish(r.holder, res, "v1") // stamped at the holder, forwarded to node
	r.release()

	st, ok := r.holder.ExportResource(res) // the list leaves for the taker
	if !ok {
		t.Fatal("no list at the holder")
	}
	taker.RememberUnheld(clk.Now().Add(time.Minute))
	publish(taker, res, "v2") // acknowledged at the taker, which holds no list yet: remembered
	taker.ImportResource(st)  // the list lands; it goes on from v2
	clk.Add(2 * tailQuiet)
	taker.AnnounceTails() // the list's tail: v2, at the list's position
	r.release()
	publish(taker, res, "v3")
	r.release()

	got := drainAll(t, r.node, alice, q)
	t.Logf("queue got %v", got)
	saw2 := false
	for _, g := range got {
		if g == "CHANGED v2" || g == "RESYNC v2" {
			saw2 = true
		}
	}
	if !saw2 {
		t.Errorf("v2, acknowledged and remembered by the list's new holder, never reached the queue, and v3 came as the next change: %v", got)
	}
}
