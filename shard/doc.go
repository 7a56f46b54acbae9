// Package shard holds meshgate's state and the rules that keep it whole: the
// queue store (leases, bounded buffers, sequence numbers), the subscription
// tables on both sides (resource → queues, queue → resources), fan-out of
// events to subscribed queues, invites, and the streams that readers attach
// to a queue.
//
// Every operation is addressed by a queue name or a resource string only, so
// that a router can send each call to the node that owns the key. The package
// knows nothing of GraphQL or HTTP; it reaches publishers through the small
// Authorizer interface that plugins/ satisfies.
//
// Delivery invariants, stated on stream positions (position.go): every
// event of a resource carries the position its list holder stamped; a
// subscription appends only past the last position it appended; subscribe
// is ordered with publish under the list's lock; the etag answered is
// never older than one delivered; etags of two epochs are ordered by when
// they were stamped (Position.At), so no subscription appends a RESYNC
// older than what it delivered; a list announces its last event again to
// its queues on other nodes (AnnounceTails), so a lost last event is never
// left unannounced. The locks of shard and shard/cluster,
// and the order they are taken in, are in LOCKS.md. Listener.Notify is
// called with no queue lock held (a resource's lock may be held during
// fan-out), so it must not call back into the Store.
package shard
