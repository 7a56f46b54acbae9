package shard

import "context"

// Authorizer is what the store needs from the publishers: may principal p
// read resource (given proof), and what is the resource's etag now.
// plugins/ satisfies it. It returns ErrForbidden (wrapped, with the
// publisher's reason) to deny, ErrUnknownScheme when no publisher owns the
// scheme, and ErrUnavailable when the owner is down. It must honour ctx.
type Authorizer interface {
	Authorize(ctx context.Context, p Principal, resource, proof string) (etag string, err error)
}
