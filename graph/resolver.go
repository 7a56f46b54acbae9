package graph

import (
	"context"
	"log/slog"

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

// Resolver holds the resolvers' dependencies. It is safe for concurrent use.
type Resolver struct {
	Store      *shard.Store
	Publishers Publishers
	// Logger receives internal errors; nil means none.
	Logger *slog.Logger
	// MaxPayloadBytes caps publish and invite payloads (encoded JSON).
	// Default MaxPayload (64 KiB).
	MaxPayloadBytes int
	// AllowSubscribe rate-limits subscribe per principal; nil allows all.
	// server sets it.
	AllowSubscribe func(shard.Principal) bool
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
