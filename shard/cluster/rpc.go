package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
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
	n.grpcSrv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(n.cfg.ServerTLS)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.MaxRecvMsgSize(64<<20),
		grpc.UnaryInterceptor(n.serveIntercept),
	)
	pb.RegisterPeerServer(n.grpcSrv, service{n: n})
	go func() { _ = n.grpcSrv.Serve(ln) }()
	return nil
}

func (s service) Call(ctx context.Context, c *pb.QueueCall) (*pb.QueueReply, error) {
	rep, err := s.n.call(ctx, c, nil, true)
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
	hint := shard.Hint{Etag: r.GetEtag(), Pos: shard.Position{Epoch: r.GetHintEpoch(), Offset: r.GetHintOffset(), At: r.GetHintAt()}, Unknown: r.GetHintUnknown()}
	added, l, err := s.n.link(ctx, r.GetResource(), hint, interestOf(r.GetInterest()), r.GetCatchUp(), true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.LinkReply{Added: added, Epoch: l.Pos.Epoch, Offset: l.Pos.Offset, At: l.Pos.At, Etag: l.Etag, EtagUnknown: l.EtagUnknown}, nil
}

// deadlineKey carries a call's deadline in its metadata: the unix
// nanoseconds of its sender's clock (nodes' clocks agree to well within
// callTimeout).
const deadlineKey = "meshgate-deadline-ns"

// serveIntercept runs before every unary call this node serves.
//
// Invariant: a call is never served after its sender's deadline. gRPC's
// own timeout counts from when this node reads the call, so a call that
// waited in the socket of a frozen node (SIGSTOP, a long GC pause) was
// served when it thawed, as fresh: a publish its publisher had given up
// on, and tried again elsewhere, was stamped over the changes published
// since (the chaos test's watches went back 720 changes after c1's 15 s
// freeze, once publishing was fast). And a routed call (a request with a
// ring field) is served once this node is on its sender's ring
// (sameRing).
func (n *Node) serveIntercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if d := metadata.ValueFromIncomingContext(ctx, deadlineKey); len(d) > 0 {
		if ns, err := strconv.ParseInt(d[0], 10, 64); err == nil {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, time.Unix(0, ns))
			defer cancel()
		}
	}
	if r, ok := req.(interface{ GetRing() uint64 }); ok {
		if err := n.sameRing(ctx, r.GetRing()); err != nil {
			return nil, toStatus(err)
		}
	}
	return h(ctx, req)
}

// Push applies ops in order. An op routed to a list's holder carries its
// sender's ring identity. A fan-out op (it comes alone: deliver sends it)
// answers shard.ErrUnavailable if the rings still differ after ringWait,
// so the publish it came from is tried again (a revoke is one: see
// revokeFromTomb for one that finds its list in this node's tomb). An
// interest or learn op from another ring has nobody to answer: it is
// applied on its own goroutine once the rings agree, or as this node's own after
// ringWait, and holds up no op behind it (ops on a list are ordered by
// Interest.Ver and positions, not by arrival; see whenLanded). A relink
// (see rejoined) runs on its own goroutine too: its links wait for other
// nodes.
func (s service) Push(ctx context.Context, r *pb.PushRequest) (*pb.PushReply, error) {
	n := s.n
	rep := &pb.PushReply{}
	for _, op := range r.GetOps() {
		switch {
		case op.GetEvent() != nil && op.GetFanout():
			if err := n.sameRing(ctx, op.GetRing()); err != nil {
				return nil, toStatus(err)
			}
			ev := eventOf(op.GetEvent())
			k, err := n.deliver(ctx, ev, true)
			if errors.Is(err, errNotHeld) && ev.Kind == shard.Revoked {
				var ok bool
				if k, ok = n.revokeFromTomb(ev); ok {
					err = nil
				}
			}
			if err != nil {
				return nil, toStatus(err)
			}
			rep.Reached += int64(k)
		case op.GetEvent() != nil:
			rep.Reached += int64(n.store.DeliverLocal(eventOf(op.GetEvent())))
		case len(op.GetRelink()) > 0:
			go n.relinkTold(op.GetRelink())
		case op.GetRing() == n.ring.Load().ID():
			n.applyOp(op, true)
		default:
			go func() { n.applyOp(op, n.sameRing(context.WithoutCancel(ctx), op.GetRing()) == nil) }()
		}
	}
	return rep, nil
}

func (s service) Subscribers(_ context.Context, r *pb.SubscribersRequest) (*pb.SubscribersReply, error) {
	rep := &pb.SubscribersReply{}
	for _, sub := range s.n.store.SubscribersWithScheme(r.GetScheme()) {
		rep.Subscribers = append(rep.Subscribers, &pb.Subscriber{Resource: sub.Resource, User: sub.User, Device: sub.Device})
	}
	return rep, nil
}

func (s service) Take(_ context.Context, r *pb.TakeRequest) (*pb.TakeReply, error) {
	return s.n.give(r), nil
}

func (s service) Handoff(ctx context.Context, r *pb.HandoffRequest) (*pb.Empty, error) {
	for _, u := range r.GetRemembered() {
		s.n.store.ImportUnheld(rememberedOf(u))
	}
	if len(r.GetQueues())+len(r.GetResources()) == 0 {
		return &pb.Empty{}, nil
	}
	if err := s.n.take(ctx, r.GetNode(), r.GetQueues(), r.GetResources()); err != nil {
		return nil, toStatus(err)
	}
	return &pb.Empty{}, nil
}

func (s service) Leaving(_ context.Context, r *pb.LeavingRequest) (*pb.Empty, error) {
	s.n.peerLeaving(r.GetNode(), r.GetDone())
	return &pb.Empty{}, nil
}

func (s service) Rejoined(_ context.Context, r *pb.RejoinedRequest) (*pb.Empty, error) {
	if s.n.refuseRejoined.Load() > 0 && s.n.refuseRejoined.Add(-1) >= 0 {
		return nil, status.Error(codes.Unavailable, "refused by the test")
	}
	go s.n.rejoined(uint64(max(r.GetDeadUnixNano(), 0)))
	return &pb.Empty{}, nil
}

func (s service) Stats(context.Context, *pb.Empty) (*pb.StatsReply, error) {
	return s.n.localStats(), nil
}

// Stream relays a queue held here to the node its reader is connected to.
func (s service) Stream(r *pb.StreamRequest, out pb.Peer_StreamServer) error {
	n := s.n
	ctx := out.Context()
	if err := n.sameRing(ctx, r.GetRing()); err != nil {
		return toStatus(err)
	}
	where, err := n.holderOf(ctx, r.GetQueue(), true)
	if err != nil {
		return toStatus(err)
	}
	if where != "" {
		return status.Error(codes.Aborted, "moved|"+where)
	}
	// moved is a queue handed on while the relay opened or ran: its
	// reader follows the tomb (a store ErrMoved through toStatus would
	// read "moved|shard: …", taken for a node name).
	moved := func() error { return status.Error(codes.Aborted, "moved|"+n.tombOf(r.GetQueue())) }
	open := n.store.Attach
	if r.GetResume() {
		open = n.store.Resume
	}
	l := &chanListener{ch: make(chan struct{}, 1)}
	st, err := open(ctx, principalOf(r.GetPrincipal()), r.GetQueue(), r.GetAfter(), l)
	if errors.Is(err, shard.ErrMoved) {
		return moved()
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
				return moved()
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

// chanListener turns Notify into a channel signal.
type chanListener struct{ ch chan struct{} }

func (l *chanListener) Notify() {
	select {
	case l.ch <- struct{}{}:
	default:
	}
}
