package shard

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Listener is told that a queue it is attached to has news: a notification
// landed, or the queue went away. Notify is called with no lock held and must
// not block; transports set a flag and schedule their writer.
type Listener interface {
	Notify()
}

// queue is a device's mailbox. Seqs are contiguous: the buffered entries hold
// seqs lastSeq-n+1 … lastSeq in ring order, so an entry is only an *Event and
// an append allocates nothing per subscriber.
type queue struct {
	name    string
	owner   owner
	created time.Time
	ttl     time.Duration

	mu        sync.Mutex
	expires   time.Time
	ring      []*Event // grows by doubling up to Config.BufferSize
	head, n   int
	lastSeq   uint64
	acked     uint64 // highest seq acknowledged by a reader
	delivered uint64 // highest seq written to an attached stream
	// listeners are the attached streams' (one each: attach adds it,
	// Close removes it); copy-on-write: readers copy the slice header under mu
	listeners []Listener
	waitCh    chan struct{}
	subs      map[string]*subscription // resource → subscription
	dead      bool
	moved     bool // dead because handed to another node, not deleted
}

// goneLocked is nil for a live queue, else ErrMoved or ErrQueueNotFound. mu held.
func (q *queue) goneLocked() error {
	switch {
	case q.moved:
		return ErrMoved
	case q.dead:
		return ErrQueueNotFound
	}
	return nil
}

// subscription is one (queue, resource) pair: held in its queue (subs)
// and, the same value, in this node's local table of the resource
// (fanout), which counts as this node's interest in the resource's
// subscriber list. Every field is guarded by the queue's mu. It is kept
// to 64 bytes, one allocation size class (one million of them is issue
// 7's scenario D): what only a subscription being made or one waiting on
// a gap needs is out of line, in x.
type subscription struct {
	// etag is the last etag appended for the resource (or answered by subscribe).
	etag string
	// pos is the position of the last event appended (zero: none yet);
	// pos.At is etag's, so etags of two epochs compare (Position.Before).
	// It moves only through moveTo.
	pos Position
	// linked is the offset, in pos's epoch, of the list's position when
	// the subscription was linked (made, or allowed again by a refresh
	// subscribe); 0 once pos is of another epoch than the link's: the
	// subscription came before every event of that epoch. A revoke of
	// pos's epoch past it came after the subscription was allowed, and
	// covers it wherever pos stands now (Event.revokes): a revoke
	// skipped in a gap, or by a RESYNC, still removes it when it comes
	// again (the list announces its last revokes with its tail).
	linked uint64
	// created is in unix nanoseconds; -1 once the subscription is removed
	// from its queue (or the queue is gone): the local table drops it.
	created int64
	// x is nil unless the subscription is pending or holds parked events.
	x *subExtra
}

// subExtra is the rarely used part of a subscription.
type subExtra struct {
	// parked holds events that came after a gap, in offset order, until
	// it fills (see parkLocked).
	parked []*Event
	// early are revokes of the owner's that came before the subscription's
	// link answered (unlinked): whether each came before the link is
	// read from the link's position, by the subscribe (see Subscribe).
	early []*Event
	// pending: linked, not yet allowed by the publisher; seen: an event
	// arrived meanwhile (etag is its etag); unlinked: its link has not
	// answered yet (it is in the local table already); unsubscribed:
	// removed by Unsubscribe (not by a revoke) while a subscribe made it.
	pending, seen, unlinked, unsubscribed bool
	// made, made for a subscribe of the same that waits for this one's
	// subscribe to end, is closed when it ends: allowed, or given up
	// (see endPendingLocked).
	made chan struct{}
}

// moveTo moves s to p. Invariant: linked is an offset of pos's epoch,
// or 0 (see linked).
func (s *subscription) moveTo(p Position) {
	if p.Epoch != s.pos.Epoch {
		s.linked = 0
	}
	s.pos = p
}

// linkedAt records that s was linked (allowed) when its list stood at p,
// if s stands in p's epoch (see linked).
func (s *subscription) linkedAt(p Position) {
	if p.Epoch == s.pos.Epoch {
		s.linked = max(s.linked, p.Offset)
	}
}

func (s *subscription) gone() bool { return s.created < 0 }
func (s *subscription) remove()    { s.created = -1 }

// isPending reports whether s is linked but not yet allowed.
func (s *subscription) isPending() bool { return s.x != nil && s.x.pending }

// isUnlinked reports whether s's link has not answered yet.
func (s *subscription) isUnlinked() bool { return s.x != nil && s.x.unlinked }

// endPendingLocked wakes the subscribes waiting for s's first subscribe
// to end (allowed, or given up). Its queue's lock held.
func (s *subscription) endPendingLocked() {
	if s.x != nil && s.x.made != nil {
		close(s.x.made)
		s.x.made = nil
	}
}

// tidy lets x go once it holds nothing (a timer waiting on a gap holds
// its own x, so a later one cannot be mistaken for it).
func (s *subscription) tidy() {
	if x := s.x; x != nil && !x.pending && len(x.parked) == 0 {
		s.x = nil
	}
}

// dropParked forgets s's parked events.
func (s *subscription) dropParked() {
	if s.x != nil {
		s.x.parked = nil
		s.tidy()
	}
}

// took records ev, appended for s (or seen while pending), as s's last
// etag if it carries one.
func (s *subscription) took(ev *Event) {
	if ev.Kind == Changed || ev.Kind == Resync {
		s.etag = ev.Etag
	}
}

// passedRevoke keeps, for s that admitted (v) a revoke of another
// principal's, the At it had before (at): a revoke is only a place in
// the stream, so s moves past its offset and still holds the etag it
// held, with that etag's At (subscription.pos).
func (s *subscription) passedRevoke(v verdict, at uint64) {
	if v == appendIt {
		s.pos.At = at
	}
}

// firstSeq is the seq of the oldest buffered entry (lastSeq+1 if none). mu held.
func (q *queue) firstSeq() uint64 { return q.lastSeq - uint64(q.n) + 1 }

// offerLocked hands ev, an event of a resource sub subscribes to, to q: it
// is appended, turned into a RESYNC, held until a gap before it fills, or
// dropped, as the event's position says (see admitLocked). A pending
// subscription appends nothing but remembers the newest etag, for the
// subscribe that answers it. It returns the listeners to notify. mu held.
func (q *queue) offerLocked(s *Store, sub *subscription, ev *Event) []Listener {
	capacity, retain := s.cfg.BufferSize, s.cfg.RetainDelivered
	at := sub.pos.At
	v := sub.admitLocked(ev.Pos)
	pending := sub.isPending()
	if v == parkIt && pending {
		sub.moveTo(ev.Pos) // a pending one only needs the newest etag
		v = resyncIt
	}
	switch v {
	case dropIt:
		// An event stamped before the etag sub holds (olderAt) may
		// still fill the gap before held events: they go on now.
		return q.drainParkedLocked(sub, nil, capacity, retain)
	case parkIt:
		return q.parkLocked(s, sub, ev)
	case resyncIt:
		sub.dropParked()
		if ev.Kind != Resync {
			ev = &Event{Kind: Resync, Resource: ev.Resource, Etag: ev.Etag, Time: ev.Time, Pos: ev.Pos}
		}
	}
	if pending {
		// A revoke of another principal's (the caller checks revokes)
		// carries the list's etag at its position: seen like a RESYNC,
		// unless the list knew none (then the publisher's answer is).
		if ev.Kind != Revoked || ev.Etag != "" {
			sub.etag = ev.Etag
			sub.x.seen = true
		}
		return nil
	}
	if ev.Kind == Revoked { // another principal's
		sub.passedRevoke(v, at)
		return q.drainParkedLocked(sub, nil, capacity, retain)
	}
	sub.took(ev)
	return q.drainParkedLocked(sub, q.appendLocked(ev, capacity, retain), capacity, retain)
}

// drainParkedLocked appends the events held in sub whose gap has filled,
// adding their listeners to ls. The gap before held events may have
// filled: each is admitted as it would be arriving now. Invariant: parked
// events are of sub's epoch and past its offset (a move of sub to another
// position, Resync or a refresh subscribe, drops them; a pending
// subscription parks nothing), so admitLocked appends the next one, drops
// one overtaken, and moves past one stamped before the etag held
// (olderAt). mu held.
func (q *queue) drainParkedLocked(sub *subscription, ls []Listener, capacity, retain int) []Listener {
	for x := sub.x; x != nil && len(x.parked) > 0 && x.parked[0].Pos.Offset <= sub.pos.Offset+1; {
		next := x.parked[0]
		x.parked = x.parked[1:]
		at := sub.pos.At
		switch v := sub.admitLocked(next.Pos); {
		case next.Kind == Revoked:
			sub.passedRevoke(v, at)
		case v == appendIt:
			sub.took(next)
			ls = q.appendLocked(next, capacity, retain)
		}
	}
	sub.tidy()
	return ls
}

// parkLocked holds ev, which came after a gap, in sub, in offset order.
// The first one held starts the timer that gives up on the gap. mu held.
func (q *queue) parkLocked(s *Store, sub *subscription, ev *Event) []Listener {
	if sub.x == nil {
		sub.x = &subExtra{}
	}
	x := sub.x
	i, held := slices.BinarySearchFunc(x.parked, ev.Pos.Offset, func(p *Event, off uint64) int { return cmp.Compare(p.Pos.Offset, off) })
	if held {
		return nil
	}
	x.parked = slices.Insert(x.parked, i, ev)
	if len(x.parked) > maxParked {
		return q.giveUpGapLocked(s, sub, x)
	}
	if len(x.parked) == 1 {
		q.holdGapLocked(s, sub, x)
	}
	return nil
}

// holdGapLocked starts the timer that gives up on x's gap in sub after
// holdGap (a gap filled or given up on meanwhile has let x go: the timer
// then finds sub.x changed and does nothing). mu held.
func (q *queue) holdGapLocked(s *Store, sub *subscription, x *subExtra) {
	time.AfterFunc(holdGap, func() {
		q.mu.Lock()
		ls := q.giveUpGapLocked(s, sub, x)
		q.mu.Unlock()
		notifyAll(ls)
	})
}

// giveUpGapLocked announces the gap before sub's held events (if they are
// still those of x's gap) with one RESYNC carrying the newest of them:
// what was in the gap is lost. x names the gap: a subscription's x lives
// from the first event it parks until its parked events are gone (tidy
// lets it go then; a pending subscription, whose x lives longer, parks
// nothing), so a later gap has another x and a timer of an earlier one
// finds sub.x changed. A nil x, or one with nothing parked, announces
// nothing. The gap may have held a revoke of the queue's owner that no
// later event carries: its principal is asked again (Store.skipped).
// mu held.
func (q *queue) giveUpGapLocked(s *Store, sub *subscription, x *subExtra) []Listener {
	if sub.x != x || x == nil || len(x.parked) == 0 || sub.gone() || q.dead {
		return nil
	}
	last := x.parked[len(x.parked)-1]
	x.parked = nil
	sub.tidy()
	sub.moveTo(last.Pos)
	sub.etag = last.Etag
	s.skipped(Subscriber{Resource: last.Resource, User: q.owner.user, Device: q.owner.device})
	return q.appendLocked(&Event{Kind: Resync, EtagUnknown: last.EtagUnknown, Resource: last.Resource, Etag: last.Etag, Time: last.Time, Pos: last.Pos}, s.cfg.BufferSize, s.cfg.RetainDelivered)
}

// appendLocked adds ev and returns the listeners to notify. mu held.
func (q *queue) appendLocked(ev *Event, capacity, retain int) []Listener {
	if q.n == capacity {
		q.dropFrontLocked(1)
	}
	if q.n == len(q.ring) {
		q.growLocked(capacity)
	}
	q.ring[(q.head+q.n)%len(q.ring)] = ev
	q.n++
	q.lastSeq++
	q.trimDeliveredLocked(retain)
	if q.waitCh != nil {
		close(q.waitCh)
		q.waitCh = nil
	}
	return q.listeners
}

func (q *queue) growLocked(capacity int) {
	ring := make([]*Event, min(max(4, 2*len(q.ring)), capacity))
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

func (q *queue) dropFrontLocked(k int) {
	for ; k > 0 && q.n > 0; k-- {
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	}
	if q.n == 0 && len(q.ring) > 64 {
		q.ring, q.head = nil, 0 // give a drained big buffer back
	}
}

// ackLocked acknowledges every seq up to after and drops those entries. mu held.
func (q *queue) ackLocked(after uint64) {
	after = min(after, q.lastSeq)
	if after <= q.acked {
		return
	}
	q.acked = after
	if first := q.firstSeq(); after >= first {
		q.dropFrontLocked(int(after - first + 1))
	}
}

// trimDeliveredLocked keeps at most retain entries that a stream has written
// but no reader has acknowledged, so a reconnecting reader can resume a few
// in-flight notifications while a live stream never fills the buffer. mu held.
func (q *queue) trimDeliveredLocked(retain int) {
	first := q.firstSeq()
	if q.delivered < first {
		return
	}
	deliveredBuffered := int(q.delivered - first + 1)
	if deliveredBuffered > retain {
		q.dropFrontLocked(deliveredBuffered - retain)
	}
}

// readLocked returns up to limit notifications after seq `after`. If
// entries this reader had not acknowledged were dropped, the first returned
// notification is an OVERFLOW carrying the seq of the last dropped entry, so
// that the reader's seqs stay increasing and the loss is never silent; it
// counts in overflows. mu held.
func (q *queue) readLocked(after uint64, limit int, dst []Notification, now time.Time, overflows *atomic.Uint64) []Notification {
	first := q.firstSeq()
	gapFrom := max(after, q.acked) + 1
	if gapFrom < first && limit > 0 {
		gapTo := first - 1
		dst = append(dst, Notification{Seq: gapTo, Event: overflowEvent(gapFrom, gapTo, now)})
		overflows.Add(1)
		limit--
	}
	after = max(after, first-1)
	n := max(0, min(int(q.lastSeq-min(after, q.lastSeq)), limit))
	dst = slices.Grow(dst, n) // one allocation for the page, not one per doubling
	for s := after + 1; s <= after+uint64(n); s++ {
		i := (q.head + int(s-first)) % len(q.ring)
		dst = append(dst, Notification{Seq: s, Event: q.ring[i]})
	}
	return dst
}

func overflowEvent(from, to uint64, now time.Time) *Event {
	p := fmt.Appendf(make([]byte, 0, 64), `{"dropped":%d,"fromSeq":%d,"toSeq":%d}`, to-from+1, from, to)
	return &Event{Kind: Overflow, Time: now, Payload: p}
}

// checkAfterLocked refuses a cursor beyond the newest seq: a reader
// holding one (a stale or mistaken cursor) would otherwise silently skip
// the notifications up to it. mu held.
func (q *queue) checkAfterLocked(after uint64) error {
	if after > q.lastSeq {
		return fmt.Errorf("%w: after %d is beyond the queue's last seq %d", ErrInvalidInput, after, q.lastSeq)
	}
	return nil
}

// pendingLocked reports whether a reader at cursor `after` has something to read. mu held.
func (q *queue) pendingLocked(after uint64) bool {
	return after < q.lastSeq || q.dead
}

// depthLocked counts notifications neither acknowledged nor delivered. mu held.
func (q *queue) depthLocked() int {
	done := max(q.acked, q.delivered)
	if done >= q.lastSeq {
		return 0
	}
	return int(min(q.lastSeq-done, uint64(q.n)))
}

// renewLocked extends the lease from now. mu held.
func (q *queue) renewLocked(now time.Time) { q.expires = now.Add(q.ttl) }

// expiresLocked is when the lease ends; an attached stream keeps it a full ttl away. mu held.
func (q *queue) expiresLocked(now time.Time) time.Time {
	if len(q.listeners) > 0 {
		return now.Add(q.ttl)
	}
	return q.expires
}

// QueueInfo describes a queue to its owner.
type QueueInfo struct {
	Name              string
	CreatedAt         time.Time
	ExpiresAt         time.Time
	TTL               time.Duration
	Depth             int
	LastSeq           uint64
	SubscriptionCount int
}

func (q *queue) infoLocked(now time.Time) QueueInfo {
	return QueueInfo{
		Name:              q.name,
		CreatedAt:         q.created,
		ExpiresAt:         q.expiresLocked(now),
		TTL:               q.ttl,
		Depth:             q.depthLocked(),
		LastSeq:           q.lastSeq,
		SubscriptionCount: len(q.subs),
	}
}

func notifyAll(ls []Listener) {
	for _, l := range ls {
		l.Notify()
	}
}
