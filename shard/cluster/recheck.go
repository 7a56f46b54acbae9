package cluster

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// recheckWorkers bounds the Authorize calls a node's re-check of lists
// made again has in flight.
const recheckWorkers = 8

// recheckLater makes the subscriptions here to resources, and the
// principals subs to their resources wherever their queues are, due a
// re-check (recheck). Re-checks are coalesced: one runs at a time on the
// node, and what is made due meanwhile waits for the next.
func (n *Node) recheckLater(resources []string, subs []shard.Subscriber) {
	if len(resources)+len(subs) == 0 {
		return
	}
	n.mu.Lock()
	for _, res := range resources {
		if n.recheckDue == nil {
			n.recheckDue = map[string]bool{}
		}
		n.recheckDue[res] = true
	}
	for _, sub := range subs {
		if n.recheckOf == nil {
			n.recheckOf = map[shard.Subscriber]bool{}
		}
		n.recheckOf[sub] = true
	}
	start := !n.rechecking
	n.rechecking = true
	n.mu.Unlock()
	if start {
		go n.rechecker()
	}
}

// Recheck implements shard.Peers: the principals of subscriptions here
// that gave up a gap, which may have held a revoke no later event
// carries, are asked again as those of a list made again are (recheck).
func (n *Node) Recheck(subs []shard.Subscriber) { n.recheckLater(nil, subs) }

// rechecker runs the re-checks due until none is, or the node closes.
func (n *Node) rechecker() {
	for {
		n.mu.Lock()
		due, of := n.recheckDue, n.recheckOf
		n.recheckDue, n.recheckOf = nil, nil
		if len(due)+len(of) == 0 || n.closed() {
			n.rechecking = false
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		subs := n.store.Subscribers(func(res string) bool { return due[res] })
		for sub := range of {
			if !slices.Contains(subs, sub) {
				subs = append(subs, sub)
			}
		}
		n.recheck(len(due), subs)
	}
}

// recheck asks the publishers again, for every principal subscribed here
// to one of resources, whether it may still read it, and revokes those
// denied (an error other than ErrForbidden leaves the subscriptions: no
// guess either way). It asks as the plugin host's re-check does: the
// principal's user and device, no scopes, no proof.
//
// Invariant: a revoke this node's queues missed because their list was
// lost, or because this node was missing from it, still ends the
// subscriptions it covered. A list's holder sends a revoke to the other
// interested nodes and keeps its last ones to send again (shard's
// lastRevokes); a holder that dies takes both with it, with whatever of
// them had not arrived; a node taken for dead missed those the survivors
// stamped meanwhile in the lists they made again; a node missing from a
// list got none of its revokes. The list made again, or linked again,
// knows none of them, so the subscriptions stayed and their principals
// went on getting the resource's changes
// (TestRevoke_LostWithItsListsHolderReachesTheQueueAfterTheRepair).
// The publisher's answer now carries what the missed revokes said. Each
// node re-checks its own queues (relinkOne); the revoke goes through the
// list, as a publisher's does, so it reaches the principal's queues
// wherever they are, moving ones and pending subscribes among them, and
// a subscription made after it is stamped is kept. One allowed again
// while the answer was on its way is revoked too: a REVOKED too many,
// never one too few.
//
// The same holds for the revokes a merge of two copies of a list drops
// (shard.Store.ImportResource): the node the merged list is held at asks
// again about the principals they named, as the revoke named them (a
// device of "" for all of a user's devices), since their queues may be
// on any node (TestRecheck_AMergedListRechecksTheRevokesItDropped).
// And for a revoke a queue skipped in a gap it gave up, older than the
// list's last revokes (which the list announces again): the queue's
// node asks about its owner (Recheck;
// TestRevoke_LostBeyondTheLastRevokesIsRecheckedAtTheGap).
func (n *Node) recheck(lists int, subs []shard.Subscriber) {
	auth := n.authorizer(nil)
	if auth == nil {
		return
	}
	var g errgroup.Group
	g.SetLimit(recheckWorkers)
	var revoked atomic.Int32
	for _, sub := range subs {
		g.Go(func() error {
			if n.closed() {
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			_, err := auth.Authorize(ctx, shard.Principal{User: sub.User, Device: sub.Device}, sub.Resource, "")
			switch {
			case errors.Is(err, shard.ErrForbidden):
				n.Revoke(sub.Resource, sub.User, sub.Device)
				revoked.Add(1)
				n.stats.Rechecked.Add(1)
			case err != nil:
				n.log.Warn("re-check of a list made again, merged or skipped in a gap: no answer; the subscription is kept", "resource", sub.Resource, "user", sub.User, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
	n.log.Info("re-checked the subscriptions of lists made again, merged or skipped in a gap", "lists", lists, "subscribers", len(subs), "revoked", revoked.Load())
}

// SubscribersWithScheme lists the subscribers of scheme's resources whose
// lists are held here: the owners of the queues subscribed to them, asked
// of every node (a list records only which nodes are interested).
func (n *Node) SubscribersWithScheme(scheme string) []shard.Subscriber {
	held := n.store.ResourcesWithScheme(scheme)
	if len(held) == 0 {
		return nil
	}
	var out []shard.Subscriber
	seen := map[shard.Subscriber]bool{}
	add := func(sub shard.Subscriber) {
		if _, ok := held[sub.Resource]; ok && !seen[sub] {
			seen[sub] = true
			out = append(out, sub)
		}
	}
	for _, sub := range n.store.SubscribersWithScheme(scheme) {
		add(sub)
	}
	for _, rep := range askPeers(context.Background(), n, func(ctx context.Context, p *peer) (*pb.SubscribersReply, error) {
		rep, err := p.client.Subscribers(ctx, &pb.SubscribersRequest{Scheme: scheme})
		if err != nil {
			n.log.Warn("re-check: a node did not list its subscribers", "peer", p.name, "err", err)
		}
		return rep, err
	}) {
		for _, s := range rep.GetSubscribers() {
			add(shard.Subscriber{Resource: s.GetResource(), User: s.GetUser(), Device: s.GetDevice()})
		}
	}
	return out
}
