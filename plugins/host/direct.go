package host

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "meshgate/plugins/proto"
	"meshgate/shard"
)

// direct is the host's side of a publish_direct plugin: publishes it has
// delivered without asking the plugin, waiting to be reported to it
// (queue) or acknowledged by it (etags). Safe for concurrent use.
//
// The invariant it keeps: while a delivered publish is not acknowledged,
// Authorize and Current answer its etag for that resource, so nobody is
// told an etag older than one the gateway delivered, although the plugin
// records it later.
type direct struct {
	interval time.Duration // at most one Published message per interval
	maxQueue int
	wake     chan struct{} // cap 1: the queue is not empty

	mu    sync.Mutex
	seq   uint64 // of the last publish queued
	queue []*pb.PublishRequest
	etags map[string]pendingEtag // resource → its last unacknowledged publish
}

type pendingEtag struct {
	etag string
	seq  uint64
}

// DirectInterval is how often a publish_direct plugin hears of delivered
// publishes at most: one Published message, so one wake-up of the
// plugin, per interval however many publishes it carries.
const DirectInterval = 10 * time.Millisecond

// maxDirectQueue bounds the publishes waiting for a plugin that does not
// keep up; beyond it `publish` fails with UNAVAILABLE.
const maxDirectQueue = 1 << 16

func newDirect() *direct {
	return &direct{interval: DirectInterval, maxQueue: maxDirectQueue, wake: make(chan struct{}, 1), etags: make(map[string]pendingEtag)}
}

// add queues r for the plugin and records its etag as pending. It fails
// when the plugin is that far behind.
func (d *direct) add(r *pb.PublishRequest) error {
	d.mu.Lock()
	if len(d.etags) >= d.maxQueue || len(d.queue) >= d.maxQueue {
		d.mu.Unlock()
		return fmt.Errorf("%w: the publisher is behind recording publishes: retry", shard.ErrUnavailable)
	}
	d.seq++
	d.queue = append(d.queue, r)
	d.etags[r.GetResource()] = pendingEtag{etag: r.GetEtag(), seq: d.seq}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return nil
}

// etag returns the pending etag of resource, if any.
func (d *direct) etag(resource string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.etags[resource]
	return e.etag, ok
}

// answer is what a call that read the plugin's etags (Authorize, Current)
// answers for resource: the pending etag after the call, else the one
// before it, else the plugin's. A publish pending before the call may be
// recorded and acknowledged while the plugin answers from what it had,
// so the pending etag is read on both sides. A publish that was neither
// pending before nor after was delivered after the call began: its
// caller had linked before asking (shard.Store.Subscribe), so it reaches
// the caller's queue, and a RESYNC asking Current is superseded by it.
func (d *direct) answer(resource, before string, pendingBefore bool, plugin string, known bool) (string, bool) {
	if e, ok := d.etag(resource); ok {
		return e, true
	}
	if pendingBefore {
		return before, true
	}
	return plugin, known
}

// pending counts the resources with an unacknowledged publish.
func (d *direct) pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.etags)
}

// ack forgets the pending etags the plugin has recorded: those of
// publishes up to seq.
func (d *direct) ack(seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for r, e := range d.etags {
		if e.seq <= seq {
			delete(d.etags, r)
		}
	}
}

// take returns the queued publishes and the seq of the last one.
func (d *direct) take() ([]*pb.PublishRequest, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queue
	d.queue = nil
	return q, d.seq
}

// report sends queued publishes to inst on its Host stream, one message
// per interval at most, until ctx ends.
func (d *direct) report(ctx context.Context, inst *instance) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-d.wake:
		case <-ctx.Done():
			return
		}
		if q, seq := d.take(); len(q) > 0 {
			inst.send(&pb.HostMessage{Msg: &pb.HostMessage_Published{Published: &pb.Published{Seq: seq, Publishes: q}}})
		}
		t.Reset(d.interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// publishDirect delivers a publish to a publish_direct plugin's resource
// as the one CHANGED event the plugin would have returned, and queues it
// for the plugin. The pending etag is recorded before the delivery, as
// the plugin records it before answering Publish.
func (h *Host) publishDirect(ctx context.Context, inst *instance, p shard.Principal, resource, etag string, payload []byte) (int, error) {
	ev := &pb.Event{Kind: pb.Event_CHANGED, Resource: resource, Etag: etag, Payload: payload}
	if !inst.valid(ev) {
		return 0, nil // dropped, as handle drops it
	}
	if err := inst.direct.add(&pb.PublishRequest{Principal: principalProto(p), Resource: resource, Etag: etag, Payload: payload}); err != nil {
		return 0, err
	}
	return inst.handleChecked(ctx, ev)
}
