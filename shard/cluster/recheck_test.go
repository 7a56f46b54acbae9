package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// inFlightAuth allows everyone, slowly, and records the most calls it
// had in flight at once.
type inFlightAuth struct{ now, most atomic.Int32 }

func (a *inFlightAuth) Authorize(context.Context, shard.Principal, string, string) (string, error) {
	k := a.now.Add(1)
	defer a.now.Add(-1)
	for {
		m := a.most.Load()
		if k <= m || a.most.CompareAndSwap(m, k) {
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	return "e0", nil
}

// A repair whose links failed retries each on its own goroutine
// (relinkLater); the re-checks of the lists they link again share the
// node's bound of Authorize calls in flight (found by a review helper:
// each had its own 8).
func TestRecheck_RetriedLinksShareTheNodesBound(t *testing.T) {
	auth := &inFlightAuth{}
	n, store := recheckNode(t, auth)
	const lists = 40
	for i := range lists {
		subscribedAt(t, n, shard.Principal{User: fmt.Sprintf("u%d", i), Device: "d"}, fmt.Sprintf("user:u%d/x", i), "v0")
	}
	locals := store.LocalInterests()
	store.ForgetNodes(func(string) bool { return true }) // every list lost with its holder
	var wg sync.WaitGroup
	for res, li := range locals { // as relink does for each link that failed
		n.relinking.Add(1)
		wg.Go(func() { n.relinkLater(res, li, true) })
	}
	wg.Wait()
	waitRechecked(t, n)
	if m := auth.most.Load(); m > recheckWorkers {
		t.Errorf("the re-checks had %d Authorize calls in flight at once; want at most %d", m, recheckWorkers)
	}
}

// denyUser forbids one user.
type denyUser string

func (d denyUser) Authorize(_ context.Context, p shard.Principal, res, _ string) (string, error) {
	if p.User == string(d) {
		return "", fmt.Errorf("%w: %s may not read %s", shard.ErrForbidden, p.User, res)
	}
	return "e0", nil
}

// A lost list whose repair link kept failing (relinkLater gives up after
// 30 s: "the subscriptions wait for the audit") is made again by the
// audit: its subscriptions are re-checked too, so a revoke that died
// with the list's holder still ends its principal's (found by a review
// helper).
func TestRecheck_ALostListTheAuditMakesAgainIsRechecked(t *testing.T) {
	n, store := recheckNode(t, denyUser("alice"))
	alice := shard.Principal{User: "alice", Device: "d"}
	const res = "user:carol/x"
	q := subscribedAt(t, n, alice, res, "v0")            // allowed then; denied since, the revoke lost
	store.ForgetNodes(func(string) bool { return true }) // the list is lost; the repair's links failed for 30 s
	n.audit()
	waitRechecked(t, n)
	if subs, err := store.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 0 {
		t.Errorf("after the audit made the lost list again, alice (denied) is subscribed to %v (%v); want it revoked", subs, err)
	}
}

// waitRechecked waits for n's re-checks to end.
func waitRechecked(t *testing.T, n *Node) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n.mu.Lock()
		done := !n.rechecking
		n.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the re-checks did not end")
		}
	}
}

type funcAuth func(context.Context, shard.Principal, string, string) (string, error)

func (f funcAuth) Authorize(ctx context.Context, p shard.Principal, res, proof string) (string, error) {
	return f(ctx, p, res, proof)
}

// A refresh whose publisher read "allowed" before the re-check listed
// the subscription, and whose answer lands after, does not cancel the
// re-check's later "no" (found by a review helper, against a re-check
// that applied its answers at the queue's node only).
func TestRecheck_ARefreshReadBeforeTheListingDoesNotCancelTheNo(t *testing.T) {
	alice := shard.Principal{User: "alice", Device: "d"}
	const res = "user:carol/x"
	release, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	nodeAuth := funcAuth(func(context.Context, shard.Principal, string, string) (string, error) {
		once.Do(func() { close(release); <-done }) // the re-check asks after it listed alice
		return "", fmt.Errorf("%w: alice was revoked", shard.ErrForbidden)
	})
	n, store := recheckNode(t, nodeAuth)
	q := subscribedAt(t, n, alice, res, "e0")
	recheckWhileSubscribing(t, n, store, alice, q, res, release, done)
	if subs, err := store.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 0 {
		t.Errorf("alice, denied by a re-check asked after her refresh's publisher read her allowed, is subscribed to %v (%v); want revoked", subs, err)
	}
}

// The same for a fresh subscribe, pending when the re-check listed the
// subscriptions.
func TestRecheck_AFreshSubscribeReadBeforeTheListingIsRechecked(t *testing.T) {
	alice, bob := shard.Principal{User: "alice", Device: "d"}, shard.Principal{User: "bob", Device: "d"}
	const res = "user:carol/x"
	release, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	nodeAuth := funcAuth(func(_ context.Context, p shard.Principal, _, _ string) (string, error) {
		once.Do(func() { close(release); <-done })
		if p.User == "alice" {
			return "", fmt.Errorf("%w: alice was revoked", shard.ErrForbidden)
		}
		return "e0", nil
	})
	n, store := recheckNode(t, nodeAuth)
	subscribedAt(t, n, bob, res, "e0") // so the list has a re-check to run
	qi, err := n.CreateQueue(context.Background(), alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	q := qi.Name
	recheckWhileSubscribing(t, n, store, alice, q, res, release, done)
	if subs, err := store.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 0 {
		t.Errorf("alice, whose subscribe's publisher read her allowed before the re-check listed the list (she was pending), is subscribed to %v (%v); want revoked or failed", subs, err)
	}
}

// recheckWhileSubscribing runs p's subscribe of q to res, whose publisher
// reads p allowed and answers once release is closed (done is closed
// when the subscribe returns), and, once that publisher has read, loses
// res's list (the publisher revokes p now; the revoke dies with the
// list's holder) and links it again, waiting for n's re-check.
func recheckWhileSubscribing(t *testing.T, n *Node, store *shard.Store, p shard.Principal, q, res string, release, done chan struct{}) {
	t.Helper()
	read := make(chan struct{})
	go func() {
		defer close(done)
		auth := funcAuth(func(context.Context, shard.Principal, string, string) (string, error) {
			close(read) // the publisher read "allowed" now
			<-release   // ... and its answer comes back after the listing
			return "e0", nil
		})
		if _, err := store.Subscribe(context.Background(), auth, p, q, res, "", ""); err != nil {
			t.Logf("subscribe: %v", err)
		}
	}()
	<-read
	li := store.LocalInterests()[res]
	store.ForgetNodes(func(string) bool { return true })
	n.relinking.Add(1)
	n.relinkLater(res, li, true)
	waitRechecked(t, n)
}

// recheckNode is a single node around a new store, its subscriptions
// authorized by auth, both closed when t ends.
func recheckNode(t *testing.T, auth shard.Authorizer) (*Node, *shard.Store) {
	t.Helper()
	store, err := shard.New(shard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Name: "a", Auth: auth}, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); store.Close() })
	return n, store
}

// Two copies of a list merge (a list landing where a link made it again
// meanwhile): the merged list goes on in a new epoch, where neither
// copy's last revokes stand, so a queue that missed one was never told.
// The principals of the revokes the merge dropped are re-checked, and a
// denied one revoked through the list.
func TestRecheck_AMergedListRechecksTheRevokesItDropped(t *testing.T) {
	n, store := recheckNode(t, denyUser("alice"))
	alice, bob := shard.Principal{User: "alice", Device: "d"}, shard.Principal{User: "bob", Device: "d"}
	const res = "user:carol/x"
	qa := subscribedAt(t, n, alice, res, "v0") // the copy here: alice subscribed; the other copy revoked her
	qb := subscribedAt(t, n, bob, res, "v0")
	revoke := shard.RevokeEvent(res, alice.User, "")
	revoke.ID, revoke.Pos = 5, shard.Position{Epoch: 7, Offset: 3, At: 1}
	n.landList(&pb.ResourceState{Name: res, Etag: "v0", Epoch: 7, Offset: 3, At: 1, EtagEpoch: 7, EtagOffset: 1, EtagAt: 1,
		Revokes: []*pb.Event{eventPB(revoke)}})
	waitRechecked(t, n)
	if subs, err := store.Subscriptions(context.Background(), alice, qa); err != nil || len(subs) != 0 {
		t.Errorf("after a merge dropped the revoke of alice (denied), she is subscribed to %v (%v); want revoked", subs, err)
	}
	if subs, err := store.Subscriptions(context.Background(), bob, qb); err != nil || len(subs) != 1 {
		t.Errorf("bob (allowed) holds %v (%v) after the merge; want his subscription kept", subs, err)
	}
}
