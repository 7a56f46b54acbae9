package shard

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// routed is two stores of one cluster: holder holds every subscriber
// list, node holds the queues. node reaches the lists as cluster.Node
// does, by calls that return when done (Link; Learn and Interest too,
// here); what holder forwards to node waits in outbox until the test
// lets it through (release), as a Push on its way does.
type routed struct {
	holder, node *Store
	holderClock  *fakeClock
	mu           sync.Mutex
	outbox       []*Event
}

func newRouted(t *testing.T) *routed {
	t.Helper()
	r := &routed{}
	r.holder, r.holderClock = newStore(t, Config{})
	r.node, _ = newStore(t, Config{})
	r.holder.SetPeers(holderPeers{r}, "h")
	r.node.SetPeers(nodePeers{r}, "n")
	return r
}

// release delivers what holder forwarded to node so far, in order.
func (r *routed) release() {
	r.mu.Lock()
	evs := r.outbox
	r.outbox = nil
	r.mu.Unlock()
	for _, ev := range evs {
		r.node.DeliverLocal(ev)
	}
}

// lose drops what holder forwarded to node so far: lost on its way.
func (r *routed) lose() {
	r.mu.Lock()
	r.outbox = nil
	r.mu.Unlock()
}

// announceTails moves holder's clock past every announcement due, has it
// announce its lists' tails, and delivers them to node.
func (r *routed) announceTails() {
	r.holderClock.Add(time.Hour)
	r.holder.AnnounceTails()
	r.release()
}

// nodePeers is node's Peers: every list is holder's.
type nodePeers struct{ r *routed }

func (p nodePeers) Link(_ context.Context, res string, in Interest, hint Hint) (Linked, error) {
	_, l := p.r.holder.AddInterest(res, in, hint)
	return l, nil
}
func (p nodePeers) Learn(res string, hint Hint)      { p.r.holder.AddInterest(res, Interest{}, hint) }
func (p nodePeers) Interest(res string, in Interest) { p.r.holder.SetInterest(res, in) }
func (nodePeers) Forward(*Event, []string)           {}

// holderPeers is holder's Peers: its own lists, and an outbox to node.
type holderPeers struct{ r *routed }

func (p holderPeers) Link(_ context.Context, res string, in Interest, hint Hint) (Linked, error) {
	_, l := p.r.holder.AddInterest(res, in, hint)
	return l, nil
}
func (p holderPeers) Learn(res string, hint Hint)      { p.r.holder.AddInterest(res, Interest{}, hint) }
func (p holderPeers) Interest(res string, in Interest) { p.r.holder.SetInterest(res, in) }
func (p holderPeers) Forward(ev *Event, nodes []string) {
	for _, n := range nodes {
		if n != "n" {
			panic("forward to unknown node " + n)
		}
		p.r.mu.Lock()
		p.r.outbox = append(p.r.outbox, ev)
		p.r.mu.Unlock()
	}
}

// version is the number in etag "vN".
func version(t *testing.T, etag string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(etag, "v"))
	if err != nil {
		t.Fatalf("etag %q is not vN", etag)
	}
	return n
}

// checkWatch fails unless a watch that was answered answer and then read
// got (each "KIND etag") never goes back and ends at last.
func checkWatch(t *testing.T, answer string, got []string, last string) {
	t.Helper()
	seen := []string{"answer " + answer}
	cur := answer
	for _, g := range got {
		_, etag, _ := strings.Cut(g, " ")
		seen = append(seen, g)
		if cur != "" && version(t, etag) < version(t, cur) {
			t.Errorf("the watch went back from %s to %s: %v", cur, etag, seen)
		}
		cur = etag
	}
	if cur != last {
		t.Errorf("the watch ends at %q, want %q, the last published: %v", cur, last, seen)
	}
}

// TestSubscribe_AtomicWithPublish: a subscribe races sequential publishes
// of a resource whose list has stamped no etag yet (new, or one that
// only learned a subscribe's answer), so the publisher's answer is
// believed. The publisher is asked after the link: v1 is published
// meanwhile (stamped after the link, so it goes to the new queue) and
// v2's publish has begun (the publisher records before it delivers), so
// the publisher answers v2 while v1 is still on its way to the queue.
// The watch must never see v1 after its answer, and must end at v2.
func TestSubscribe_AtomicWithPublish(t *testing.T) {
	const res = "user:alice/race"
	for _, tc := range []struct {
		name string
		// prepare runs before the subscribe under test; q is its queue.
		prepare func(t *testing.T, r *routed, q string)
		// routedV1: v1 waits on its way to the queue's node until the
		// subscribe has answered (else it arrives while it is made).
		routedV1 bool
	}{
		{"new list, v1 on its way to the queue's node", nil, true},
		{"list that learned an etag, v1 on its way", func(t *testing.T, r *routed, _ string) {
			other := mustQueue(t, r.node, bob)
			if _, err := r.node.Subscribe(context.Background(), allowAll{"v0"}, bob, other, res, "", ""); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"refresh, v1 on its way", func(t *testing.T, r *routed, q string) {
			if _, err := r.node.Subscribe(context.Background(), allowAll{"v0"}, alice, q, res, "", ""); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"new list, one node (v1 appended while pending)", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouted(t)
			s, holder := r.node, r.holder
			if !tc.routedV1 {
				s, holder = r.holder, r.holder // the list and the queue on one node
			}
			q := mustQueue(t, s, alice)
			if tc.prepare != nil {
				tc.prepare(t, r, q)
				r.release()
				drainAll(t, s, alice, q)
			}
			var mu sync.Mutex
			recorded := "v0" // the publisher's etag
			racing := authFunc(func(context.Context, Principal, string, string) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				recorded = "v1"
				publish(holder, res, "v1") // stamped after the link; done
				recorded = "v2"            // v2's publish has begun: recorded, not delivered yet
				return recorded, nil
			})
			info, err := s.Subscribe(context.Background(), racing, alice, q, res, "", "")
			if err != nil {
				t.Fatal(err)
			}
			r.release() // v1 reaches the queue's node
			publish(holder, res, "v2")
			r.release()
			checkWatch(t, info.Etag, drainAll(t, s, alice, q), "v2")
		})
	}
}

// TestSubscribe_AnswerNotOlderThanAnEventStampedBeforeTheLink: the list
// stamped v1 before the link, and v1 is still on its way to the queue's
// node (another queue there follows the list); the publisher answers
// v0, older (it keeps etags in memory and forgot, or was read on a
// node that saw v1 late). The answer is the list's v1, v1 arriving
// after it is not appended again, and v2 follows.
func TestSubscribe_AnswerNotOlderThanAnEventStampedBeforeTheLink(t *testing.T) {
	const res = "user:alice/before"
	r := newRouted(t)
	ctx := context.Background()
	other := mustQueue(t, r.node, bob)
	if _, err := r.node.Subscribe(ctx, allowAll{"v0"}, bob, other, res, "", ""); err != nil {
		t.Fatal(err)
	}
	publish(r.holder, res, "v1") // stamped; on its way to node
	q := mustQueue(t, r.node, alice)
	info, err := r.node.Subscribe(ctx, allowAll{"v0"}, alice, q, res, "", "")
	if err != nil {
		t.Fatal(err)
	}
	r.release()
	publish(r.holder, res, "v2")
	r.release()
	got := drainAll(t, r.node, alice, q)
	if info.Etag != "v1" || len(got) != 1 || got[0] != "CHANGED v2" {
		t.Errorf("subscribe answered %q and the queue holds %v; want v1, then [CHANGED v2]", info.Etag, got)
	}
	checkWatch(t, info.Etag, got, "v2")
}

func (nodePeers) Recheck([]Subscriber) {}

func (holderPeers) Recheck([]Subscriber) {}
