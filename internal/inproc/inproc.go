package inproc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"meshgate/shard"
)

// Sink receives events; *shard.Store satisfies it.
type Sink interface {
	Deliver(ev *shard.Event) int
}

// MaxResources bounds how many etags the registry remembers; the oldest
// entries are not evicted, new resources are refused with LIMIT_EXCEEDED.
const MaxResources = 1 << 20

// Publishers serves the `user:` scheme in process. Safe for concurrent use.
type Publishers struct {
	sink Sink
	now  func() time.Time

	mu    sync.RWMutex
	etags map[string]string
}

var _ shard.Authorizer = (*Publishers)(nil)

// New returns a registry that delivers to sink. now nil means time.Now.
func New(sink Sink, now func() time.Time) *Publishers {
	if now == nil {
		now = time.Now
	}
	return &Publishers{sink: sink, now: now, etags: make(map[string]string)}
}

// Authorize allows p to read `user:<p.User>` and below; the etag is the
// last published one ("" if none).
func (r *Publishers) Authorize(_ context.Context, p shard.Principal, resource, _ string) (string, error) {
	scheme, path, err := shard.ParseResource(resource)
	if err != nil {
		return "", err
	}
	if scheme != "user" {
		return "", fmt.Errorf("%w %q", shard.ErrUnknownScheme, scheme)
	}
	id, _, _ := strings.Cut(path, "/")
	if id != p.User {
		return "", fmt.Errorf("%w: user:%s belongs to another user", shard.ErrForbidden, id)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.etags[resource], nil
}

// Publish records etag as resource's current version and delivers one
// CHANGED event carrying payload to every subscribed queue.
func (r *Publishers) Publish(_ context.Context, _ shard.Principal, resource, etag string, payload []byte) (int, error) {
	scheme, _, err := shard.ParseResource(resource)
	if err != nil {
		return 0, err
	}
	if scheme != "user" {
		return 0, fmt.Errorf("%w %q", shard.ErrUnknownScheme, scheme)
	}
	r.mu.Lock()
	if _, ok := r.etags[resource]; !ok && len(r.etags) >= MaxResources {
		r.mu.Unlock()
		return 0, fmt.Errorf("%w: at most %d user: resources", shard.ErrLimitExceeded, MaxResources)
	}
	r.etags[resource] = etag
	r.mu.Unlock()
	return r.sink.Deliver(&shard.Event{Kind: shard.Changed, Resource: resource, Etag: etag, Time: r.now(), Payload: payload}), nil
}
