package shard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	alice  = Principal{User: "alice", Device: "laptop"}
	alice2 = Principal{User: "alice", Device: "phone"}
	bob    = Principal{User: "bob", Device: "laptop"}
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// allowAll authorizes everything with a fixed etag.
type allowAll struct{ etag string }

func (a allowAll) Authorize(context.Context, Principal, string, string) (string, error) {
	return a.etag, nil
}

func newStore(t testing.TB, cfg Config) (*Store, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Now = clk.Now
	cfg.ReapInterval = time.Hour // tests reap by hand
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk
}

func mustQueue(t testing.TB, s *Store, p Principal) string {
	t.Helper()
	q, err := s.CreateQueue(context.Background(), p, 0)
	if err != nil {
		t.Fatal(err)
	}
	return q.Name
}

func mustSub(t testing.TB, s *Store, p Principal, q, res string) {
	t.Helper()
	if _, err := s.Subscribe(context.Background(), allowAll{"e0"}, p, q, res, "", ""); err != nil {
		t.Fatal(err)
	}
}

func publish(s *Store, res, etag string) int {
	return s.Deliver(&Event{Kind: Changed, Resource: res, Etag: etag, Payload: []byte(`{"v":"` + etag + `"}`)})
}

func poll(t testing.TB, s *Store, p Principal, q string, after uint64, limit int) Page {
	t.Helper()
	pg, err := s.Poll(context.Background(), p, q, after, limit, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pg
}

func seqs(ns []Notification) []uint64 {
	out := make([]uint64, len(ns))
	for i, n := range ns {
		out[i] = n.Seq
	}
	return out
}

func TestQueue_NameIsUnguessable(t *testing.T) {
	s, _ := newStore(t, Config{MaxQueuesPerDevice: 1000})
	seen := map[string]bool{}
	for range 200 {
		n := mustQueue(t, s, alice)
		if len(n) != 33 || seen[n] {
			t.Fatalf("name %q: want 33 chars (160 random bits), unique", n)
		}
		seen[n] = true
	}
}

func TestPoll_OrderAckAndResume(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, "user:alice/a")
	for i := range 5 {
		publish(s, "user:alice/a", fmt.Sprint("e", i+1))
	}
	pg := poll(t, s, alice, q, 0, 2)
	if got := seqs(pg.Items); fmt.Sprint(got) != "[1 2]" || !pg.HasMore || pg.LastSeq != 2 {
		t.Fatalf("first page = %v hasMore=%v last=%d", got, pg.HasMore, pg.LastSeq)
	}
	// Re-reading from 0 returns the same: nothing was acknowledged yet.
	if got := seqs(poll(t, s, alice, q, 0, 2).Items); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("re-read = %v", got)
	}
	pg = poll(t, s, alice, q, 2, 10)
	if got := seqs(pg.Items); fmt.Sprint(got) != "[3 4 5]" || pg.HasMore {
		t.Fatalf("second page = %v", got)
	}
	if string(pg.Items[0].Payload) != `{"v":"e3"}` || pg.Items[0].Etag != "e3" || pg.Items[0].Kind != Changed {
		t.Fatalf("item = %+v", pg.Items[0].Event)
	}
	// after=2 acknowledged 1 and 2: reading from 0 now starts at 3, no OVERFLOW.
	if got := poll(t, s, alice, q, 0, 10).Items; got[0].Seq != 3 || got[0].Kind != Changed {
		t.Fatalf("after ack: first = %d %s", got[0].Seq, got[0].Kind)
	}
	info, _ := s.Queue(context.Background(), alice, q)
	if info.Depth != 3 || info.LastSeq != 5 {
		t.Fatalf("depth=%d lastSeq=%d, want 3 and 5", info.Depth, info.LastSeq)
	}
}

func TestQueue_OverflowDropsOldestAndSaysSo(t *testing.T) {
	s, _ := newStore(t, Config{BufferSize: 4, RetainDelivered: 2})
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, "user:alice/a")
	for i := range 10 {
		publish(s, "user:alice/a", fmt.Sprint("e", i+1))
	}
	pg := poll(t, s, alice, q, 0, 100)
	if got := seqs(pg.Items); fmt.Sprint(got) != "[6 7 8 9 10]" {
		t.Fatalf("seqs = %v, want OVERFLOW at 6 then 7..10", got)
	}
	ov := pg.Items[0]
	if ov.Kind != Overflow {
		t.Fatalf("first kind = %s", ov.Kind)
	}
	var body struct{ Dropped, FromSeq, ToSeq uint64 }
	if err := json.Unmarshal(ov.Payload, &body); err != nil || body != (struct{ Dropped, FromSeq, ToSeq uint64 }{6, 1, 6}) {
		t.Fatalf("overflow payload %s: %v", ov.Payload, err)
	}
	// Exactly one OVERFLOW: reading on from its seq yields no second one.
	if got := poll(t, s, alice, q, 6, 100).Items; got[0].Kind != Changed || got[0].Seq != 7 {
		t.Fatalf("after overflow: %d %s", got[0].Seq, got[0].Kind)
	}
}

type countListener struct{ n atomic.Int64 }

func (l *countListener) Notify() { l.n.Add(1) }

func TestStream_ReplayThenLiveNoGapNoDuplicate(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, "user:alice/a")
	for i := range 3 {
		publish(s, "user:alice/a", fmt.Sprint("e", i))
	}
	l := &countListener{}
	st, err := s.Attach(context.Background(), alice, q, 1, l)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if l.n.Load() != 1 {
		t.Fatalf("attach with buffered entries should notify once, got %d", l.n.Load())
	}
	got, _ := st.Next(nil, 10)
	publish(s, "user:alice/a", "e3")
	if l.n.Load() != 2 {
		t.Fatalf("publish should notify, got %d", l.n.Load())
	}
	got, _ = st.Next(got, 10)
	if fmt.Sprint(seqs(got)) != "[2 3 4]" {
		t.Fatalf("stream seqs = %v", seqs(got))
	}
	if more, _ := st.Next(nil, 10); len(more) != 0 {
		t.Fatalf("duplicate delivery: %v", seqs(more))
	}
}

func TestStream_ResumeAfterDisconnect(t *testing.T) {
	s, _ := newStore(t, Config{BufferSize: 100, RetainDelivered: 10})
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, "user:alice/a")
	st, _ := s.Attach(context.Background(), alice, q, 0, &countListener{})
	for i := range 5 {
		publish(s, "user:alice/a", fmt.Sprint("e", i))
	}
	got, _ := st.Next(nil, 100) // written to a socket that then died
	st.Close()
	if len(got) != 5 {
		t.Fatalf("got %d", len(got))
	}
	// The client had only received up to 2: it resumes and gets 3..5 again.
	st2, _ := s.Attach(context.Background(), alice, q, 2, &countListener{})
	defer st2.Close()
	got, _ = st2.Next(nil, 100)
	if fmt.Sprint(seqs(got)) != "[3 4 5]" {
		t.Fatalf("resume = %v", seqs(got))
	}
}

func TestStream_DeliveredEntriesAreTrimmedWithoutOverflow(t *testing.T) {
	s, _ := newStore(t, Config{BufferSize: 8, RetainDelivered: 2})
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, "user:alice/a")
	st, _ := s.Attach(context.Background(), alice, q, 0, &countListener{})
	defer st.Close()
	var all []Notification
	for i := range 50 { // far more than the buffer, read as they come
		publish(s, "user:alice/a", fmt.Sprint("e", i))
		all, _ = st.Next(all, 10)
	}
	for i, n := range all {
		if n.Seq != uint64(i+1) || n.Kind != Changed {
			t.Fatalf("entry %d = seq %d %s: a live reader must never see OVERFLOW", i, n.Seq, n.Kind)
		}
	}
}

func TestStream_EndsWhenQueueDeleted(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	l := &countListener{}
	st, _ := s.Attach(context.Background(), alice, q, 0, l)
	if err := s.DeleteQueue(context.Background(), alice, q); err != nil {
		t.Fatal(err)
	}
	if l.n.Load() == 0 {
		t.Fatal("deleting should wake the stream")
	}
	if _, err := st.Next(nil, 10); !errors.Is(err, ErrQueueNotFound) {
		t.Fatalf("Next after delete: %v", err)
	}
	st.Close()
	st.Close() // twice is fine
}

func TestLease(t *testing.T) {
	t.Run("expires and takes its subscriptions", func(t *testing.T) {
		s, clk := newStore(t, Config{})
		q := mustQueue(t, s, alice)
		mustSub(t, s, alice, q, "user:alice/a")
		clk.Add(299 * time.Second)
		if s.ReapNow() != 0 {
			t.Fatal("reaped before the lease ended")
		}
		clk.Add(2 * time.Second)
		if s.ReapNow() != 1 {
			t.Fatal("not reaped after the lease ended")
		}
		if _, err := s.Queue(context.Background(), alice, q); !errors.Is(err, ErrQueueNotFound) {
			t.Fatalf("expired queue: %v", err)
		}
		if st := s.Stats(); st != (Stats{}) {
			t.Fatalf("state left behind: %+v", st)
		}
		if publish(s, "user:alice/a", "x") != 0 {
			t.Fatal("delivered to an expired queue")
		}
	})
	t.Run("any read renews", func(t *testing.T) {
		s, clk := newStore(t, Config{})
		q := mustQueue(t, s, alice)
		for range 5 {
			clk.Add(200 * time.Second)
			poll(t, s, alice, q, 0, 1)
			s.ReapNow()
		}
		if _, err := s.Queue(context.Background(), alice, q); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an attached stream keeps it alive", func(t *testing.T) {
		s, clk := newStore(t, Config{})
		q := mustQueue(t, s, alice)
		st, _ := s.Attach(context.Background(), alice, q, 0, &countListener{})
		clk.Add(time.Hour)
		if s.ReapNow() != 0 {
			t.Fatal("reaped a queue with a stream attached")
		}
		st.Close() // the lease runs again from now
		clk.Add(299 * time.Second)
		if s.ReapNow() != 0 {
			t.Fatal("reaped too early after detach")
		}
		clk.Add(2 * time.Second)
		if s.ReapNow() != 1 {
			t.Fatal("not reaped after detach + ttl")
		}
	})
	t.Run("ttl bounds", func(t *testing.T) {
		s, _ := newStore(t, Config{})
		for _, ttl := range []time.Duration{time.Millisecond, 3601 * time.Second} {
			if _, err := s.CreateQueue(context.Background(), alice, ttl); !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("ttl %s: %v", ttl, err)
			}
		}
		q, err := s.CreateQueue(context.Background(), alice, 3600*time.Second)
		if err != nil || q.TTL != time.Hour {
			t.Fatalf("max ttl: %v %v", q.TTL, err)
		}
	})
}

func TestOwnership(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	ctx := context.Background()
	for name, call := range map[string]func(p Principal) error{
		"queue":       func(p Principal) error { _, err := s.Queue(ctx, p, q); return err },
		"poll":        func(p Principal) error { _, err := s.Poll(ctx, p, q, 0, 1, 0); return err },
		"subscribe":   func(p Principal) error { _, err := s.Subscribe(ctx, allowAll{}, p, q, "user:x/y", "", ""); return err },
		"unsubscribe": func(p Principal) error { _, err := s.Unsubscribe(ctx, p, q, "user:x/y"); return err },
		"attach":      func(p Principal) error { _, err := s.Attach(ctx, p, q, 0, &countListener{}); return err },
		"delete":      func(p Principal) error { return s.DeleteQueue(ctx, p, q) },
	} {
		for _, p := range []Principal{bob, alice2} {
			if err := call(p); !errors.Is(err, ErrQueueNotFound) {
				t.Errorf("%s by %s/%s: %v, want ErrQueueNotFound", name, p.User, p.Device, err)
			}
		}
	}
	if _, err := s.Queue(ctx, alice, q); err != nil {
		t.Fatalf("owner lost access: %v", err)
	}
}

func TestSubscriptions_BothSidesCleaned(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	q1, q2 := mustQueue(t, s, alice), mustQueue(t, s, alice)
	mustSub(t, s, alice, q1, "user:alice/a")
	mustSub(t, s, alice, q1, "user:alice/b")
	mustSub(t, s, alice, q2, "user:alice/a")
	mustSub(t, s, alice, q2, "user:alice/a") // twice is one subscription
	if st := s.Stats(); st != (Stats{Queues: 2, Subscriptions: 3, Resources: 2}) {
		t.Fatalf("stats %+v", st)
	}
	if n := publish(s, "user:alice/a", "x"); n != 2 {
		t.Fatalf("delivered to %d queues", n)
	}
	if ok, _ := s.Unsubscribe(ctx, alice, q1, "user:alice/b"); !ok {
		t.Fatal("unsubscribe reported nothing removed")
	}
	if ok, _ := s.Unsubscribe(ctx, alice, q1, "user:alice/b"); ok {
		t.Fatal("second unsubscribe reported a removal")
	}
	if st := s.Stats(); st.Resources != 1 {
		t.Fatalf("resource b left in the table: %+v", st)
	}
	_ = s.DeleteQueue(ctx, alice, q2)
	subs, _ := s.Subscriptions(ctx, alice, q1)
	if len(subs) != 1 || subs[0].Resource != "user:alice/a" || subs[0].Etag != "x" {
		t.Fatalf("subs = %+v (the etag follows deliveries)", subs)
	}
	if n := publish(s, "user:alice/a", "y"); n != 1 {
		t.Fatalf("delivered to %d queues after delete", n)
	}
	// Unsubscribing and subscribing again: deliveries reach the new
	// subscription, not one a list entry remembered.
	if ok, _ := s.Unsubscribe(ctx, alice, q1, "user:alice/a"); !ok {
		t.Fatal("unsubscribe a")
	}
	if n := publish(s, "user:alice/a", "z"); n != 0 {
		t.Fatalf("delivered to %d queues after unsubscribe", n)
	}
	mustSub(t, s, alice, q1, "user:alice/a")
	if n := publish(s, "user:alice/a", "w"); n != 1 {
		t.Fatalf("delivered to %d queues after subscribing again", n)
	}
	if subs, _ := s.Subscriptions(ctx, alice, q1); len(subs) != 1 || subs[0].Etag != "w" {
		t.Fatalf("subs = %+v, want the etag of the last delivery", subs)
	}
}

func TestSubscribe_StaleKnownEtagGetsResync(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	ctx := context.Background()
	if _, err := s.Subscribe(ctx, allowAll{"e5"}, alice, q, "user:alice/a", "", "e5"); err != nil {
		t.Fatal(err)
	}
	if pg := poll(t, s, alice, q, 0, 10); len(pg.Items) != 0 {
		t.Fatalf("up-to-date knownEtag produced %d notifications", len(pg.Items))
	}
	if _, err := s.Subscribe(ctx, allowAll{"e6"}, alice, q, "user:alice/a", "", "e5"); err != nil {
		t.Fatal(err)
	}
	pg := poll(t, s, alice, q, 0, 10)
	if len(pg.Items) != 1 || pg.Items[0].Kind != Resync || pg.Items[0].Etag != "e6" {
		t.Fatalf("want one RESYNC with e6, got %+v", pg.Items)
	}
}

type denyAll struct{}

func (denyAll) Authorize(context.Context, Principal, string, string) (string, error) {
	return "", fmt.Errorf("%w: not yours", ErrForbidden)
}

func TestSubscribe_Errors(t *testing.T) {
	s, _ := newStore(t, Config{MaxSubscriptionsPerQueue: 2})
	q := mustQueue(t, s, alice)
	ctx := context.Background()
	if _, err := s.Subscribe(ctx, denyAll{}, alice, q, "user:bob/a", "", ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("denied: %v", err)
	}
	if _, err := s.Subscribe(ctx, allowAll{}, alice, q, "no-colon", "", ""); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("bad resource: %v", err)
	}
	mustSub(t, s, alice, q, "user:alice/1")
	mustSub(t, s, alice, q, "user:alice/2")
	if _, err := s.Subscribe(ctx, allowAll{}, alice, q, "user:alice/3", "", ""); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("over the limit: %v", err)
	}
	if st := s.Stats(); st.Subscriptions != 2 || st.Resources != 2 {
		t.Fatalf("a refused subscribe left state: %+v", st)
	}
}

func TestQueuesPerDeviceLimit(t *testing.T) {
	s, _ := newStore(t, Config{MaxQueuesPerDevice: 2})
	mustQueue(t, s, alice)
	q := mustQueue(t, s, alice)
	if _, err := s.CreateQueue(context.Background(), alice, 0); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("third queue: %v", err)
	}
	mustQueue(t, s, alice2) // another device has its own allowance
	_ = s.DeleteQueue(context.Background(), alice, q)
	mustQueue(t, s, alice) // room again
}

func TestInvite(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	q := mustQueue(t, s, alice2)
	if n, err := s.Invite(ctx, alice, "", "phone", []byte(`{"offer":"x"}`)); err != nil || n != 1 {
		t.Fatalf("invite: %d %v", n, err)
	}
	pg := poll(t, s, alice2, q, 0, 10)
	if len(pg.Items) != 1 || pg.Items[0].Kind != Invite || pg.Items[0].From.Device != "laptop" || pg.Items[0].From.User != "alice" {
		t.Fatalf("invite entry: %+v", pg.Items)
	}
	if _, err := s.Invite(ctx, bob, "", "phone", nil); !errors.Is(err, ErrDeviceNotFound) {
		t.Fatalf("bob inviting alice's phone: %v (another user's devices are out of reach)", err)
	}
	if _, err := s.Invite(ctx, alice, "", "tablet", nil); !errors.Is(err, ErrDeviceNotFound) {
		t.Fatalf("device with no queue: %v", err)
	}
}

func TestLongPoll_WakesWithoutPolling(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, "user:alice/a")
	done := make(chan Page, 1)
	go func() {
		pg, err := s.Poll(context.Background(), alice, q, 0, 10, 30*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- pg
	}()
	// Publish until the waiter is parked: a publish before it parks is
	// returned at once too, so either way one page with one item arrives.
	publish(s, "user:alice/a", "e1")
	select {
	case pg := <-done:
		if len(pg.Items) != 1 || pg.Items[0].Etag != "e1" {
			t.Fatalf("page = %+v", pg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not wake")
	}
	// Cancellation ends a wait.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := s.Poll(ctx, alice, q, 1, 10, 30*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled poll: %v", err)
	}
}

func TestConcurrentChurn(t *testing.T) {
	s, _ := newStore(t, Config{BufferSize: 16, RetainDelivered: 4, MaxQueuesPerDevice: 1000})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := Principal{User: "u", Device: fmt.Sprint("d", w)}
			for i := range 200 {
				q, _ := s.CreateQueue(ctx, p, 0)
				res := fmt.Sprint("user:u/", i%5)
				_, _ = s.Subscribe(ctx, allowAll{}, p, q.Name, res, "", "")
				st, _ := s.Attach(ctx, p, q.Name, 0, &countListener{})
				publish(s, res, "x")
				_, _ = st.Next(nil, 8)
				if i%2 == 0 {
					_ = s.DeleteQueue(ctx, p, q.Name)
				} else {
					_, _ = s.Unsubscribe(ctx, p, q.Name, res)
				}
				st.Close()
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.Subscriptions != 0 || st.Resources != 0 || st.Queues != 400 {
		t.Fatalf("after churn: %+v, want 400 queues and empty tables", st)
	}
}

func TestCursorBeyondLastSeqIsRefused(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, "user:alice/a")
	publish(s, "user:alice/a", "e1")
	if _, err := s.Poll(context.Background(), alice, q, 5, 10, 0); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("poll after 5 of 1: %v", err)
	}
	if _, err := s.Attach(context.Background(), alice, q, 5, &countListener{}); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("attach after 5 of 1: %v", err)
	}
	if pg := poll(t, s, alice, q, 1, 10); len(pg.Items) != 0 || pg.LastSeq != 1 {
		t.Fatalf("after = last seq is fine: %+v", pg)
	}
}

// TestDeliverTo_FollowsResubscribe: the receiving end of a forwarded event
// reaches the queue's current subscription, not one it used before, and
// not a queue that unsubscribed.
func TestDeliverTo_FollowsResubscribe(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, "user:alice/a")
	ev := func(etag string) *Event { return &Event{Kind: Changed, Resource: "user:alice/a", Etag: etag} }
	if n := s.DeliverLocal(ev("x")); n != 1 {
		t.Fatalf("first: %d delivered", n)
	}
	if ok, _ := s.Unsubscribe(ctx, alice, q, "user:alice/a"); !ok {
		t.Fatal("unsubscribe")
	}
	if n := s.DeliverLocal(ev("y")); n != 0 {
		t.Fatalf("after unsubscribe: %d delivered", n)
	}
	mustSub(t, s, alice, q, "user:alice/a")
	if n := s.DeliverLocal(ev("z")); n != 1 {
		t.Fatalf("after subscribing again: %d delivered", n)
	}
	if subs, _ := s.Subscriptions(ctx, alice, q); len(subs) != 1 || subs[0].Etag != "z" {
		t.Fatalf("subs = %+v, want etag z", subs)
	}
	if pg := poll(t, s, alice, q, 0, 10); len(pg.Items) != 2 {
		t.Fatalf("queue holds %d notifications, want x and z", len(pg.Items))
	}
}

// TestHandoff_QueueKeepsItsSubscriptions: a queue exported from one store
// and imported into another keeps its subscriptions as they were (etag and
// creation time), and is no longer held by the store it left.
func TestHandoff_QueueKeepsItsSubscriptions(t *testing.T) {
	from, _ := newStore(t, Config{})
	to, _ := newStore(t, Config{})
	ctx := context.Background()
	q := mustQueue(t, from, alice)
	mustSub(t, from, alice, q, "user:alice/a")
	before, _ := from.Subscriptions(ctx, alice, q)
	st, ok := from.ExportQueue(q)
	if !ok {
		t.Fatal("export")
	}
	if from.Has(q) {
		t.Fatal("the store that gave the queue away still holds it")
	}
	if !to.ImportQueue(st) || !to.Has(q) {
		t.Fatal("import")
	}
	after, _ := to.Subscriptions(ctx, alice, q)
	if len(after) != 1 || after[0] != before[0] {
		t.Fatalf("after the move %+v, before %+v", after, before)
	}
}

// A subscribe and an unsubscribe of one subscription that overlap are
// ordered one before the other: an unsubscribe that lands while the
// subscribe asks the publisher comes after it. The subscribe answers
// (the subscription existed, and the unsubscribe removed it, reporting
// so) and the queue ends unsubscribed. Answered UNAVAILABLE, a client
// following the README retried, and its retry subscribed again after
// the unsubscribe it had sent later.
func TestSubscribe_RacingUnsubscribeIsOrderedBeforeIt(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	q := mustQueue(t, s, alice)
	const res = "user:alice/doc"
	asked := make(chan struct{})
	release := make(chan struct{})
	auth := authFunc(func(context.Context, Principal, string, string) (string, error) {
		close(asked)
		<-release
		return "v1", nil
	})
	done := make(chan error, 1)
	var info SubscriptionInfo
	go func() {
		var err error
		info, err = s.Subscribe(ctx, auth, alice, q, res, "", "")
		done <- err
	}()
	<-asked
	if ok, err := s.Unsubscribe(ctx, alice, q, res); err != nil || !ok {
		t.Fatalf("unsubscribe while the subscribe is made: %v, %v; want it removed", ok, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the subscribe an unsubscribe overlapped: %v; want its answer (it came first)", err)
	}
	if info.Etag != "v1" || info.CreatedAt.Before(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("the subscribe answered etag %q, created %v; want the publisher's v1, made now", info.Etag, info.CreatedAt)
	}
	if subs, err := s.Subscriptions(ctx, alice, q); err != nil || len(subs) != 0 {
		t.Errorf("after the unsubscribe, the queue holds %v (%v); want none", subs, err)
	}
	publish(s, res, "v2")
	if page, err := s.Poll(ctx, alice, q, 0, 10, 0); err != nil || len(page.Items) != 0 {
		t.Errorf("the unsubscribed queue holds %v (%v); want nothing", page.Items, err)
	}
}
