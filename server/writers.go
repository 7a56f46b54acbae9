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
	base int

	mu      sync.Mutex
	cond    *sync.Cond
	q       []*wsConn
	head    int
	workers int
	stopped bool

	progress atomic.Uint64 // connections served
}

// roundsPerTurn bounds how long one connection holds a worker.
const roundsPerTurn = 4

func newWriters(ctx context.Context, base int) *writers {
	w := &writers{base: base}
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
	if w.head == len(w.q) {
		w.q, w.head = w.q[:0], 0
	} else if w.head > 1024 && w.head*2 > len(w.q) {
		n := copy(w.q, w.q[w.head:])
		w.q, w.head = w.q[:n], 0
	}
	return c, true
}

func (w *writers) work() {
	for {
		c, ok := w.pop()
		if !ok {
			return
		}
		if c.writeLoop(roundsPerTurn) {
			w.push(c)
		}
		w.progress.Add(1)
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
