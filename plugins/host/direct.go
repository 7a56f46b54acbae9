package host

import (
	"context"
	"fmt"
	"strings"
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

	// ownRule is read_own_subtree: Authorize is answered here (authorizeOwn).
	ownRule bool

	mu    sync.Mutex
	seq   uint64 // of the last publish queued
	queue []*pb.PublishRequest
	etags map[string]pendingEtag // resource → its last unacknowledged publish
	// last is, with ownRule, the etag of each resource's last delivered
	// publish or event since the plugin started: what the plugin records
	// (it may set read_own_subtree only then), kept here so that
	// Authorize needs no call. At most maxRuleEtags resources, as the
	// built-in `user` plugin bounds its own (a resource beyond it is
	// answered "", and the store keeps what its list delivered).
	last map[string]string
}

// maxRuleEtags bounds direct.last (the `user` plugin's MaxResources).
const maxRuleEtags = 1 << 20

type pendingEtag struct {
	etag string
	seq  uint64
}

// DirectInterval is how often a publish_direct plugin hears of delivered
// publishes at most: one Published message, so one wake-up of the
// plugin, per interval however many publishes it carries. A publish after
// a quiet interval is reported at once. At 10 ms the wake-ups of the
// `user` plugin were 7 µs of CPU per publish at 2 000 publishes/s
// (BENCHMARKS.md, Cs); at 50 ms 3 µs, and at most 50 ms of publishes wait
// in the host (maxDirectQueue bounds them).
const DirectInterval = 50 * time.Millisecond

// maxDirectQueue bounds the publishes waiting for a plugin that does not
// keep up; beyond it `publish` fails with UNAVAILABLE.
const maxDirectQueue = 1 << 16

// newDirect returns the host's side of a publish_direct plugin; ownRule
// is its read_own_subtree.
func newDirect(ownRule bool) *direct {
	d := &direct{interval: DirectInterval, maxQueue: maxDirectQueue, wake: make(chan struct{}, 1), etags: make(map[string]pendingEtag), ownRule: ownRule}
	if ownRule {
		d.last = make(map[string]string)
	}
	return d
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

// recordLocked remembers etag as resource's last (ownRule only). d.mu held.
func (d *direct) recordLocked(resource, etag string) {
	if !d.ownRule {
		return
	}
	if _, ok := d.last[resource]; ok || len(d.last) < maxRuleEtags {
		d.last[resource] = etag
	}
}

// record remembers the etag of a CHANGED event, a direct publish or one
// the plugin reported itself, before it is delivered (ownRule only).
func (d *direct) record(resource, etag string) {
	if !d.ownRule {
		return
	}
	d.mu.Lock()
	d.recordLocked(resource, etag)
	d.mu.Unlock()
}

// authorizeOwn is Authorize by the read_own_subtree rule: p may read
// scheme:<p.User> and what is below it. It answers the last etag recorded
// before the call, which a publish delivered after it follows into the
// caller's queue (the caller linked before asking, shard.Store.Subscribe):
// the answer is never older than an etag delivered before it, the
// invariant direct.answer keeps for a call to the plugin.
func (d *direct) authorizeOwn(p shard.Principal, scheme, resource string) (string, error) {
	path := strings.TrimPrefix(resource, scheme+":")
	id, _, _ := strings.Cut(path, "/")
	if id != p.User {
		return "", fmt.Errorf("%w: %s:%s belongs to another user", shard.ErrForbidden, scheme, id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last[resource], nil
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
