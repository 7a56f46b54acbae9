package shard

import (
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"
)

// Position is where an event stands in its resource's stream, assigned by
// the node holding the resource's subscriber list (centrifuge's
// StreamPosition). Offset grows by one per event of the list; Epoch names
// the list's life: it changes whenever the list is created again (after a
// crash, or once it emptied), and is taken from the clock, so a later
// list has a greater epoch. The zero Position means "none".
//
// At is when the etag of the event at this position was first stamped by
// a list (unix nanoseconds of a hybrid logical clock, see stampAt; 0:
// unknown). A RESYNC that announces an etag again keeps its At. Epochs
// are list creation times, not etag times: two lists of one resource can
// live at once (a node taken for dead keeps stamping in its older epoch
// while another made the list again), so etags of two epochs are ordered
// by At (Before), never by epoch.
type Position struct {
	Epoch, Offset uint64
	At            uint64
}

// IsZero reports whether p is the zero (absent) position.
func (p Position) IsZero() bool { return p.Epoch == 0 }

// Less orders positions: by epoch, then offset.
func (p Position) Less(o Position) bool {
	return p.Epoch < o.Epoch || p.Epoch == o.Epoch && p.Offset < o.Offset
}

// Before reports whether the etag at p is older than the one at o: in one
// epoch by offset (one list stamped both), across epochs by At, and by
// epoch when an At is unknown (0: an etag no list stamped) or both are
// equal (the same etag announced by two lists). The zero position is
// before any other. An unknown At is left to the epochs rather than
// taken as oldest: a subscription whose etag no list stamped would
// otherwise take a late event, or a re-link's state, of a list left
// behind in an older epoch for a newer one, and follow that list's stale
// events (tried: a v8 and a v9 chaos run had over 800 watches go back).
func (p Position) Before(o Position) bool {
	switch {
	case p.Epoch == o.Epoch:
		return p.Offset < o.Offset
	case p.At != 0 && o.At != 0 && p.At != o.At:
		return p.At < o.At
	}
	return p.Epoch < o.Epoch
}

// Hint is what a queue's side knows of a resource when it links: the last
// etag it delivered and that event's position. A list that knows less
// (an older position, or nothing) adopts it.
type Hint struct {
	Etag string
	Pos  Position
	// Unknown: Etag is "" because the linking side lost track (a repair
	// whose queues and publisher knew no etag), not "never published". A
	// list that knows no etag either remembers that (Linked.EtagUnknown).
	Unknown bool
}

// Linked is a subscriber list's state when a queue was linked into it,
// read under the list's lock: every event after Pos reaches the queue.
// Pos.At is Etag's (the queue goes on from Pos knowing Etag).
type Linked struct {
	Pos  Position
	Etag string
	// EtagUnknown: Etag is "" and the list was made again by a repair
	// that knew no etag: "" is not "never published".
	EtagUnknown bool
}

// Published is a publication a list stamped: its ID and position.
type Published struct {
	ID  uint64
	Pos Position
}

// maxRecent is how many publications a list remembers by ID.
const maxRecent = 32

// stampLocked gives ev its position in r's stream: the next offset, or
// the one it had if r stamped the same publication lately (a publish
// sent again; ev.ID, given here if it has none). Its At is stamped now,
// unless ev announces an etag again (a RESYNC that sets ev.Pos.At to the
// etag's). A new event becomes r's last one, and its etag r's. r.mu held.
func (r *resource) stampLocked(ev *Event, now time.Time) {
	if ev.ID == 0 {
		ev.ID = rand.Uint64() | 1 // so that a publish sent again gets the same position
	}
	for _, p := range r.recent {
		if p.ID == ev.ID {
			ev.Pos = p.Pos
			if ev.Kind == Revoked {
				// Its etag, like its position, is the list's (not kept
				// per publication: the one now, with its At). A revoke
				// sent again carries none of its own.
				ev.Etag, ev.EtagUnknown, ev.Pos.At = r.etag, r.etagUnknown, r.etagPos.At
			}
			return
		}
	}
	r.pos.Offset++
	if ev.Kind == Revoked {
		// A revoke changes no etag: it stands at the list's etag, as a
		// RESYNC announcing it again would (its At, 0 if none), so a
		// subscription that moves past it still holds that etag's At.
		ev.Etag, ev.EtagUnknown, ev.Pos.At = r.etag, r.etagUnknown, r.etagPos.At
		r.pos.At = ev.Pos.At
	} else if r.pos.At = ev.Pos.At; r.pos.At == 0 {
		r.pos.At = stampAt(now)
	}
	ev.Pos = r.pos
	r.recent = appendBounded(r.recent, Published{ID: ev.ID, Pos: ev.Pos}, maxRecent)
	r.last = ev
	if ev.Kind == Revoked {
		r.revokes = r.revokes.kept(ev)
	}
	if ev.Kind == Changed || ev.Kind == Resync {
		r.etag, r.etagPos, r.etagUnknown = ev.Etag, ev.Pos, ev.EtagUnknown
	}
}

// appendBounded appends v to s, dropping the oldest first if s holds
// limit already.
func appendBounded[T any](s []T, v T, limit int) []T {
	if len(s) == limit {
		s = append(s[:0], s[1:]...)
	}
	return append(s, v)
}

// lastEpoch makes epochs strictly increasing on this node even when the
// clock is coarse or steps back.
var lastEpoch atomic.Uint64

// lastAt is this node's hybrid logical clock (Position.At): it never goes
// back, and it moves past every At this node learns from another node
// (observeAt), so an etag stamped here after one it heard of is later
// even when the other node's clock is ahead.
var lastAt atomic.Uint64

// tick moves clock past its last value, to floor at least, and returns
// where it went: clocks here never go back nor give a value twice.
func tick(clock *atomic.Uint64, floor uint64) uint64 {
	for {
		last := clock.Load()
		v := max(floor, last+1)
		if clock.CompareAndSwap(last, v) {
			return v
		}
	}
}

// stampAt is the At of an etag stamped now.
func stampAt(now time.Time) uint64 { return tick(&lastAt, uint64(now.UnixNano())) }

// observeAt moves the clock past at, an At learned from elsewhere: every
// At stamped here after it is later.
func observeAt(at uint64) { tick(&lastAt, at) }

// NewEpochAbove is a new epoch, from the clock, greater than floor and
// than every epoch made here: for a list's state given again, stale, to
// a node that may have gone on with it (cluster's give).
func NewEpochAbove(floor uint64) uint64 { return newEpochAbove(time.Now(), floor) }

// newEpochAbove is a new epoch greater than floor (an epoch another node
// made, whose clock may be ahead).
func newEpochAbove(now time.Time, floor uint64) uint64 {
	return tick(&lastEpoch, max(uint64(now.UnixNano()), floor+1))
}

// verdict is what a subscription does with an event at some position.
type verdict uint8

const (
	appendIt verdict = iota // the next event: append it
	dropIt                  // at or below the last appended: a duplicate or overtaken
	resyncIt                // in a newer epoch: append one RESYNC instead
	parkIt                  // after a gap: hold it until the gap fills (see offerLocked)
)

// Gap repair: an event that arrives after a gap in its list's offsets was
// overtaken by it (a queue moved between nodes, and the old route still
// carried earlier events), or the events in the gap were lost. It is held
// in its subscription until the gap fills, at most holdGap and maxParked
// events; then the gap is announced with one RESYNC carrying the newest
// etag held. No lock is held while waiting: a timer ends the wait.
const (
	holdGap   = time.Second
	maxParked = 64
)

// admitLocked decides what sub does with an event at p and moves sub's
// position. The invariant it keeps: a subscription appends an event only
// if its position is past the last one it appended, so an event sent
// twice, or overtaken by a newer one, is never appended (whatever the
// queue's buffer holds or a reader acknowledged); an event after a gap
// waits for the gap to fill (parkIt). An event of another epoch is
// announced with one RESYNC if its etag is newer than the last one
// appended (Before: by At), and dropped if not, so a subscription never
// appends an etag older than one it delivered, whichever list sends it.
// An event of the subscription's epoch stamped before the etag it
// appended last (olderAt) is dropped as well: see there.
// An unstamped event (zero p) is appended as it is; a subscription with
// no position yet takes the event's. The queue's mu is held.
func (sub *subscription) admitLocked(p Position) verdict {
	switch {
	case p.IsZero():
		return appendIt
	case sub.pos.IsZero():
		sub.moveTo(p)
		return appendIt
	case p.Epoch != sub.pos.Epoch:
		if !sub.pos.Before(p) {
			return dropIt
		}
		sub.moveTo(p)
		return resyncIt
	case sub.olderAt(p):
		if p.Offset == sub.pos.Offset+1 {
			sub.pos.Offset = p.Offset // seen; what it holds is newer
		}
		return dropIt
	case p.Offset <= sub.pos.Offset:
		return dropIt
	case p.Offset == sub.pos.Offset+1:
		sub.moveTo(p)
		return appendIt
	}
	return parkIt
}

// olderAt reports whether p, of the subscription's epoch, was stamped
// before the etag the subscription appended last. Within one epoch a
// list stamps At in offset order (its clock observes every At it
// learns), so such an event comes from before the list adopted a newer
// etag from another list's queues (a learn, a link's hint) and the
// subscription was moved to that etag at the list's offset (Resync),
// or from another copy of the epoch. Its offset alone would
// take it for the next change: a watch would go from the newer etag back
// to the older one. Invariant: a subscription's pos.At is the At of the
// newest etag it appended, and it never appends an older one, within an
// epoch as across epochs.
func (sub *subscription) olderAt(p Position) bool {
	return p.Epoch == sub.pos.Epoch && p.At != 0 && sub.pos.At != 0 && p.At < sub.pos.At
}

// Tail announcement (centrifuge's position check, made by the list): a gap
// is found when a later event arrives, so when the event lost on its way
// to another node was a resource's last one (an outbox full, a Push that
// failed for good, queues not found while the cluster changes), nothing
// would ever reveal it. So a list whose fan-out reached other nodes sends
// its last event again, at the same position, to every other node
// interested in it (which offers it to its queues): once it has been quiet for tailQuiet, then at growing
// intervals (tailRounds times in all), and at most once per tailQuiet
// while it keeps publishing. Positions make the resend harmless: a queue
// that has the event drops it, a queue that missed only that one appends
// it, and a queue further behind parks it and announces the gap with one
// RESYNC. Invariant: an event a list stamped reaches every queue in the
// list, or is announced to it, without waiting for a later publish.
const (
	tailQuiet  = time.Second
	tailRounds = 4 // at 1, 3, 7 and 15 s of quiet
)

// lastRevokes are the newest revokes a list stamped, oldest first: one
// per principal revoked, at most maxLastRevokes. A revoke a queue never
// saw (lost on its way, skipped by a gap the queue gave up on or by a
// relink's RESYNC, late at a queue's old node after the queue left) is
// found by no later event: a gap announces the changes in it, not a
// revoke. So a list announces its last revokes again with its tail
// (announceTail, OfferTail), and hands them on with itself
// (ResourceState.Revokes). Positions make it harmless: a subscription
// linked after a revoke keeps its place (Event.revokes reads the offset
// it was linked at), another principal's drops it as seen.
//
// Invariant: a revoke stamped by a list, among its maxLastRevokes
// newest, reaches every subscription it covers, in every queue the list
// reaches, while the list announces its tail; a queue whose position
// moved past it without it is revoked when it comes again. Not kept: the
// revokes of a list that dies with its node, or that merges with another
// copy of itself (ImportResource: a new epoch, where they stand nowhere);
// their principals are asked about again instead (shard/cluster's
// recheck), for a list made again and for a merge. Nor an older revoke
// than the newest maxLastRevokes principals': a subscription that gave
// up a gap (giveUpGapLocked), which may have held one, has its principal
// asked again (skipped, Peers.Recheck). Together: a revoke a queue
// missed still ends the subscriptions it covered, however many
// principals the list revoked after it
// (TestRevoke_LostBeyondTheLastRevokesIsRecheckedAtTheGap).
type lastRevokes struct{ evs []*Event }

// maxLastRevokes is how many principals' revokes a list keeps (the
// newest): a queue that skipped an older one is not told again.
const maxLastRevokes = 32

// skipped makes sub, whose subscription gave up a gap, due a re-check
// (Peers.Recheck): what arrives while one is on its way waits for the
// next. Any lock but skipMu may be held.
func (s *Store) skipped(sub Subscriber) {
	s.skipMu.Lock()
	defer s.skipMu.Unlock()
	if s.skips == nil {
		s.skips = map[Subscriber]bool{}
		go s.recheckSkipped()
	}
	s.skips[sub] = true
}

// recheckSkipped hands the subscribers made due by skipped to
// Peers.Recheck, with no lock held.
func (s *Store) recheckSkipped() {
	s.skipMu.Lock()
	subs := slices.Collect(maps.Keys(s.skips))
	s.skips = nil
	s.skipMu.Unlock()
	s.peers.Recheck(subs)
}

// kept is k with ev, a revoke just stamped, as its newest: an older one
// of the same principal, or of another epoch, is left out.
func (k *lastRevokes) kept(ev *Event) *lastRevokes {
	if k == nil {
		k = &lastRevokes{}
	}
	k.evs = slices.DeleteFunc(k.evs, func(o *Event) bool {
		return o.Pos.Epoch != ev.Pos.Epoch || o.From.User == ev.From.User && o.From.Device == ev.From.Device
	})
	k.evs = appendBounded(k.evs, ev, maxLastRevokes)
	return k
}

// inEpoch are k's revokes stamped in epoch (those of an older epoch of a
// list made again are no part of its stream), oldest first.
func (k *lastRevokes) inEpoch(epoch uint64) []*Event {
	if k == nil {
		return nil
	}
	var evs []*Event
	for _, ev := range k.evs {
		if ev.Pos.Epoch == epoch {
			evs = append(evs, ev)
		}
	}
	return evs
}

// tail is a list whose last event is still to be announced. Guarded by
// Store.tailMu.
type tail struct {
	next   time.Time // when the next announcement is due
	rounds int       // announcements since the last event
}

// noteTailLocked records that r stamped an event that went to other
// nodes: its announcement is due tailQuiet from now, or sooner if one was
// due already (so a list that keeps publishing announces once per
// tailQuiet). r.mu held; tailMu is a leaf.
func (s *Store) noteTailLocked(r *resource, now time.Time) {
	s.tailMu.Lock()
	due := now.Add(tailQuiet)
	if t, ok := s.tails[r]; ok && t.next.Before(due) {
		due = t.next
	}
	s.tails[r] = tail{next: due}
	s.tailMu.Unlock()
}

// AnnounceTails sends, for every list whose announcement is due, its
// last event again to its queues held by other nodes (see tailQuiet).
// The cluster calls it a few times a second. Safe for concurrent use; no
// store lock may be held.
func (s *Store) AnnounceTails() {
	now := s.cfg.Now()
	var due []*resource
	s.tailMu.Lock()
	for r, t := range s.tails {
		if now.Before(t.next) {
			continue
		}
		t.rounds++
		if t.rounds >= tailRounds {
			delete(s.tails, r)
		} else {
			s.tails[r] = tail{next: now.Add(tailQuiet << t.rounds), rounds: t.rounds}
		}
		due = append(due, r)
	}
	s.tailMu.Unlock()
	for _, r := range due {
		s.announceTail(r)
	}
}

// announceTail sends r's last event, and its last revokes, to the other
// nodes interested in r; the revokes go to the queues here too (a queue
// that came here may have left its old node before a revoke reached it).
func (s *Store) announceTail(r *resource) {
	r.mu.RLock()
	if r.dead {
		r.mu.RUnlock()
		s.tailMu.Lock()
		delete(s.tails, r)
		s.tailMu.Unlock()
		return
	}
	evs := s.tailEventsLocked(r)
	var in *Interest
	if r.revokes != nil { // most lists keep none: their table is not walked
		in = s.revokeHere(r.name, evs)
	}
	remote := r.remoteLocked(s.name)
	if len(evs) == 0 || len(remote) == 0 {
		r.mu.RUnlock()
		s.tellInterest(r.name, in)
		return
	}
	r.fwd.Add(1)
	r.mu.RUnlock()
	s.tellInterest(r.name, in)
	for _, ev := range evs {
		s.peers.Forward(ev, remote)
	}
	r.fwd.Done()
}

// tailEventsLocked are what r announces again: its last revokes, then its
// last event (tailLocked), in offset order. r.mu held.
func (s *Store) tailEventsLocked(r *resource) []*Event {
	evs := r.revokes.inEpoch(r.pos.Epoch)
	if ev := s.tailLocked(r); ev != nil && (len(evs) == 0 || evs[len(evs)-1] != ev) {
		evs = append(evs, ev)
	}
	return evs
}

// tellInterest tells res's list this node's interest, changed (nil: not).
// No list lock may be held.
func (s *Store) tellInterest(res string, in *Interest) {
	if in != nil {
		s.peers.Interest(res, *in)
	}
}

// tailLocked is r's last event, to send again at its position, or nil
// if r has none. r.mu held.
func (s *Store) tailLocked(r *resource) *Event {
	if ev := r.last; ev != nil && ev.Pos == r.pos {
		return ev
	}
	// Handed over (ImportResource), or gone on in a new epoch since
	// (AddInterest): the tail is the list's etag at its position.
	if r.etag == "" {
		return nil
	}
	pos := r.pos
	pos.At = r.etagPos.At
	return &Event{Kind: Resync, Resource: r.name, Etag: r.etag, Time: s.cfg.Now(), Pos: pos}
}

// OfferTail offers res's last event, held here, again to node's queues,
// in order behind every event the list sent node before: here, appended
// under the list's lock as fan-out does; for another node, through
// Peers.Forward, which queues it behind them. It is how a node relinking
// its queues already in the list (cluster's audit and repairs) catches
// up those that are behind it, by position as a tail announcement does:
// a queue that has the event drops it, one that missed only it appends
// it, one further behind announces the gap with a RESYNC.
//
// Invariant: a catch-up never overtakes an event on its way to the
// queue. The relinking node cannot tell an event lost on its way from one
// still coming (its Push slow on a loaded machine): moving its queues to
// the position its link answered, with a RESYNC, made the event dropped
// as already seen when it came (E2's loaded run: 9 942 deliveries lost,
// one change at nearly every subscriber, each with a RESYNC instead).
// Safe for concurrent use; no store lock may be held.
func (s *Store) OfferTail(res, node string) {
	r := s.res.get(res)
	if r == nil {
		return
	}
	r.mu.RLock()
	if r.dead {
		r.mu.RUnlock()
		return
	}
	evs := s.tailEventsLocked(r)
	if node == s.name {
		var in *Interest
		for _, ev := range evs {
			if _, changed := s.deliverLocal(ev); changed != nil {
				in = changed
			}
		}
		r.mu.RUnlock()
		s.tellInterest(res, in)
		return
	}
	r.fwd.Add(1)
	r.mu.RUnlock()
	for _, ev := range evs {
		s.peers.Forward(ev, []string{node})
	}
	r.fwd.Done()
}
