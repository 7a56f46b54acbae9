package server

import (
	"context"
	"sync/atomic"
)

// handlers runs WebSocket messages off their readers' stacks (see
// wsConn.handleOffStack) on goroutines that are kept for the next
// message. Handling a message (JSON, gqlgen's parse and validation, a
// resolver) grows a stack to tens of KiB; a fresh goroutine per message
// paid that growth every time (stack copies were 9 % of a reconnect
// storm's CPU, BENCHMARKS.md R), and the reader, which lives as long as
// its connection, must not grow its own.
//
// A job goes to an idle worker if one is waiting, else to a new worker
// while fewer than max exist, else to a goroutine of its own that ends
// with it: a burst is never queued behind a slow job (a subscribe waiting
// on a peer or a plugin). Workers end when ctx does, after their job.
// Safe for concurrent use.
type handlers struct {
	ctx  context.Context
	max  int32
	jobs chan func() // unbuffered: a send succeeds only into an idle worker
	n    atomic.Int32
}

func newHandlers(ctx context.Context, maxWorkers int) *handlers {
	return &handlers{ctx: ctx, max: int32(maxWorkers), jobs: make(chan func())} //nolint:gosec // a small configured count
}

// run runs f on a kept worker, or on a goroutine of its own. It never
// blocks. f must not panic (handleOffStack recovers its own): a panic
// in a kept goroutine would end the process.
func (h *handlers) run(f func()) {
	select {
	case h.jobs <- f:
		return
	default:
	}
	if h.n.Add(1) <= h.max {
		go h.work(f)
		return
	}
	h.n.Add(-1)
	go f()
}

func (h *handlers) work(f func()) {
	defer h.n.Add(-1)
	for {
		f()
		select {
		case f = <-h.jobs:
		case <-h.ctx.Done():
			return
		}
	}
}

// maxHandlers is how many handler goroutines are kept: enough for the
// messages of a connect burst on a few cores, each holding a grown stack
// (tens of KiB) while idle.
const maxHandlers = 64
