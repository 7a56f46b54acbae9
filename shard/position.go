package shard

import (
	"sync/atomic"
	"time"
)

// Position is where an event stands in its resource's stream, assigned by
// the node holding the resource's subscriber list (centrifuge's
// StreamPosition). Offset grows by one per event of the list; Epoch names
// the list's life: it changes whenever the list is created again (after a
// crash, or once it emptied), and is taken from the clock, so a later
// list has a greater epoch. The zero Position means "none".
type Position struct {
	Epoch, Offset uint64
}

// IsZero reports whether p is the zero (absent) position.
func (p Position) IsZero() bool { return p.Epoch == 0 }

// Less orders positions: by epoch, then offset.
func (p Position) Less(o Position) bool {
	return p.Epoch < o.Epoch || p.Epoch == o.Epoch && p.Offset < o.Offset
}

// Hint is what a queue's side knows of a resource when it links: the last
// etag it delivered and that event's position. A list that knows less
// (an older position, or nothing) adopts it.
type Hint struct {
	Etag string
	Pos  Position
}

// Linked is a subscriber list's state when a queue was linked into it,
// read under the list's lock: every event after Pos reaches the queue.
type Linked struct {
	Pos  Position
	Etag string
}

// Published is a publication a list stamped: its ID and position.
type Published struct {
	ID  uint64
	Pos Position
}

// maxRecent is how many publications a list remembers by ID.
const maxRecent = 32

// stampLocked gives ev its position in r's stream: the next offset, or
// the one it had if r stamped the same publication lately. It reports
// whether ev is new. r.mu held.
func (r *resource) stampLocked(ev *Event) bool {
	if ev.ID != 0 {
		for _, p := range r.recent {
			if p.ID == ev.ID {
				ev.Pos = p.Pos
				return false
			}
		}
	}
	r.pos.Offset++
	ev.Pos = r.pos
	if ev.ID != 0 {
		if len(r.recent) == maxRecent {
			r.recent = append(r.recent[:0], r.recent[1:]...)
		}
		r.recent = append(r.recent, Published{ID: ev.ID, Pos: ev.Pos})
	}
	return true
}

// lastEpoch makes epochs strictly increasing on this node even when the
// clock is coarse or steps back.
var lastEpoch atomic.Uint64

func newEpoch(now time.Time) uint64 { return newEpochAbove(now, 0) }

// newEpochAbove is a new epoch greater than floor (an epoch another node
// made, whose clock may be ahead).
func newEpochAbove(now time.Time, floor uint64) uint64 {
	for {
		last := lastEpoch.Load()
		e := max(uint64(now.UnixNano()), last+1, floor+1)
		if lastEpoch.CompareAndSwap(last, e) {
			return e
		}
	}
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
// queue's buffer holds or a reader acknowledged); a newer epoch is
// announced with one RESYNC; an event after a gap waits for the gap to
// fill (parkIt). An unstamped event (zero p) is appended as it is; a
// subscription with no position yet takes the event's. The queue's mu is
// held.
func (sub *subscription) admitLocked(p Position) verdict {
	switch {
	case p.IsZero():
		return appendIt
	case sub.pos.IsZero():
		sub.pos = p
		return appendIt
	case p.Epoch < sub.pos.Epoch:
		return dropIt
	case p.Epoch > sub.pos.Epoch:
		sub.pos = p
		return resyncIt
	case p.Offset <= sub.pos.Offset:
		return dropIt
	case p.Offset == sub.pos.Offset+1:
		sub.pos = p
		return appendIt
	}
	return parkIt
}
