package cluster

import "meshgate/shard/ring"

// Believe installs on n a ring of weights that no other node uses, with
// no memory of past rings (a node that has not caught up with
// membership), and returns a func that puts back the ring it had.
func (n *Node) Believe(weights map[string]int) (restore func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	had := n.ring.Load()
	n.installLocked(ring.New(had.Epoch()+1, weights), had)
	n.history = nil
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.installLocked(had, n.ring.Load())
	}
}
