package shard

import (
	"context"
	"slices"
)

// Reader is what transports read a queue through: a Stream here, or a
// relay from the node that holds the queue.
type Reader interface {
	// Next appends up to limit notifications to dst. It returns
	// ErrQueueNotFound once the queue is gone.
	Next(dst []Notification, limit int) ([]Notification, error)
	// Close detaches the reader. Safe to call twice.
	Close()
}

var _ Reader = (*Stream)(nil)

// Lag is how many notifications the queue holds beyond the cursor.
func (st *Stream) Lag() uint64 {
	st.q.mu.Lock()
	defer st.q.mu.Unlock()
	return st.q.lastSeq - min(st.cursor, st.q.lastSeq)
}

// Cursor is the seq of the last notification Next handed out.
func (st *Stream) Cursor() uint64 { return st.cursor }

// Stream is a reader attached to a queue: it hands out the queue's
// notifications in seq order from a cursor, and keeps the queue's lease
// alive while it is open. It starts no goroutine: its Listener is told when
// to call Next. A Stream is used by one goroutine at a time; Close may be
// called from any goroutine.
type Stream struct {
	s      *Store
	q      *queue
	l      Listener
	cursor uint64
}

// Attach opens a stream on p's queue that starts after seq `after`,
// acknowledging everything up to it. l is notified whenever Next may have
// something new, including once right away if something is buffered.
func (s *Store) Attach(ctx context.Context, p Principal, name string, after uint64, l Listener) (*Stream, error) {
	return s.attach(ctx, p, name, after, true, l)
}

// Resume opens a stream like Attach but acknowledges nothing: it continues
// a stream that was reading elsewhere (its queue moved) from its cursor, so
// entries kept for a reconnect stay kept.
func (s *Store) Resume(ctx context.Context, p Principal, name string, cursor uint64, l Listener) (*Stream, error) {
	return s.attach(ctx, p, name, cursor, false, l)
}

func (s *Store) attach(_ context.Context, p Principal, name string, after uint64, ack bool, l Listener) (*Stream, error) {
	q, err := s.lockLive(p, name)
	if err != nil {
		return nil, err
	}
	if err := q.checkAfterLocked(after); err != nil {
		q.mu.Unlock()
		return nil, err
	}
	if ack {
		q.ackLocked(after)
	}
	q.listeners = append(slices.Clip(q.listeners), l)
	pending := q.pendingLocked(after)
	q.mu.Unlock()
	s.cfg.Observer.StreamOpened(p.User, p.Device)
	if pending {
		l.Notify()
	}
	return &Stream{s: s, q: q, l: l, cursor: after}, nil
}

// Next appends to dst up to limit notifications after the cursor and moves
// the cursor past them. It returns ErrQueueNotFound once the queue is gone
// (deleted or, for a closed stream, expired).
func (st *Stream) Next(dst []Notification, limit int) ([]Notification, error) {
	q := st.q
	now := st.s.cfg.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.goneLocked(); err != nil {
		return dst, err
	}
	n := len(dst)
	dst = q.readLocked(st.cursor, limit, dst, now, &st.s.counters.Overflows)
	if len(dst) > n {
		st.cursor = dst[len(dst)-1].Seq
		if st.cursor > q.delivered {
			q.delivered = st.cursor
			q.trimDeliveredLocked(st.s.cfg.RetainDelivered)
		}
	}
	return dst, nil
}

// Close detaches the stream and renews the queue's lease from now. Safe to
// call twice.
func (st *Stream) Close() {
	q := st.q
	q.mu.Lock()
	i := slices.Index(q.listeners, st.l)
	if i < 0 {
		q.mu.Unlock()
		return
	}
	q.listeners = slices.Delete(slices.Clone(q.listeners), i, i+1)
	q.renewLocked(st.s.cfg.Now())
	q.mu.Unlock()
	st.s.cfg.Observer.StreamClosed(q.owner.user, q.owner.device)
}
