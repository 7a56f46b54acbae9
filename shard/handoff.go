package shard

import (
	"slices"
	"time"
)

// QueueState is a queue in transit from one node to another: everything it
// holds, so that its new owner continues it exactly (seqs, cursors, lease).
type QueueState struct {
	Name, User, Device string
	Created            time.Time
	TTL                time.Duration
	Expires            time.Time
	// LastSeq is the newest seq; Events hold seqs LastSeq-len(Events)+1 … LastSeq.
	LastSeq, Acked, Delivered uint64
	Events                    []*Event
	Subs                      []SubState
}

// SubState is a queue's side of one subscription.
type SubState struct {
	Resource string
	Etag     string
	Pos      Position // of the last event appended
	Linked   uint64   // see subscription.linked
	Created  int64    // unix nanoseconds
	// Parked are the events held behind a gap, in offset order: the new
	// node goes on waiting for it to fill (see ExportQueue).
	Parked []*Event
}

// ResourceState is a subscriber list in transit: the nodes interested in
// it, its stream position and its last etag, so that its events go on
// from where they were and its etag survives.
type ResourceState struct {
	Name, Etag string
	Pos        Position // the last event's
	EtagPos    Position // where Etag was learned
	Recent     []Published
	Nodes      []Interest
	// Revokes are the list's last revokes, oldest first, announced again
	// by the new holder with the list's tail (see lastRevokes).
	Revokes []*Event

	// EtagUnknown: Etag is the "" of a repair that knew none.
	EtagUnknown bool
}

// ExportQueue removes the queue name from this store and returns its state
// for its new owner. Streams and polls on it end with ErrMoved, so the
// cluster continues them where it went. It reports false if no such queue
// is held here.
func (s *Store) ExportQueue(name string) (QueueState, bool) {
	q := s.get(name)
	if q == nil {
		return QueueState{}, false
	}
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		return QueueState{}, false
	}
	q.moved = true
	st := QueueState{
		Name: q.name, User: q.owner.user, Device: q.owner.device,
		Created: q.created, TTL: q.ttl, Expires: q.expiresLocked(s.cfg.Now()),
		LastSeq: q.lastSeq, Acked: q.acked, Delivered: q.delivered,
		Events: make([]*Event, q.n),
		Subs:   make([]SubState, 0, len(q.subs)),
	}
	for i := 0; i < q.n; i++ {
		st.Events[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	for res, sub := range q.subs {
		if !sub.isPending() { // a pending one is not allowed yet: its subscribe fails with ErrMoved
			ss := SubState{Resource: res, Etag: sub.etag, Pos: sub.pos, Linked: sub.linked, Created: sub.created}
			// Invariant: a gap goes with its queue. Events held behind
			// it move too, and the new node waits for it to fill: the
			// events in the gap were sent to it as well (the old node
			// lets a queue go once the new one is in its lists), and
			// arrive there before the import or after it (Arriving).
			// Given up on here, the gap was announced as a loss, and
			// those events were dropped there as older than the RESYNC.
			if sub.x != nil {
				ss.Parked = slices.Clone(sub.x.parked)
			}
			st.Subs = append(st.Subs, ss)
		}
	}
	subs, ls := q.closeLocked() // after the state is taken: removal marks created
	q.mu.Unlock()
	s.drop(q, subs, ls)
	return st, true
}

// QueueResources counts, for each resource, how many of queues held here
// subscribe to it: the interest their new node takes over.
func (s *Store) QueueResources(queues []string) map[string]int {
	out := map[string]int{}
	for _, name := range queues {
		if q := s.get(name); q != nil {
			q.mu.Lock()
			for res := range q.subs {
				out[res]++
			}
			q.mu.Unlock()
		}
	}
	return out
}

// Caught reports whether every subscription of queues held here to a
// resource of want has appended up to want's position (or is in another
// epoch): no event from before that position is still on its way to them.
func (s *Store) Caught(queues []string, want map[string]Position) bool {
	caught := true
	s.eachWanted(queues, want, func(res string, sub *subscription, p Position) bool {
		caught = sub.isPending() || sub.pos.Epoch != p.Epoch || sub.pos.Offset >= p.Offset
		return caught
	})
	return caught
}

// InOtherEpoch returns the resources of want to which a subscription of
// queues held here stands in another epoch than want's (not pending,
// with a position): it followed a list since lost, and the list it was
// enlisted in since is another one.
func (s *Store) InOtherEpoch(queues []string, want map[string]Position) []string {
	var out []string
	s.eachWanted(queues, want, func(res string, sub *subscription, p Position) bool {
		if !sub.isPending() && !sub.pos.IsZero() && sub.pos.Epoch != p.Epoch && !slices.Contains(out, res) {
			out = append(out, res)
		}
		return true
	})
	return out
}

// eachWanted calls fn, under its queue's lock, for every subscription of
// queues held here to a resource of want (with want's position for it),
// until fn returns false.
func (s *Store) eachWanted(queues []string, want map[string]Position, fn func(res string, sub *subscription, p Position) bool) {
	for _, name := range queues {
		q := s.get(name)
		if q == nil {
			continue
		}
		q.mu.Lock()
		for res, sub := range q.subs {
			if p, ok := want[res]; ok && !fn(res, sub, p) {
				q.mu.Unlock()
				return
			}
		}
		q.mu.Unlock()
	}
}

// forget takes a dead queue out of the table and the owners index.
func (s *Store) forget(q *queue) int {
	s.shard(q.name).removeIf(q.name, q, nil)
	s.ownerMu.Lock()
	defer s.ownerMu.Unlock()
	list := slices.DeleteFunc(s.owners[q.owner], func(o *queue) bool { return o == q })
	if len(list) == 0 {
		delete(s.owners, q.owner)
	} else {
		s.owners[q.owner] = list
	}
	return len(list)
}

// ImportQueue installs a queue handed over by its previous owner. A queue
// already held under the same name is kept (it cannot be the same queue:
// names are unguessable and a queue moves as a whole).
func (s *Store) ImportQueue(st QueueState) bool {
	capacity := s.cfg.BufferSize
	q := &queue{
		name: st.Name, owner: owner{st.User, st.Device}, created: st.Created, ttl: st.TTL,
		expires: st.Expires, lastSeq: st.LastSeq, acked: st.Acked, delivered: st.Delivered,
	}
	events := st.Events
	if len(events) > capacity { // a smaller buffer here: keep the newest; readers see OVERFLOW
		events = events[len(events)-capacity:]
	}
	if len(events) > 0 {
		q.ring = make([]*Event, min(capacity, max(4, len(events))))
		q.n = copy(q.ring, events)
	}
	if len(st.Subs) > 0 {
		q.subs = make(map[string]*subscription, len(st.Subs))
		for _, ss := range st.Subs {
			sub := &subscription{etag: ss.Etag, pos: ss.Pos, linked: ss.Linked, created: ss.Created}
			if len(ss.Parked) > 0 { // the gap waits its time again here
				sub.x = &subExtra{parked: slices.Clone(ss.Parked)}
				q.holdGapLocked(s, sub, sub.x)
			}
			q.subs[ss.Resource] = sub
		}
	}
	if !s.shard(q.name).add(q.name, q) {
		return false
	}
	s.ownerMu.Lock()
	s.owners[q.owner] = append(s.owners[q.owner], q)
	s.ownerMu.Unlock()
	for _, sub := range st.Subs {
		s.arrive(q, sub.Resource)
	}
	return true
}

// arrive puts an imported queue in res's local table and offers it the
// events that came here for res while it was on its way (its old node
// registered this node's interest before it let the queue go), then
// tells the list's holder this node's interest. A subscription a revoke
// that came meanwhile covers is removed instead, with a REVOKED.
func (s *Store) arrive(q *queue, res string) {
	f := s.lockFanout(res, true)
	q.mu.Lock()
	var ls []Listener
	// Unless a call since the queue entered the table removed it (or
	// the subscription): only live subscriptions are in a local table.
	if sub := q.subs[res]; sub != nil && !q.dead {
		if slices.ContainsFunc(f.revoked, func(ev *Event) bool { return ev.revokes(q.owner, sub) }) {
			ls = s.revokeLocked(f, q, sub)
			s.counters.Notifications[Revoked].Add(1)
		} else {
			f.subs[sub] = q
			for _, ev := range f.recent {
				ls = append(ls, q.offerLocked(s, sub, ev)...)
			}
		}
	}
	q.mu.Unlock()
	in := s.interestLocked(f)
	f.mu.Unlock()
	notifyAll(ls)
	s.peers.Interest(res, in)
}

// ExportResource removes resource name's subscriber list from this store
// and returns it for its new owner. It reports false if none is held here.
func (s *Store) ExportResource(name string) (ResourceState, bool) {
	s.res.mu.Lock()
	r := s.res.m[name]
	if r == nil {
		s.res.mu.Unlock()
		return ResourceState{}, false
	}
	r.mu.Lock()
	r.dead = true
	delete(s.res.m, name)
	s.res.mu.Unlock()
	st := ResourceState{Name: name, Etag: r.etag, Pos: r.pos, EtagPos: r.etagPos, EtagUnknown: r.etagUnknown && r.etag == "", Recent: slices.Clone(r.recent), Nodes: slices.Clone(r.nodes), Revokes: r.revokes.inEpoch(r.pos.Epoch)}
	r.mu.Unlock()
	r.fwd.Wait() // deliveries that read the list have handed on their remote part
	return st, true
}

// ImportResource installs a subscriber list handed over by its previous
// owner, merged with any list already held here (each node's newest
// interest wins: Interest.Ver). A list
// new here continues the one handed over (its position and etag). Two
// lists merge into a new epoch, later than both, so every queue of either
// gets one RESYNC at the next event and none drops it as older than what
// it has. Two copies of one epoch merge into a new one too: they may have
// stamped different events at the same offsets (a copy of a list given
// again, stale, from a tomb), and going on at either's offset would give
// a later event a position a queue already holds another event at.
//
// A merge drops both copies' last revokes (they stand in no stream of the
// new epoch, lastRevokes), so a queue that missed one would never be
// told. ImportResource returns their principals (Device "" for all of a
// user's devices) for the caller to ask the publisher about again, and
// those of a list handed on in a new epoch whose revokes are of its old
// one (a list given again from a tomb, taken back).
func (s *Store) ImportResource(st ResourceState) (dropped []Subscriber) {
	var made *resource
	var u unheldPub
	var remembered bool
	r := s.lockList(st.Name, func() *resource {
		made = &resource{name: st.Name, pos: st.Pos, recent: st.Recent, came: uint64(s.cfg.Now().UnixNano())}
		if made.pos.IsZero() {
			made.pos = Position{Epoch: newEpochAbove(s.cfg.Now(), 0)}
		}
		for _, ev := range st.Revokes { // only a list new here: one merged goes on in a new epoch
			if ev.Pos.Epoch == made.pos.Epoch {
				made.revokes = made.revokes.kept(ev)
			}
		}
		u, remembered = s.takeUnheldLocked(st.Name, s.cfg.Now())
		return made
	})
	// A publish acknowledged here, with no list, after the etag the list
	// handed over (a take-back of a list whose taker died, a publish
	// that reached the new owner before the list): the list stamps it,
	// below, as a RESYNC at its next offset, so every queue in it hears
	// of it. Put at the list's current position instead (its etag
	// rewritten), it was dropped as a duplicate by every queue that had
	// the list's last event, and the next publish came as the next
	// change (TestLoss_RememberedPublishReachesQueuesAtTheImportedListsPosition).
	newer := remembered && (st.Etag == "" || u.at > st.EtagPos.At)
	for _, in := range st.Nodes {
		r.mergeLocked(in)
	}
	observeAt(max(st.Pos.At, st.EtagPos.At))
	if r != made && !st.Pos.IsZero() { // merged with a list held here
		r.pos = Position{Epoch: newEpochAbove(s.cfg.Now(), max(st.Pos.Epoch, r.pos.Epoch))}
		dropped = revokedPrincipals(r.revokes, st.Revokes)
		r.revokes = nil
	} else if r == made {
		// Handed on in a new epoch (given again from a tomb, taken
		// back): its old epoch's revokes stand nowhere either.
		dropped = revokedPrincipals(nil, slices.DeleteFunc(slices.Clone(st.Revokes), func(ev *Event) bool { return ev.Pos.Epoch == r.pos.Epoch }))
	}
	// The newer etag of the two lists, by At across epochs (Before):
	// a list of an older epoch may have delivered the later one.
	if st.Etag != "" && !st.EtagPos.Before(r.etagPos) {
		r.etag, r.etagPos, r.etagUnknown = st.Etag, st.EtagPos, false
	}
	if st.EtagUnknown && r.etag == "" {
		r.etagUnknown = true
	}
	if len(st.Nodes) > 0 {
		// What the old holder sent last may not have arrived: the
		// new holder announces the list's tail (position.go).
		s.noteTailLocked(r, s.cfg.Now())
	}
	r.mu.Unlock()
	if newer {
		s.Deliver(&Event{Kind: Resync, Resource: st.Name, Etag: u.etag, Time: s.cfg.Now(), Pos: Position{At: u.at}})
	}
	s.dropIfEmpty(r)
	return dropped
}

// revokedPrincipals are the principals revoked by here's and there's
// revokes, each once.
func revokedPrincipals(here *lastRevokes, there []*Event) []Subscriber {
	var evs []*Event
	if here != nil {
		evs = here.evs
	}
	var out []Subscriber
	for _, ev := range slices.Concat(evs, there) {
		if ev.From == nil {
			continue
		}
		sub := Subscriber{Resource: ev.Resource, User: ev.From.User, Device: ev.From.Device}
		if !slices.Contains(out, sub) {
			out = append(out, sub)
		}
	}
	return out
}

// Keys lists the names of the queues and resources held here.
func (s *Store) Keys() (queues, resources []string) {
	for i := range s.queues {
		for _, q := range s.queues[i].values(nil) {
			queues = append(queues, q.name)
		}
	}
	for _, r := range s.res.values(nil) {
		resources = append(resources, r.name)
	}
	return queues, resources
}

// Resync appends a RESYNC notification carrying l's etag to each named
// queue held here that is subscribed to resource, which was just linked
// (again) at l: the subscription goes on from l's position. A
// subscription that already appended a newer etag than l's (an event
// past l in its epoch, or a later At in another: Position.Before) is left
// alone, so no subscription appends a RESYNC older than what it
// delivered; so is one already at l with l's etag. A zero l.Pos (no position known: the list could not be
// reached and the queues held no etag a list stamped) leaves the
// subscription's position as it is: a position is never lowered to
// "none", so a late older event is still dropped. It returns how many it
// reached.
//
// Every caller announces a loss (a list made again, or this node's
// interest lost), so an l.Etag of "" is not "never published": neither
// the queues' side nor the publisher knew a version, and the RESYNC says
// so (Event.EtagUnknown), for the client to re-read the resource.
func (s *Store) Resync(resource string, l Linked, queues []string) int {
	now := s.cfg.Now()
	n := 0
	var ls []Listener
	for _, name := range queues {
		q := s.get(name)
		if q == nil {
			continue
		}
		q.mu.Lock()
		sub := q.subs[resource]
		switch {
		case q.dead || sub == nil || sub.isPending():
		case !l.Pos.IsZero() && l.Pos.Before(sub.pos):
		case !l.Pos.IsZero() && l.Pos == sub.pos && l.Etag == sub.etag:
			// It appended the event at l already: nothing was missed
			// (an event stamped before the link answered overtook it).
		default:
			if !l.Pos.IsZero() {
				sub.moveTo(l.Pos)
			}
			sub.dropParked()
			sub.etag = l.Etag
			ls = append(ls, q.appendLocked(&Event{Kind: Resync, EtagUnknown: l.Etag == "", Resource: resource, Etag: l.Etag, Time: now, Pos: l.Pos}, s.cfg.BufferSize, s.cfg.RetainDelivered)...)
			n++
		}
		q.mu.Unlock()
	}
	notifyAll(ls)
	s.counters.Notifications[Resync].Add(uint64(n))
	return n
}
