package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meshgate/shard"
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
	store, err := shard.New(shard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	auth := &inFlightAuth{}
	n, err := New(Config{Name: "a", Auth: auth}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
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
	store, err := shard.New(shard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	n, err := New(Config{Name: "a", Auth: denyUser("alice")}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
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

// regrantAuth denies alice once, and while that answer is on its way
// back, alice is allowed again and subscribes again (her subscribe asks
// another authorizer, which allows her).
type regrantAuth struct {
	once  sync.Once
	again func()
}

func (a *regrantAuth) Authorize(_ context.Context, p shard.Principal, res, _ string) (string, error) {
	denied := false
	a.once.Do(func() { denied = true; a.again() })
	if denied {
		return "", fmt.Errorf("%w: %s may not read %s", shard.ErrForbidden, p.User, res)
	}
	return "e0", nil
}

// A subscription allowed again, and subscribed again, while the
// re-check's "no" was on its way back is kept (found by a review helper:
// the "no" became a revoke stamped later, which covered it).
func TestRecheck_ASubscriptionAllowedAgainMeanwhileIsKept(t *testing.T) {
	store, err := shard.New(shard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	alice := shard.Principal{User: "alice", Device: "d"}
	const res = "user:carol/x"
	var q string
	auth := &regrantAuth{again: func() {
		if _, err := store.Subscribe(context.Background(), etagAuth("e1"), alice, q, res, "", ""); err != nil {
			t.Errorf("alice's subscribe once allowed again: %v", err)
		}
	}}
	n, err := New(Config{Name: "a", Auth: auth}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	q = subscribedAt(t, n, alice, res, "v0")
	li := store.LocalInterests()[res]
	store.ForgetNodes(func(string) bool { return true })
	n.relinking.Add(1)
	n.relinkLater(res, li, true)
	waitRechecked(t, n)
	if subs, err := store.Subscriptions(context.Background(), alice, q); err != nil || len(subs) != 1 {
		t.Errorf("alice, allowed again and subscribed after the re-check's answer, is subscribed to %v (%v); want the resource", subs, err)
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
