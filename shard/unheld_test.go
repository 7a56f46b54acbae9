package shard

import (
	"testing"
	"time"
)

// A publish that finds no list, while the store remembers such publishes
// (a cluster's lists may be in the making), gives the list a later link
// starts its etag, unless the link's hint is newer; otherwise, and once
// the time is up, nothing is kept for a resource nobody subscribes to.
func TestUnheld_ListStartsFromAPublishThatFoundNone(t *testing.T) {
	s, clk := newStore(t, Config{})
	const res = "user:alice/x"
	old := Hint{Etag: "v1", Pos: Position{Epoch: 5, Offset: 1, At: stampAt(time.Now())}}

	publish(s, res, "v0") // not remembered: nothing asked for it
	if _, l := s.AddInterest(res, Interest{Node: "n2", Count: 1}, old); l.Etag != "v1" {
		t.Fatalf("a list started after a publish nobody remembered has etag %q, want the hint's v1", l.Etag)
	}
	s.SetInterest(res, Interest{Node: "n2", Count: 0, Ver: 1 << 62})

	s.RememberUnheld(clk.Now().Add(time.Minute))
	publish(s, res, "v2")
	if _, l := s.AddInterest(res, Interest{Node: "n2", Count: 1, Ver: 1<<62 + 1}, old); l.Etag != "v2" || l.Pos.At <= old.Pos.At {
		t.Fatalf("the list started after an acknowledged v2 answers %q at %d, want v2 after the hint's %d", l.Etag, l.Pos.At, old.Pos.At)
	}
	s.SetInterest(res, Interest{Node: "n2", Count: 0, Ver: 1<<62 + 2})

	publish(s, res, "v3")
	newer := Hint{Etag: "v4", Pos: Position{Epoch: 6, Offset: 1, At: stampAt(time.Now())}}
	if _, l := s.AddInterest(res, Interest{Node: "n2", Count: 1, Ver: 1<<62 + 3}, newer); l.Etag != "v4" {
		t.Fatalf("a hint newer than the remembered publish lost to it: %q", l.Etag)
	}
	s.SetInterest(res, Interest{Node: "n2", Count: 0, Ver: 1<<62 + 4})

	publish(s, res, "v5") // remembered, for a minute
	clk.Add(2 * time.Minute)
	s.ForgetUnheld(nil)
	publish(s, res, "v6") // too late: not remembered
	s.res.mu.RLock()
	s.unheldMu.Lock()
	defer s.unheldMu.Unlock()
	defer s.res.mu.RUnlock()
	if len(s.unheld) != 0 || len(s.res.m) != 0 {
		t.Fatalf("state kept for a resource nobody subscribes to: %d publishes, %d lists", len(s.unheld), len(s.res.m))
	}
}
