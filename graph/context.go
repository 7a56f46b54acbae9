package graph

import (
	"context"

	"meshgate/shard"
)

type principalKey struct{}

// WithPrincipal returns ctx carrying the authenticated caller.
func WithPrincipal(ctx context.Context, p shard.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller that server/ authenticated.
func PrincipalFrom(ctx context.Context) (shard.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(shard.Principal)
	return p, ok
}

func principal(ctx context.Context) (shard.Principal, error) {
	if p, ok := PrincipalFrom(ctx); ok {
		return p, nil
	}
	return shard.Principal{}, ErrUnauthenticated
}
