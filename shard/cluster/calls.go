package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

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

// authorizer is what authorizes a subscription here: auth, else the
// node's Config.Auth, else its publishers asked at each resource's owner;
// nil if there is none.
func (n *Node) authorizer(auth shard.Authorizer) shard.Authorizer {
	switch {
	case auth != nil:
		return auth
	case n.cfg.Auth != nil:
		return n.cfg.Auth
	case n.localPubs() != nil:
		return &Publishers{n: n}
	}
	return nil
}

// local runs a queue call on this node's store.
func (n *Node) local(ctx context.Context, c *pb.QueueCall, auth shard.Authorizer) (*pb.QueueReply, error) {
	auth = n.authorizer(auth)
	if auth == nil && c.GetOp() == pb.QueueOp_SUBSCRIBE {
		return nil, fmt.Errorf("%w: no publishers on this node", shard.ErrUnavailable)
	}
	p := principalOf(c.GetPrincipal())
	s := n.store
	switch c.GetOp() {
	case pb.QueueOp_GET, pb.QueueOp_RENEW: // RENEW: from a node of an earlier build
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

// RenewQueue renews p's queue's lease: reading a queue renews it (see
// shard.Store.RenewQueue).
func (n *Node) RenewQueue(ctx context.Context, p shard.Principal, name string) (shard.QueueInfo, error) {
	return n.Queue(ctx, p, name)
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
	for _, rep := range askPeers(ctx, n, func(ctx context.Context, pr *peer) (*pb.QueuesReply, error) {
		return pr.client.Queues(ctx, &pb.QueuesRequest{Principal: principalPB(p)})
	}) {
		for _, q := range rep.GetQueues() {
			out = append(out, queueOf(q))
		}
	}
	return out
}

// Invite puts an INVITE in every queue of the target device, on every node.
func (n *Node) Invite(ctx context.Context, from shard.Principal, toUser, toDevice string, payload []byte) (int, error) {
	total, err := n.store.Invite(ctx, from, toUser, toDevice, payload)
	if err != nil && !errors.Is(err, shard.ErrDeviceNotFound) {
		return 0, err
	}
	for _, rep := range askPeers(ctx, n, func(ctx context.Context, pr *peer) (*pb.InviteReply, error) {
		return pr.client.Invite(ctx, &pb.InviteRequest{From: principalPB(from), ToUser: toUser, ToDevice: toDevice, Payload: payload})
	}) {
		total += int(rep.GetReached())
	}
	if total == 0 {
		return 0, shard.ErrDeviceNotFound
	}
	return total, nil
}

// askPeers asks every other live member in parallel, within callTimeout,
// and returns the answers of those that answered, by node.
func askPeers[T any](ctx context.Context, n *Node, ask func(context.Context, *peer) (T, error)) map[string]T {
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
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[string]T{}
	for _, name := range names {
		if p := n.peer(name); p != nil {
			wg.Go(func() {
				if rep, err := ask(ctx, p); err == nil {
					mu.Lock()
					out[name] = rep
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return out
}
