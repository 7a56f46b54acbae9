// Package cluster spreads a gateway's state over many nodes: membership and
// failure detection with hashicorp/memberlist, ownership with a consistent
// hash ring (package ring), routing of every call to the node that holds
// its queue or resource over gRPC with mutual TLS, hand-off of state when
// nodes join or leave, and repair of subscriber lists when a node dies.
//
// A Node wraps one shard.Store. Any node accepts any call and sends it to
// the key's ring owner; the node that holds the key serves it. State
// moves whole (Take), so a key is held by exactly one node at a time; a
// node that handed a key off remembers where it went (a tomb). The tomb
// keeps what was given until the taker acknowledges it: a take that did
// not get its answer asks again, and keys given to a taker that went
// away come back (handoff.go take). Calls between nodes carry the
// sender's ring identity (ring.Ring.ID); a receiver on another ring
// waits briefly for membership to converge, else answers
// shard.ErrUnavailable, so every route is short by construction, not by
// a hop count (locate.go). On a single node (no gossip address)
// every key is local and nothing is sent anywhere.
//
// A resource's list records which nodes are interested in it (see
// shard.Interest): its holder sends each event once to each of them, with
// no queue names, and each appends it to its own queues. What moves when:
// a list moves whole with its interested nodes (Take); a queue moves with
// its subscriptions, and its new node is registered in each of their
// lists before the old node exports it (take's enlist); a node that
// dies is dropped from every list here, and the lists it held are made
// again from every survivor's interest, with the newest etag and
// position their queues delivered (relink); a node taken for dead that
// returns drops the lists it held then, tells the other nodes interested
// in them to link again (some never took it for dead), and links all
// its interest again (rejoined).
//
// Order and duplicates are not kept by waiting: every event carries the
// stream position its list holder stamped (see shard.Position), and the
// queue's side compares positions. A list whose events went to other
// nodes sends its last one again once it is quiet, with its last revokes
// (shard.Store.AnnounceTails, every tailTick), so an event lost on the way
// is announced even when nothing is published after it, and a revoke a
// queue skipped still reaches it. After a crash,
// every node links all its interest again (a list a dead node held
// without owning it is made again at once), and for a moment a publish
// that finds no list answers shard.ErrUnavailable: the list may be in the
// making. A publish's context bounds its delivery, so one its caller gave
// up on is never stamped after the changes published since. A node owns
// keys only once it is ready (Config.WaitReady, SetReady), and an error
// of a peer going away or of membership moving is shard.ErrUnavailable.
// The locks and the order they are taken in are in shard/LOCKS.md.
//
// Files: node.go (membership, the ring), locate.go (where a key is
// served: the ring identity, owners, tombs, past owners), calls.go (queue
// calls routed to the queue's holder), fanout.go (deliveries to a list's
// holder, revokes among them, interest and learn ops, fan-out to the interested
// nodes, ops kept for nodes not members yet, tail announcements),
// handoff.go (hand-off: give, take, take-back, rebalance, leave),
// repair.go (crash repair, rejoin, the audit: one relink), peer.go
// (outboxes, hand-on of a gone peer's ops), rpc.go (the service),
// stream.go (relayed streams), publishers.go (calls to the owner's
// publishers), recheck.go (the re-check of the subscriptions of lists
// made again; every node's subscribers of a scheme, for a publisher's
// re-check), admit.go (member identity), convert.go (wire forms and
// errors).
package cluster
