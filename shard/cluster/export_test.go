package cluster

import (
	"context"
	"slices"

	"meshgate/shard"
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

// BringList marks res as on its way here from node from, as a take of it
// does, and returns the landing: it imports the state from gave (what
// from's give answered), as the take would.
func (n *Node) BringList(res, from string) (land func(gave *pb.ResourceState)) {
	done := make(chan struct{})
	n.mu.Lock()
	n.inflight[res] = done
	n.takingFrom[res] = from
	n.mu.Unlock()
	return func(gave *pb.ResourceState) {
		n.landList(gave)
		n.mu.Lock()
		delete(n.inflight, res)
		delete(n.takingFrom, res)
		n.mu.Unlock()
		close(done)
	}
}

// GiveList gives res's list to node to, as its Take would, and returns
// the state given.
func (n *Node) GiveList(to, res string) *pb.ResourceState {
	rs := n.give(&pb.TakeRequest{Node: to, Resources: []string{res}}).GetResources()
	if len(rs) == 0 {
		return nil
	}
	return rs[0]
}

// Enlist records this node in the lists of queues' resources, as a take
// of queues from node from does before it asks for them.
func (n *Node) Enlist(ctx context.Context, from string, queues []string) {
	n.enlist(ctx, n.peer(from), queues, nil)
}

// EnlistOnLanding records in in res's list as a take's enlist does when
// its link at the list's giver failed (see enlistOnLanding).
func (n *Node) EnlistOnLanding(res string, in shard.Interest) bool {
	return n.enlistOnLanding(res, in)
}

// ForgetLeft runs the forgetting of nodes that left, as the ring rebuild
// that saw them go starts it (on its own goroutine, so perhaps late).
func (n *Node) ForgetLeft(left []string) { n.forgetLeft(left) }
