package shard

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// SubscriptionInfo is one (queue, resource) pair as its owner sees it.
type SubscriptionInfo struct {
	Queue     string
	Resource  string
	Etag      string
	CreatedAt time.Time
}

// subRef is one entry of a resource's subscriber list: a queue, named, with
// its owning device (for REVOKED, which targets a user's queues). The queue
// may live on another node; q caches it when it lives here.
type subRef struct {
	// who owns the queue: the queue's own owner field when it is held
	// here (no copy), else one of its own.
	who *owner
	// at is where the queue was last known to be held (guarded by the
	// resource's mu; never nil). Entries share one route per node until
	// their queue moves, so it costs a pointer.
	at *route
	q  atomic.Pointer[queue]
	// sub caches q's subscription to the list's resource, so a delivery
	// skips the map lookup (a cache miss per queue). Valid while it is
	// not gone and q is the queue it was read from (reset when q is).
	sub atomic.Pointer[subscription]
}

// route says which node holds a queue: node "" is this one (or unknown).
type route struct{ node string }

// ownerRef is the owner of queue for a list entry: the queue's own field
// when it is held here, so local entries share it.
func (s *Store) ownerRef(queue, user, device string) *owner {
	if q := s.get(queue); q != nil && q.owner.user == user && q.owner.device == device {
		return &q.owner
	}
	return &owner{user, device}
}

// routeTo is the shared route to node, with no previous node.
func (s *Store) routeTo(node string) *route {
	if v, ok := s.routes.Load(node); ok {
		return v.(*route)
	}
	v, _ := s.routes.LoadOrStore(node, &route{node: node})
	return v.(*route)
}

// Subscribe records that queue wants notifications about resource, after
// auth has allowed p to read it. It returns the subscription with the
// resource's current etag. If knownEtag is not empty and differs from the
// current etag, a RESYNC notification is appended too, so a stream learns it.
// Subscribing again refreshes the etag.
//
// The subscription is recorded twice: in the queue and in the resource's
// subscriber list, which lives at the resource's owner (through Peers).
//
// Invariant (subscribe is ordered with publish): the queue is linked into
// the list, under the list's lock, before the publisher is asked, and the
// subscription stays pending (it appends nothing) until the publisher has
// allowed it. A publish is therefore either delivered to the pending
// subscription, whose last etag is then the answer, or reflected in the
// etag the publisher answers; the answer is never older than an etag
// already delivered for the resource. A publisher that answers "" (it
// forgot, as the built-in `user:` one does when it restarts), or any
// etag while the list holds one it stamped, is not believed over the
// list, which remembers the last etag it delivered.
func (s *Store) Subscribe(ctx context.Context, auth Authorizer, p Principal, queueName, res, proof, knownEtag string) (SubscriptionInfo, error) {
	if _, _, err := ParseResource(res); err != nil {
		return SubscriptionInfo{}, err
	}
	if err := ValidEtag(knownEtag); err != nil {
		return SubscriptionInfo{}, fmt.Errorf("knownEtag: %w", err)
	}
	q, err := s.lookup(p, queueName)
	if err != nil {
		return SubscriptionInfo{}, err
	}
	now := s.cfg.Now()
	q.mu.Lock()
	if err := q.goneLocked(); err != nil {
		q.mu.Unlock()
		return SubscriptionInfo{}, err
	}
	sub := q.subs[res]
	fresh := sub == nil
	if fresh {
		if len(q.subs) >= s.cfg.MaxSubscriptionsPerQueue {
			q.mu.Unlock()
			return SubscriptionInfo{}, s.tooManySubs()
		}
		sub = &subscription{created: now.UnixNano(), x: &subExtra{pending: true}}
		if q.subs == nil {
			q.subs = make(map[string]*subscription)
		}
		q.subs[res] = sub
	}
	q.mu.Unlock()
	// abandon takes a fresh subscription out again.
	abandon := func(linked bool) {
		if !fresh {
			return
		}
		q.mu.Lock()
		if q.subs[res] == sub {
			delete(q.subs, res)
			sub.remove()
		}
		q.mu.Unlock()
		if linked {
			s.unlink(res, []string{queueName})
		}
	}
	linked, err := s.link(ctx, res, queueName, q.owner, Hint{})
	if err != nil {
		abandon(false)
		return SubscriptionInfo{}, err
	}
	etag, err := auth.Authorize(ctx, p, res, proof)
	if err != nil {
		abandon(true)
		return SubscriptionInfo{}, fmt.Errorf("subscribe %s: %w", res, err)
	}
	now = s.cfg.Now()
	q.mu.Lock()
	if err := q.goneLocked(); err != nil {
		q.mu.Unlock()
		// Only a fresh (pending) subscription dies with its queue's
		// move: a queue carries the subscriptions it had, so the list
		// keeps serving an existing one at the queue's new home.
		abandon(true)
		return SubscriptionInfo{}, err
	}
	if q.subs[res] != sub { // unsubscribed (or taken out) meanwhile
		q.mu.Unlock()
		return SubscriptionInfo{}, fmt.Errorf("%w: the subscription to %s was removed while it was made; retry", ErrUnavailable, res)
	}
	pending := sub.isPending()
	if pending && !sub.pos.IsZero() && !linked.Pos.Less(sub.pos) {
		// What arrived while pending was from before the link (a late
		// event for an earlier subscription of this queue): the list's
		// state at the link is newer, so it is neither the answer nor
		// the subscription's position.
		sub.x.seen = false
	}
	answer := etag
	switch {
	case pending && sub.x.seen:
		answer = sub.etag // delivered while pending: the newest there is
	case !pending && linked.Pos.Epoch == sub.pos.Epoch && linked.Pos.Offset < sub.pos.Offset && sub.etag != "":
		// An event past the link was appended while the publisher was
		// asked: its etag is at least as new as the publisher's answer,
		// which may have been read before it. Answering (and
		// remembering) the publisher's would go back behind what the
		// queue holds. Only within one epoch: positions of two lists
		// say nothing of which etag is newer.
		answer = sub.etag
	case answer == "" && !pending && sub.etag != "":
		answer = sub.etag
	case linked.Etag != "" && linked.Pos.At != 0:
		// The list holds an etag a list stamped (delivered): it is at
		// least as new as any publish that completed before the link,
		// and a later one reaches the queue. The publisher's answer may
		// be older: a publisher keeping etags in memory on one node (the
		// built-in user:) knows only the publishes it saw while it owned
		// the resource, so after ownership moved it can answer one the
		// gateway delivered a newer one over.
		answer = linked.Etag
	case answer == "":
		answer = linked.Etag
	}
	learn := linked.Etag == "" && answer != ""
	if pending {
		// The next event of the list is the first for this queue: the
		// position is at least the link's, whatever arrived before.
		if sub.pos.Less(linked.Pos) {
			sub.pos = linked.Pos
		}
		sub.x.pending, sub.x.seen = false, false
		sub.tidy()
	} else if !linked.Pos.IsZero() && sub.pos.Before(linked.Pos) {
		// A refresh: the answer is the list's state at the link, so the
		// subscription goes on from the link's position too. Left behind
		// (its etag new, its position that of a list it followed once),
		// it would take a late event of that list, at the next offset
		// there, for its next one, and append an old change after the
		// answer.
		sub.pos = linked.Pos
		sub.dropParked()
	}
	sub.etag = answer
	var ls []Listener
	if knownEtag != "" && knownEtag != answer {
		s.counters.Notifications[Resync].Add(1)
		ls = q.appendLocked(&Event{Kind: Resync, Resource: res, Etag: answer, Time: now}, s.cfg.BufferSize, s.cfg.RetainDelivered)
	}
	q.renewLocked(now)
	info := SubscriptionInfo{Queue: q.name, Resource: res, Etag: answer, CreatedAt: time.Unix(0, sub.created)}
	q.mu.Unlock()
	notifyAll(ls)
	if learn {
		// The list knew no etag: it learns the publisher's, as of the
		// position the queue was linked at (an event since wins).
		s.learn(res, Hint{Etag: answer, Pos: linked.Pos})
	}
	return info, nil
}

func (s *Store) tooManySubs() error {
	return fmt.Errorf("%w: a queue may hold at most %d subscriptions", ErrLimitExceeded, s.cfg.MaxSubscriptionsPerQueue)
}

// link adds queue to res's subscriber list, here or at res's owner.
func (s *Store) link(ctx context.Context, res, queue string, o owner, hint Hint) (Linked, error) {
	if s.peers != nil {
		return s.peers.Link(ctx, res, queue, Principal{User: o.user, Device: o.device}, hint)
	}
	_, l := s.AddSubscribers(res, []SubscriberState{{Queue: queue, User: o.user, Device: o.device}}, hint)
	return l, nil
}

// learn tells res's list the etag a subscribe answered, here or at res's owner.
func (s *Store) learn(res string, hint Hint) {
	if s.peers != nil {
		s.peers.Learn(res, hint)
		return
	}
	s.AddSubscribers(res, nil, hint)
}

// unlink removes queues from res's subscriber list, here or at res's owner.
func (s *Store) unlink(res string, queues []string) {
	if s.peers != nil {
		s.peers.Unlink(res, queues)
		return
	}
	s.RemoveSubscribers(res, queues)
}

// AddSubscribers puts subs (each held by its Node: "" for this one) in
// res's subscriber list, held by this node, creating the list (in a new
// epoch) if needed. It returns the queues that were not in the list yet
// and the list's position and etag as they were when the queues joined:
// every later event of the list reaches them.
//
// hint is what the queues' side knows (a repair's re-link, or the etag a
// subscribe answered): the list adopts its etag unless the list learned
// one at a later position. If it adopts one while other queues were in
// the list, they get a RESYNC with it.
func (s *Store) AddSubscribers(res string, subs []SubscriberState, hint Hint) (added []string, l Linked) {
	for {
		r := s.resourceFor(res)
		r.mu.Lock()
		if r.dead {
			r.mu.Unlock()
			continue // emptied and removed between lookup and lock
		}
		others := len(r.subs)
		rerouted := false
		for _, sub := range subs {
			ref := r.subs[sub.Queue]
			if ref == nil {
				added = append(added, sub.Queue)
			} else {
				others--
			}
			if ref == nil || ref.who.user != sub.User || ref.who.device != sub.Device {
				r.subs[sub.Queue] = &subRef{who: s.ownerRef(sub.Queue, sub.User, sub.Device), at: s.routeTo(sub.Node)}
			} else if ref.at.node != sub.Node {
				ref.at = s.routeTo(sub.Node)
				rerouted = true
			}
		}
		if rerouted && s.peers != nil {
			// Events sent on the old route may have been lost: the queue
			// gets the list's tail on its new one (position.go).
			s.noteTailLocked(r, s.cfg.Now())
		}
		observeAt(hint.Pos.At)
		if hint.Pos.Epoch > r.pos.Epoch {
			// The queues saw a later list than this one (this node was
			// taken for dead and came back): go on in a new epoch, later
			// than theirs, so none drops this list's events as older.
			r.pos = Position{Epoch: newEpochAbove(s.cfg.Now(), hint.Pos.Epoch)}
		}
		raised := false
		// Invariant: the list's etag never goes back. It adopts the
		// hint's only if it is not older (Before: by offset in one epoch,
		// by At across epochs), so a queue that followed another list of
		// this resource cannot bring back an etag this one delivered a
		// newer one over.
		if hint.Etag != "" && hint.Etag != r.etag && !hint.Pos.Before(r.etagPos) {
			r.etag, r.etagPos = hint.Etag, hint.Pos
			raised = true
		}
		l = Linked{Pos: r.pos, Etag: r.etag}
		l.Pos.At = r.etagPos.At
		empty := len(r.subs) == 0
		r.mu.Unlock()
		if empty {
			s.dropIfEmpty(r)
		}
		if raised && len(subs) > 0 && others > 0 {
			// It keeps the etag's At: it announces that etag again.
			s.Deliver(&Event{Kind: Resync, Resource: res, Etag: hint.Etag, Time: s.cfg.Now(), Pos: Position{At: hint.Pos.At}})
		}
		return added, l
	}
}

// HasResource reports whether res's subscriber list is held here, and
// its length.
func (s *Store) HasResource(res string) (subscribers int, held bool) {
	s.resMu.RLock()
	r := s.res[res]
	s.resMu.RUnlock()
	if r == nil {
		return 0, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.subs), !r.dead
}

// SetHolder records that queue, in res's subscriber list, is now held by node.
func (s *Store) SetHolder(res, queue, node string) {
	s.resMu.RLock()
	r := s.res[res]
	s.resMu.RUnlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	if ref := r.subs[queue]; ref != nil && ref.at.node != node {
		ref.at = s.routeTo(node)
	}
	r.mu.Unlock()
}

// RemoveSubscribers takes queues out of res's subscriber list, and res out
// of the table once nobody subscribes to it.
func (s *Store) RemoveSubscribers(res string, queues []string) {
	s.resMu.RLock()
	r := s.res[res]
	s.resMu.RUnlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	for _, q := range queues {
		delete(r.subs, q)
	}
	r.mu.Unlock()
	s.dropIfEmpty(r)
}

// resourceFor returns res's subscriber list, creating it.
func (s *Store) resourceFor(res string) *resource {
	s.resMu.RLock()
	r := s.res[res]
	s.resMu.RUnlock()
	if r != nil {
		return r
	}
	s.resMu.Lock()
	defer s.resMu.Unlock()
	if r = s.res[res]; r == nil {
		r = &resource{name: res, subs: make(map[string]*subRef), pos: Position{Epoch: newEpoch(s.cfg.Now())}}
		s.res[res] = r
	}
	return r
}

func (s *Store) dropIfEmpty(r *resource) {
	r.mu.RLock()
	empty := len(r.subs) == 0
	r.mu.RUnlock()
	if empty {
		s.resMu.Lock()
		r.mu.Lock()
		if len(r.subs) == 0 && !r.dead {
			r.dead = true
			delete(s.res, r.name)
		}
		r.mu.Unlock()
		s.resMu.Unlock()
	}
}

// Unsubscribe removes queue's subscription to resource. It reports whether
// one existed.
func (s *Store) Unsubscribe(_ context.Context, p Principal, queueName, res string) (bool, error) {
	if _, _, err := ParseResource(res); err != nil {
		return false, err
	}
	q, err := s.lookup(p, queueName)
	if err != nil {
		return false, err
	}
	q.mu.Lock()
	if err := q.goneLocked(); err != nil {
		q.mu.Unlock()
		return false, err
	}
	sub := q.subs[res]
	delete(q.subs, res)
	if sub != nil {
		sub.remove()
	}
	q.renewLocked(s.cfg.Now())
	q.mu.Unlock()
	if sub == nil {
		return false, nil
	}
	s.unlink(res, []string{queueName})
	return true, nil
}

// Subscriptions lists queue's subscriptions, sorted by resource, and renews its lease.
func (s *Store) Subscriptions(_ context.Context, p Principal, queueName string) ([]SubscriptionInfo, error) {
	q, err := s.lookup(p, queueName)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	if err := q.goneLocked(); err != nil {
		q.mu.Unlock()
		return nil, err
	}
	q.renewLocked(s.cfg.Now())
	out := make([]SubscriptionInfo, 0, len(q.subs))
	for res, sub := range q.subs {
		out = append(out, SubscriptionInfo{Queue: q.name, Resource: res, Etag: sub.etag, CreatedAt: time.Unix(0, sub.created)})
	}
	q.mu.Unlock()
	slices.SortFunc(out, func(a, b SubscriptionInfo) int { return cmp.Compare(a.Resource, b.Resource) })
	return out, nil
}

// Deliver appends ev to every queue subscribed to ev.Resource and returns
// how many queues it reached here. Subscribers whose queues live on other
// nodes are handed to Peers.Forward in one call. The event is shared, never
// copied; no goroutine is started. Readers are woken through their
// listeners. The caller has validated ev; ev must not change afterwards.
func (s *Store) Deliver(ev *Event) int {
	n, _ := s.DeliverHere(ev)
	return n
}

// DeliverHere is Deliver that also reports whether this node holds a
// subscriber list for ev.Resource at all (a resource handed to another
// node is no longer held here). The count includes the queues the event
// was forwarded to.
func (s *Store) DeliverHere(ev *Event) (n int, held bool) {
	s.resMu.RLock()
	r := s.res[ev.Resource]
	s.resMu.RUnlock()
	if r == nil {
		return 0, false
	}
	capacity, retain := s.cfg.BufferSize, s.cfg.RetainDelivered
	var remote, hints []string
	// The list's lock is held for the whole fan-out: the list's events
	// are stamped and appended in one order.
	r.mu.Lock()
	if r.dead {
		r.mu.Unlock()
		return 0, false
	}
	if r.stampLocked(ev, s.cfg.Now()) {
		r.last = ev
		if ev.Kind == Changed || ev.Kind == Resync {
			r.etag, r.etagPos = ev.Etag, ev.Pos
		}
	}
	for name, ref := range r.subs {
		if node := ref.at.node; node != "" && node != s.name {
			// Held elsewhere (or arrived here while the list still names
			// the node it came from): Peers.Forward sends it there, and
			// learns where the queue is. Nothing here waits for earlier
			// deliveries on another route: the queue's side orders them by
			// position.
			if remote == nil {
				remote, hints = make([]string, 0, len(r.subs)), make([]string, 0, len(r.subs))
			}
			remote, hints = append(remote, name), append(hints, node)
			continue
		}
		q := ref.q.Load()
		if q == nil {
			if q = s.get(name); q == nil {
				remote, hints = append(remote, name), append(hints, ref.at.node)
				continue
			}
			ref.q.Store(q)
			ref.sub.Store(nil)
		}
		q.mu.Lock()
		if q.dead {
			q.mu.Unlock()
			ref.q.Store(nil)
			ref.sub.Store(nil)
			if q = s.get(name); q == nil {
				remote, hints = append(remote, name), append(hints, ref.at.node)
				continue
			}
			ref.q.Store(q)
			q.mu.Lock()
			if q.dead {
				q.mu.Unlock()
				remote, hints = append(remote, name), append(hints, ref.at.node)
				continue
			}
		}
		sub := ref.sub.Load()
		if sub == nil || sub.gone() {
			if sub = q.subs[ev.Resource]; sub == nil { // unsubscribed; the unlink is on its way
				q.mu.Unlock()
				continue
			}
			ref.sub.Store(sub)
		}
		ls, _ := q.offerLocked(sub, ev, capacity, retain)
		q.mu.Unlock()
		notifyAll(ls)
		n++ // appended, or had been (the same publication again)
	}
	if len(remote) > 0 {
		r.fwd.Add(1)
		defer r.fwd.Done()
		if s.peers != nil {
			s.noteTailLocked(r, s.cfg.Now())
		}
	}
	r.mu.Unlock()
	s.counters.Deliveries.Add(uint64(n))
	s.counters.Notifications[ev.Kind].Add(uint64(n))
	if len(remote) > 0 {
		if s.peers != nil {
			n += s.peers.Forward(ev, remote, hints)
		} else {
			s.RemoveSubscribers(ev.Resource, remote) // their queues are gone
		}
	}
	return n, true
}

// DeliverTo appends ev to each named queue held here that is subscribed to
// ev.Resource: the receiving end of Peers.Forward. It returns how many it
// reached and the names it could not (not here, or no longer subscribed).
func (s *Store) DeliverTo(ev *Event, queues []string) (n int, missing []string) {
	capacity, retain := s.cfg.BufferSize, s.cfg.RetainDelivered
	for _, name := range queues {
		q := s.get(name)
		if q == nil {
			missing = append(missing, name)
			continue
		}
		q.mu.Lock()
		sub := q.hot
		if sub == nil || sub.gone() || q.hotRes != ev.Resource {
			if sub = q.subs[ev.Resource]; sub != nil {
				q.hot, q.hotRes = sub, ev.Resource
			}
		}
		if q.dead || sub == nil {
			q.mu.Unlock()
			missing = append(missing, name)
			continue
		}
		ls, _ := q.offerLocked(sub, ev, capacity, retain)
		q.mu.Unlock()
		notifyAll(ls)
		n++ // appended, or had been: an op sent again after a lost reply
	}
	s.counters.Deliveries.Add(uint64(n))
	s.counters.Notifications[ev.Kind].Add(uint64(n))
	return n, missing
}

// Invite puts an INVITE from `from` into every queue of toUser's device
// toDevice held here (toUser "" means from's own user). The caller has
// checked that from may invite toUser. It returns how many queues it
// reached, or ErrDeviceNotFound when the device has no queue here.
func (s *Store) Invite(_ context.Context, from Principal, toUser, toDevice string, payload []byte) (int, error) {
	if toDevice == "" {
		return 0, fmt.Errorf("%w: toDevice is empty", ErrInvalidInput)
	}
	if toUser == "" {
		toUser = from.User
	}
	s.ownerMu.Lock()
	qs := append([]*queue(nil), s.owners[owner{toUser, toDevice}]...)
	s.ownerMu.Unlock()
	if len(qs) == 0 {
		return 0, ErrDeviceNotFound
	}
	ev := &Event{Kind: Invite, Time: s.cfg.Now(), Payload: payload, From: &Principal{User: from.User, Device: from.Device}}
	n := 0
	for _, q := range qs {
		q.mu.Lock()
		if q.dead {
			q.mu.Unlock()
			continue
		}
		ls := q.appendLocked(ev, s.cfg.BufferSize, s.cfg.RetainDelivered)
		q.mu.Unlock()
		notifyAll(ls)
		n++
	}
	if n == 0 {
		return 0, ErrDeviceNotFound
	}
	s.counters.Notifications[Invite].Add(uint64(n))
	return n, nil
}

// ResourcesWithScheme returns every resource of scheme whose subscriber
// list is held here, with the last etag a publisher reported for it. The
// plugin host compares these with the publisher's current etags after a
// restart.
func (s *Store) ResourcesWithScheme(scheme string) map[string]string {
	prefix := scheme + ":"
	s.resMu.RLock()
	rs := make([]*resource, 0)
	for name, r := range s.res {
		if len(name) > len(prefix) && name[:len(prefix)] == prefix {
			rs = append(rs, r)
		}
	}
	s.resMu.RUnlock()
	out := make(map[string]string, len(rs))
	for _, r := range rs {
		r.mu.RLock()
		if len(r.subs) > 0 {
			out[r.name] = r.etag
		}
		r.mu.RUnlock()
	}
	return out
}

// Revoke removes the subscriptions to res of every queue owned by user
// (and device, when not empty), and puts a REVOKED notification in each of
// those queues. Queues held by other nodes are handed to Peers.Revoke. It
// returns how many queues here lost a subscription.
func (s *Store) Revoke(res, user, device string) int {
	s.resMu.RLock()
	r := s.res[res]
	s.resMu.RUnlock()
	if r == nil {
		return 0
	}
	var hit []string
	r.mu.Lock()
	for name, ref := range r.subs {
		if ref.who.user == user && (device == "" || ref.who.device == device) {
			hit = append(hit, name)
			delete(r.subs, name)
		}
	}
	r.mu.Unlock()
	s.dropIfEmpty(r)
	n, remote := s.RevokeQueues(res, hit)
	if len(remote) > 0 && s.peers != nil {
		s.peers.RevokeQueues(res, remote)
	}
	return n
}

// RevokeQueues removes each named queue's subscription to res and puts a
// REVOKED notification in it. It returns how many it reached and the names
// not held here.
func (s *Store) RevokeQueues(res string, queues []string) (n int, missing []string) {
	now := s.cfg.Now()
	for _, name := range queues {
		q := s.get(name)
		if q == nil {
			missing = append(missing, name)
			continue
		}
		q.mu.Lock()
		sub := q.subs[res]
		if q.dead || sub == nil {
			q.mu.Unlock()
			continue
		}
		delete(q.subs, res)
		sub.remove()
		ls := q.appendLocked(&Event{Kind: Revoked, Resource: res, Etag: sub.etag, Time: now}, s.cfg.BufferSize, s.cfg.RetainDelivered)
		q.mu.Unlock()
		notifyAll(ls)
		n++
	}
	s.counters.Notifications[Revoked].Add(uint64(n))
	return n, missing
}
