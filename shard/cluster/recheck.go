package cluster

import (
	"context"
	"errors"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// recheckWorkers bounds the Authorize calls a re-check of lost lists has
// in flight.
const recheckWorkers = 8

// recheckLost asks the publishers again, for every principal subscribed
// here to one of resources, whose lists were lost and are linked again,
// whether it may still read it, and revokes those denied (an error other
// than ErrForbidden leaves the subscription: no guess either way).
//
// Invariant: a revoke stamped in a list that was lost still ends the
// subscriptions it covered. A list's holder sends a revoke to the other
// interested nodes and keeps its last ones to send again (shard's
// lastRevokes); a holder that dies takes both with it, with whatever of
// them had not arrived, and a node taken for dead missed those the
// survivors stamped meanwhile in the lists they made again. The list
// made again knows none of them, so the subscriptions stayed, and their
// principals went on getting the resource's changes
// (TestRevoke_LostWithItsListsHolderReachesTheQueueAfterTheRepair). The
// publisher's answer now carries what the lost revokes said. A revoke
// goes through the list, as the publisher's own does, so a subscription
// allowed again since is kept.
func (n *Node) recheckLost(resources []string) {
	auth := n.authorizer(nil)
	if len(resources) == 0 || auth == nil {
		return
	}
	lost := make(map[string]bool, len(resources))
	for _, res := range resources {
		lost[res] = true
	}
	subs := n.store.Subscribers(func(res string) bool { return lost[res] })
	var g errgroup.Group
	g.SetLimit(recheckWorkers)
	var revoked atomic.Int32
	for _, sub := range subs {
		g.Go(func() error {
			select {
			case <-n.stop:
				return nil
			default:
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
				n.log.Warn("re-check of a lost list: no answer; the subscription is kept", "resource", sub.Resource, "user", sub.User, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
	n.log.Info("re-checked the subscriptions of lost lists", "lists", len(resources), "subscribers", len(subs), "revoked", revoked.Load())
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
