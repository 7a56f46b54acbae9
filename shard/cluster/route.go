package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// Routing on a ring identity nodes compare (ring.Ring.ID). A call
// enters the cluster at any node, which sends it to the key's ring owner;
// the owner serves it if it holds the key, and else asks, in turn, the
// nodes that may (pastOwnersLocked). Every call between nodes carries the
// sender's ring identity, and the receiver checks it first (sameRing): a
// call from another ring waits for this node to install it, at most
// ringWait, else is answered shard.ErrUnavailable. No call is bounced on
// by counting hops; these invariants bound every route:
//
//   - On a shared ring, a call that reaches a node other than the key's
//     owner was sent by the owner, asking (or by a node the owner asked,
//     following its tomb): "asked" needs no flag. Such a node serves the
//     key if it holds it, follows its tomb unless it points to the owner,
//     and else answers errNotHeld. It never sends the call to the owner,
//     so every route is: entry node → owner → the nodes it asks → tombs.
//   - Tombs point forward in a key's hand-off history: a tomb is made
//     when its node gives the key away, and a node that holds the key
//     follows no tomb (held is checked first).
//   - A key's holder is its owner, or a node the owner can name: the node
//     it gave the key to (a tomb), a past ring's owner (rebalance hands a
//     key to its new owner; until it has, the past owner holds it), or the
//     owner this node displaced when it joined (memberlist reports members
//     one at a time, so a joining node's own past rings may not name the
//     holder). Past rings are remembered for historyTTL, well past a
//     rebalance.

// place is where locate found a key's call is served.
type place struct {
	node string // another node serves it; "" this one
	// This node owns the key and does not hold it: the nodes that may,
	// to ask in turn (each answers errNotHeld if it does not). With none
	// left, the key is absent and served here as such.
	ask  []string
	ring uint64 // the ring identity the route was chosen on
}

// holderOf is where a stream of queue name is read ("" here): the node
// serving it, or, if this node owns it and does not hold it, its
// likeliest holder (a stream cannot ask in turn). remote: the stream came
// from another node on this node's ring, so a node neither holding nor
// owning the queue answers errNotHeld (see locate), except that a tomb
// is followed even to the owner: a stream comes by a redirect its
// reader's node followed, not only asked by the owner.
func (n *Node) holderOf(ctx context.Context, name string, remote bool) (string, error) {
	at, err := n.locate(ctx, name, n.store.Has, remote)
	if t := n.tombOf(name); errors.Is(err, errNotHeld) && t != "" {
		return t, nil
	}
	if at.node == "" && len(at.ask) > 0 {
		return at.ask[0], err
	}
	return at.node, err
}

// locate says where key is served. remote: the call came from another
// node on this node's ring (see sameRing). A key held here is served
// here; a key being taken by this node is waited for; see the invariants
// above for the rest. A remote call for a key neither held nor owned
// here answers errNotHeld.
func (n *Node) locate(ctx context.Context, key string, held func(string) bool, remote bool) (place, error) {
	for {
		if held(key) {
			return place{}, nil
		}
		n.mu.Lock()
		ch := n.inflight[key]
		if ch == nil {
			break
		}
		n.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return place{}, ctx.Err()
		}
	}
	defer n.mu.Unlock()
	r := n.ring.Load()
	self, owner := n.cfg.Name, r.Owner(key)
	tomb := n.tombs[key].node
	switch {
	case owner == "" || owner == self:
		return place{ask: n.pastOwnersLocked(key), ring: r.ID()}, nil
	case !remote:
		return place{node: owner, ring: r.ID()}, nil
	case tomb != "" && tomb != owner && n.aliveLocked(tomb):
		return place{node: tomb, ring: r.ID()}, nil
	}
	return place{}, errNotHeld
}

// pastOwnersLocked lists the nodes that may hold a key this node owns
// and does not hold: the node its tomb names, then, while this node
// remembers a ring change (historyTTL), each past ring's owner and the
// owner this node displaced. Only live members, each once. n.mu held.
func (n *Node) pastOwnersLocked(key string) []string {
	var out []string
	add := func(o string) {
		if o != "" && o != n.cfg.Name && n.aliveLocked(o) && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	add(n.tombs[key].node)
	if len(n.history) > 0 {
		for _, p := range n.history {
			add(p.r.Owner(key))
		}
		add(n.others.Owner(key))
	}
	return out
}

// sameRing returns once this node's ring identity is id (the sender's),
// waiting at most ringWait for membership to converge, woken by each ring
// install; else it answers shard.ErrUnavailable: the caller tries again.
func (n *Node) sameRing(ctx context.Context, id uint64) error {
	t := time.NewTimer(ringWait)
	defer t.Stop()
	for {
		n.mu.Lock()
		r, installed := n.ring.Load(), n.installed
		n.mu.Unlock()
		if r.ID() == id {
			return nil
		}
		select {
		case <-installed:
		case <-t.C:
			return fmt.Errorf("%w: %s and the sender disagree on the ring while membership changes; retry", shard.ErrUnavailable, n.cfg.Name)
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", shard.ErrUnavailable, ctx.Err()) //nolint:errorlint // UNAVAILABLE is the contract
		}
	}
}

// serve runs a call on key where locate says it is served: at the node
// it names (there), else at each node that may hold it, in turn (there;
// errNotHeld: the next one), else here. A call of this node's own sent
// on a route the ring changed under (errNotHeld from the node named), a
// key that moved meanwhile (shard.ErrMoved), or one that here finds gone
// or coming (again) is located again.
func serve[T any](ctx context.Context, n *Node, key string, held func(string) bool, remote bool, there func(node string, id uint64) (T, error), here func(at place) (v T, again bool, err error)) (T, error) {
	var v T
	for range 4 { // each pass follows a move that happened meanwhile
		at, err := n.locate(ctx, key, held, remote)
		if err != nil {
			return v, err
		}
		if at.node != "" {
			v, err = there(at.node, at.ring)
			if errors.Is(err, shard.ErrMoved) || !remote && errors.Is(err, errNotHeld) {
				continue
			}
			return v, err
		}
		for _, o := range at.ask {
			if v, err = there(o, at.ring); !errors.Is(err, errNotHeld) {
				return v, err
			}
		}
		again := false
		if v, again, err = here(at); !again {
			return v, err
		}
	}
	return v, fmt.Errorf("%w: %s is moving between nodes; retry", shard.ErrUnavailable, key)
}

// movedMeanwhile reports whether key, not found here, left (a tomb to a
// node not asked already) or is in flight here since at was located.
func (n *Node) movedMeanwhile(key string, at place) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.tombs[key]
	return n.inflight[key] != nil || ok && !slices.Contains(at.ask, t.node)
}

func (n *Node) holdsResource(res string) bool {
	_, held := n.store.HasResource(res)
	return held
}

func (n *Node) tombOf(key string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tombs[key].node
}

func unavailable(node string) error {
	return fmt.Errorf("%w: node %s is not reachable", shard.ErrUnavailable, node)
}

// call runs a queue call where the queue is held (see locate). remote:
// it came from another node on this node's ring. auth authorizes a
// subscribe served here (nil: the node's Config.Auth).
func (n *Node) call(ctx context.Context, c *pb.QueueCall, auth shard.Authorizer, remote bool) (*pb.QueueReply, error) {
	there := func(node string, id uint64) (*pb.QueueReply, error) { return n.callAt(ctx, node, c, id) }
	return serve(ctx, n, c.GetQueue(), n.store.Has, remote, there, func(at place) (*pb.QueueReply, bool, error) {
		rep, err := n.local(ctx, c, auth) // handed off while it ran: follow it
		return rep, errors.Is(err, shard.ErrMoved) || errors.Is(err, shard.ErrQueueNotFound) && n.movedMeanwhile(c.GetQueue(), at), err
	})
}

// callAt sends c to node, on ring identity id.
func (n *Node) callAt(ctx context.Context, node string, c *pb.QueueCall, id uint64) (*pb.QueueReply, error) {
	p := n.peer(node)
	if p == nil {
		return nil, unavailable(node)
	}
	c.Ring = id
	n.stats.forwarded(node, 1)
	rep, err := p.client.Call(ctx, c)
	return rep, fromStatus(node, err)
}

// local runs a queue call on this node's store.
func (n *Node) local(ctx context.Context, c *pb.QueueCall, auth shard.Authorizer) (*pb.QueueReply, error) {
	if auth == nil {
		auth = n.cfg.Auth
	}
	if auth == nil {
		n.mu.Lock()
		if n.routed != nil {
			auth = n.routed
		}
		n.mu.Unlock()
	}
	if auth == nil && c.GetOp() == pb.QueueOp_SUBSCRIBE {
		return nil, fmt.Errorf("%w: no publishers on this node", shard.ErrUnavailable)
	}
	p := principalOf(c.GetPrincipal())
	s := n.store
	switch c.GetOp() {
	case pb.QueueOp_GET, pb.QueueOp_RENEW:
		q, err := s.Queue(ctx, p, c.GetQueue())
		if err != nil {
			return nil, err
		}
		return &pb.QueueReply{Queue: queuePB(q)}, nil
	case pb.QueueOp_DELETE:
		if err := s.DeleteQueue(ctx, p, c.GetQueue()); err != nil {
			return nil, err
		}
		return &pb.QueueReply{Ok: true}, nil
	case pb.QueueOp_SUBSCRIPTIONS:
		subs, err := s.Subscriptions(ctx, p, c.GetQueue())
		if err != nil {
			return nil, err
		}
		rep := &pb.QueueReply{}
		for _, sub := range subs {
			rep.Subscriptions = append(rep.Subscriptions, subscriptionPB(sub))
		}
		return rep, nil
	case pb.QueueOp_SUBSCRIBE:
		sub, err := s.Subscribe(ctx, auth, p, c.GetQueue(), c.GetResource(), c.GetProof(), c.GetKnownEtag())
		if err != nil {
			return nil, err
		}
		return &pb.QueueReply{Subscriptions: []*pb.Subscription{subscriptionPB(sub)}}, nil
	case pb.QueueOp_UNSUBSCRIBE:
		ok, err := s.Unsubscribe(ctx, p, c.GetQueue(), c.GetResource())
		if err != nil {
			return nil, err
		}
		return &pb.QueueReply{Ok: ok}, nil
	case pb.QueueOp_POLL:
		pg, err := s.Poll(ctx, p, c.GetQueue(), c.GetAfter(), int(c.GetLimit()), time.Duration(c.GetWaitMs())*time.Millisecond)
		if err != nil {
			return nil, err
		}
		return &pb.QueueReply{Items: notificationsPB(pg.Items), LastSeq: pg.LastSeq, HasMore: pg.HasMore}, nil
	}
	return nil, fmt.Errorf("%w: unknown queue op %v", shard.ErrInvalidInput, c.GetOp())
}

// CreateQueue makes a queue for p here, with a name the ring gives to this
// node, so the queue lives where its device connected.
func (n *Node) CreateQueue(ctx context.Context, p shard.Principal, ttl time.Duration) (shard.QueueInfo, error) {
	self := n.cfg.Name
	return n.store.CreateQueueWhere(ctx, p, ttl, func(name string) bool {
		r := n.ring.Load()
		return !r.Has(self) || r.Owner(name) == self
	})
}

// Queue returns p's queue and renews its lease.
func (n *Node) Queue(ctx context.Context, p shard.Principal, name string) (shard.QueueInfo, error) {
	rep, err := n.call(ctx, &pb.QueueCall{Op: pb.QueueOp_GET, Principal: principalPB(p), Queue: name}, nil, false)
	if err != nil {
		return shard.QueueInfo{}, err
	}
	return queueOf(rep.GetQueue()), nil
}

// RenewQueue renews p's queue's lease.
func (n *Node) RenewQueue(ctx context.Context, p shard.Principal, name string) (shard.QueueInfo, error) {
	rep, err := n.call(ctx, &pb.QueueCall{Op: pb.QueueOp_RENEW, Principal: principalPB(p), Queue: name}, nil, false)
	if err != nil {
		return shard.QueueInfo{}, err
	}
	return queueOf(rep.GetQueue()), nil
}

// DeleteQueue removes p's queue.
func (n *Node) DeleteQueue(ctx context.Context, p shard.Principal, name string) error {
	_, err := n.call(ctx, &pb.QueueCall{Op: pb.QueueOp_DELETE, Principal: principalPB(p), Queue: name}, nil, false)
	return err
}

// Subscriptions lists p's queue's subscriptions.
func (n *Node) Subscriptions(ctx context.Context, p shard.Principal, name string) ([]shard.SubscriptionInfo, error) {
	rep, err := n.call(ctx, &pb.QueueCall{Op: pb.QueueOp_SUBSCRIPTIONS, Principal: principalPB(p), Queue: name}, nil, false)
	if err != nil {
		return nil, err
	}
	out := make([]shard.SubscriptionInfo, len(rep.GetSubscriptions()))
	for i, s := range rep.GetSubscriptions() {
		out[i] = subscriptionOf(s)
	}
	return out, nil
}

// Subscribe subscribes p's queue to resource; the queue's holder asks its
// publishers (auth is used when that is this node).
func (n *Node) Subscribe(ctx context.Context, auth shard.Authorizer, p shard.Principal, queue, resource, proof, knownEtag string) (shard.SubscriptionInfo, error) {
	if _, _, err := shard.ParseResource(resource); err != nil {
		return shard.SubscriptionInfo{}, err
	}
	rep, err := n.call(ctx, &pb.QueueCall{Op: pb.QueueOp_SUBSCRIBE, Principal: principalPB(p), Queue: queue, Resource: resource, Proof: proof, KnownEtag: knownEtag}, auth, false)
	if err != nil {
		return shard.SubscriptionInfo{}, err
	}
	return subscriptionOf(rep.GetSubscriptions()[0]), nil
}

// Unsubscribe removes p's queue's subscription to resource.
func (n *Node) Unsubscribe(ctx context.Context, p shard.Principal, queue, resource string) (bool, error) {
	if _, _, err := shard.ParseResource(resource); err != nil {
		return false, err
	}
	rep, err := n.call(ctx, &pb.QueueCall{Op: pb.QueueOp_UNSUBSCRIBE, Principal: principalPB(p), Queue: queue, Resource: resource}, nil, false)
	if err != nil {
		return false, err
	}
	return rep.GetOk(), nil
}

// Poll reads p's queue (see shard.Store.Poll).
func (n *Node) Poll(ctx context.Context, p shard.Principal, name string, after uint64, limit int, wait time.Duration) (shard.Page, error) {
	if n.store.Has(name) { // the common case: no conversion, events stay shared
		pg, err := n.store.Poll(ctx, p, name, after, limit, wait)
		if !errors.Is(err, shard.ErrMoved) {
			return pg, err
		}
	}
	rep, err := n.call(ctx, &pb.QueueCall{Op: pb.QueueOp_POLL, Principal: principalPB(p), Queue: name, After: after, Limit: int32(min(limit, 1<<30)), WaitMs: wait.Milliseconds()}, nil, false)
	if err != nil {
		return shard.Page{}, err
	}
	return shard.Page{Items: notificationsOf(rep.GetItems(), nil), LastSeq: rep.GetLastSeq(), HasMore: rep.GetHasMore()}, nil
}

// Queues lists p's device's queues on every node.
func (n *Node) Queues(ctx context.Context, p shard.Principal) []shard.QueueInfo {
	out := n.store.Queues(ctx, p)
	var mu sync.Mutex
	n.eachPeer(ctx, func(ctx context.Context, pr *peer) {
		rep, err := pr.client.Queues(ctx, &pb.QueuesRequest{Principal: principalPB(p)})
		if err != nil {
			return
		}
		mu.Lock()
		for _, q := range rep.GetQueues() {
			out = append(out, queueOf(q))
		}
		mu.Unlock()
	})
	return out
}

// Invite puts an INVITE in every queue of the target device, on every node.
func (n *Node) Invite(ctx context.Context, from shard.Principal, toUser, toDevice string, payload []byte) (int, error) {
	total, err := n.store.Invite(ctx, from, toUser, toDevice, payload)
	if err != nil && !errors.Is(err, shard.ErrDeviceNotFound) {
		return 0, err
	}
	var mu sync.Mutex
	n.eachPeer(ctx, func(ctx context.Context, pr *peer) {
		rep, err := pr.client.Invite(ctx, &pb.InviteRequest{From: principalPB(from), ToUser: toUser, ToDevice: toDevice, Payload: payload})
		if err == nil {
			mu.Lock()
			total += int(rep.GetReached())
			mu.Unlock()
		}
	})
	if total == 0 {
		return 0, shard.ErrDeviceNotFound
	}
	return total, nil
}

// eachPeer calls f for every other live member, in parallel, and waits.
func (n *Node) eachPeer(ctx context.Context, f func(context.Context, *peer)) {
	n.mu.Lock()
	var names []string
	for name := range n.members {
		if name != n.cfg.Name {
			names = append(names, name)
		}
	}
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, name := range names {
		if p := n.peer(name); p != nil {
			wg.Go(func() { f(ctx, p) })
		}
	}
	wg.Wait()
}

// Deliver hands ev to its resource's holder, which appends it to every
// subscribed queue. It returns how many queues it reached (or was sent to).
// The plugin host calls it for every event.
func (n *Node) Deliver(ev *shard.Event) int {
	k, _ := n.DeliverChecked(context.Background(), ev)
	return k
}

// DeliverChecked is Deliver that reports an event that did not reach its
// resource's subscriber list: its holder could not be reached, the rings
// of the nodes on the way disagreed, or the list may be in the making
// after a crash (shard.ErrUnavailable). The plugin host answers a publish
// with that error, so the publisher tries again.
//
// Invariant: a publish that answers success has been stamped by its list,
// or no list of its resource exists: the resource's owner, on a ring
// every node on the way shared, holds none, and every node that may hold
// one (locate's invariants) answered that it does not. Then every
// subscriber gets it or a RESYNC (see shard.Store.AnnounceTails). ctx
// bounds every wait on the way (callTimeout if it has no deadline), and
// its end stops the event before it is stamped: a publish its caller gave
// up on, and tried again, is not stamped long after the retry, over the
// newer changes since.
func (n *Node) DeliverChecked(ctx context.Context, ev *shard.Event) (int, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	return n.deliver(ctx, ev, false)
}

// deliver fans ev out where its list is held (see locate; remote: it came
// from another node on this node's ring).
func (n *Node) deliver(ctx context.Context, ev *shard.Event, remote bool) (int, error) {
	if ev.ID == 0 {
		ev.ID = rand.Uint64() | 1 // names this publication on every node it crosses
	}
	there := func(node string, id uint64) (int, error) { return n.deliverAt(ctx, node, ev, id) }
	return serve(ctx, n, ev.Resource, n.holdsResource, remote, there, func(at place) (int, bool, error) {
		if err := ctx.Err(); err != nil {
			return 0, false, fmt.Errorf("%w: the publish of %s was given up on: %v", shard.ErrUnavailable, ev.Resource, err) //nolint:errorlint // UNAVAILABLE is the contract
		}
		k, held := n.store.DeliverHere(ev)
		if !held && n.movedMeanwhile(ev.Resource, at) {
			return 0, true, nil
		}
		if !held && n.repairedLately() {
			// A node died lately: the list may have died with it and
			// be in the making again from its queues' side (relink,
			// clients subscribing again). "No list" is not "no
			// subscribers" yet: the publisher tries again.
			return 0, false, fmt.Errorf("%w: the subscriber list of %s may be being made again after a node failed; retry", shard.ErrUnavailable, ev.Resource)
		}
		return k, false, nil
	})
}

// deliverAt sends ev to node for its list, on ring identity id.
func (n *Node) deliverAt(ctx context.Context, node string, ev *shard.Event, id uint64) (int, error) {
	p := n.peer(node)
	if p == nil {
		return 0, unavailable(node)
	}
	rep, err := p.client.Push(ctx, &pb.PushRequest{Ops: []*pb.Op{{Event: eventPB(ev), Fanout: true, Ring: id}}})
	if err = fromStatus(node, err); err != nil {
		if !errors.Is(err, errNotHeld) {
			n.log.Warn("event not delivered", "resource", ev.Resource, "peer", node, "err", err)
		}
		return 0, err
	}
	n.stats.forwarded(node, 1)
	return int(rep.GetReached()), nil
}

// lostListWait is how long after a crash repair a list not found may be
// one that died with the crashed node and is being made again. Ring
// identity does not cover it: the nodes agree, and the list is gone.
const lostListWait = 2 * time.Second

// repairedLately reports whether a crash repair ran here within
// lostListWait.
func (n *Node) repairedLately() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.repairedAt.IsZero() && time.Since(n.repairedAt) < lostListWait
}

// routeOp applies op, an asynchronous change of res's list (interest,
// learn, revoke), where the list is held: here (apply), at the node
// locate names, or, at an owner that does not hold the list, at every
// node that may (only the holder applies it). remote: op came from
// another node on this node's ring. Nobody answers an op: one that
// reaches a node that was asked and holds no list is dropped there; at
// an owner with nobody to ask it is applied here (an interest may start
// the list). One that finds res in flight here is applied once it lands
// (whenLanded).
func (n *Node) routeOp(op *pb.Op, res string, remote bool, apply func()) {
	at, err := n.locate(opNow, res, n.holdsResource, remote)
	if errors.Is(err, context.Canceled) {
		n.whenLanded(res, func() { n.routeOp(op, res, remote, apply) })
		return
	}
	if err != nil {
		return
	}
	if at.node == "" && len(at.ask) == 0 {
		apply()
		return
	}
	op.Ring = at.ring
	if at.node != "" {
		at.ask = []string{at.node}
	}
	for _, node := range at.ask {
		if p := n.peer(node); p != nil {
			p.push(op)
		}
	}
}

// Revoke removes user's (and device's) subscriptions to resource: its
// holder tells every node interested in its list.
func (n *Node) Revoke(resource, user, device string) int {
	return n.revoke(&pb.Op{RevokeResource: resource, RevokeUser: user, RevokeDevice: device, Fanout: true}, false)
}

func (n *Node) revoke(op *pb.Op, remote bool) int {
	var k atomic.Int64 // set later if the list is in flight here (whenLanded)
	n.routeOp(op, op.GetRevokeResource(), remote, func() {
		k.Store(int64(n.store.Revoke(op.GetRevokeResource(), op.GetRevokeUser(), op.GetRevokeDevice())))
	})
	return int(k.Load())
}

// RevokeAt implements shard.Peers: one op per interested node.
func (n *Node) RevokeAt(resource, user, device string, nodes []string) {
	for _, node := range nodes {
		n.send(node, &pb.Op{RevokeResource: resource, RevokeUser: user, RevokeDevice: device})
	}
}

// ResourcesWithScheme lists the resources of scheme whose lists are held here.
func (n *Node) ResourcesWithScheme(scheme string) map[string]string {
	return n.store.ResourcesWithScheme(scheme)
}

// Link implements shard.Peers: it records this node's interest in
// resource's list at its holder.
func (n *Node) Link(ctx context.Context, resource string, in shard.Interest, hint shard.Hint) (shard.Linked, error) {
	_, l, err := n.link(ctx, resource, hint, in, false)
	return l, err
}

// Learn implements shard.Peers: resource's holder learns hint.
func (n *Node) Learn(resource string, hint shard.Hint) {
	n.learnAt(&pb.Op{LearnResource: resource, LearnEtag: hint.Etag, LearnEpoch: hint.Pos.Epoch, LearnOffset: hint.Pos.Offset, LearnAt: hint.Pos.At}, false)
}

// learnAt applies a learn op where its list is held. A list held nowhere
// learns nothing: the next subscribe starts it.
func (n *Node) learnAt(op *pb.Op, remote bool) {
	res := op.GetLearnResource()
	n.routeOp(op, res, remote, func() {
		if n.holdsResource(res) {
			n.store.AddInterest(res, shard.Interest{}, shard.Hint{Etag: op.GetLearnEtag(), Pos: shard.Position{Epoch: op.GetLearnEpoch(), Offset: op.GetLearnOffset(), At: op.GetLearnAt()}})
		}
	})
}

func (n *Node) linkAt(ctx context.Context, where, resource string, hint shard.Hint, in shard.Interest, id uint64) (bool, shard.Linked, error) {
	p := n.peer(where)
	if p == nil {
		return false, shard.Linked{}, unavailable(where)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rep, err := p.client.Link(ctx, &pb.LinkRequest{Resource: resource, Interest: interestPB(in), Etag: hint.Etag, HintEpoch: hint.Pos.Epoch, HintOffset: hint.Pos.Offset, HintAt: hint.Pos.At, HintUnknown: hint.Unknown, Ring: id})
	n.stats.forwarded(where, 1)
	return rep.GetAdded(), shard.Linked{Pos: shard.Position{Epoch: rep.GetEpoch(), Offset: rep.GetOffset(), At: rep.GetAt()}, Etag: rep.GetEtag(), EtagUnknown: rep.GetEtagUnknown()}, fromStatus(where, err)
}

// Interest implements shard.Peers: resource's holder records in.
func (n *Node) Interest(resource string, in shard.Interest) {
	n.interestAt(&pb.Op{InterestResource: resource, Interest: interestPB(in)}, false)
}

// opNow is a context already done: locate, given it, answers its error
// at once where it would wait for a key in flight to this node.
var opNow = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// whenLanded runs apply, an asynchronous op on key (interest, learn,
// revoke) that found key in flight to this node, once that hand-off
// ends, on its own goroutine.
//
// Invariant: an asynchronous op never waits for a key in flight on the
// path that made or received it. Those paths are a give's export of a
// queue (leaveLocal), a take's import (arrive, Arriving), and the Push
// handler that applies a peer's outbox in order; a take in flight waits
// for its giver's Take, and the giver may be waiting on one of those
// paths: a node taking a list from one node while giving queues of that
// list to another, whose take is in turn enlisting through this node, is
// a wait cycle across three nodes that only the takes' 10 s deadlines
// broke (the churn test's join overlapping a leave). Ops on a list are
// idempotent or ordered by Interest.Ver and positions, so applying one
// later, after the list landed, changes nothing but when.
func (n *Node) whenLanded(key string, apply func()) {
	n.mu.Lock()
	ch := n.inflight[key]
	n.mu.Unlock()
	go func() {
		if ch != nil {
			select {
			case <-ch:
			case <-n.stop:
				return
			}
		}
		apply()
	}()
}

// interestAt applies an interest op where its list is held (or where its
// owner, with nobody to ask, starts one).
func (n *Node) interestAt(op *pb.Op, remote bool) {
	n.routeOp(op, op.GetInterestResource(), remote, func() {
		n.store.SetInterest(op.GetInterestResource(), interestOf(op.GetInterest()))
	})
}

// Forward implements shard.Peers: one op per interested node, carrying
// the event once; the node appends it to its own subscribers. Nothing
// waits for what was sent on an old route: positions order it at the
// queue. A node not known here yet (gossip is slower than the hand-off
// that made it interested) gets its ops once it is, in order (see
// waitForPeer); one that is gone gets nothing: its interest goes with it.
func (n *Node) Forward(ev *shard.Event, nodes []string) {
	e := eventPB(ev)
	for _, node := range nodes {
		n.send(node, &pb.Op{Event: e})
	}
}

// send queues op for node, or keeps it until node is a member.
func (n *Node) send(node string, op *pb.Op) {
	n.mu.Lock()
	if w, ok := n.waiting[node]; ok {
		n.waiting[node] = append(w, op)
		n.mu.Unlock()
		return
	}
	_, crashed := n.crashed[node]
	n.mu.Unlock()
	if p := n.peer(node); p != nil {
		p.push(op)
		return
	}
	if crashed {
		return
	}
	n.mu.Lock()
	w, ok := n.waiting[node]
	n.waiting[node] = append(w, op)
	n.mu.Unlock()
	if !ok {
		go n.waitForPeer(node)
	}
}

// waitForPeer hands the ops kept for node to its outbox once it is a
// member, or drops them after settleTime.
func (n *Node) waitForPeer(node string) {
	for deadline := time.Now().Add(settleTime); time.Now().Before(deadline); {
		select {
		case <-n.stop:
			return
		case <-time.After(retryGap):
		}
		if p := n.peer(node); p != nil {
			// Ops sent meanwhile still join the list, so the order holds;
			// they are pushed with n.mu released (push may hand on).
			for {
				n.mu.Lock()
				ops := n.waiting[node]
				if len(ops) == 0 {
					delete(n.waiting, node)
					n.mu.Unlock()
					return
				}
				n.waiting[node] = []*pb.Op{}
				n.mu.Unlock()
				for _, op := range ops {
					p.push(op)
				}
			}
		}
	}
	n.mu.Lock()
	k := len(n.waiting[node])
	delete(n.waiting, node)
	n.mu.Unlock()
	n.stats.Dropped.Add(uint64(k))
	n.log.Warn("ops dropped: their node did not become a member", "peer", node, "ops", k)
}

const retryGap = 50 * time.Millisecond

// tailTick is how often the lists held here are asked whether their
// tail is due to be announced (shard.Store.AnnounceTails).
const tailTick = 250 * time.Millisecond

// announceTails has the store announce its lists' tails until Close: the
// last event of a list is sent again to the other nodes interested in
// it, so one lost on the way is never left unannounced (see
// shard/position.go).
func (n *Node) announceTails() {
	defer n.wg.Done()
	t := time.NewTicker(tailTick)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.store.AnnounceTails()
		}
	}
}

// settled reports whether membership has been still long enough for every
// node to see the same ring, with no key in flight to this node.
func (n *Node) settled() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return time.Since(n.changedAt) > settleTime && len(n.inflight) == 0
}
