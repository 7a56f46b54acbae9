package user

import (
	"context"
	"strings"
	"sync"

	"meshgate/plugins/sdk"
)

// Publisher serves `user:`.
type Publisher struct {
	mu    sync.RWMutex
	etags map[string]string
}

// New returns an empty publisher.
func New() *Publisher { return &Publisher{etags: make(map[string]string)} }

// MaxResources bounds the etags kept.
const MaxResources = 1 << 20

// Info implements sdk.Publisher.
func (*Publisher) Info() sdk.Info {
	// Every publish is accepted as it is: the gateway need not wait for
	// this process to deliver one. Authorize is the own-subtree rule and
	// the etags are the publishes': the gateway applies the rule itself.
	return sdk.Info{Name: "user", Version: "1.0.0", Schemes: []string{"user"}, PublishDirect: true, ReadOwnSubtree: true}
}

// Authorize lets a user read their own subtree.
func (p *Publisher) Authorize(_ context.Context, who sdk.Principal, resource, _ string) (sdk.Decision, error) {
	path, _ := strings.CutPrefix(resource, "user:")
	id, _, _ := strings.Cut(path, "/")
	if id != who.User {
		return sdk.Deny("user:" + id + " belongs to another user"), nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return sdk.Allow(p.etags[resource]), nil
}

// Current implements sdk.Publisher.
func (p *Publisher) Current(_ context.Context, resources []string) (map[string]string, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make(map[string]string, len(resources))
	for _, r := range resources {
		if e, ok := p.etags[r]; ok {
			out[r] = e
		}
	}
	return out, nil
}

// Run has nothing to watch.
func (*Publisher) Run(ctx context.Context, _ sdk.Host) error {
	<-ctx.Done()
	return nil
}

// Publish records etag and returns one CHANGED event.
func (p *Publisher) Publish(_ context.Context, _ sdk.Principal, resource, etag string, payload []byte) ([]sdk.Event, error) {
	p.mu.Lock()
	if _, ok := p.etags[resource]; ok || len(p.etags) < MaxResources {
		p.etags[resource] = etag
	}
	p.mu.Unlock()
	return []sdk.Event{{Kind: sdk.Changed, Resource: resource, Etag: etag, Payload: payload}}, nil
}
