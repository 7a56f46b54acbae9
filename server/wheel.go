package server

import (
	"context"
	"sync"
	"time"
)

// ticking is a long-lived connection the wheel visits: it checks its own
// deadlines (init, token expiry, idleness) and sends keep-alives. tick must
// not block.
type ticking interface {
	tick(now time.Time)
	// goingAway tells the connection the server is shutting down.
	goingAway()
}

// wheel is the one goroutine that drives every connection's timers, so an
// idle connection costs no timer and no goroutine of its own.
type wheel struct {
	mu    sync.Mutex
	conns map[ticking]struct{}
	now   func() time.Time
	done  chan struct{}
	wg    sync.WaitGroup // connection handlers still running

	everyMinute func() // housekeeping, run from the wheel's goroutine
	lastSweep   time.Time
}

func newWheel(ctx context.Context, every time.Duration, now func() time.Time, everyMinute func()) *wheel {
	w := &wheel{conns: make(map[ticking]struct{}), now: now, done: make(chan struct{}), everyMinute: everyMinute, lastSweep: now()}
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.turn()
			}
		}
	}()
	return w
}

func (w *wheel) turn() {
	now := w.now()
	if w.everyMinute != nil && now.Sub(w.lastSweep) > time.Minute {
		w.lastSweep = now
		w.everyMinute()
	}
	w.mu.Lock()
	list := make([]ticking, 0, len(w.conns))
	for c := range w.conns {
		list = append(list, c)
	}
	w.mu.Unlock()
	for _, c := range list {
		c.tick(now)
	}
}

// add registers c; done must be called when its handler returns.
func (w *wheel) add(c ticking) {
	w.wg.Add(1)
	w.mu.Lock()
	w.conns[c] = struct{}{}
	w.mu.Unlock()
}

func (w *wheel) remove(c ticking) {
	w.mu.Lock()
	delete(w.conns, c)
	w.mu.Unlock()
	w.wg.Done()
}

// streamCounts are the open streams by transport, as /metrics labels them.
type streamCounts struct {
	ws, sse, multipart int
}

func (n streamCounts) total() int { return n.ws + n.sse + n.multipart }

// countByKind counts WebSocket, SSE and multipart (Apollo) streams.
func (w *wheel) countByKind() streamCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n streamCounts
	for c := range w.conns {
		switch c := c.(type) {
		case *wsConn:
			n.ws++
		case *sseConn:
			if c.multipart {
				n.multipart++
			} else {
				n.sse++
			}
		}
	}
	return n
}

func (w *wheel) wait() { <-w.done }

// goingAway tells every connection the server is shutting down.
func (w *wheel) goingAway() {
	w.mu.Lock()
	list := make([]ticking, 0, len(w.conns))
	for c := range w.conns {
		list = append(list, c)
	}
	w.mu.Unlock()
	for _, c := range list {
		c.goingAway()
	}
}

// drain waits until every connection handler has returned, or ctx ends.
func (w *wheel) drain(ctx context.Context) error {
	ch := make(chan struct{})
	go func() { w.wg.Wait(); close(ch) }()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
