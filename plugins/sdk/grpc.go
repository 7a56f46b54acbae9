package sdk

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "meshgate/plugins/proto"
)

// GRPCPlugin is the go-plugin definition of the contract. Plugins use it
// through Serve; the gateway's host uses it to dispense a client.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is set on the plugin side only.
	Impl pb.PublisherServer
}

// GRPCServer registers the contract on the plugin's gRPC server.
func (g *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterPublisherServer(s, g.Impl)
	return nil
}

// GRPCClient returns a pb.PublisherClient on the host side.
func (g *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewPublisherClient(c), nil
}

// eventBuffer bounds events emitted while the gateway is not reading.
const eventBuffer = 1024

// server adapts a Publisher to the gRPC contract.
type server struct {
	pb.UnimplementedPublisherServer
	p      Publisher
	events chan *pb.Event

	mu      sync.Mutex
	host    pb.Publisher_HostServer
	hostUp  chan struct{} // closed when the Host stream opens
	nextID  uint64
	pending map[uint64]chan *pb.Answer
}

func newServer(p Publisher) *server {
	return &server{p: p, events: make(chan *pb.Event, eventBuffer), hostUp: make(chan struct{}), pending: make(map[uint64]chan *pb.Answer)}
}

// run runs the publisher's Run for the life of the process.
func (s *server) run() {
	if err := s.p.Run(context.Background(), hostAPI{s}); err != nil {
		Logger().Error("publisher stopped", "err", err)
	}
}

func (s *server) Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	i := s.p.Info()
	_, sessions := s.p.(SessionWatcher)
	_, publishable := s.p.(Publishable)
	return &pb.DescribeResponse{Name: i.Name, Version: i.Version, Schemes: i.Schemes, WantsSessions: sessions, SessionBatches: sessions,
		PublishDirect: i.PublishDirect && publishable, ReadOwnSubtree: i.ReadOwnSubtree && i.PublishDirect && publishable}, nil
}

func (s *server) Authorize(ctx context.Context, r *pb.AuthorizeRequest) (*pb.AuthorizeResponse, error) {
	d, err := s.p.Authorize(ctx, principalFrom(r.GetPrincipal()), r.GetResource(), r.GetProof())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.AuthorizeResponse{Allowed: d.Allowed, Reason: d.Reason, Etag: d.Etag}, nil
}

func (s *server) Current(ctx context.Context, r *pb.CurrentRequest) (*pb.CurrentResponse, error) {
	m, err := s.p.Current(ctx, r.GetResources())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.CurrentResponse{Etags: m}, nil
}

func (s *server) Publish(ctx context.Context, r *pb.PublishRequest) (*pb.PublishResponse, error) {
	pp, ok := s.p.(Publishable)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this publisher does not accept publish")
	}
	evs, err := pp.Publish(ctx, principalFrom(r.GetPrincipal()), r.GetResource(), r.GetEtag(), r.GetPayload())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &pb.PublishResponse{}
	for _, ev := range evs {
		out.Events = append(out.Events, eventProto(ev))
	}
	return out, nil
}

// Watch sends emitted events until the host cancels. Events are checked
// by emit before they are queued: a Send error here is the stream's end.
func (s *server) Watch(_ *pb.WatchRequest, stream pb.Publisher_WatchServer) error {
	for {
		select {
		case ev := <-s.events:
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return nil
		}
	}
}

// Host serves the host's stream: session events and answers in,
// questions out.
func (s *server) Host(stream pb.Publisher_HostServer) error {
	s.mu.Lock()
	s.host = stream
	select {
	case <-s.hostUp:
	default:
		close(s.hostUp)
	}
	s.mu.Unlock()
	sw, _ := s.p.(SessionWatcher)
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil
		}
		switch x := m.GetMsg().(type) {
		case *pb.HostMessage_Session:
			if sw != nil {
				sw.Session(principalFrom(x.Session.GetPrincipal()), x.Session.GetOnline(), time.Unix(0, x.Session.GetTimeUnixNano()))
			}
		case *pb.HostMessage_Sessions: // session_batches
			if sw != nil {
				for _, ev := range x.Sessions.GetEvents() {
					sw.Session(principalFrom(ev.GetPrincipal()), ev.GetOnline(), time.Unix(0, ev.GetTimeUnixNano()))
				}
			}
		case *pb.HostMessage_Published:
			s.recordPublished(stream, x.Published)
		case *pb.HostMessage_Answer:
			s.mu.Lock()
			ch := s.pending[x.Answer.GetId()]
			delete(s.pending, x.Answer.GetId())
			s.mu.Unlock()
			if ch != nil {
				ch <- x.Answer
			}
		}
	}
}

// recordPublished hands publishes the gateway has delivered (PublishDirect)
// to Publish, in order, and acknowledges them.
func (s *server) recordPublished(stream pb.Publisher_HostServer, m *pb.Published) {
	pp, ok := s.p.(Publishable)
	if !ok {
		return
	}
	ctx := stream.Context()
	for _, r := range m.GetPublishes() {
		if _, err := pp.Publish(ctx, principalFrom(r.GetPrincipal()), r.GetResource(), r.GetEtag(), r.GetPayload()); err != nil {
			Logger().Warn("recording a delivered publish failed", "resource", r.GetResource(), "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = stream.Send(&pb.PluginMessage{Msg: &pb.PluginMessage_PublishedAck{PublishedAck: &pb.PublishedAck{Seq: m.GetSeq()}}})
}

// hostAPI is the Host a publisher sees.
type hostAPI struct{ s *server }

// Emit implements Host.
func (h hostAPI) Emit(ctx context.Context, ev Event) error { return h.s.emit(ctx, ev) }

// Authorize implements Host.
func (h hostAPI) Authorize(ctx context.Context, p Principal, resource, proof string) (Decision, error) {
	return h.s.ask(ctx, p, resource, proof)
}

// ErrBadEvent is an event Emit refuses: one of its strings is not UTF-8,
// which protobuf cannot marshal.
var ErrBadEvent = errors.New("sdk: event has a string that is not UTF-8")

func (s *server) emit(ctx context.Context, ev Event) error {
	if !utf8.ValidString(ev.Resource) || !utf8.ValidString(ev.Etag) || !utf8.ValidString(ev.Principal.User) || !utf8.ValidString(ev.Principal.Device) {
		Logger().Warn("event refused: not UTF-8", "resource", strconv.QuoteToASCII(ev.Resource), "user", strconv.QuoteToASCII(ev.Principal.User))
		return ErrBadEvent
	}
	for _, sc := range ev.Principal.Scopes {
		if !utf8.ValidString(sc) {
			return ErrBadEvent
		}
	}
	select {
	case s.events <- eventProto(ev):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ask asks the gateway, which asks the owner of resource.
func (s *server) ask(ctx context.Context, p Principal, resource, proof string) (Decision, error) {
	select {
	case <-s.hostUp:
	case <-ctx.Done():
		return Decision{}, ctx.Err()
	}
	ch := make(chan *pb.Answer, 1)
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.pending[id] = ch
	err := s.host.Send(&pb.PluginMessage{Msg: &pb.PluginMessage_Ask{Ask: &pb.AskAuthorize{Id: id, Request: &pb.AuthorizeRequest{
		Principal: principalProto(p), Resource: resource, Proof: proof,
	}}}})
	s.mu.Unlock()
	if err != nil {
		return Decision{}, fmt.Errorf("ask host: %w", err)
	}
	select {
	case a := <-ch:
		if a.GetError() != "" {
			return Decision{}, errors.New(a.GetError())
		}
		r := a.GetResponse()
		return Decision{Allowed: r.GetAllowed(), Reason: r.GetReason(), Etag: r.GetEtag()}, nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		return Decision{}, ctx.Err()
	}
}

func toStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unknown, err.Error())
}

func principalFrom(p *pb.Principal) Principal {
	return Principal{User: p.GetUser(), Device: p.GetDevice(), Scopes: p.GetScopes()}
}

func principalProto(p Principal) *pb.Principal {
	return &pb.Principal{User: p.User, Device: p.Device, Scopes: p.Scopes}
}

func eventProto(ev Event) *pb.Event {
	k := pb.Event_CHANGED
	if ev.Kind == Revoked {
		k = pb.Event_REVOKED
	}
	out := &pb.Event{Kind: k, Resource: ev.Resource, Etag: ev.Etag, Payload: ev.Payload}
	if !ev.Time.IsZero() {
		out.TimeUnixNano = ev.Time.UnixNano()
	}
	if ev.Kind == Revoked {
		out.Principal = principalProto(ev.Principal)
	}
	return out
}
