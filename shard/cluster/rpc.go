package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// service answers other nodes. Peers are trusted (mutual TLS with the
// cluster CA): principals arrive already authenticated.
type service struct {
	pb.UnimplementedPeerServer
	n *Node
}

func (n *Node) serveRPC() error {
	ln, err := net.Listen("tcp", n.cfg.RPC)
	if err != nil {
		return fmt.Errorf("cluster: rpc listen: %w", err)
	}
	n.rpcLn = ln
	n.grpcSrv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(n.cfg.ServerTLS)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.MaxRecvMsgSize(64<<20),
	)
	pb.RegisterPeerServer(n.grpcSrv, service{n: n})
	go func() { _ = n.grpcSrv.Serve(ln) }()
	return nil
}

// RPCAddr is the address the node-to-node service listens on ("" if none).
func (n *Node) RPCAddr() string {
	if n.rpcLn == nil {
		return ""
	}
	return n.rpcLn.Addr().String()
}

func (s service) Call(ctx context.Context, c *pb.QueueCall) (*pb.QueueReply, error) {
	rep, err := s.n.call(ctx, c, nil)
	return rep, toStatus(err)
}

func (s service) Queues(ctx context.Context, r *pb.QueuesRequest) (*pb.QueuesReply, error) {
	rep := &pb.QueuesReply{}
	for _, q := range s.n.store.Queues(ctx, principalOf(r.GetPrincipal())) {
		rep.Queues = append(rep.Queues, queuePB(q))
	}
	return rep, nil
}

func (s service) Invite(ctx context.Context, r *pb.InviteRequest) (*pb.InviteReply, error) {
	k, err := s.n.store.Invite(ctx, principalOf(r.GetFrom()), r.GetToUser(), r.GetToDevice(), r.GetPayload())
	if err != nil && !errors.Is(err, shard.ErrDeviceNotFound) {
		return nil, toStatus(err)
	}
	return &pb.InviteReply{Reached: int64(k)}, nil
}

func (s service) Link(ctx context.Context, r *pb.LinkRequest) (*pb.LinkReply, error) {
	hint := shard.Hint{Etag: r.GetEtag(), Pos: shard.Position{Epoch: r.GetHintEpoch(), Offset: r.GetHintOffset(), At: r.GetHintAt()}}
	added, l, err := s.n.link(ctx, r.GetResource(), hint, r.GetSubscribers(), r.GetHops(), r.GetAsked())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.LinkReply{Added: added, Epoch: l.Pos.Epoch, Offset: l.Pos.Offset, At: l.Pos.At, Etag: l.Etag}, nil
}

// Push applies ops in order. Names not held here are sent on to where
// they are; names held nowhere come back as missing.
func (s service) Push(ctx context.Context, r *pb.PushRequest) (*pb.PushReply, error) {
	n := s.n
	rep := &pb.PushReply{}
	for _, op := range r.GetOps() {
		switch {
		case op.GetEvent() != nil && op.GetFanout():
			// A fan-out op comes alone (deliver sends it): its error is the
			// reply, so the publish it came from answers it.
			k, err := n.deliver(ctx, eventOf(op.GetEvent()), op.GetHops(), op.GetAsked())
			if err != nil {
				return nil, toStatus(err)
			}
			rep.Reached += int64(k)
		case op.GetEvent() != nil:
			ev := eventOf(op.GetEvent())
			k, notDelivered := n.store.DeliverTo(ev, op.GetQueues())
			rep.Reached += int64(k)
			// Of those not delivered, the queues held here are no longer
			// subscribed; the others are sent on. A queue taken over
			// while DeliverTo ran is held now but was not then: it is
			// given the event again (once: publications are not appended
			// twice), and only a queue that still refuses it is missing.
			var missing, away []string
			held := func(qs []string) (here []string) { // the rest are away
				for _, q := range qs {
					if n.store.Has(q) {
						here = append(here, q)
					} else {
						away = append(away, q)
					}
				}
				return here
			}
			if arrived := held(notDelivered); len(arrived) > 0 {
				k, refused := n.store.DeliverTo(ev, arrived)
				rep.Reached += int64(k)
				missing = held(refused)
			}
			// Queues not here are sent on now, before this reply, to where
			// they went (a tomb) or are (the ring); the sender learns
			// where, and its next ops, sent there directly, land after.
			moved := map[string][]string{}
			var unknown []string
			for _, q := range away {
				to := n.tombOf(q)
				if to == "" {
					// Queue-keyed ops never go asked: a queue not found
					// while it moves is waited for where it goes.
					to, _, _ = n.locate(ctx, q, n.store.Has, op.GetHops(), false)
				}
				if to != "" && to != n.cfg.Name {
					moved[to] = append(moved[to], q)
				} else {
					unknown = append(unknown, q)
				}
			}
			for to, names := range moved {
				r, err := n.pushNow(ctx, to, &pb.Op{Event: op.GetEvent(), Queues: names, Hops: op.GetHops() + 1})
				if err != nil {
					unknown = append(unknown, names...)
					continue
				}
				rep.Reached += r.GetReached()
				gone := map[string]bool{}
				for _, m := range r.GetMissing() {
					for _, q := range m.GetQueues() {
						gone[q] = true
					}
				}
				for _, q := range names {
					if !gone[q] {
						rep.Moved = append(rep.Moved, &pb.Moved{Resource: ev.Resource, Queue: q, Node: to})
					}
				}
				rep.Moved = append(rep.Moved, r.GetMoved()...)
				rep.Missing = append(rep.Missing, r.GetMissing()...)
			}
			if len(unknown) > 0 {
				sent, gone := n.forward(ev, op.GetEvent(), unknown, op.GetHops())
				rep.Reached += int64(sent)
				missing = append(missing, gone...)
			}
			if len(missing) > 0 {
				rep.Missing = append(rep.Missing, &pb.Missing{Resource: ev.Resource, Queues: missing})
			}
		case op.GetUnlinkResource() != "":
			n.unlinkAt(op.GetUnlinkResource(), op.GetQueues(), op.GetHops(), op.GetAsked())
		case op.GetLearnResource() != "":
			n.learnAt(op)
		case op.GetRevokeResource() != "" && len(op.GetQueues()) > 0:
			k, missing := n.store.RevokeQueues(op.GetRevokeResource(), op.GetQueues())
			rep.Reached += int64(k)
			if len(missing) > 0 && op.GetHops() < maxHops {
				n.revokeQueues(op.GetRevokeResource(), missing, op.GetHops())
			}
		case op.GetRevokeResource() != "":
			rep.Reached += int64(n.revoke(ctx, op.GetRevokeResource(), op.GetRevokeUser(), op.GetRevokeDevice(), op.GetHops(), op.GetAsked()))
		}
	}
	return rep, nil
}

func (s service) Take(_ context.Context, r *pb.TakeRequest) (*pb.TakeReply, error) {
	return s.n.give(r), nil
}

func (s service) Handoff(ctx context.Context, r *pb.HandoffRequest) (*pb.Empty, error) {
	if err := s.n.take(ctx, r.GetNode(), r.GetQueues(), r.GetResources()); err != nil {
		return nil, toStatus(err)
	}
	return &pb.Empty{}, nil
}

func (s service) Leaving(_ context.Context, r *pb.LeavingRequest) (*pb.Empty, error) {
	s.n.peerLeaving(r.GetNode(), r.GetDone())
	return &pb.Empty{}, nil
}

func (s service) Rejoined(context.Context, *pb.Empty) (*pb.Empty, error) {
	go s.n.rejoined()
	return &pb.Empty{}, nil
}

func (s service) Stats(context.Context, *pb.Empty) (*pb.StatsReply, error) {
	return s.n.localStats(), nil
}

// Stream relays a queue held here to the node its reader is connected to.
func (s service) Stream(r *pb.StreamRequest, out pb.Peer_StreamServer) error {
	n := s.n
	ctx := out.Context()
	where, _, err := n.locate(ctx, r.GetQueue(), n.store.Has, r.GetHops(), false)
	if err != nil {
		return toStatus(err)
	}
	if where != "" {
		return status.Error(codes.Aborted, "moved|"+where)
	}
	l := &chanListener{ch: make(chan struct{}, 1)}
	p := principalOf(r.GetPrincipal())
	var st *shard.Stream
	if r.GetResume() {
		st, err = n.store.Resume(ctx, p, r.GetQueue(), r.GetAfter(), l)
	} else {
		st, err = n.store.Attach(ctx, p, r.GetQueue(), r.GetAfter(), l)
	}
	if err != nil {
		return toStatus(err)
	}
	defer st.Close()
	if err := out.Send(&pb.StreamBatch{}); err != nil { // attached: the reader may go on
		return err
	}
	buf := make([]shard.Notification, 0, 256)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.ch:
		}
		for {
			buf, err = st.Next(buf[:0], 256)
			if errors.Is(err, shard.ErrMoved) {
				return status.Error(codes.Aborted, "moved|"+n.tombOf(r.GetQueue()))
			}
			if err != nil {
				return toStatus(err)
			}
			if len(buf) == 0 {
				break
			}
			if err := out.Send(&pb.StreamBatch{Items: notificationsPB(buf)}); err != nil {
				return err
			}
			clear(buf)
		}
	}
}

// pushNow sends one op to node and waits for its reply.
func (n *Node) pushNow(ctx context.Context, node string, op *pb.Op) (*pb.PushReply, error) {
	p := n.peer(node)
	if p == nil {
		return nil, unavailable(node)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	n.stats.forwarded(node, 1)
	rep, err := p.client.Push(ctx, &pb.PushRequest{Ops: []*pb.Op{op}})
	return rep, fromStatus(node, err)
}

// chanListener turns Notify into a channel signal.
type chanListener struct{ ch chan struct{} }

func (l *chanListener) Notify() {
	select {
	case l.ch <- struct{}{}:
	default:
	}
}
