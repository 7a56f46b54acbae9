package shard

import (
	"context"
	"testing"
)

// unknownOf polls q from the start and returns every notification of res
// as "KIND etag" with " unknown" when it is flagged EtagUnknown.
func unknownOf(t *testing.T, s *Store, p Principal, q, res string) []string {
	t.Helper()
	var got []string
	for _, n := range poll(t, s, p, q, 0, 100).Items {
		if n.Resource != res {
			continue
		}
		e := n.Kind.String() + " " + n.Etag
		if n.EtagUnknown {
			e += " unknown"
		}
		got = append(got, e)
	}
	return got
}

// TestResync_EtagUnknown: "" means "never published". A RESYNC that
// announces a loss (Store.Resync: a list made again after its holder
// died, this node's interest lost) with no etag known to the queues'
// side or the publisher is flagged EtagUnknown; one that carries an etag
// is not, and neither is any CHANGED.
func TestResync_EtagUnknown(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Linked
		want string
	}{
		{"the list knows an etag", Linked{Etag: "v7"}, "RESYNC v7"},
		{"nobody knows the etag", Linked{}, "RESYNC  unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t, Config{})
			q := mustQueue(t, s, alice)
			const res = "user:alice/x"
			if _, err := s.Subscribe(context.Background(), allowAll{""}, alice, q, res, "", ""); err != nil {
				t.Fatal(err)
			}
			if n := s.Resync(res, tc.l, []string{q}); n != 1 {
				t.Fatalf("Resync reached %d queues, want 1", n)
			}
			publish(s, res, "v8")
			got := unknownOf(t, s, alice, q, res)
			if len(got) != 2 || got[0] != tc.want || got[1] != "CHANGED v8" {
				t.Fatalf("queue holds %q, want [%q \"CHANGED v8\"]", got, tc.want)
			}
		})
	}
}

// TestSubscribe_EtagUnknown: a subscribe whose caller knew an etag
// (knownEtag: the resource was published) and whose publisher answers ""
// (it keeps etags in memory and restarted; no list remembers one) cannot
// answer "never published": the answer and its RESYNC are flagged
// EtagUnknown. A "" without a knownEtag, or a real etag, is not flagged.
func TestSubscribe_EtagUnknown(t *testing.T) {
	for _, tc := range []struct {
		name, publisher, known string
		wantUnknown            bool
		wantQueue              []string
	}{
		{"the publisher forgot what the caller knew", "", "v3", true, []string{"RESYNC  unknown"}},
		{"never published, nothing known", "", "", false, nil},
		{"a stale knownEtag", "v4", "v3", false, []string{"RESYNC v4"}},
		{"up to date", "v3", "v3", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t, Config{})
			q := mustQueue(t, s, alice)
			const res = "user:alice/x"
			info, err := s.Subscribe(context.Background(), allowAll{tc.publisher}, alice, q, res, "", tc.known)
			if err != nil {
				t.Fatal(err)
			}
			if info.Etag != tc.publisher || info.EtagUnknown != tc.wantUnknown {
				t.Errorf("subscribe answered etag %q unknown %v, want %q %v", info.Etag, info.EtagUnknown, tc.publisher, tc.wantUnknown)
			}
			if got := unknownOf(t, s, alice, q, res); len(got) != len(tc.wantQueue) || len(got) > 0 && got[0] != tc.wantQueue[0] {
				t.Errorf("queue holds %q, want %q", got, tc.wantQueue)
			}
		})
	}
}

// TestGiveUpGap_KeepsEtagUnknown: a RESYNC that announces a gap given up
// on carries the newest held event's etag, and so its EtagUnknown flag:
// an unknown "" never becomes a plain one on its way.
func TestGiveUpGap_KeepsEtagUnknown(t *testing.T) {
	s, _ := newStore(t, Config{})
	q := mustQueue(t, s, alice)
	const res = "user:alice/x"
	mustSub(t, s, alice, q, res)
	epoch := listEpoch(t, s, res)
	s.DeliverLocal(&Event{Kind: Changed, Resource: res, Etag: "v1", Pos: Position{Epoch: epoch, Offset: 1}})
	// Offset 2 never comes: offset 3, flagged, waits behind the gap.
	s.DeliverLocal(&Event{Kind: Resync, EtagUnknown: true, Resource: res, Pos: Position{Epoch: epoch, Offset: 3}})
	qq := s.get(q)
	qq.mu.Lock()
	sub := qq.subs[res]
	ls := qq.giveUpGapLocked(s, sub, sub.x)
	qq.mu.Unlock()
	notifyAll(ls)
	got := unknownOf(t, s, alice, q, res)
	if len(got) != 2 || got[1] != "RESYNC  unknown" {
		t.Fatalf("queue holds %q, want the gap announced by an unknown RESYNC", got)
	}
}

// TestList_RemembersAnUnknownEtag: a list made again by a repair that
// knew no etag (Hint.Unknown) remembers that its "" is not "never
// published": a fresh subscribe whose publisher answers "" says
// EtagUnknown, the state handed to another node keeps it, and the first
// etag the list learns (a publish) ends it.
func TestList_RemembersAnUnknownEtag(t *testing.T) {
	s, _ := newStore(t, Config{})
	const res = "user:alice/x"
	q := mustQueue(t, s, alice)
	if _, l := s.AddInterest(res, Interest{Node: "gone", Count: 1, Ver: 1}, Hint{Unknown: true}); !l.EtagUnknown || l.Etag != "" {
		t.Fatalf("the repair's link answered %+v, want an unknown \"\"", l)
	}
	info, err := s.Subscribe(context.Background(), allowAll{""}, alice, q, res, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Etag != "" || !info.EtagUnknown {
		t.Fatalf("a fresh subscribe to a list that lost track answered %+v, want etag \"\" flagged unknown", info)
	}

	// Handed to another node, the list still knows it lost track.
	st, ok := s.ExportResource(res)
	if !ok || !st.EtagUnknown {
		t.Fatalf("exported %+v, want EtagUnknown", st)
	}
	b, _ := newStore(t, Config{})
	b.ImportResource(st)
	if _, l := b.AddInterest(res, Interest{Node: "other", Count: 1, Ver: 1}, Hint{}); !l.EtagUnknown {
		t.Fatalf("after the hand-off the list answers %+v, want an unknown \"\"", l)
	}
	// A publish teaches it the version.
	publish(b, res, "v1")
	if _, l := b.AddInterest(res, Interest{Node: "third", Count: 1, Ver: 1}, Hint{}); l.EtagUnknown || l.Etag != "v1" {
		t.Fatalf("after a publish the list answers %+v, want v1, known", l)
	}
	// A list nobody said anything about: "" is "never published".
	if _, l := b.AddInterest("user:alice/fresh", Interest{Node: "n", Count: 1, Ver: 1}, Hint{}); l.EtagUnknown {
		t.Fatalf("a new list answers %+v, want a known \"\"", l)
	}
}
