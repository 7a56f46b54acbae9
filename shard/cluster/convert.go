package cluster

import (
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

func principalPB(p shard.Principal) *pb.Principal {
	return &pb.Principal{User: p.User, Device: p.Device, Scopes: p.Scopes}
}

func principalOf(p *pb.Principal) shard.Principal {
	return shard.Principal{User: p.GetUser(), Device: p.GetDevice(), Scopes: p.GetScopes()}
}

func eventPB(ev *shard.Event) *pb.Event {
	e := &pb.Event{Kind: uint32(ev.Kind), Resource: ev.Resource, Etag: ev.Etag, TimeUnixNano: ev.Time.UnixNano(), Payload: ev.Payload, Epoch: ev.Pos.Epoch, Offset: ev.Pos.Offset, At: ev.Pos.At, Id: ev.ID, EtagUnknown: ev.EtagUnknown}
	if ev.From != nil {
		e.From = &pb.Principal{User: ev.From.User, Device: ev.From.Device}
	}
	return e
}

func eventOf(e *pb.Event) *shard.Event {
	ev := &shard.Event{Kind: shard.Kind(e.GetKind()), Resource: e.GetResource(), Etag: e.GetEtag(), Time: time.Unix(0, e.GetTimeUnixNano()).UTC(), Payload: e.GetPayload(), Pos: shard.Position{Epoch: e.GetEpoch(), Offset: e.GetOffset(), At: e.GetAt()}, ID: e.GetId(), EtagUnknown: e.GetEtagUnknown()}
	if f := e.GetFrom(); f != nil {
		ev.From = &shard.Principal{User: f.GetUser(), Device: f.GetDevice()}
	}
	return ev
}

// convertAll returns f of each of xs, in order.
func convertAll[T, U any](xs []T, f func(T) U) []U {
	out := make([]U, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func notificationsPB(ns []shard.Notification) []*pb.Notification {
	return convertAll(ns, func(n shard.Notification) *pb.Notification {
		return &pb.Notification{Seq: n.Seq, Event: eventPB(n.Event)}
	})
}

func notificationsOf(ns []*pb.Notification, dst []shard.Notification) []shard.Notification {
	for _, n := range ns {
		dst = append(dst, shard.Notification{Seq: n.GetSeq(), Event: eventOf(n.GetEvent())})
	}
	return dst
}

func queuePB(q shard.QueueInfo) *pb.Queue {
	return &pb.Queue{Name: q.Name, CreatedUnixNano: q.CreatedAt.UnixNano(), ExpiresUnixNano: q.ExpiresAt.UnixNano(), TtlMs: q.TTL.Milliseconds(),
		Depth: int64(q.Depth), LastSeq: q.LastSeq, SubscriptionCount: int64(q.SubscriptionCount)}
}

func queueOf(q *pb.Queue) shard.QueueInfo {
	return shard.QueueInfo{Name: q.GetName(), CreatedAt: time.Unix(0, q.GetCreatedUnixNano()), ExpiresAt: time.Unix(0, q.GetExpiresUnixNano()),
		TTL: time.Duration(q.GetTtlMs()) * time.Millisecond, Depth: int(q.GetDepth()), LastSeq: q.GetLastSeq(), SubscriptionCount: int(q.GetSubscriptionCount())}
}

func subscriptionPB(s shard.SubscriptionInfo) *pb.Subscription {
	return &pb.Subscription{Queue: s.Queue, Resource: s.Resource, Etag: s.Etag, EtagUnknown: s.EtagUnknown, CreatedUnixNano: s.CreatedAt.UnixNano()}
}

func subscriptionOf(s *pb.Subscription) shard.SubscriptionInfo {
	return shard.SubscriptionInfo{Queue: s.GetQueue(), Resource: s.GetResource(), Etag: s.GetEtag(), EtagUnknown: s.GetEtagUnknown(), CreatedAt: time.Unix(0, s.GetCreatedUnixNano())}
}

func queueStatePB(st shard.QueueState) *pb.QueueState {
	return &pb.QueueState{Name: st.Name, User: st.User, Device: st.Device, CreatedUnixNano: st.Created.UnixNano(), TtlMs: st.TTL.Milliseconds(),
		ExpiresUnixNano: st.Expires.UnixNano(), LastSeq: st.LastSeq, Acked: st.Acked, Delivered: st.Delivered,
		Events: convertAll(st.Events, eventPB),
		Subs: convertAll(st.Subs, func(s shard.SubState) *pb.Subscription {
			return &pb.Subscription{Resource: s.Resource, Etag: s.Etag, CreatedUnixNano: s.Created, Epoch: s.Pos.Epoch, Offset: s.Pos.Offset, At: s.Pos.At, Linked: s.Linked, Parked: convertAll(s.Parked, eventPB)}
		})}
}

func queueStateOf(st *pb.QueueState) shard.QueueState {
	return shard.QueueState{Name: st.GetName(), User: st.GetUser(), Device: st.GetDevice(), Created: time.Unix(0, st.GetCreatedUnixNano()),
		TTL: time.Duration(st.GetTtlMs()) * time.Millisecond, Expires: time.Unix(0, st.GetExpiresUnixNano()),
		LastSeq: st.GetLastSeq(), Acked: st.GetAcked(), Delivered: st.GetDelivered(),
		Events: convertAll(st.GetEvents(), eventOf),
		Subs: convertAll(st.GetSubs(), func(s *pb.Subscription) shard.SubState {
			return shard.SubState{Resource: s.GetResource(), Etag: s.GetEtag(), Created: s.GetCreatedUnixNano(), Pos: shard.Position{Epoch: s.GetEpoch(), Offset: s.GetOffset(), At: s.GetAt()}, Linked: s.GetLinked(), Parked: convertAll(s.GetParked(), eventOf)}
		})}
}

func resourceStatePB(st shard.ResourceState) *pb.ResourceState {
	return &pb.ResourceState{Name: st.Name, Etag: st.Etag, Epoch: st.Pos.Epoch, Offset: st.Pos.Offset, At: st.Pos.At, EtagEpoch: st.EtagPos.Epoch, EtagOffset: st.EtagPos.Offset, EtagAt: st.EtagPos.At, EtagUnknown: st.EtagUnknown,
		Recent: convertAll(st.Recent, func(p shard.Published) *pb.Published {
			return &pb.Published{Id: p.ID, Epoch: p.Pos.Epoch, Offset: p.Pos.Offset, At: p.Pos.At}
		}),
		Nodes: convertAll(st.Nodes, interestPB), Revokes: convertAll(st.Revokes, eventPB)}
}

func resourceStateOf(st *pb.ResourceState) shard.ResourceState {
	return shard.ResourceState{Name: st.GetName(), Etag: st.GetEtag(), Pos: shard.Position{Epoch: st.GetEpoch(), Offset: st.GetOffset(), At: st.GetAt()},
		EtagPos: shard.Position{Epoch: st.GetEtagEpoch(), Offset: st.GetEtagOffset(), At: st.GetEtagAt()}, EtagUnknown: st.GetEtagUnknown(),
		Recent: convertAll(st.GetRecent(), func(p *pb.Published) shard.Published {
			return shard.Published{ID: p.GetId(), Pos: shard.Position{Epoch: p.GetEpoch(), Offset: p.GetOffset(), At: p.GetAt()}}
		}),
		Nodes: convertAll(st.GetNodes(), interestOf), Revokes: convertAll(st.GetRevokes(), eventOf)}
}

func interestPB(in shard.Interest) *pb.Interest {
	return &pb.Interest{Node: in.Node, Count: int64(in.Count), Ver: in.Ver}
}

func interestOf(in *pb.Interest) shard.Interest {
	return shard.Interest{Node: in.GetNode(), Count: int(in.GetCount()), Ver: in.GetVer()}
}

// Errors cross the wire as a gRPC code and a message that starts with the
// sentinel's key, so the caller's node maps them back to the same sentinel
// (and GraphQL code) the holder's store returned.
var sentinels = []struct {
	key  string
	err  error
	code codes.Code
}{
	{"queue_not_found", shard.ErrQueueNotFound, codes.NotFound},
	{"device_not_found", shard.ErrDeviceNotFound, codes.NotFound},
	{"forbidden", shard.ErrForbidden, codes.PermissionDenied},
	{"limit_exceeded", shard.ErrLimitExceeded, codes.ResourceExhausted},
	{"invalid_input", shard.ErrInvalidInput, codes.InvalidArgument},
	{"unknown_scheme", shard.ErrUnknownScheme, codes.FailedPrecondition},
	{"unavailable", shard.ErrUnavailable, codes.Unavailable},
	{"moved", shard.ErrMoved, codes.Aborted},
	{"not_held", errNotHeld, codes.NotFound},
}

// toStatus turns a store error into a gRPC status error.
func toStatus(err error) error {
	if st := status.FromContextError(err); st.Code() != codes.Unknown {
		return st.Err() // nil, or the end of a context: CANCELLED, DEADLINE_EXCEEDED
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return status.Error(s.code, s.key+"|"+err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// wrapErr is an error that matches a sentinel and keeps the holder's message.
type wrapErr struct {
	msg string
	err error
}

func (e *wrapErr) Error() string { return e.msg }
func (e *wrapErr) Unwrap() error { return e.err }

// fromStatus turns a gRPC error from a peer back into a store error. A
// peer that cannot be reached is ErrUnavailable: the caller may retry.
// Invariant: an error caused by membership moving or a peer being
// unreachable (a connection closed because the peer was taken for dead, a
// deadline, a reset) is ErrUnavailable, never the caller's fault
// (BAD_USER_INPUT) nor a cancellation (CANCELLED).
func fromStatus(node string, err error) error {
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	if key, msg, ok := strings.Cut(st.Message(), "|"); ok {
		for _, s := range sentinels {
			if s.key == key {
				return &wrapErr{msg: msg, err: s.err}
			}
		}
	}
	switch st.Code() {
	case codes.Canceled:
		// The caller's own context ending shows as its own error first;
		// this is the connection to the peer closing under the call.
		return &wrapErr{msg: "node " + node + " went away during the call", err: shard.ErrUnavailable}
	case codes.DeadlineExceeded:
		return &wrapErr{msg: "node " + node + " did not answer in time", err: shard.ErrUnavailable}
	}
	return &wrapErr{msg: "node " + node + ": " + st.Message(), err: shard.ErrUnavailable}
}

func rememberedPB(u shard.Remembered) *pb.Remembered {
	return &pb.Remembered{Resource: u.Resource, Etag: u.Etag, At: u.At, UntilUnixNano: u.Until.UnixNano()}
}

func rememberedOf(u *pb.Remembered) shard.Remembered {
	return shard.Remembered{Resource: u.GetResource(), Etag: u.GetEtag(), At: u.GetAt(), Until: time.Unix(0, u.GetUntilUnixNano())}
}
