package shard

import "sync"

// fanout is one resource's subscribers held here: every node keeps its
// own table and appends an event of the resource to its queues, whether
// this node holds the resource's subscriber list (which records only
// which nodes are interested) or received the event from the holder.
// (centrifuge's hub: a node subscribes to a channel once, for all its
// clients, and fans out locally.)
type fanout struct {
	name string
	// mu guards the fields below. Fan-out holds it from the first append
	// to the last, so a node appends one resource's events in one order.
	mu sync.Mutex
	// subs are the subscriptions to name of the queues held here, each
	// with its queue (beside it, not behind it: fan-out loads both at once).
	subs map[*subscription]*queue
	// recent are the last events fanned out while a queue is being handed
	// to this node (Store.arriving): the queue, imported after they came,
	// is offered them, so none stamped between its old node's export and
	// its import here is lost.
	recent []*Event
	// revoked are the revokes among recent (Event.revokes), kept whatever
	// came after them until no queue is on its way, one per principal and
	// epoch (the newest covers every subscription an older one does): a
	// queue imported after one that covers it lands revoked (arrive), even
	// after more than maxArrivingEvents events.
	revoked []*Event
	// newest is the newest etag fanned out here (by position) with its
	// position: what this node's queues know of the resource, which a
	// subscribe's link brings to the list (joinLocal).
	newest Hint
	dead   bool // removed from Store.local; re-look it up
}

// keepLocked keeps ev, fanned out here while a queue is on its way, for
// that queue (recent, and revoked for a revoke). f.mu held.
func (f *fanout) keepLocked(ev *Event) {
	f.recent = appendBounded(f.recent, ev, maxArrivingEvents)
	f.keepRevokeLocked(ev)
}

// keepRevokeLocked keeps ev, if a revoke, among f.revoked: the newest
// per principal and epoch. f.mu held.
func (f *fanout) keepRevokeLocked(ev *Event) {
	if ev.Kind != Revoked || ev.From == nil {
		return
	}
	for i, o := range f.revoked {
		if o.From.User == ev.From.User && o.From.Device == ev.From.Device && o.Pos.Epoch == ev.Pos.Epoch {
			if o.Pos.Offset < ev.Pos.Offset {
				f.revoked[i] = ev
			}
			return
		}
	}
	f.revoked = append(f.revoked, ev)
}

// maxArrivingEvents bounds fanout.recent; a queue that arrives later
// than that many events sees a gap and a RESYNC.
const maxArrivingEvents = 64

// lockFanout returns res's local table, live and locked, creating it if
// create is true (else nil if there is none): a table removed from
// Store.local (dead) while this waited for its lock is looked up again.
func (s *Store) lockFanout(res string, create bool) *fanout {
	for {
		f := s.local.get(res)
		if f == nil && create {
			f = s.local.getOrAdd(res, func() *fanout { return &fanout{name: res, subs: make(map[*subscription]*queue)} })
		}
		if f == nil {
			return nil
		}
		f.mu.Lock()
		if !f.dead {
			return f
		}
		f.mu.Unlock()
	}
}

// interestLocked is this node's interest in f's resource now. f.mu held.
func (s *Store) interestLocked(f *fanout) Interest {
	return Interest{Node: s.name, Count: len(f.subs), Ver: s.ver.Add(1)}
}

// InterestVer is the Ver of the newest interest this node has sent for
// any resource: every later one has a larger Ver.
func (s *Store) InterestVer() uint64 { return s.ver.Load() }

// joinLocal puts sub, q's subscription to res, in res's local table and
// returns this node's interest, for the list's holder, with the newest
// etag fanned out here, as a hint for the list.
//
// Invariant: a link tells the list what its node's queues know. A list
// made again after its holder lost it (a crash, a node taken for dead)
// knows no etag until the queues of the lost list link again, each node
// when it learns of the loss, seconds apart; a fresh subscribe meanwhile
// would believe a publisher that answers an older etag (the built-in
// user: keeps etags per node) and go back behind what the gateway
// delivered to a queue of the subscribing node. With the hint the list
// adopts the newer etag first (AddInterest, by position), and the
// subscribe answers it (TestSubscribe_AListMadeAgainLearnsTheSubscribingNodesNewestEtag).
func (s *Store) joinLocal(res string, q *queue, sub *subscription) (Interest, Hint) {
	f := s.lockFanout(res, true)
	// Only a live subscription: an export or unsubscribe that ran
	// before takes it out of the table after changing it.
	q.mu.Lock()
	if !q.dead && q.subs[res] == sub {
		f.subs[sub] = q
	}
	q.mu.Unlock()
	in, hint := s.interestLocked(f), f.newest
	f.mu.Unlock()
	return in, hint
}

// leaveLocal takes sub, a subscription to res removed from its queue,
// out of res's local table and tells the list's holder this node's
// interest now.
func (s *Store) leaveLocal(res string, sub *subscription) {
	f := s.lockFanout(res, false)
	if f == nil {
		return
	}
	_, had := f.subs[sub]
	delete(f.subs, sub)
	in := s.interestLocked(f)
	f.mu.Unlock()
	if had {
		s.dropLocalIfEmpty(f)
		s.peers.Interest(res, in)
	}
}

// dropLocalIfEmpty removes f once it has no queue and none is arriving.
func (s *Store) dropLocalIfEmpty(f *fanout) bool {
	if s.arriving.Load() > 0 {
		return false
	}
	return s.local.removeIf(f.name, f, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.dead = len(f.subs) == 0 && s.arriving.Load() == 0
		return f.dead
	})
}

// DeliverLocal appends ev, stamped by its list's holder, to every queue
// held here that subscribes to ev.Resource, and returns how many it
// reached: the receiving end of Peers.Forward. Each subscription decides
// by ev's position (an op sent again, overtaken, or after a gap). A
// revoke (RevokeEvent) removes the subscriptions it covers instead, with
// a REVOKED notification in each queue, and counts those.
func (s *Store) DeliverLocal(ev *Event) int {
	n, in := s.deliverLocal(ev)
	s.tellInterest(ev.Resource, in)
	return n
}

// deliverLocal is DeliverLocal but for telling the list's holder this
// node's interest, changed by a revoke (in, nil if unchanged): the
// holder's own fan-out holds the list's lock.
func (s *Store) deliverLocal(ev *Event) (n int, in *Interest) {
	arriving := s.arriving.Load() > 0
	f := s.lockFanout(ev.Resource, arriving) // while one arrives, made to keep ev for it
	if f == nil {
		return 0, nil
	}
	if s.arriving.Load() > 0 { // read again under f.mu: see Arriving
		f.keepLocked(ev)
	} else {
		f.recent, f.revoked = nil, nil
	}
	if ev.Etag != "" && ev.Kind != Revoked && ev.Pos.At != 0 && (f.newest.Etag == "" || f.newest.Pos.Before(ev.Pos)) {
		f.newest = Hint{Etag: ev.Etag, Pos: ev.Pos}
	}
	revoked := 0
	for sub, q := range f.subs {
		q.mu.Lock()
		var ls []Listener
		switch {
		case sub.gone(): // unsubscribed, or its queue gone: it leaves the table
		case ev.revokes(q.owner, sub):
			var removed bool
			if ls, removed = s.revokeCoveredLocked(f, q, sub, ev); removed {
				revoked++
			}
		default:
			ls = q.offerLocked(s, sub, ev)
			n++ // appended, or had been (the same publication again)
		}
		q.mu.Unlock()
		notifyAll(ls)
	}
	if ev.Kind == Revoked {
		n = revoked
	}
	in = s.endRevokesLocked(f, revoked)
	if ev.Kind != Revoked {
		s.counters.Deliveries.Add(uint64(n))
	}
	s.counters.Notifications[ev.Kind].Add(uint64(n))
	return n, in
}

// revokeCoveredLocked applies ev, a revoke that covers sub (q's
// subscription to f's resource: Event.revokes), and reports whether it
// removed sub, returning the listeners to notify. One whose link has not
// answered keeps the revoke for its subscribe to decide (subExtra.early):
// it may be older than the subscription (sent again, announced with a
// tail). f.mu and q.mu held.
func (s *Store) revokeCoveredLocked(f *fanout, q *queue, sub *subscription, ev *Event) ([]Listener, bool) {
	if sub.isUnlinked() {
		sub.x.early = append(sub.x.early, ev)
		return nil, false
	}
	return s.revokeLocked(f, q, sub), true
}

// endRevokesLocked unlocks f after revoked subscriptions left it, drops
// it if it is empty now, and returns this node's interest for the list's
// holder if it changed (nil if not). f.mu held; released.
func (s *Store) endRevokesLocked(f *fanout, revoked int) *Interest {
	if revoked == 0 {
		f.mu.Unlock()
		return nil
	}
	in := s.interestLocked(f)
	f.mu.Unlock()
	s.dropLocalIfEmpty(f)
	return &in
}

// revokeHere removes, in one walk of res's local table, each
// subscription one of the revokes among evs covers (the list's last
// revokes, announced again: see lastRevokes), and keeps them for queues
// on their way here as fan-out does (fanout.revoked). Other subscriptions are left as they
// are: a revoke is a place in the stream they had, here at the list's
// holder, in order. It returns this node's interest if it changed. The
// list's lock is held (read), as by fan-out.
func (s *Store) revokeHere(res string, evs []*Event) *Interest {
	f := s.lockFanout(res, s.arriving.Load() > 0) // while one arrives, made to keep evs for it
	if f == nil {
		return nil
	}
	if s.arriving.Load() > 0 { // read again under f.mu: see Arriving
		for _, ev := range evs {
			f.keepRevokeLocked(ev) // not among recent: they are no new places in the stream
		}
	}
	revoked := 0
	for sub, q := range f.subs {
		q.mu.Lock()
		var ls []Listener
		for _, ev := range evs {
			if sub.gone() || !ev.revokes(q.owner, sub) {
				continue
			}
			var removed bool
			if ls, removed = s.revokeCoveredLocked(f, q, sub, ev); removed {
				revoked++
				break
			}
		}
		q.mu.Unlock()
		notifyAll(ls)
	}
	s.counters.Notifications[Revoked].Add(uint64(revoked))
	return s.endRevokesLocked(f, revoked)
}

// revokeLocked removes sub, q's subscription to f's resource, from q and
// from f, and appends a REVOKED notification to q. f.mu and q.mu held.
func (s *Store) revokeLocked(f *fanout, q *queue, sub *subscription) []Listener {
	delete(q.subs, f.name)
	sub.remove()
	delete(f.subs, sub)
	return q.appendLocked(&Event{Kind: Revoked, Resource: f.name, Etag: sub.etag, Time: s.cfg.Now()}, s.cfg.BufferSize, s.cfg.RetainDelivered)
}

// Arriving marks a queue hand-off to this node as begun (+1) or ended
// (-1). While one is in progress, events fanned out here are kept for
// the queues on their way (see fanout.recent); once none is, tables
// left with no queue are dropped and their holders told.
//
// Invariant: what a table keeps for the queues on their way (recent,
// revoked) is cleared, and a table is dropped, only with its f.mu held
// and no hand-off in progress as read under it. A keep made under f.mu
// after a hand-off began is therefore seen by that hand-off's queue,
// even when an earlier hand-off's end is walking the tables meanwhile;
// before, that walk (read no hand-off, then cleared) wiped a revoke kept
// for the later one, and its queue landed subscribed
// (TestArrive_ARevokeKeptOutlivesTheEndOfAnEarlierHandOff).
func (s *Store) Arriving(delta int32) {
	if s.arriving.Add(delta) > 0 {
		return
	}
	for _, f := range s.local.values(nil) {
		f.mu.Lock()
		if s.arriving.Load() == 0 {
			f.recent, f.revoked = nil, nil
		}
		in := s.interestLocked(f)
		f.mu.Unlock()
		if in.Count == 0 && s.dropLocalIfEmpty(f) {
			s.peers.Interest(f.name, in)
		}
	}
}

// LocalInterest is what this node knows of its queues' subscriptions to
// one resource: its interest, the queues, and the newest etag they
// delivered with its position (the hint a repair re-links with).
type LocalInterest struct {
	Interest
	Queues []string
	Hint   Hint
}

// LocalInterests lists, for every resource with subscribers here, this
// node's interest in its list: a node that took over a dead node's lists
// re-links them, and the audit checks them.
func (s *Store) LocalInterests() map[string]LocalInterest {
	fs := s.local.values(nil)
	out := make(map[string]LocalInterest, len(fs))
	for _, f := range fs {
		f.mu.Lock()
		li := LocalInterest{Interest: s.interestLocked(f)}
		for sub, q := range f.subs {
			q.mu.Lock()
			if !sub.gone() && !sub.isPending() {
				li.Queues = append(li.Queues, q.name)
				if sub.etag != "" && (li.Hint.Etag == "" || li.Hint.Pos.Before(sub.pos)) {
					li.Hint = Hint{Etag: sub.etag, Pos: sub.pos}
				}
			}
			q.mu.Unlock()
		}
		f.mu.Unlock()
		if li.Count > 0 {
			out[f.name] = li
		}
	}
	return out
}

// SubscribersWithScheme lists every distinct (resource, user, device) of
// the queues held here subscribed to resources of scheme, for a publisher
// host that must ask again who may read what (a restarted plugin may have
// lost the revocations it was about to send). Safe for concurrent use.
func (s *Store) SubscribersWithScheme(scheme string) []Subscriber {
	return s.Subscribers(hasScheme(scheme))
}

// Subscribers lists every distinct (resource, user, device) of the
// queues held here subscribed to the resources of keep. Safe for
// concurrent use.
func (s *Store) Subscribers(keep func(resource string) bool) []Subscriber {
	fs := s.local.values(keep)
	var out []Subscriber
	seen := map[Subscriber]bool{}
	for _, f := range fs {
		f.mu.Lock()
		for _, q := range f.subs {
			who := Subscriber{Resource: f.name, User: q.owner.user, Device: q.owner.device}
			if !seen[who] {
				seen[who] = true
				out = append(out, who)
			}
		}
		f.mu.Unlock()
	}
	return out
}

// Subscriber is one principal subscribed to a resource: the queue
// owner's user and device (scopes are not kept with a subscription).
type Subscriber struct {
	Resource, User, Device string
}
