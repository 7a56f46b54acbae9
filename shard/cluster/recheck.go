package cluster

import (
	"context"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

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
