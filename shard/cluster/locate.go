package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"meshgate/shard"
)

// Routing on a ring identity nodes compare (ring.Ring.ID). A call
// enters the cluster at any node, which sends it to the key's ring owner;
// the owner serves it if it holds the key, and else asks, in turn, the
// nodes that may (pastOwnersLocked). Every call between nodes carries the
// sender's ring identity, and the receiver checks it first (sameRing): a
// call from another ring waits for this node to install it, at most
// ringWait, else is answered shard.ErrUnavailable. No call is bounced on
// by counting hops; these invariants bound every route:
//
//   - On a shared ring, a call that reaches a node other than the key's
//     owner was sent by the owner, asking (or by a node the owner asked,
//     following its tomb): "asked" needs no flag. Such a node serves the
//     key if it holds it, follows its tomb unless it points to the owner,
//     and else answers errNotHeld. It never sends the call to the owner,
//     so every route is: entry node → owner → the nodes it asks → tombs.
//   - Tombs point forward in a key's hand-off history: a tomb is made
//     when its node gives the key away, and a node that holds the key
//     follows no tomb (held is checked first).
//   - A key's holder is its owner, or a node the owner can name: the node
//     it gave the key to (a tomb), a past ring's owner (rebalance hands a
//     key to its new owner; until it has, the past owner holds it), or the
//     owner this node displaced when it joined (memberlist reports members
//     one at a time, so a joining node's own past rings may not name the
//     holder). Past rings are remembered for historyTTL, well past a
//     rebalance.

// place is where locate found a key's call is served.
type place struct {
	node string // another node serves it; "" this one
	// This node owns the key and does not hold it: the nodes that may,
	// to ask in turn (each answers errNotHeld if it does not). With none
	// left, the key is absent and served here as such.
	ask  []string
	ring uint64 // the ring identity the route was chosen on
}

// holderOf is where a stream of queue name is read ("" here): the node
// serving it, or, if this node owns it and does not hold it, its
// likeliest holder (a stream cannot ask in turn). remote: the stream came
// from another node on this node's ring, so a node neither holding nor
// owning the queue answers errNotHeld (see locate), except that a tomb
// is followed even to the owner: a stream comes by a redirect its
// reader's node followed, not only asked by the owner.
func (n *Node) holderOf(ctx context.Context, name string, remote bool) (string, error) {
	at, err := n.locate(ctx, name, n.store.Has, remote)
	if t := n.tombOf(name); errors.Is(err, errNotHeld) && t != "" {
		return t, nil
	}
	if at.node == "" && len(at.ask) > 0 {
		return at.ask[0], err
	}
	return at.node, err
}

// locate says where key is served. remote: the call came from another
// node on this node's ring (see sameRing). A key held here is served
// here; a key being taken by this node is waited for; see the invariants
// above for the rest. A remote call for a key neither held nor owned
// here answers errNotHeld.
func (n *Node) locate(ctx context.Context, key string, held func(string) bool, remote bool) (place, error) {
	for {
		if held(key) {
			return place{}, nil
		}
		n.mu.Lock()
		ch := n.inflight[key]
		if ch == nil {
			break
		}
		n.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return place{}, ctx.Err()
		}
	}
	defer n.mu.Unlock()
	r := n.ring.Load()
	self, owner := n.cfg.Name, r.Owner(key)
	tomb := n.tombs[key].node
	switch {
	case owner == "" || owner == self:
		return place{ask: n.pastOwnersLocked(key), ring: r.ID()}, nil
	case !remote:
		return place{node: owner, ring: r.ID()}, nil
	case tomb != "" && tomb != owner && n.aliveLocked(tomb):
		return place{node: tomb, ring: r.ID()}, nil
	}
	return place{}, errNotHeld
}

// pastOwnersLocked lists the nodes that may hold a key this node owns
// and does not hold: the node its tomb names, then, while this node
// remembers a ring change (historyTTL), each past ring's owner and the
// owner this node displaced. Only live members, each once. n.mu held.
func (n *Node) pastOwnersLocked(key string) []string {
	var out []string
	add := func(o string) {
		if o != "" && o != n.cfg.Name && n.aliveLocked(o) && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	add(n.tombs[key].node)
	if len(n.history) > 0 {
		for _, p := range n.history {
			add(p.r.Owner(key))
		}
		add(n.others.Owner(key))
	}
	return out
}

// sameRing returns once this node's ring identity is id (the sender's),
// waiting at most ringWait for membership to converge, woken by each ring
// install; else it answers shard.ErrUnavailable: the caller tries again.
func (n *Node) sameRing(ctx context.Context, id uint64) error {
	t := time.NewTimer(ringWait)
	defer t.Stop()
	for {
		n.mu.Lock()
		r, installed := n.ring.Load(), n.installed
		n.mu.Unlock()
		if r.ID() == id {
			return nil
		}
		select {
		case <-installed:
		case <-t.C:
			return fmt.Errorf("%w: %s and the sender disagree on the ring while membership changes; retry", shard.ErrUnavailable, n.cfg.Name)
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", shard.ErrUnavailable, ctx.Err()) //nolint:errorlint // UNAVAILABLE is the contract
		}
	}
}

// serve runs a call on key where locate says it is served: at the node
// it names (there), else at each node that may hold it, in turn (there;
// errNotHeld: the next one), else here. A call of this node's own sent
// on a route the ring changed under (errNotHeld from the node named), a
// key that moved meanwhile (shard.ErrMoved), or one that here finds gone
// or coming (again) is located again.
func serve[T any](ctx context.Context, n *Node, key string, held func(string) bool, remote bool, there func(node string, id uint64) (T, error), here func(at place) (v T, again bool, err error)) (T, error) {
	var v T
	for range 4 { // each pass follows a move that happened meanwhile
		at, err := n.locate(ctx, key, held, remote)
		if err != nil {
			return v, err
		}
		if at.node != "" {
			v, err = there(at.node, at.ring)
			if errors.Is(err, shard.ErrMoved) || !remote && errors.Is(err, errNotHeld) {
				continue
			}
			return v, err
		}
		for _, o := range at.ask {
			if v, err = there(o, at.ring); !errors.Is(err, errNotHeld) {
				return v, err
			}
		}
		again := false
		if v, again, err = here(at); !again {
			return v, err
		}
	}
	return v, fmt.Errorf("%w: %s is moving between nodes; retry", shard.ErrUnavailable, key)
}

// movedMeanwhile reports whether key, not found here, left (a tomb to a
// node not asked already) or is in flight here since at was located.
func (n *Node) movedMeanwhile(key string, at place) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.tombs[key]
	return n.inflight[key] != nil || ok && !slices.Contains(at.ask, t.node)
}

func (n *Node) holdsResource(res string) bool {
	_, held := n.store.HasResource(res)
	return held
}

func (n *Node) tombOf(key string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tombs[key].node
}

func unavailable(node string) error {
	return fmt.Errorf("%w: node %s is not reachable", shard.ErrUnavailable, node)
}

// errNotHeld answers a call that reached a node other than its key's
// owner (on a shared ring: the owner asked) for a key not held there.
var errNotHeld = errors.New("key not held here")
