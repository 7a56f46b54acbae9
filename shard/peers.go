package shard

import "context"

// Peers connects a store to the other nodes of a cluster. A resource's
// subscriber list, held by one node, records which nodes hold queues
// subscribed to it (Interest); each node keeps its own queues' table and
// appends the events the holder sends it (DeliverLocal). The store
// reaches the holder, and the holder the interested nodes, through Peers.
// The store calls them with no store lock held. They must not call back
// into the store while it waits for them, except Link (and loopback, a
// store alone's Peers, which is the store's own list).
type Peers interface {
	// Link records in (this node's interest) in resource's subscriber
	// list at its holder (see Store.AddInterest) and returns the list's
	// position and etag when it did. A zero in only learns hint and
	// reads the list's state (Subscribe, once its publisher answered).
	Link(ctx context.Context, resource string, in Interest, hint Hint) (Linked, error)
	// Learn tells resource's list the etag a subscribe answered (see
	// Store.AddInterest). It may return before that is done.
	Learn(resource string, hint Hint)
	// Interest tells resource's list this node's changed interest (see
	// Store.SetInterest). It may return before that is done.
	Interest(resource string, in Interest)
	// Forward sends ev, stamped here, once to each of nodes, which append
	// it to their queues (a revoke: remove the subscriptions it covers).
	// It may return before it arrives.
	Forward(ev *Event, nodes []string)
	// Recheck asks the publishers again whether subs may still read
	// their resources, and revokes those denied: their subscriptions
	// gave up a gap, which may have held a revoke no later event
	// carries (see lastRevokes). It may return before that is done.
	Recheck(subs []Subscriber)
}

// loopback is the Peers of a store alone, which holds every list itself.
type loopback struct{ s *Store }

func (l loopback) Link(_ context.Context, res string, in Interest, hint Hint) (Linked, error) {
	_, linked := l.s.AddInterest(res, in, hint)
	return linked, nil
}

func (l loopback) Learn(res string, hint Hint)      { l.s.AddInterest(res, Interest{}, hint) }
func (l loopback) Interest(res string, in Interest) { l.s.SetInterest(res, in) }

// Forward is never called: a store alone names no other node.
func (loopback) Forward(*Event, []string) {}

// Recheck is never called: a store alone stamps and appends each event
// under its list's lock, so its queues see no gap.
func (loopback) Recheck([]Subscriber) {}
