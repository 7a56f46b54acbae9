package graph

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"meshgate/shard"
)

// Publishers is what the resolvers need from the publisher side: the
// Authorizer the store consults, and the path a `publish` mutation takes
// (the same path plugin events take).
type Publishers interface {
	shard.Authorizer
	// Publish reports a change of resource on behalf of p and returns how
	// many queues it reached.
	Publish(ctx context.Context, p shard.Principal, resource, etag string, payload []byte) (int, error)
}

// Backend is the state the resolvers read and change: in meshgate a
// cluster node (cluster.Node, also for a single node), which serves each
// call where its queue is held. graph knows only this interface.
type Backend interface {
	CreateQueue(ctx context.Context, p shard.Principal, ttl time.Duration) (shard.QueueInfo, error)
	Queue(ctx context.Context, p shard.Principal, name string) (shard.QueueInfo, error)
	RenewQueue(ctx context.Context, p shard.Principal, name string) (shard.QueueInfo, error)
	Queues(ctx context.Context, p shard.Principal) []shard.QueueInfo
	DeleteQueue(ctx context.Context, p shard.Principal, name string) error
	Subscribe(ctx context.Context, auth shard.Authorizer, p shard.Principal, queue, resource, proof, knownEtag string) (shard.SubscriptionInfo, error)
	Unsubscribe(ctx context.Context, p shard.Principal, queue, resource string) (bool, error)
	Subscriptions(ctx context.Context, p shard.Principal, queue string) ([]shard.SubscriptionInfo, error)
	Poll(ctx context.Context, p shard.Principal, name string, after uint64, limit int, wait time.Duration) (shard.Page, error)
	Attach(ctx context.Context, p shard.Principal, name string, after uint64, l shard.Listener) (shard.Reader, error)
	Invite(ctx context.Context, from shard.Principal, toUser, toDevice string, payload []byte) (int, error)
	// Members describes the cluster's nodes, for the admin `cluster` query.
	Members(ctx context.Context) []shard.NodeStats
}

// Resolver holds the resolvers' dependencies. It is safe for concurrent
// use, and must not be copied once in use.
type Resolver struct {
	// Backend holds the state: queues, subscriptions, streams.
	Backend    Backend
	Publishers Publishers
	// Logger receives internal errors; nil means none.
	Logger *slog.Logger
	// MaxPayloadBytes caps publish and invite payloads (encoded JSON).
	// Default MaxPayload (64 KiB).
	MaxPayloadBytes int
	// AllowSubscribe rate-limits subscribe per principal; nil allows all.
	// server sets it.
	AllowSubscribe func(shard.Principal) bool
	// PollLinger is the least time a long-poll (waitSeconds > 0) whose
	// page is not full is held after it arrived, so that the
	// notifications following the first ride in the same answer; many
	// long-polls in flight hold it longer, up to 1 s (see page). Default
	// DefaultPollLinger (20 ms); negative: none, every poll is answered
	// as soon as it has one notification.
	PollLinger time.Duration

	longPolls atomic.Int64 // long-polls in flight, for the linger
}

// MaxPayload is the default limit on publish and invite payloads.
const MaxPayload = 64 << 10

func (r *Resolver) maxPayload() int {
	if r.MaxPayloadBytes > 0 {
		return r.MaxPayloadBytes
	}
	return MaxPayload
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
