package server

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// writers is the pool that drains WebSocket connections with pending
// output. A queue of connections and a few workers replace a goroutine per
// connection per burst. That keeps the run queue short, so the goroutines
// that bring publishes in (HTTP, gRPC) are not starved while thousands of
// sockets are written. It also lets notifications that arrive meanwhile
// share one write, and saves goroutine starts and stack growth.
//
// A worker blocked in a write (a stalled client, up to WS.WriteTimeout)
// must not stop delivery to everyone else. When the queue has work and no
// worker has made progress for a tick, the monitor starts another worker.
// Workers beyond the base number exit once the queue is empty.
type writers struct {
	base     int
	coalesce bool

	mu      sync.Mutex
	cond    *sync.Cond
	q       []*wsConn
	head    int
	workers int
	stopped bool

	progress atomic.Uint64 // connections served
	queued   atomic.Int64  // connections waiting in q
	pause    atomic.Int64  // unix nanoseconds until which every worker waits (see work)
	// writes and notes count socket writes and the notifications they
	// carried; lastWrites and lastNotes are their values at the last
	// coalescing decision (worker that decides only).
	writes, notes         atomic.Uint64
	lastWrites, lastNotes atomic.Uint64
}

// wrote records one socket write carrying notes notifications.
func (w *writers) wrote(notes int) {
	w.writes.Add(1)
	w.notes.Add(uint64(notes))
}

// behind reports whether the writes since the last call carried on
// average at least two notifications: events arrive faster than the
// writers drain them, and a pause makes more of them share a write.
func (w *writers) behind() bool {
	writes, notes := w.writes.Load(), w.notes.Load()
	dw, dn := writes-w.lastWrites.Swap(writes), notes-w.lastNotes.Swap(notes)
	return dw > 0 && dn >= 2*dw
}

// roundsPerTurn bounds how long one connection holds a worker.
const roundsPerTurn = 4

func newWriters(ctx context.Context, base int, coalesce bool) *writers {
	w := &writers{base: base, coalesce: coalesce}
	w.cond = sync.NewCond(&w.mu)
	w.mu.Lock()
	for range base {
		w.spawnLocked()
	}
	w.mu.Unlock()
	go w.monitor(ctx)
	return w
}

func (w *writers) spawnLocked() {
	w.workers++
	go w.work()
}

// push queues c, which has output pending and is marked writing.
func (w *writers) push(c *wsConn) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		go c.writeLoop(1 << 30) // shutting down: drain on its own
		return
	}
	w.q = append(w.q, c)
	w.queued.Add(1)
	w.mu.Unlock()
	w.cond.Signal()
}

func (w *writers) pop() (*wsConn, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.head == len(w.q) {
		if w.stopped || w.workers > w.base {
			w.workers--
			return nil, false
		}
		w.cond.Wait()
	}
	c := w.q[w.head]
	w.q[w.head] = nil
	w.head++
	w.queued.Add(-1)
	if w.head == len(w.q) {
		w.q, w.head = w.q[:0], 0
	} else if w.head > 1024 && w.head*2 > len(w.q) {
		n := copy(w.q, w.q[w.head:])
		w.q, w.head = w.q[:n], 0
	}
	return c, true
}

// Coalescing under load. When at least coalesceBacklog connections wait
// for a writer and the last writes carried two notifications or more each
// (the writers are behind the publishers), all workers pause for pauseFor
// after every pauseEvery connections served. The processor then goes
// idle and the scheduler polls the network at once (while goroutines are
// runnable, Go polls it only every 10 ms), so publishes arriving meanwhile
// come in now, and their notifications join writes still queued: under a
// fan-out burst several events share one write. The pause lasts until the
// next network event, at most the runtime's 1 ms poll, so a backlog of N
// connections is drained at most N/pauseEvery ms later. A node that keeps
// up (one notification per write) or has a short backlog never pauses: it
// writes each notification at once.
const (
	coalesceBacklog = 256
	pauseEvery      = 64
	pauseFor        = 50 * time.Microsecond
)

// shouldPause decides, after the served-th connection, whether the
// workers pause to coalesce (see above).
func (w *writers) shouldPause(served uint64) bool {
	return w.coalesce && served%pauseEvery == 0 && w.queued.Load() >= coalesceBacklog && w.behind()
}

func (w *writers) work() {
	for {
		if until := w.pause.Load(); until != 0 {
			if d := time.Until(time.Unix(0, until)); d > 0 {
				time.Sleep(d)
			}
		}
		c, ok := w.pop()
		if !ok {
			return
		}
		if c.writeLoop(roundsPerTurn) {
			w.push(c)
		}
		if w.shouldPause(w.progress.Add(1)) {
			w.pause.Store(time.Now().Add(pauseFor).UnixNano())
			continue
		}
		runtime.Gosched() // let the publish path in between sockets
	}
}

// monitor adds a worker whenever there is queued work and no progress for
// a tick: every worker is stuck in a write to a stalled client.
func (w *writers) monitor(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			w.stopped = true
			w.mu.Unlock()
			w.cond.Broadcast()
			return
		case <-t.C:
		}
		p := w.progress.Load()
		w.mu.Lock()
		if p == last && w.head < len(w.q) {
			w.spawnLocked()
		}
		w.mu.Unlock()
		last = p
	}
}
