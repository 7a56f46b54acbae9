package cluster

import (
	"context"

	pb "meshgate/shard/cluster/peerpb"
)

// TakeKeys runs this node's side of a hand-off of keys from node from
// (as the Handoff RPC does), so a test can overlap hand-offs at will.
func (n *Node) TakeKeys(ctx context.Context, from string, queues, resources []string) error {
	return n.take(ctx, from, queues, resources)
}

// GiveKeys runs this node's side of a Take of keys by node to, and
// returns how many queues and lists it gave.
func (n *Node) GiveKeys(to string, queues, resources []string) (int, int) {
	rep := n.give(&pb.TakeRequest{Node: to, Queues: queues, Resources: resources})
	return len(rep.GetQueues()), len(rep.GetResources())
}
