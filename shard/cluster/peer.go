package cluster

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// peer is this node's client of another node, with its outbox: the
// asynchronous ops (deliveries and revokes, interest, learns) sent in
// order, batched into one Push while the previous one is in flight.
type peer struct {
	n      *Node
	name   string
	conn   *grpc.ClientConn
	client pb.PeerClient
	// relays is the context of the streams relayed from the peer: ending
	// it ends them (dropRelays) before the connection closes.
	relays    context.Context
	endRelays context.CancelFunc

	mu      sync.Mutex
	ops     []*pb.Op
	queued  uint64 // ops ever queued
	sent    uint64 // ops ever sent (or dropped)
	closed  bool   // no more ops are queued: push hands them on itself
	wake    chanListener
	stop    chan struct{}
	exited  chan struct{} // closed when the outbox has sent or handed on all it held
	stopped sync.Once
}

const (
	maxBatchOps = 512
	maxOutbox   = 1 << 16 // ops waiting for one peer; beyond, new ones are dropped and logged
)

// peer returns the client of node, connecting on first use. It returns nil
// for an unknown node.
func (n *Node) peer(node string) *peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[node]; p != nil {
		return p
	}
	m, ok := n.members[node]
	if !ok || n.cfg.ClientTLS == nil {
		return nil
	}
	conn, err := grpc.NewClient(m.rpc,
		grpc.WithTransportCredentials(credentials.NewTLS(n.cfg.ClientTLS)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		grpc.WithUnaryInterceptor(n.intercept),
		grpc.WithStreamInterceptor(n.interceptStream),
	)
	if err != nil {
		n.log.Warn("peer connection", "peer", node, "err", err)
		return nil
	}
	p := &peer{n: n, name: node, conn: conn, client: pb.NewPeerClient(conn), wake: chanListener{ch: make(chan struct{}, 1)}, stop: make(chan struct{}), exited: make(chan struct{})}
	p.relays, p.endRelays = context.WithCancel(context.Background())
	n.peers[node] = p
	go p.send()
	return p
}

func (n *Node) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if d, ok := ctx.Deadline(); ok { // see serveIntercept
		ctx = metadata.AppendToOutgoingContext(ctx, deadlineKey, strconv.FormatInt(d.UnixNano(), 10))
	}
	if n.cfg.Intercept != nil {
		if err := n.cfg.Intercept(ctx, method); err != nil {
			return err
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (n *Node) interceptStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if n.cfg.Intercept != nil {
		if err := n.cfg.Intercept(ctx, method); err != nil {
			return nil, err
		}
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// isMember reports whether node is a live member.
func (n *Node) isMember(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.aliveLocked(node)
}

// dropPeer closes the client of a node that left.
func (n *Node) dropPeer(node string) {
	n.mu.Lock()
	p := n.peers[node]
	delete(n.peers, node)
	n.mu.Unlock()
	if p != nil {
		p.close()
	}
}

// close stops the outbox. If the peer left or died, what it still held
// is handed on (see handOn); if this node is closing, it is dropped.
func (p *peer) close() {
	p.stopped.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(p.stop)
		p.endRelays()
		p.conn.Close()
	})
}

// sentUpTo is how many of the ops ever queued have been sent.
func (p *peer) sentUpTo() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// push queues op for the peer.
func (p *peer) push(op *pb.Op) {
	p.mu.Lock()
	if p.closed { // it left or died after the caller chose it
		p.mu.Unlock()
		select { // what was queued before goes on first (at most 2 s)
		case <-p.exited:
		case <-time.After(2 * time.Second):
		}
		p.handOn([]*pb.Op{op})
		return
	}
	if len(p.ops) >= maxOutbox {
		p.mu.Unlock()
		p.n.stats.Dropped.Add(1)
		p.n.log.Warn("outbox full: op dropped", "peer", p.name)
		return
	}
	p.ops = append(p.ops, op)
	p.queued++
	p.mu.Unlock()
	p.wake.Notify()
}

// send drains the outbox, one Push at a time, so the peer applies ops in
// the order they were queued.
func (p *peer) send() {
	defer close(p.exited)
	for {
		select {
		case <-p.stop:
			// Closed while idle, or between batches: what is left goes on.
			p.sendBatch(math.MaxInt, p.handOn)
			return
		case <-p.wake.ch:
		}
		for p.sendBatch(maxBatchOps, p.deliver) {
		}
	}
}

// sendBatch takes up to limit ops off the outbox, gives them to send and
// counts them sent. It reports whether there were any.
func (p *peer) sendBatch(limit int, send func([]*pb.Op)) bool {
	p.mu.Lock()
	k := min(len(p.ops), limit)
	batch := p.ops[:k:k]
	p.ops = p.ops[k:]
	if len(p.ops) == 0 {
		p.ops = nil
	}
	p.mu.Unlock()
	if k == 0 {
		return false
	}
	send(batch)
	p.mu.Lock()
	p.sent += uint64(k)
	p.mu.Unlock()
	return true
}

func (p *peer) deliver(batch []*pb.Op) {
	var err error
	for attempt := range 6 {
		if attempt > 0 && !p.n.isMember(p.name) {
			break // it left or died: its queues went with it or elsewhere
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err = p.client.Push(ctx, &pb.PushRequest{Ops: batch})
		cancel()
		if err == nil {
			p.n.stats.forwarded(p.name, len(batch))
			return
		}
		select {
		case <-p.stop:
			p.handOn(batch)
			return
		case <-time.After(min(time.Duration(50<<attempt)*time.Millisecond, time.Second)):
		}
	}
	if !p.n.isMember(p.name) {
		p.handOn(batch)
		return
	}
	p.n.stats.Dropped.Add(uint64(len(batch)))
	p.n.log.Warn("push to peer failed: ops dropped", "peer", p.name, "ops", len(batch), "err", err)
}

// handOn applies again, in order, the ops meant for a peer that left or
// died, as if they had been made here: an event this node stamped goes,
// as it is, to every node interested in its list now, the peer's queues'
// new nodes among them (a queue appends it at most once); a publication
// for a list's holder goes to the holder, which gives it the same
// position again (Event.ID). Interest and learn ops go to the
// list's holder as they are (idempotent); a relink, the peer's own
// interest, goes with it. Nothing is handed on while this node itself
// is closing.
func (p *peer) handOn(ops []*pb.Op) {
	if len(ops) == 0 {
		return
	}
	select {
	case <-p.n.stop:
		return
	default:
	}
	n := p.n
	n.log.Info("peer gone: sending its ops on", "peer", p.name, "ops", len(ops))
	for _, op := range ops {
		switch {
		case op.GetEvent() != nil && op.GetFanout():
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			_, _ = n.deliver(ctx, eventOf(op.GetEvent()), false)
			cancel()
		case op.GetEvent() != nil:
			// Stamped here for the peer: sent as it is to the nodes
			// interested now. A list that left since announces its tail
			// and its last revokes; a revoke whose list left or was made
			// again since is sent to the list again, by its ID, so the
			// peer's queues, gone elsewhere, do not keep what it
			// removes. A list that remembers the ID (Event.ID, among its
			// last publications) gives it its old position: it covers
			// no subscription made after it. One that does not stamps
			// it anew, and it covers every subscription of its
			// principal's there: a REVOKED too many, never one too few.
			if ev := eventOf(op.GetEvent()); !n.store.Refan(ev) && ev.Kind == shard.Revoked && ev.From != nil {
				go n.revoke(&shard.Event{Kind: shard.Revoked, Resource: ev.Resource, From: ev.From, ID: ev.ID})
			}
		default:
			n.applyOp(op, false)
		}
	}
}
