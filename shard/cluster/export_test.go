package cluster

import (
	"context"
	"slices"

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

// GossipMembers lists the members gossip reports, admitted to the ring
// or not, sorted.
func (n *Node) GossipMembers() []string {
	if n.ml == nil {
		return []string{n.cfg.Name}
	}
	var out []string
	for _, m := range n.ml.Members() {
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}

// Refused reports why member name is kept out of the ring, or nil.
func (n *Node) Refused(name string) error {
	n.admit.mu.Lock()
	defer n.admit.mu.Unlock()
	st := n.admit.m[name]
	if st.ok || st.inflight {
		return nil
	}
	return st.err
}
