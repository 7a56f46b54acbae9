package shard

import (
	"slices"
	"sync"
)

// Interest is one node's entry in a resource's subscriber list: how many
// of its queues subscribe to the resource (0: none). Ver orders a node's
// messages about its interest: it is taken from the node's own counter
// when the count is read, so the list keeps the newest whatever order
// they arrive in. Ver 0 (a hand-off registering a queue's new node on
// its behalf) only makes sure the node is in the list.
type Interest struct {
	Node  string
	Count int
	Ver   uint64
}

// resource is one resource's subscriber list at its holder: which nodes
// hold queues subscribed to it, and its stream. The queues themselves are
// in each node's local table (fanout).
type resource struct {
	name string
	// mu guards the fields below. Fan-out holds it (write) from stamping
	// an event to the last local append, so a list's events are appended
	// here and sent to other nodes in the order of their positions.
	mu sync.RWMutex
	// nodes are the nodes' interests, one entry per node (Count 0 kept
	// for its Ver); a slice, not a map: a list names few nodes, and most
	// lists one (a map's smallest table is ~40 B a subscription in
	// ScenarioD).
	nodes []Interest
	pos   Position // the last event's position (Offset 0: none yet in this epoch)
	// etag is the last etag the gateway delivered for the resource (or
	// learned from a subscribe or a hand-off), as of etagPos.
	etag    string
	etagPos Position
	// came is when the list came to this store (unix nanoseconds, this
	// node's clock): made here, or imported whole from another node. An
	// imported list keeps its epoch (its stream goes on), so the epoch
	// alone does not say whether this node held it at some past moment
	// (see HeldSince).
	came uint64
	// recent are the last publications stamped, by ID (see Event.ID).
	recent []Published
	// last is the newest event stamped (nil: none since the list came
	// here), announced again to other nodes (AnnounceTails).
	last *Event
	// revokes are the list's last revokes (nil for most lists), announced
	// again with its tail (see lastRevokes).
	revokes *lastRevokes
	dead    bool // removed from Store.res; re-look it up
	// etagUnknown: etag is the "" of a repair that knew none (Hint.Unknown,
	// or an Event.EtagUnknown stamped), not "never published". Beside
	// dead, it packs into its padding.
	etagUnknown bool
	// fwd counts deliveries that have read the list and are still handing
	// its remote part to Peers.Forward: an export waits for them, so
	// every delivery from this list is on its way before the list leaves.
	fwd sync.WaitGroup
}

// countLocked is how many queues subscribe, over every node. r.mu held.
func (r *resource) countLocked() int {
	n := 0
	for _, in := range r.nodes {
		n += in.Count
	}
	return n
}

// mergeLocked records in unless r knows a newer word from the same node
// (a message of an older Ver arriving late). Ver 0 (a hand-off's taker)
// only makes sure the node is in. It reports whether the node was not
// interested before and is now. r.mu held.
func (r *resource) mergeLocked(in Interest) (added bool) {
	i := slices.IndexFunc(r.nodes, func(cur Interest) bool { return cur.Node == in.Node })
	if i < 0 {
		r.nodes = append(r.nodes, in)
		return in.Count > 0
	}
	cur := &r.nodes[i]
	added = cur.Count == 0
	switch {
	case in.Ver > cur.Ver:
		*cur = in
	case in.Ver == 0 && cur.Count == 0:
		cur.Count = in.Count
	}
	return added && cur.Count > 0
}

// remoteLocked lists the other nodes with queues in r. r.mu held.
func (r *resource) remoteLocked(self string) []string {
	var remote []string
	for _, in := range r.nodes {
		if in.Count > 0 && in.Node != self {
			remote = append(remote, in.Node)
		}
	}
	return remote
}

// AddInterest records in (a node's interest, Count > 0) in res's
// subscriber list, held by this node, creating the list (in a new epoch)
// if needed. It reports whether the node was not interested yet, and
// returns the list's position and etag as they were when it joined:
// every later event of the list goes to the node.
//
// hint is what the node's queues know (a repair's re-link, or the etag a
// subscribe answered): the list adopts its etag unless the list learned
// one at a later position. If it adopts one while other nodes were in
// the list, their queues get a RESYNC with it. A zero in only learns.
func (s *Store) AddInterest(res string, in Interest, hint Hint) (added bool, l Linked) {
	r := s.lockList(res, nil)
	others := r.countLocked() > 0
	if in.Count > 0 {
		added = r.mergeLocked(in)
	}
	observeAt(hint.Pos.At)
	if hint.Pos.Epoch > r.pos.Epoch {
		// The queues saw a later list than this one (this node was
		// taken for dead and came back): go on in a new epoch, later
		// than theirs, so none drops this list's events as older.
		r.pos = Position{Epoch: newEpochAbove(s.cfg.Now(), hint.Pos.Epoch)}
	}
	// Invariant: the list's etag never goes back. It adopts the
	// hint's only if it is not older (Before: by offset in one
	// epoch, by At across epochs), so a queue that followed another list of
	// this resource cannot bring back an etag this one delivered a
	// newer one over.
	raised := hint.Etag != "" && hint.Etag != r.etag && !hint.Pos.Before(r.etagPos)
	if raised {
		r.etag, r.etagPos, r.etagUnknown = hint.Etag, hint.Pos, false
	}
	if hint.Unknown && r.etag == "" {
		r.etagUnknown = true
	}
	l = Linked{Pos: r.pos, Etag: r.etag, EtagUnknown: r.etagUnknown && r.etag == ""}
	l.Pos.At = r.etagPos.At
	r.mu.Unlock()
	s.dropIfEmpty(r)
	if raised && in.Count > 0 && others {
		// It keeps the etag's At: it announces that etag again.
		s.Deliver(&Event{Kind: Resync, Resource: res, Etag: hint.Etag, Time: s.cfg.Now(), Pos: Position{At: hint.Pos.At}})
	}
	return added, l
}

// SetInterest records a node's changed interest in res's list (the
// count it sends when its queues subscribe or leave). A list held
// nowhere is started by a node that still has queues for it, in a new
// epoch: they are told of the loss with a RESYNC at the next event.
func (s *Store) SetInterest(res string, in Interest) {
	if in.Count > 0 {
		s.AddInterest(res, in, Hint{})
		return
	}
	if r := s.res.get(res); r != nil {
		r.mu.Lock()
		r.mergeLocked(in)
		r.mu.Unlock()
		s.dropIfEmpty(r)
	}
}

// Enlist records in res's list, held here (made if none), in.Count
// queues of in.Node on their way to it, as of floor (see WithEnlist).
func (s *Store) Enlist(res string, in Interest, floor uint64) {
	r := s.lockList(res, nil)
	r.nodes = WithEnlist(r.nodes, in, floor)
	r.mu.Unlock()
	s.dropIfEmpty(r)
}

// WithEnlist records in nodes, a list's entries, that in.Count queues of
// in.Node are on their way to it (a hand-off's enlist), as of floor: the
// node's newest interest Ver when the enlist was made.
//
// Invariant: an enlist neither outvotes a newer word of the node nor is
// outvoted by an older one. A word above floor was sent after the
// enlist and is kept; otherwise the entry goes on at floor (its count
// kept if the node counts queues already), so a word sent before the
// enlist and applied after it (it waited for the list to land) changes
// nothing. At Ver 0, such a word took the node out of the list while
// its queue was still coming, and the list's events for it were lost
// until the queue arrived
// (TestHandoff_AnOlderWordOfTheNodeDoesNotOutvoteItsEnlistOnceLanded).
func WithEnlist(nodes []Interest, in Interest, floor uint64) []Interest {
	i := slices.IndexFunc(nodes, func(cur Interest) bool { return cur.Node == in.Node })
	switch {
	case i < 0:
		return append(nodes, Interest{Node: in.Node, Count: in.Count, Ver: floor})
	case nodes[i].Ver <= floor:
		if nodes[i].Count == 0 {
			nodes[i].Count = in.Count
		}
		nodes[i].Ver = floor
	}
	return nodes
}

// ForgetNodes sets to 0 the count of the nodes for which gone is true in
// every subscriber list held here, and returns how many entries it
// changed: nodes that left gracefully (their queues went elsewhere) or
// crashed (their queues are lost). Invariant: an entry a node's interest
// op is compared against (Ver) outlives the node's queues, so an op of
// the node still on its way (relayed by a former holder of the list,
// kept until the list landed) is older than it and changes nothing; an
// entry removed took its Ver with it, and such an op named the node in
// the list again. A node that comes back sends a newer Ver (its counter
// goes on, or starts from the clock after a restart).
func (s *Store) ForgetNodes(gone func(node string) bool) int {
	n := 0
	for _, r := range s.res.values(nil) {
		r.mu.Lock()
		for i := range r.nodes {
			if in := &r.nodes[i]; in.Count > 0 && gone(in.Node) {
				in.Count = 0
				n++
			}
		}
		r.mu.Unlock()
		s.dropIfEmpty(r)
	}
	return n
}

// HasResource reports whether res's subscriber list is held here, and
// how many queues it counts.
func (s *Store) HasResource(res string) (subscribers int, held bool) {
	return readList(s, res, (*resource).countLocked)
}

// HeldSince reports since when res's list has been what this node holds
// (held false: none), in unix nanoseconds: the later of when it came here
// (made here, or imported whole) and its epoch (Position.Epoch: the
// wall-clock time it was made or last merged, or went on in a new epoch).
// A list this node held at time t has a HeldSince at or before t; one
// that came here after t, even with an older epoch (a list imported whole
// keeps its stream's epoch), has a later one.
func (s *Store) HeldSince(res string) (since uint64, held bool) {
	return readList(s, res, func(r *resource) uint64 { return max(r.came, r.pos.Epoch) })
}

// readList is what read says of res's list, under the list's read lock,
// and whether the list is held here (one removed since it was looked up,
// dead, is not).
func readList[T any](s *Store, res string, read func(*resource) T) (v T, held bool) {
	r := s.res.get(res)
	if r == nil {
		return v, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return read(r), !r.dead
}

// SubscriberCount counts the queues of every subscriber list held here.
func (s *Store) SubscriberCount() int {
	n := 0
	for _, r := range s.res.values(nil) {
		r.mu.RLock()
		n += r.countLocked()
		r.mu.RUnlock()
	}
	return n
}

// lockList returns res's subscriber list, live and locked, made by mk
// if none is held (nil: an empty one in a new epoch): a list emptied and
// removed (dead) between lookup and lock is looked up again.
func (s *Store) lockList(res string, mk func() *resource) *resource {
	if mk == nil {
		mk = func() *resource { // under res.mu
			now := s.cfg.Now()
			r := &resource{name: res, pos: Position{Epoch: newEpochAbove(now, 0)}, came: uint64(now.UnixNano())}
			if u, ok := s.takeUnheldLocked(res, now); ok {
				// A publish acknowledged here while no list was: the list
				// starts from its etag (see noteUnheld).
				r.etag, r.etagPos = u.etag, Position{Epoch: r.pos.Epoch, At: u.at}
			}
			return r
		}
	}
	for {
		r := s.res.getOrAdd(res, mk)
		r.mu.Lock()
		if !r.dead {
			return r
		}
		r.mu.Unlock()
	}
}

// dropIfEmpty removes r once no node is interested.
func (s *Store) dropIfEmpty(r *resource) {
	r.mu.RLock()
	empty := r.countLocked() == 0
	r.mu.RUnlock()
	if empty {
		s.res.removeIf(r.name, r, func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.dead = r.countLocked() == 0
			return r.dead
		})
	}
}

// Deliver appends ev to every queue subscribed to ev.Resource and returns
// how many queues it reached (or was sent to). The event is shared, never
// copied; no goroutine is started. Readers are woken through their
// listeners. The caller has validated ev; ev must not change afterwards.
func (s *Store) Deliver(ev *Event) int {
	n, _ := s.DeliverHere(ev)
	return n
}

// DeliverHere is Deliver at the list's holder, which also reports whether
// this node holds a subscriber list for ev.Resource at all (a resource
// handed to another node is no longer held here). It stamps ev, appends
// it to the queues here, and hands it to Peers.Forward once for every
// other interested node, which fans it out to its own queues. The count
// includes the queues of those nodes.
func (s *Store) DeliverHere(ev *Event) (n int, held bool) { return s.fan(ev, true) }

// Refan sends ev, which the list held here stamped, again to every node
// interested in the list now, this one included: the hand-on of an event
// meant for a node that left (its queues' new nodes are interested by
// now). It is never stamped again, so it cannot come back at a later
// position; an event of another epoch (the list was made again since) is
// not sent, nor is one whose list is not held here (it announces its
// tail where it went). It reports whether ev was sent.
func (s *Store) Refan(ev *Event) bool {
	_, sent := s.fan(ev, false)
	return sent
}

func (s *Store) fan(ev *Event, stamp bool) (n int, held bool) {
	r := s.res.get(ev.Resource)
	if r == nil && stamp {
		r = s.noteUnheld(ev)
	}
	if r == nil {
		return 0, false
	}
	var remote []string
	var in *Interest // this node's, changed by a revoke: told once r.mu is released
	// The list's lock is held for the whole local fan-out: the list's
	// events are stamped, appended here and queued for other nodes in
	// one order. Nothing waits for another node: the receiving side
	// orders what arrives by position.
	r.mu.Lock()
	switch {
	case r.dead:
		r.mu.Unlock()
		return 0, false
	case !stamp && ev.Pos.Epoch != r.pos.Epoch:
		r.mu.Unlock()
		return 0, false
	case stamp && ev.Kind == Resync && ev.Pos.At != 0 && ev.Pos.At < r.etagPos.At:
		// Invariant: the list's etag never goes back. A RESYNC that
		// announces an etag the list adopted (AddInterest, ImportUnheld,
		// ImportResource) is sent once the list's lock is released; a
		// publish stamped meanwhile announced a newer one, which the
		// queues hold: this one has nothing left to say.
		r.mu.Unlock()
		return 0, true
	case stamp:
		r.stampLocked(ev, s.cfg.Now())
	}
	for _, node := range r.nodes {
		switch {
		case node.Count == 0:
		case node.Node == s.name:
			var k int
			k, in = s.deliverLocal(ev)
			n += k
		default:
			remote = append(remote, node.Node)
			if ev.Kind != Revoked { // a revoke counts the subscriptions it removed here
				n += node.Count
			}
		}
	}
	if len(remote) > 0 {
		r.fwd.Add(1)
		defer r.fwd.Done()
		s.noteTailLocked(r, s.cfg.Now())
	}
	r.mu.Unlock()
	s.tellInterest(ev.Resource, in)
	if len(remote) > 0 {
		s.peers.Forward(ev, remote)
	}
	return n, true
}

// ResourcesWithScheme returns every resource of scheme whose subscriber
// list is held here, with the last etag a publisher reported for it. The
// plugin host compares these with the publisher's current etags after a
// restart.
func (s *Store) ResourcesWithScheme(scheme string) map[string]string {
	out := make(map[string]string)
	for _, r := range s.res.values(hasScheme(scheme)) {
		r.mu.RLock()
		if r.countLocked() > 0 {
			out[r.name] = r.etag
		}
		r.mu.RUnlock()
	}
	return out
}

// Revoke removes the subscriptions to res of every queue owned by user
// (and device, when not empty), and puts a REVOKED notification in each
// of those queues, wherever they are: res's list, held here, stamps the
// revoke in its stream (RevokeEvent). It returns how many queues here
// lost a subscription.
func (s *Store) Revoke(res, user, device string) int {
	return s.Deliver(RevokeEvent(res, user, device))
}
