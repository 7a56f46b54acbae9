package shard

import "context"

// Peers connects a store to the other nodes of a cluster. A subscription is
// recorded twice: in its queue, held by the queue's owner, and in its
// resource's subscriber list, held by the resource's owner. When the two are
// different nodes, the store reaches the other side through Peers. Methods
// must not call back into the store while it waits for them, except Link.
type Peers interface {
	// Link adds queue (owned by owner, held by this node) to resource's
	// subscriber list at the resource's holder (see Store.AddSubscribers)
	// and returns the list's position and etag when the queue joined.
	Link(ctx context.Context, resource, queue string, owner Principal, hint Hint) (Linked, error)
	// Learn tells resource's list the etag a subscribe answered (see
	// Store.AddSubscribers). It may return before that is done.
	Learn(resource string, hint Hint)
	// Unlink removes queues from resource's subscriber list at its owner.
	// It may return before that is done.
	Unlink(resource string, queues []string)
	// Forward delivers ev to queues held by other nodes, batched per node,
	// and returns how many it sent on. It may return before they arrive.
	// hints[i] is where queues[i] was last known to be held ("" unknown).
	Forward(ev *Event, queues, hints []string) int
	// RevokeQueues tells the holders of queues that their subscriptions to
	// resource were revoked. It may return before that is done.
	RevokeQueues(resource string, queues []string)
}
