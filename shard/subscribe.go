package shard

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// SubscriptionInfo is one (queue, resource) pair as its owner sees it.
type SubscriptionInfo struct {
	Queue    string
	Resource string
	Etag     string
	// EtagUnknown: Etag is "" because the publisher forgot the version
	// (knownEtag says the resource was published, or the list was made
	// again by a repair that knew none) and no list remembers one, not
	// because it was never published. Only Subscribe sets it.
	EtagUnknown bool
	CreatedAt   time.Time
}

// Subscribe records that queue wants notifications about resource, after
// auth has allowed p to read it. It returns the subscription with the
// resource's current etag. If knownEtag is not empty and differs from the
// current etag, a RESYNC notification is appended too, so a stream learns it.
// Subscribing again refreshes the etag.
//
// The subscription is recorded in the queue and in this node's local
// table of the resource's subscribers; the resource's subscriber list, at
// its holder (through Peers), records that this node is interested.
//
// Invariant (subscribe is ordered with publish): the queue is in this
// node's table, and this node in the list (linked under the list's lock),
// before the publisher is asked, and the
// subscription stays pending (it appends nothing) until the publisher has
// allowed it. A publish is therefore either delivered to the pending
// subscription, whose last etag is then the answer, or reflected in the
// etag the publisher answers; the answer is never older than an etag
// already delivered for the resource. A publisher that answers "" (it
// forgot, as the built-in `user:` one does when it restarts), or any
// etag while the list holds one it stamped, is not believed over the
// list, which remembers the last etag it delivered.
//
// Invariant (an answer has a position): the etag answered is the list's
// state at a position, and the subscription goes on from that position,
// so the queue appends only events stamped after it. The link's own
// position will not do for a publisher's answer, which is read later: a
// publish recorded before that read may have been stamped since the
// link, and its event still be on its way to this node, older than the
// answer. So a publisher's answer is believed only once the list has
// learned it, as of the link, after the publisher answered (a second
// Link, with no interest): the list's position then is the answer's, and
// its etag the answer (the publisher's, adopted, or one the list stamped
// since the link). This holds as long as the publisher records a publish
// before its event reaches the list and a resource's publishes reach it
// in the order recorded (every publish through the gateway, one at a
// time): a publish recorded before the read and not stamped before the
// list answered is the one whose etag the publisher answered.
func (s *Store) Subscribe(ctx context.Context, auth Authorizer, p Principal, queueName, res, proof, knownEtag string) (SubscriptionInfo, error) {
	if _, _, err := ParseResource(res); err != nil {
		return SubscriptionInfo{}, err
	}
	if err := ValidEtag(knownEtag); err != nil {
		return SubscriptionInfo{}, fmt.Errorf("knownEtag: %w", err)
	}
	now := s.cfg.Now()
	var q *queue
	var sub *subscription
	for {
		var err error
		if q, err = s.lockLive(p, queueName); err != nil {
			return SubscriptionInfo{}, err
		}
		if sub = q.subs[res]; sub == nil || !sub.isPending() {
			break
		}
		// Another subscribe is making it (a retry racing its first try,
		// a page's effect run twice): that one decides the revokes that
		// came before its link (subExtra.early), and may still give up
		// (its publisher's answer). This one goes on once it has ended,
		// as a refresh of a subscription allowed, or as a fresh
		// subscribe; gone on at its link, it answered a subscription the
		// first then took out.
		if sub.x.made == nil {
			sub.x.made = make(chan struct{})
		}
		made := sub.x.made
		q.mu.Unlock()
		select {
		case <-made:
		case <-ctx.Done():
			return SubscriptionInfo{}, fmt.Errorf("%w: the subscription to %s is being made: %v", ErrUnavailable, res, ctx.Err()) //nolint:errorlint // UNAVAILABLE is the contract
		}
	}
	fresh := sub == nil
	if fresh {
		if len(q.subs) >= s.cfg.MaxSubscriptionsPerQueue {
			q.mu.Unlock()
			return SubscriptionInfo{}, fmt.Errorf("%w: a queue may hold at most %d subscriptions", ErrLimitExceeded, s.cfg.MaxSubscriptionsPerQueue)
		}
		sub = &subscription{created: now.UnixNano(), x: &subExtra{pending: true, unlinked: true}}
		if q.subs == nil {
			q.subs = make(map[string]*subscription)
		}
		q.subs[res] = sub
	}
	created := sub.created // -1 once removed
	q.mu.Unlock()
	// abandon takes a fresh subscription out again.
	abandon := func() {
		if !fresh {
			return
		}
		q.mu.Lock()
		sub.endPendingLocked()
		if q.subs[res] == sub {
			delete(q.subs, res)
			sub.remove()
		}
		q.mu.Unlock()
		s.leaveLocal(res, sub)
	}
	// In the local table first: every event the list sends this node
	// after the link reaches the queue. The link brings the list the
	// newest etag this node's queues know (joinLocal).
	in, hint := s.joinLocal(res, q, sub)
	linked, err := s.peers.Link(ctx, res, in, hint)
	if err != nil {
		abandon()
		return SubscriptionInfo{}, err
	}
	// Allowed as of the first link: the publisher is asked after it, so
	// a revoke stamped after it covers the subscription (it reaches the
	// queue, or is announced again with the list's tail), and one
	// stamped before it does not. The second link, below, is later than
	// the publisher's answer: a revoke stamped between the two came
	// after what the publisher read.
	first := linked.Pos
	if fresh {
		// A pending subscription stands at its link from now on: an
		// event from before it (a revoke sent again among them, see
		// Event.revokes) is older than the subscription.
		q.mu.Lock()
		if sub.pos.Less(first) {
			sub.moveTo(first)
		}
		sub.linkedAt(first)
		early := sub.x.early
		sub.x.early, sub.x.unlinked = nil, false
		// Removed by an unsubscribe meanwhile, it keeps nothing a
		// revoke could cover: it answers as ordered before the
		// unsubscribe (below), with what the publisher, asked after
		// the revoke, answers.
		revoked := !sub.x.unsubscribed && slices.ContainsFunc(early, func(ev *Event) bool { return ev.revokes(q.owner, sub) })
		q.mu.Unlock()
		if revoked {
			abandon()
			return SubscriptionInfo{}, fmt.Errorf("%w: %s was revoked while the subscription was made; retry", ErrUnavailable, res)
		}
	}
	etag, err := auth.Authorize(ctx, p, res, proof)
	if err != nil {
		abandon()
		return SubscriptionInfo{}, fmt.Errorf("subscribe %s: %w", res, err)
	}
	if etag != "" && etag != linked.Etag && (linked.Etag == "" || linked.Pos.At == 0) {
		// The list has stamped no etag (nor learned this one), so the
		// publisher's answer is believed, but only with a position (an
		// answer has a position, above): the list learns it as of the
		// link, and where the list stands now, after the publisher
		// answered, is the answer's position; its etag is the answer.
		// Without it, an event the list stamped after the link, still
		// on its way to this node and older than the answer, was
		// appended after the answer as the next event past the link
		// (TestSubscribe_AtomicWithPublish).
		if linked, err = s.peers.Link(ctx, res, Interest{}, Hint{Etag: etag, Pos: linked.Pos}); err != nil {
			abandon()
			return SubscriptionInfo{}, fmt.Errorf("subscribe %s: %w", res, err)
		}
	}
	now = s.cfg.Now()
	q.mu.Lock()
	if err := q.goneLocked(); err != nil {
		q.mu.Unlock()
		// Only a fresh (pending) subscription dies with its queue's
		// move: a queue carries the subscriptions it had, so the list
		// keeps serving an existing one at the queue's new home.
		abandon()
		return SubscriptionInfo{}, err
	}
	// Invariant (subscribe and unsubscribe are ordered): an unsubscribe
	// that removed the subscription while it was made came after this
	// subscribe, which answers as if done first; the subscription stays
	// removed (TestSubscribe_RacingUnsubscribeIsOrderedBeforeIt). One
	// removed by a revoke stamped after the link is not answered: the
	// subscribe is tried again, and the publisher asked again.
	unsubscribed := q.subs[res] != sub && sub.x != nil && sub.x.unsubscribed
	if q.subs[res] != sub && !unsubscribed {
		sub.endPendingLocked()
		q.mu.Unlock()
		return SubscriptionInfo{}, fmt.Errorf("%w: the subscription to %s was removed while it was made; retry", ErrUnavailable, res)
	}
	pending := sub.isPending()
	// What arrived while pending counts only if it is past the link: an
	// event at or before it (a late event for an earlier subscription of
	// this queue) is older than the list's state at the link, so it is
	// neither the answer nor the subscription's position (below).
	seen := pending && sub.x.seen && (sub.pos.IsZero() || linked.Pos.Less(sub.pos))
	answer := etag
	switch {
	case seen:
		answer = sub.etag // delivered while pending: the newest there is
	case !pending && linked.Pos.Epoch == sub.pos.Epoch && linked.Pos.Offset < sub.pos.Offset && sub.etag != "",
		answer == "" && !pending && sub.etag != "":
		// An event past the link was appended while the publisher was
		// asked: its etag is at least as new as the publisher's answer,
		// which may have been read before it. Answering (and
		// remembering) the publisher's would go back behind what the
		// queue holds. Only within one epoch: positions of two lists
		// say nothing of which etag is newer. A publisher that answers
		// "" is not believed over the etag the queue holds either.
		answer = sub.etag
	case linked.Etag != "" && linked.Pos.At != 0, answer == "":
		// The list holds an etag a list stamped (delivered): it is at
		// least as new as any publish that completed before the link,
		// and a later one reaches the queue. The publisher's answer may
		// be older: a publisher keeping etags in memory on one node (the
		// built-in user:) knows only the publishes it saw while it owned
		// the resource, so after ownership moved it can answer one the
		// gateway delivered a newer one over. A publisher that answers
		// "" takes the list's etag (which may be "" too).
		answer = linked.Etag
	}
	// Invariant: "" means "never published". A caller that knew an etag
	// (knownEtag) proves the resource was published, and a list made
	// again by a repair that knew no etag says it lost track, so an
	// answer of "" then (a publisher that forgot, and no list that
	// remembers) is unknown, and said so in the answer and its RESYNC.
	unknown := answer == "" && (knownEtag != "" || linked.EtagUnknown)
	if unsubscribed {
		sub.endPendingLocked()
		q.renewLocked(now)
		q.mu.Unlock()
		s.leaveLocal(res, sub) // an unsubscribe before joinLocal left it in the table
		return SubscriptionInfo{Queue: q.name, Resource: res, Etag: answer, EtagUnknown: unknown, CreatedAt: time.Unix(0, created)}, nil
	}
	learn := linked.Etag == "" && answer != ""
	if pending {
		// The next event of the list is the first for this queue: the
		// position is at least the link's, whatever arrived before.
		if sub.pos.Less(linked.Pos) {
			sub.moveTo(linked.Pos)
		}
		sub.endPendingLocked()
		sub.x = nil // it held only pending and seen: a pending subscription parks nothing (offerLocked)
	} else if !linked.Pos.IsZero() && sub.pos.Before(linked.Pos) {
		// A refresh: the answer is the list's state at the link (or
		// when it learned the publisher's answer), so the subscription
		// goes on from that position too. Left behind
		// (its etag new, its position that of a list it followed once),
		// it would take a late event of that list, at the next offset
		// there, for its next one, and append an old change after the
		// answer.
		sub.moveTo(linked.Pos)
		sub.dropParked()
	}
	// Allowed as of the first link (above): a revoke stamped before it
	// no longer covers the subscription (a refresh's among them).
	sub.linkedAt(first)
	sub.etag = answer
	var ls []Listener
	if knownEtag != "" && knownEtag != answer {
		s.counters.Notifications[Resync].Add(1)
		ls = q.appendLocked(&Event{Kind: Resync, EtagUnknown: unknown, Resource: res, Etag: answer, Time: now}, s.cfg.BufferSize, s.cfg.RetainDelivered)
	}
	q.renewLocked(now)
	info := SubscriptionInfo{Queue: q.name, Resource: res, Etag: answer, EtagUnknown: unknown, CreatedAt: time.Unix(0, sub.created)}
	q.mu.Unlock()
	notifyAll(ls)
	if learn {
		// The list knows no etag and the answer is the subscription's
		// own (a refresh the publisher answered "", after the list was
		// made again): it learns it, as of the position the queue was
		// linked at (an event since wins). A publisher's answer was
		// learned above, before it was believed.
		s.peers.Learn(res, Hint{Etag: answer, Pos: linked.Pos})
	}
	return info, nil
}

// Unsubscribe removes queue's subscription to resource. It reports whether
// one existed.
func (s *Store) Unsubscribe(_ context.Context, p Principal, queueName, res string) (bool, error) {
	if _, _, err := ParseResource(res); err != nil {
		return false, err
	}
	q, err := s.lockLive(p, queueName)
	if err != nil {
		return false, err
	}
	sub := q.subs[res]
	if sub != nil {
		delete(q.subs, res)
		sub.remove()
		if sub.x == nil {
			sub.x = &subExtra{}
		}
		sub.x.unsubscribed = true // a subscribe making it answers (Subscribe)
	}
	q.renewLocked(s.cfg.Now())
	q.mu.Unlock()
	if sub != nil {
		s.leaveLocal(res, sub)
	}
	return sub != nil, nil
}

// Subscriptions lists queue's subscriptions, sorted by resource, and renews its lease.
func (s *Store) Subscriptions(_ context.Context, p Principal, queueName string) ([]SubscriptionInfo, error) {
	q, err := s.lockLive(p, queueName)
	if err != nil {
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
	ev := &Event{Kind: Invite, Time: s.cfg.Now(), Payload: payload, From: &Principal{User: from.User, Device: from.Device}}
	n := 0
	for _, q := range qs {
		var ls []Listener
		q.mu.Lock()
		if !q.dead {
			ls = q.appendLocked(ev, s.cfg.BufferSize, s.cfg.RetainDelivered)
			n++
		}
		q.mu.Unlock()
		notifyAll(ls)
	}
	if n == 0 { // no queue here, or only dead ones
		return 0, ErrDeviceNotFound
	}
	s.counters.Notifications[Invite].Add(uint64(n))
	return n, nil
}
