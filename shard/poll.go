package shard

import (
	"cmp"
	"context"
	"fmt"
	"time"
)

// Page is the result of a poll.
type Page struct {
	Items []Notification
	// LastSeq is what to pass as `after` next time.
	LastSeq uint64
	HasMore bool
}

// Poll acknowledges every notification of p's queue up to after, renews the
// lease, and returns up to limit notifications after it. limit 0 only
// acknowledges. With wait > 0 and nothing to return, it blocks until a
// notification lands, the queue goes, wait passes or ctx ends; waiting costs
// one channel shared by all waiters of the queue, never a poll loop.
func (s *Store) Poll(ctx context.Context, p Principal, name string, after uint64, limit int, wait time.Duration) (Page, error) {
	if limit < 0 || limit > s.cfg.MaxPollLimit {
		return Page{}, fmt.Errorf("%w: limit must be 0-%d", ErrInvalidInput, s.cfg.MaxPollLimit)
	}
	if wait < 0 || wait > s.cfg.MaxWait {
		return Page{}, fmt.Errorf("%w: waitSeconds must be 0-%d", ErrInvalidInput, int(s.cfg.MaxWait/time.Second))
	}
	q, err := s.lookup(p, name)
	if err != nil {
		return Page{}, err
	}
	s.cfg.Observer.Read(p.User, p.Device, q.ttl)
	var timer *time.Timer
	for {
		now := s.cfg.Now()
		q.mu.Lock()
		if err := cmp.Or(q.goneLocked(), q.checkAfterLocked(after)); err != nil {
			q.mu.Unlock()
			return Page{}, err
		}
		q.ackLocked(after)
		q.renewLocked(now)
		if limit == 0 || wait == 0 || q.pendingLocked(after) {
			items := q.readLocked(after, limit+1, nil, now, &s.counters.Overflows)
			q.mu.Unlock()
			pg := Page{Items: items[:min(len(items), limit)], LastSeq: after, HasMore: len(items) > limit}
			if n := len(pg.Items); n > 0 {
				pg.LastSeq = pg.Items[n-1].Seq
			}
			return pg, nil
		}
		if q.waitCh == nil {
			q.waitCh = make(chan struct{})
		}
		ch := q.waitCh
		q.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C:
			wait = 0 // read once more and return what is there
		case <-ctx.Done():
			return Page{}, ctx.Err()
		}
	}
}
