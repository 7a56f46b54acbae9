package shard

import (
	"context"
	"slices"
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

// A publish remembered while no list was held here is not the newest one
// once a list came here whole (a take, a take-back) and went on: after
// that list empties, a list made again must not start from the
// remembered etag. Here: v1 remembered, the list of the node that held
// it (v3, stamped later) imported, emptied; a fresh subscribe, whose
// publisher says v3, and whose client knows v3.
func TestUnheld_ImportedListIsNotOvertakenByAnOlderRememberedPublish(t *testing.T) {
	s, clk := newStore(t, Config{})
	const res = "user:alice/x"
	s.RememberUnheld(clk.Now().Add(time.Minute))
	publish(s, res, "v1") // no list here: remembered
	at := stampAt(time.Now())
	s.ImportResource(ResourceState{Name: res, Etag: "v3",
		Pos: Position{Epoch: 7, Offset: 3, At: at}, EtagPos: Position{Epoch: 7, Offset: 3, At: at},
		Nodes: []Interest{{Node: "n2", Count: 1, Ver: 1}}})
	s.SetInterest(res, Interest{Node: "n2", Count: 0, Ver: 2}) // its last queue left: dropped

	freshSubscribe(t, s, res, "v3", "older than v3, which the list delivered and the publisher answers")
}

// A remembered publish whose time is up is not used, even before
// ForgetUnheld sweeps it: a publish after that time found no list and
// was not remembered, so the remembered one is older than what was
// acknowledged.
func TestUnheld_ExpiredPublishIsNotUsedBeforeTheSweep(t *testing.T) {
	s, clk := newStore(t, Config{})
	const res = "user:alice/x"
	s.RememberUnheld(clk.Now().Add(time.Minute))
	publish(s, res, "v1") // remembered until the minute is up
	clk.Add(2 * time.Minute)
	publish(s, res, "v2") // not remembered: acknowledged, reached nobody

	freshSubscribe(t, s, res, "v2", "older than v2, which the publisher answers")
}

// A RESYNC that announces an etag again and finds no list is remembered
// with that etag's At, not a new one: else an old etag, remembered as
// stamped now, is taken over a newer one a queue delivered meanwhile.
func TestUnheld_ResyncKeepsItsAt(t *testing.T) {
	s, clk := newStore(t, Config{})
	const res = "user:alice/x"
	s.RememberUnheld(clk.Now().Add(time.Minute))
	oldAt := stampAt(time.Now())
	newer := Hint{Etag: "v5", Pos: Position{Epoch: 9, Offset: 5, At: stampAt(time.Now())}}
	// The RESYNC of v4 (at oldAt) that AddInterest sends, landing after
	// the list emptied.
	s.Deliver(&Event{Kind: Resync, Resource: res, Etag: "v4", Pos: Position{At: oldAt}})
	if _, l := s.AddInterest(res, Interest{Node: "n2", Count: 1, Ver: 1}, newer); l.Etag != "v5" {
		t.Errorf("a queue that delivered v5 (stamped after v4) links and the list answers %q", l.Etag)
	}
}

// A list taken back whole (its taker died before it had it) after a
// publish was acknowledged here with no list goes on from that publish,
// not from the older etag it was given away with: its queues elsewhere
// get a RESYNC naming it (the tail), as a late link's would.
func TestUnheld_ListTakenBackGoesOnFromAPublishRememberedMeanwhile(t *testing.T) {
	s, clk := newStore(t, Config{})
	const res = "user:alice/x"
	at := stampAt(time.Now())
	s.RememberUnheld(clk.Now().Add(time.Minute))
	publish(s, res, "v6") // acknowledged while the list was on its way to a taker that died
	s.ImportResource(ResourceState{Name: res, Etag: "v4",
		Pos: Position{Epoch: 7, Offset: 4, At: at}, EtagPos: Position{Epoch: 7, Offset: 4, At: at},
		Nodes: []Interest{{Node: "n2", Count: 1, Ver: 1}}})
	if _, l := s.AddInterest(res, Interest{}, Hint{}); l.Etag != "v6" {
		t.Errorf("the list taken back answers %q, older than v6, acknowledged meanwhile", l.Etag)
	}
}

// freshSubscribe subscribes a new queue of s to res, whose publisher
// answers etag and whose client knows it: the subscribe must answer
// etag (else why, with the answer) and queue nothing.
func freshSubscribe(t *testing.T, s *Store, res, etag, why string) {
	t.Helper()
	q := mustQueue(t, s, alice)
	info, err := s.Subscribe(context.Background(), allowAll{etag}, alice, q, res, "", etag)
	if err != nil {
		t.Fatal(err)
	}
	if info.Etag != etag {
		t.Errorf("subscribe answered %q, %s", info.Etag, why)
	}
	if got := drainAll(t, s, alice, q); len(got) != 0 {
		t.Errorf("a client that knows %s got %v", etag, got)
	}
}

// A list handed on in a new epoch (given again from a tomb, taken back)
// carries revokes of its old epoch, which stand in no stream of the new
// one: ImportResource returns their principals to be asked about again,
// as for a merge, and keeps those of the list's own epoch.
func TestImport_RevokesOfAnOlderEpochAreReturnedForARecheck(t *testing.T) {
	s, _ := newStore(t, Config{})
	const res = "user:carol/x"
	old := RevokeEvent(res, "alice", "")
	old.Pos = Position{Epoch: 7, Offset: 3, At: 1}
	cur := RevokeEvent(res, "bob", "d")
	cur.Pos = Position{Epoch: 9, Offset: 2, At: 2}
	got := s.ImportResource(ResourceState{Name: res, Etag: "v1", Pos: Position{Epoch: 9, Offset: 2, At: 2}, EtagPos: Position{Epoch: 9, Offset: 1, At: 2}, Revokes: []*Event{old, cur}})
	if want := []Subscriber{{Resource: res, User: "alice"}}; !slices.Equal(got, want) {
		t.Errorf("ImportResource returned %v; want %v (the older epoch's revoke, not the list's own)", got, want)
	}
}

// A publish another node remembered, handed here with its key
// (ImportUnheld), is kept if it is the newest by At: a list a link
// makes later starts from it, and a list held here adopts it only if it
// is newer than its own etag, never going back.
func TestUnheld_AnImportedPublishIsKeptOnlyIfNewest(t *testing.T) {
	s, clk := newStore(t, Config{})
	const res = "user:alice/x"
	until := clk.Now().Add(time.Minute)
	t0 := stampAt(time.Now())
	t1, t2, t3 := t0+1000, t0+2000, t0+3000
	s.ImportUnheld(Remembered{Resource: res, Etag: "v1", At: t1, Until: until})
	s.ImportUnheld(Remembered{Resource: res, Etag: "v0", At: t0, Until: until}) // older: not kept
	old := Hint{Etag: "vq", Pos: Position{Epoch: 5, Offset: 1, At: t0 - 1000}}
	if _, l := s.AddInterest(res, Interest{Node: "n2", Count: 1, Ver: 1}, old); l.Etag != "v1" {
		t.Fatalf("a list started after an imported v1 has etag %q, want v1", l.Etag)
	}
	etag := func() string {
		_, l := s.AddInterest(res, Interest{}, Hint{}) // only learns
		return l.Etag
	}
	s.ImportUnheld(Remembered{Resource: res, Etag: "v3", At: t3, Until: until})
	if e := etag(); e != "v3" {
		t.Fatalf("the list held here did not adopt the newer imported v3: %q", e)
	}
	s.ImportUnheld(Remembered{Resource: res, Etag: "v2", At: t2, Until: until})
	if e := etag(); e != "v3" {
		t.Fatalf("the list went back to an older imported etag: %q, want v3", e)
	}
	s.ImportUnheld(Remembered{Resource: "user:alice/y", Etag: "v9", At: t3, Until: clk.Now().Add(-time.Second)})
	s.unheldMu.Lock()
	defer s.unheldMu.Unlock()
	if _, ok := s.unheld["user:alice/y"]; ok {
		t.Fatal("a publish whose time is up was kept")
	}
}

// A RESYNC that announces an etag a list adopted (AddInterest's hint,
// ImportUnheld, ImportResource) is delivered after the list's lock is
// released, so a publish can be stamped in between. Delivered then, it
// would stand after that publish and take the list, and its queues, back
// to the older etag. Here that interleaving is laid out by hand: v1
// adopted at at1, v2 published (later), then the RESYNC of v1 at at1.
func TestResync_AnAnnouncementOlderThanTheListsEtagIsNotDelivered(t *testing.T) {
	s, _ := newStore(t, Config{})
	const res = "user:alice/x"
	q := mustQueue(t, s, alice)
	mustSub(t, s, alice, q, res)
	at1 := stampAt(time.Now())
	publish(s, res, "v2")
	s.Deliver(&Event{Kind: Resync, Resource: res, Etag: "v1", Pos: Position{At: at1}})

	if got := drainAll(t, s, alice, q); !slices.Equal(got, []string{"CHANGED v2"}) {
		t.Errorf("queue got %v; want [CHANGED v2]: a RESYNC older than v2 took it back", got)
	}
	if _, l := s.AddInterest(res, Interest{Node: "n2", Count: 1, Ver: 1}, Hint{}); l.Etag != "v2" {
		t.Errorf("the list's etag went back to %q; want v2", l.Etag)
	}
}
