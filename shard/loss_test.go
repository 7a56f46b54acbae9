package shard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// lostRevokeThenGap: node's queue of alice's, subscribed to res, the list
// holder's: a revoke of alice's subscriptions is stamped at the holder
// and lost on its way to node, and the next change reaches node after
// the gap it left, which the queue gives up on (a RESYNC, after
// holdGap). The queue then stands past the revoke's offset, subscribed.
// Bob's queue at node keeps the list alive and is never revoked.
func lostRevokeThenGap(t *testing.T, r *routed) (q, other string) {
	t.Helper()
	const res = "user:carol/doc"
	q, other = subscribedPair(t, r, res)
	publish(r.holder, res, "v1")
	r.release()
	r.holder.Revoke(res, alice.User, "")
	r.lose() // lost on its way
	publish(r.holder, res, "v2")
	r.release() // after the gap: held
	deadline := time.Now().Add(holdGap + 5*time.Second)
	for !slices.Contains(drainAll(t, r.node, alice, q), "RESYNC v2") {
		if time.Now().After(deadline) {
			t.Fatal("the queue never gave up the gap before v2")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return q, other
}

// wantOnlyBobSubscribed fails unless alice's queue q at s holds no
// subscription and bob's queue other still holds its one.
func wantOnlyBobSubscribed(t *testing.T, s *Store, q, other string) {
	t.Helper()
	if subs, err := s.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 0 {
		t.Errorf("alice's queue is subscribed to %v (%v) after her subscriptions were revoked; want none", subs, err)
	}
	if got := drainAll(t, s, alice, q); len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "REVOKED") {
		t.Errorf("alice's queue holds %v; want it to end with REVOKED", got)
	}
	if subs, err := s.Subscriptions(context.Background(), bob, other); err != nil || len(subs) != 1 {
		t.Errorf("bob's queue is subscribed to %v (%v); want the one resource", subs, err)
	}
}

// A revoke a queue skipped in a gap is applied when its list announces
// its tail: a subscription is revoked by a revoke stamped after it was
// linked, wherever the subscription stands now, and a list announces
// its last revokes again with its tail. Before, the revoke was read
// against the subscription's current offset, which the gap's RESYNC
// had moved past it, and only the list's last event was announced: the
// queue stayed subscribed for good.
func TestLoss_ARevokeSkippedInAGapReachesTheQueueWithTheTail(t *testing.T) {
	r := newRouted(t)
	q, other := lostRevokeThenGap(t, r)
	r.announceTails() // the tail is due
	wantOnlyBobSubscribed(t, r.node, q, other)
}

// The revokes a list announces again go with it to a new holder.
func TestLoss_ARevokeSkippedInAGapReachesTheQueueFromTheListsNewHolder(t *testing.T) {
	r := newRouted(t)
	q, other := lostRevokeThenGap(t, r)
	taker, clk := newStore(t, Config{})
	taker.SetPeers(takerPeers{r}, "t")
	st, ok := r.holder.ExportResource("user:carol/doc")
	if !ok {
		t.Fatal("no list at the holder")
	}
	taker.ImportResource(st)
	clk.Add(time.Hour) // the tail is due
	taker.AnnounceTails()
	r.release()
	wantOnlyBobSubscribed(t, r.node, q, other)
}

// A queue carries, with each subscription, where it was linked: a queue
// that gave up a gap over its owner's revoke and moved is revoked at its
// new node when the list announces its tail.
func TestLoss_ARevokeSkippedInAGapReachesTheQueueAfterItMoved(t *testing.T) {
	r := newRouted(t)
	q, other := lostRevokeThenGap(t, r)
	st, ok := r.node.ExportQueue(q)
	if !ok {
		t.Fatal("no queue at node")
	}
	r.node.ImportQueue(st) // back, as a queue another node took lands
	r.announceTails()
	wantOnlyBobSubscribed(t, r.node, q, other)
}

// A subscription its principal made again after a revoke keeps it when
// the list announces that revoke again, after its queue moved: the
// queue carries the offset each subscription was linked at.
func TestLoss_ASubscriptionMadeAfterARevokeOutlivesItsAnnouncementAfterItsQueueMoved(t *testing.T) {
	r := newRouted(t)
	const res = "user:carol/doc"
	q, _ := subscribedPair(t, r, res)
	publish(r.holder, res, "v1")
	r.holder.Revoke(res, alice.User, "")
	r.release()
	if got := drainAll(t, r.node, alice, q); !slices.Equal(got, []string{"CHANGED v1", "REVOKED v1"}) {
		t.Fatalf("alice's queue holds %v; want CHANGED v1, REVOKED v1", got)
	}
	mustSub(t, r.node, alice, q, res) // allowed again, after the revoke
	st, ok := r.node.ExportQueue(q)
	if !ok {
		t.Fatal("no queue at node")
	}
	r.node.ImportQueue(st)
	r.announceTails() // the tail is due: the revoke with it
	if subs, err := r.node.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 1 {
		t.Errorf("alice's queue is subscribed to %v (%v) after she subscribed again; want the resource", subs, err)
	}
	if got := drainAll(t, r.node, alice, q); len(got) != 0 {
		t.Errorf("alice's queue got %v after she subscribed again; want nothing", got)
	}
}

// A subscription is allowed as of its first link: the publisher is asked
// after it. A revoke stamped after the publisher read the principal's
// right, before the second link (the list knew no etag, so it learns the
// publisher's), and reaching the queue after the subscribe answered,
// removes it: a fresh subscription and a refresh alike. Before, the
// subscription was taken as linked at the second link, after the revoke,
// and kept.
func TestLoss_ARevokeStampedWhileThePublisherAnsweredReachesTheSubscription(t *testing.T) {
	for _, refresh := range []bool{false, true} {
		t.Run(fmt.Sprint("refresh=", refresh), func(t *testing.T) {
			r := newRouted(t)
			const res = "user:carol/doc"
			other := mustQueue(t, r.node, bob)
			if _, err := r.node.Subscribe(context.Background(), allowAll{""}, bob, other, res, "", ""); err != nil {
				t.Fatal(err) // the list knows no etag
			}
			q := mustQueue(t, r.node, alice)
			if refresh {
				if _, err := r.node.Subscribe(context.Background(), allowAll{""}, alice, q, res, "", ""); err != nil {
					t.Fatal(err)
				}
			}
			auth := authFunc(func(context.Context, Principal, string, string) (string, error) {
				r.holder.Revoke(res, alice.User, "") // right after the publisher read alice's right
				return "e1", nil
			})
			if _, err := r.node.Subscribe(context.Background(), auth, alice, q, res, "", ""); err != nil {
				t.Fatal(err)
			}
			r.release() // the revoke arrives
			r.announceTails()
			if subs, err := r.node.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 0 {
				t.Errorf("alice's queue is subscribed to %v (%v) after a revoke stamped once her right was read; want none", subs, err)
			}
		})
	}
}

// linkHookPeers is nodePeers whose interest Link runs before and after
// it (each if set): what reaches node while a subscribe's link is on its
// way, before or after the list recorded it.
type linkHookPeers struct {
	nodePeers
	before, after func()
}

func (p linkHookPeers) Link(ctx context.Context, res string, in Interest, hint Hint) (Linked, error) {
	if in.Count > 0 && p.before != nil {
		p.before()
	}
	l, err := p.nodePeers.Link(ctx, res, in, hint)
	if in.Count > 0 && p.after != nil {
		p.after()
	}
	return l, err
}

// A revoke announced again with the list's tail that reaches a fresh
// subscription before its link answered leaves it alone if it is older
// than the link: a principal allowed again after a revoke subscribes.
// Before, a subscription with no position yet was revoked by any revoke
// of its principal's, and a revoke announced with every tail made such
// a subscribe fail (UNAVAILABLE, and a REVOKED in the queue).
func TestLoss_ARevokeAnnouncedAgainWhileASubscribeLinksLeavesIt(t *testing.T) {
	r := newRouted(t)
	const res = "user:carol/doc"
	q, _ := subscribedPair(t, r, res)
	publish(r.holder, res, "v1")
	r.holder.Revoke(res, alice.User, "")
	publish(r.holder, res, "v2") // the revoke is not the list's last event
	r.release()
	_ = drainAll(t, r.node, alice, q)
	once := sync.Once{}
	r.node.SetPeers(linkHookPeers{nodePeers: nodePeers{r}, before: func() {
		once.Do(func() {
			r.announceTails() // the tail is due
		})
	}}, "n")
	if _, err := r.node.Subscribe(context.Background(), allowAll{"e0"}, alice, q, res, "", ""); err != nil {
		t.Fatalf("alice, allowed again, subscribes: %v", err)
	}
	if got := drainAll(t, r.node, alice, q); len(got) != 0 {
		t.Errorf("alice's queue got %v; want nothing", got)
	}
	if subs, err := r.node.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 1 {
		t.Errorf("alice's queue is subscribed to %v (%v); want the resource", subs, err)
	}
}

// A revoke stamped after a subscribe's link, reaching the subscription
// before the link answered, makes the subscribe fail (UNAVAILABLE: the
// client asks again, and the publisher answers).
func TestLoss_ARevokeStampedAfterALinkThatHasNotAnsweredFailsTheSubscribe(t *testing.T) {
	r := newRouted(t)
	const res = "user:carol/doc"
	q, other := mustQueue(t, r.node, alice), mustQueue(t, r.node, bob)
	mustSub(t, r.node, bob, other, res)
	r.node.SetPeers(linkHookPeers{nodePeers: nodePeers{r}, after: func() {
		r.holder.Revoke(res, alice.User, "")
		r.release()
	}}, "n")
	_, err := r.node.Subscribe(context.Background(), allowAll{"e0"}, alice, q, res, "", "")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("subscribe: %v; want UNAVAILABLE", err)
	}
	if subs, err := r.node.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 0 {
		t.Errorf("alice's queue is subscribed to %v (%v); want none", subs, err)
	}
}

// A subscribe of a queue to a resource while another subscribe of the
// same is linking (a retry racing its first try, a page's effect run
// twice) waits for that one to end and goes on from it: both succeed,
// and the queue holds one subscription. Before, the second ended the
// first's pending state and the first dereferenced nil with the queue's
// lock held; then it answered UNAVAILABLE, which a client on default
// settings shows as an error.
func TestLoss_ASubscribeWhileTheSameSubscriptionLinksWaitsForIt(t *testing.T) {
	r := newRouted(t)
	const res = "user:carol/doc"
	q := mustQueue(t, r.node, alice)
	second := subscribeAgainAtTheLink(r, q, res)
	if _, err := r.node.Subscribe(context.Background(), allowAll{"e0"}, alice, q, res, "", ""); err != nil {
		t.Fatalf("the first subscribe: %v", err)
	}
	if err := <-second; err != nil {
		t.Errorf("the subscribe made while the first linked: %v; want it to succeed", err)
	}
	if subs, err := r.node.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 1 {
		t.Errorf("alice's queue is subscribed to %v (%v); want the resource once", subs, err)
	}
}

// A revoke a list announces again while a queue is on its way to the
// list's holder is kept for it there, as a revoke fanned out is: the
// queue lands revoked.
func TestLoss_ARevokeAnnouncedAgainWhileAQueueArrivesAtTheHolderIsKeptForIt(t *testing.T) {
	r := newRouted(t)
	const res = "user:carol/doc"
	q, _ := subscribedPair(t, r, res)
	r.holder.Revoke(res, alice.User, "")
	r.lose() // lost on its way
	r.holder.Arriving(1)
	st, ok := r.node.ExportQueue(q)
	if !ok {
		t.Fatal("no queue at node")
	}
	r.holderClock.Add(time.Hour)
	r.holder.AnnounceTails() // the last one: nothing more is due
	r.lose()                 // lost on its way
	r.holder.ImportQueue(st)
	r.holder.Arriving(-1)
	if subs, err := r.holder.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 0 {
		t.Errorf("the queue landed subscribed to %v (%v); want revoked", subs, err)
	}
}

// A revoke sent to its list again by its ID (cluster's handOn, for a
// peer gone whose list left) is given its old position by a list that
// remembers it: a subscription its principal made after it is kept.
func TestLoss_ARevokeSentAgainByItsIDLeavesALaterSubscription(t *testing.T) {
	r := newRouted(t)
	const res = "user:carol/doc"
	q, _ := subscribedPair(t, r, res)
	ev := RevokeEvent(res, alice.User, "")
	r.holder.Deliver(ev)
	r.release()
	mustSub(t, r.node, alice, q, res) // allowed again
	for i := range 5 {
		publish(r.holder, res, fmt.Sprintf("v%d", i+1))
	}
	r.release()
	_ = drainAll(t, r.node, alice, q)
	r.holder.Deliver(&Event{Kind: Revoked, Resource: res, From: ev.From, ID: ev.ID})
	r.release()
	if subs, err := r.node.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 1 {
		t.Errorf("alice's later subscription is %v (%v) after the revoke was sent again; want it kept: %v", subs, err, drainAll(t, r.node, alice, q))
	}
}

// subscribedPair makes alice's queue and bob's at node, each subscribed
// to res, the holder's.
func subscribedPair(t *testing.T, r *routed, res string) (q, other string) {
	t.Helper()
	q, other = mustQueue(t, r.node, alice), mustQueue(t, r.node, bob)
	mustSub(t, r.node, alice, q, res)
	mustSub(t, r.node, bob, other, res)
	return q, other
}

// gateAuth blocks until released, then answers err.
type gateAuth struct {
	release chan struct{}
	err     error
}

func (a gateAuth) Authorize(ctx context.Context, _ Principal, _, _ string) (string, error) {
	<-a.release
	return "", a.err
}

// A subscribe that waited for the same subscription's first subscribe
// goes on once that one has ended, not at its link: the first may still
// give up (its publisher fails), and it then takes out the subscription
// the second answered (found by a review helper).
func TestLoss_ASubscribeThatWaitedIsNotUndoneByTheFirstsFailure(t *testing.T) {
	r := newRouted(t)
	const res = "user:carol/doc"
	q := mustQueue(t, r.node, alice)
	second := subscribeAgainAtTheLink(r, q, res)
	gate := gateAuth{release: make(chan struct{}), err: fmt.Errorf("%w: publisher timed out", ErrUnavailable)}
	first := make(chan error, 1)
	go func() {
		_, err := r.node.Subscribe(context.Background(), gate, alice, q, res, "", "")
		first <- err
	}()
	time.Sleep(200 * time.Millisecond) // the second has answered by now (on d16d94c)
	close(gate.release)
	if err := <-first; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the first subscribe: %v; want its publisher's failure", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the second subscribe: %v", err)
	}
	subs, err := r.node.Subscriptions(context.Background(), alice, q)
	if err != nil || len(subs) != 1 {
		t.Errorf("after the second subscribe succeeded, alice's queue is subscribed to %v (%v); want the resource", subs, err)
	}
}

// subscribeAgainAtTheLink makes r.node's first link start the same
// subscribe of alice's queue q to res again, and gives its answer.
func subscribeAgainAtTheLink(r *routed, q, res string) <-chan error {
	second := make(chan error, 1)
	var nested atomic.Bool
	r.node.SetPeers(linkHookPeers{nodePeers: nodePeers{r}, before: func() {
		if nested.CompareAndSwap(false, true) {
			go func() {
				_, err := r.node.Subscribe(context.Background(), allowAll{"e0"}, alice, q, res, "", "")
				second <- err
			}()
			time.Sleep(50 * time.Millisecond) // the second finds the first linking
		}
	}}, "n")
	return second
}

// A subscribe that a revoke reached before its link answered, and that
// an unsubscribe removed while it was made, is ordered before the
// unsubscribe as any subscribe it overlaps is: it answers what the
// publisher answers now, and the queue ends unsubscribed. Before, it
// answered UNAVAILABLE, and a client following the README retried and
// ended subscribed after the unsubscribe it had sent later.
func TestLoss_ARevokedSubscribeThatWasUnsubscribedAnswersThePublisher(t *testing.T) {
	r := newRouted(t)
	const res = "user:carol/doc"
	q, other := mustQueue(t, r.node, alice), mustQueue(t, r.node, bob)
	mustSub(t, r.node, bob, other, res)
	r.node.SetPeers(linkHookPeers{nodePeers: nodePeers{r}, after: func() {
		r.holder.Revoke(res, alice.User, "")
		r.release()
		if ok, err := r.node.Unsubscribe(context.Background(), alice, q, res); err != nil || !ok {
			t.Errorf("unsubscribe while the subscribe is made: %v, %v; want it removed", ok, err)
		}
	}}, "n")
	info, err := r.node.Subscribe(context.Background(), allowAll{"e0"}, alice, q, res, "", "")
	if err != nil {
		t.Fatalf("subscribe: %v; want the publisher's answer (it came before the unsubscribe)", err)
	}
	if info.Etag != "e0" {
		t.Errorf("subscribe answered etag %q; want the publisher's e0", info.Etag)
	}
	if subs, err := r.node.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 0 {
		t.Errorf("alice's queue is subscribed to %v (%v) after her unsubscribe; want none", subs, err)
	}
	publish(r.holder, res, "v1")
	r.release()
	if got := drainAll(t, r.node, alice, q); len(got) != 0 {
		t.Errorf("alice's unsubscribed queue got %v; want nothing", got)
	}
	denied := authFunc(func(context.Context, Principal, string, string) (string, error) { return "", ErrForbidden })
	r.node.SetPeers(linkHookPeers{nodePeers: nodePeers{r}, after: func() {
		r.holder.Revoke(res, alice.User, "")
		r.release()
		_, _ = r.node.Unsubscribe(context.Background(), alice, q, res)
	}}, "n")
	if _, err := r.node.Subscribe(context.Background(), denied, alice, q, res, "", ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("subscribe the publisher denies: %v; want FORBIDDEN", err)
	}
}

func (takerPeers) Recheck([]Subscriber) {}
