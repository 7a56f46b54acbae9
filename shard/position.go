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

// lastEpoch makes epochs strictly increasing on this node even when the
// clock is coarse or steps back.
var lastEpoch atomic.Uint64

func newEpoch(now time.Time) uint64 {
	for {
		last := lastEpoch.Load()
		e := max(uint64(now.UnixNano()), last+1)
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
	resyncIt                // after a gap or in a newer epoch: append one RESYNC instead
)

// admitLocked decides what sub does with an event at p and moves sub's
// position. The invariant it keeps: a subscription appends an event only
// if its position is past the last one it appended, so an event sent
// twice, or overtaken by a newer one, is never appended (whatever the
// queue's buffer holds or a reader acknowledged); a gap, or a newer
// epoch, is announced with one RESYNC. An unstamped event (zero p) is
// appended as it is; a subscription with no position yet takes the
// event's. The queue's mu is held.
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
	sub.pos = p
	return resyncIt
}
