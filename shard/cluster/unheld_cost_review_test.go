package cluster

import (
	"fmt"
	"testing"
	"time"

	"meshgate/shard"
	"meshgate/shard/ring"
)

// How long rebalance's ForgetUnheld holds the list table's write lock
// with the table of remembered publishes full (maxUnheld), and how long
// a publish of a resource nobody subscribes to takes while the store
// remembers (each takes that write lock). Not a timing assertion: it
// logs.
func TestReviewUnheldCost(t *testing.T) {
	s, err := shard.New(shard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := ring.New(1, map[string]int{"a": 1, "b": 1, "c": 1})
	pub := func(i int) {
		s.Deliver(&shard.Event{Kind: shard.Changed, Resource: fmt.Sprintf("user:u%d/x", i), Etag: "e1"})
	}
	start := time.Now()
	for i := range 1 << 16 {
		pub(i)
	}
	t.Logf("65536 publishes, nothing remembered: %v", time.Since(start))
	s.RememberUnheld(time.Now().Add(time.Minute))
	start = time.Now()
	for i := range 1 << 16 {
		pub(i + 1<<16)
	}
	t.Logf("65536 publishes, remembered: %v; dropped so far %d", time.Since(start), s.Counters().UnheldDropped.Load())
	pub(1 << 20)
	t.Logf("one more distinct resource: dropped %d", s.Counters().UnheldDropped.Load())
	for range 3 {
		start = time.Now()
		done := make(chan struct{})
		go func() {
			s.ForgetUnheld(func(res string) bool { return r.Owner(res) == "zzz" })
			close(done)
		}()
		var worst time.Duration
		for running := true; running; {
			select {
			case <-done:
				running = false
			default:
			}
			t0 := time.Now()
			s.HasResource("user:someone/else")
			worst = max(worst, time.Since(t0))
		}
		t.Logf("ForgetUnheld over a full table (keeps all): %v; a list lookup meanwhile waited at most %v", time.Since(start), worst)
	}
}

// RememberUnheldNow opens this node's window of remembered publishes, as
// a ring change, a repair or a rejoin here does.
func (n *Node) RememberUnheldNow() { n.rememberUnheld() }
