// Package shard holds meshgate's state and the rules that keep it whole: the
// queue store (leases, bounded buffers, sequence numbers), the subscription
// tables (queue → resources; resource → the queues held here, local.go;
// resource → the interested nodes at the list's holder, list.go), fan-out
// of events to subscribed queues, invites, and the streams that readers
// attach to a queue.
//
// Node-level interest (centrifuge's hub, nats-server's per-route
// interest): a resource's subscriber list, at its holder, records which
// nodes hold queues subscribed to it and how many (Interest); each node
// keeps its own resource → queues table and appends what the holder sends
// it, once per node and event (DeliverLocal). A node tells the holder its
// interest when its count changes (subscribe links, Peers.Interest
// otherwise); each node numbers its own messages (Interest.Ver), so the
// holder keeps the newest whatever order they arrive in. A queue that
// moves is in its new node's table, and its new node in the list, before
// its old node lets it go (ImportQueue, Arriving; the cluster registers
// the taker first); positions make the overlap harmless.
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
// never older than one delivered, and has a position (a publisher's
// answer once the list learned it, after the publisher answered), from
// which the subscription goes on; etags of two epochs are ordered by when
// they were stamped (Position.At), so no subscription appends a RESYNC
// older than what it delivered; a revoke is an event of its resource's
// stream too (RevokeEvent): whether a subscription came before it is
// read from positions (the offset a subscription was linked at, not
// where it stands now), and it is ordered, kept for queues on their way
// and waited for by a hand-off as a change is; a list announces its last
// event and its last revokes again to the other nodes interested in it
// (AnnounceTails), so a lost last event is never left unannounced and a
// revoke a queue skipped in a gap still removes its subscription. The locks of shard and shard/cluster,
// and the order they are taken in, are in LOCKS.md. Listener.Notify is
// called with no queue lock held (a resource's lock and a local table's
// may be held during fan-out), so it must not call back into the Store.
package shard
