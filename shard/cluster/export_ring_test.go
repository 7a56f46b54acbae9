package cluster

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/metadata"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
	"meshgate/shard/ring"
)

// Believe installs on n a ring of weights that no other node uses, with
// no memory of past rings (a node that has not caught up with
// membership), and returns a func that puts back the ring it had.
func (n *Node) Believe(weights map[string]int) (restore func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	had := n.ring.Load()
	n.installLocked(ring.New(had.Epoch()+1, weights))
	n.history = nil
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.installLocked(had)
	}
}

// PushAfterDeadline sends ev to node for its list as a fan-out Push whose
// sender's deadline passed a minute ago, as a call that waited in the
// socket of a frozen node does: gRPC's own timeout would count from now.
func (n *Node) PushAfterDeadline(node string, ev *shard.Event) error {
	ctx := metadata.AppendToOutgoingContext(context.Background(), "meshgate-deadline-ns", strconv.FormatInt(time.Now().Add(-time.Minute).UnixNano(), 10))
	_, err := n.peer(node).client.Push(ctx, &pb.PushRequest{Ops: []*pb.Op{{Event: eventPB(ev), Fanout: true, Ring: n.ring.Load().ID()}}})
	return fromStatus(node, err)
}

// RejoinedAt runs what this node does when told the cluster took it for
// dead at deadAt.
func (n *Node) RejoinedAt(deadAt time.Time) { n.rejoined(uint64(deadAt.UnixNano())) }

// AuditNow runs the post-settle audit here once this node's relinks
// have ended (as tick does; at most 30 s, then at once) and returns how
// many RESYNCs the audits on this node appended so far.
func (n *Node) AuditNow() uint64 {
	for deadline := time.Now().Add(30 * time.Second); n.relinking.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	n.audit()
	return n.stats.Audited.Load()
}

// Freeze makes n as a process stopped for d finds itself when it runs
// again (SIGSTOP, then SIGCONT): its clocks ran on, nothing else did.
func (n *Node) Freeze(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.changedAt = n.changedAt.Add(-d)
	n.beat = n.beat.Add(-d)
}

// Tick runs the loop's periodic work now (expire, rebalance, the audit
// if it is due).
func (n *Node) Tick() { n.tick() }

// RepairAsDead runs what a survivor does when it takes nodes for dead:
// they leave every list here, and this node links its interest again.
func (n *Node) RepairAsDead(nodes ...string) { n.repair(n.ring.Load(), nodes) }

// Audited is how many RESYNCs the audits on this node appended so far.
func (n *Node) Audited() uint64 { return n.stats.Audited.Load() }

// TellRejoined runs what this node does when node name, repaired as dead
// at at, is a member again; it returns once name has been told.
func (n *Node) TellRejoined(name string, at time.Time) { n.tellRejoined(name, at) }

// RefuseRejoined makes the next k Rejoined calls to this node fail as
// unavailable, as a call to a node just thawed may.
func (n *Node) RefuseRejoined(k int32) { n.refuseRejoined.Store(k) }

// Rebuild derives n's ring from its membership now, as a memberlist
// callback does.
func (n *Node) Rebuild() { n.rebuild() }

// QuietFor makes n's last membership change d ago, with n running all
// along (unlike Freeze): its next tick finds the audit due.
func (n *Node) QuietFor(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.changedAt = time.Now().Add(-d)
	n.beat = time.Now()
}

// DelayRelinks makes every relink op this node is told of (see
// rejoined) wait d before it links, as on a node whose links wait for
// others.
func (n *Node) DelayRelinks(d time.Duration) { n.relinkDelay.Store(int64(d)) }

// RememberUnheldNow opens this node's window of remembered publishes, as
// a ring change, a repair or a rejoin here does.
func (n *Node) RememberUnheldNow() { n.rememberUnheld() }
