package host

import (
	"context"
	"sync"
	"time"

	pb "meshgate/plugins/proto"
)

// SessionInterval is how often a plugin that reads session events in
// batches (session_batches) hears of devices at most: one Host message,
// so one wake-up of the plugin, per interval however many devices came
// and went. Without batches a reconnect storm woke the presence plugin
// once per device (13 µs of its CPU each, BENCHMARKS.md R).
const SessionInterval = 10 * time.Millisecond

// maxSessionBatch bounds the events waiting for a plugin: a caller that
// finds the batch full sends it itself, so events are never dropped and
// a plugin that does not keep up slows the callers down instead.
const maxSessionBatch = 4096

// sessionBatch holds the session events waiting for one plugin, oldest
// first. Safe for concurrent use.
type sessionBatch struct {
	wake chan struct{} // cap 1: events are waiting

	mu     sync.Mutex
	events []*pb.SessionEvent
}

func newSessionBatch() *sessionBatch { return &sessionBatch{wake: make(chan struct{}, 1)} }

// add queues ev for inst. When the batch is full it is sent at once, on
// the caller's goroutine.
func (b *sessionBatch) add(inst *instance, ev *pb.SessionEvent) {
	b.mu.Lock()
	b.events = append(b.events, ev)
	if len(b.events) >= maxSessionBatch {
		// Sent under b.mu, so the batch the reporter takes next is
		// younger than this one: the plugin hears events in order.
		b.sendLocked(inst)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// sendLocked sends the waiting events as one message. b.mu held.
func (b *sessionBatch) sendLocked(inst *instance) {
	if len(b.events) == 0 {
		return
	}
	evs := b.events
	b.events = nil
	inst.send(&pb.HostMessage{Msg: &pb.HostMessage_Sessions{Sessions: &pb.SessionEvents{Events: evs}}})
}

// report sends the waiting events to inst, one message per
// SessionInterval at most, until ctx ends.
func (b *sessionBatch) report(ctx context.Context, inst *instance) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-b.wake:
		case <-ctx.Done():
			return
		}
		b.mu.Lock()
		b.sendLocked(inst)
		b.mu.Unlock()
		t.Reset(SessionInterval)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
