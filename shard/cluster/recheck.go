package cluster

import "meshgate/shard"

// SubscribersWithScheme lists the subscribers of scheme's resources whose
// lists are held here (see shard.Store.SubscribersWithScheme).
func (n *Node) SubscribersWithScheme(scheme string) []shard.Subscriber {
	return n.store.SubscribersWithScheme(scheme)
}
