package shard

// NodeStats describes one node of a cluster as it reports itself, for the
// admin view (the `cluster` query, /status). A single node reports itself
// alone, with Share 1.
type NodeStats struct {
	Name string
	// Share is the node's share of the ring (0–1), as this node sees the ring.
	Share float64
	// Queues and Subscriptions are held in the node's queues; Resources and
	// Subscribers are its subscriber lists and their entries.
	Queues, Subscriptions, Resources, Subscribers int
	// Misplaced counts keys the node holds that its ring gives to another
	// node: non-zero only while a hand-off is under way.
	Misplaced int
	Epoch     uint64
	Ring      []string
	// Up is false when the node did not answer, or was taken for dead
	// and has not come back.
	Up bool
}
