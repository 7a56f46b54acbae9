package cluster

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// Stats are a node's cluster counters since start. Safe for concurrent use.
type Stats struct {
	RingChanges atomic.Uint64 // ring rebuilds
	KeysGiven   atomic.Uint64 // queues and lists handed to other nodes
	KeysTaken   atomic.Uint64 // queues and lists taken over
	Repairs     atomic.Uint64 // crash repairs and rejoins run
	Audited     atomic.Uint64 // RESYNCs the post-settle audit appended: it should find nothing
	Rechecked   atomic.Uint64 // subscriptions the re-check of lists made again revoked (recheck)
	Dropped     atomic.Uint64 // ops that could not reach a peer
	Relays      atomic.Uint64 // relayed streams opened

	mu  sync.Mutex
	fwd map[string]uint64 // peer → RPCs and ops sent

	onHandoff atomic.Pointer[func(time.Duration)]
}

func (s *Stats) forwarded(peer string, k int) {
	s.mu.Lock()
	if s.fwd == nil {
		s.fwd = map[string]uint64{}
	}
	s.fwd[peer] += uint64(k)
	s.mu.Unlock()
}

func (s *Stats) handoff(d time.Duration) {
	if f := s.onHandoff.Load(); f != nil && *f != nil {
		(*f)(d)
	}
}

// Forwarded returns the calls and ops sent to each peer.
func (s *Stats) Forwarded() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.fwd)
}

// OnHandoff sets a function told the duration of every hand-off and repair.
func (s *Stats) OnHandoff(f func(time.Duration)) { s.onHandoff.Store(&f) }

// Stats returns the node's counters.
func (n *Node) Stats() *Stats { return &n.stats }

// NodeStats describes one node as it reports itself; the type lives in
// shard so that graph and server read it without importing the cluster.
type NodeStats = shard.NodeStats

func (n *Node) localStats() *pb.StatsReply {
	st := n.store.Stats()
	r := n.ring.Load()
	qs, rs := n.store.Keys()
	misplaced := 0
	self := n.cfg.Name
	for _, k := range append(qs, rs...) {
		if o := r.Owner(k); o != "" && o != self {
			misplaced++
		}
	}
	return &pb.StatsReply{Node: self, Queues: int64(st.Queues), Subscriptions: int64(st.Subscriptions), Resources: int64(st.Resources),
		Subscribers: int64(n.store.SubscriberCount()), Misplaced: int64(misplaced), Epoch: r.Epoch(), Ring: r.Nodes()}
}

func nodeStatsOf(r *pb.StatsReply) NodeStats {
	return NodeStats{Name: r.GetNode(), Queues: int(r.GetQueues()), Subscriptions: int(r.GetSubscriptions()), Resources: int(r.GetResources()),
		Subscribers: int(r.GetSubscribers()), Misplaced: int(r.GetMisplaced()), Epoch: r.GetEpoch(), Ring: r.GetRing(), Up: true}
}

// Members returns every member's report, sorted by name, with ring shares
// from this node's ring. Members that do not answer are listed as not up.
func (n *Node) Members(ctx context.Context) []NodeStats {
	out := map[string]NodeStats{}
	n.mu.Lock()
	for name := range n.members {
		out[name] = NodeStats{Name: name}
	}
	for name := range n.crashed { // taken for dead and not back: shown down
		out[name] = NodeStats{Name: name}
	}
	n.mu.Unlock()
	out[n.cfg.Name] = nodeStatsOf(n.localStats())
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second) // a frozen node must not stall the view
	defer cancel()
	for name, rep := range askPeers(ctx, n, func(ctx context.Context, p *peer) (*pb.StatsReply, error) {
		return p.client.Stats(ctx, &pb.Empty{})
	}) {
		out[name] = nodeStatsOf(rep)
	}
	shares := n.ring.Load().Shares()
	list := make([]NodeStats, 0, len(out))
	for _, name := range slices.Sorted(maps.Keys(out)) {
		s := out[name]
		s.Share = shares[name]
		list = append(list, s)
	}
	return list
}
