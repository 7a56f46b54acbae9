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
	Queue     string
	Resource  string
	Etag      string
	CreatedAt time.Time
}

// Subscribe records that queue wants notifications about resource, after
// auth has allowed p to read it. It returns the subscription with the
// resource's current etag. If knownEtag is not empty and differs from the
// current etag, a RESYNC notification is appended too, so a stream learns it.
// Subscribing again refreshes the etag.
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
	etag, err := auth.Authorize(ctx, p, res, proof)
	if err != nil {
		return SubscriptionInfo{}, fmt.Errorf("subscribe %s: %w", res, err)
	}
	now := s.cfg.Now()
	for {
		r := s.resourceFor(res)
		r.mu.Lock()
		if r.dead {
			r.mu.Unlock()
			continue // emptied and removed between lookup and lock
		}
		q.mu.Lock()
		if q.dead {
			q.mu.Unlock()
			r.mu.Unlock()
			s.dropIfEmpty(r)
			return SubscriptionInfo{}, ErrQueueNotFound
		}
		sub := q.subs[res]
		if sub == nil {
			if len(q.subs) >= s.cfg.MaxSubscriptionsPerQueue {
				q.mu.Unlock()
				r.mu.Unlock()
				s.dropIfEmpty(r)
				return SubscriptionInfo{}, fmt.Errorf("%w: a queue may hold at most %d subscriptions", ErrLimitExceeded, s.cfg.MaxSubscriptionsPerQueue)
			}
			sub = &subscription{res: r, created: now.UnixNano()}
			if q.subs == nil {
				q.subs = make(map[string]*subscription)
			}
			q.subs[r.name] = sub
			r.subs[q] = sub
		}
		sub.etag = etag
		r.etag = etag
		var ls []Listener
		if knownEtag != "" && knownEtag != etag {
			s.counters.Notifications[Resync].Add(1)
			ls = q.appendLocked(&Event{Kind: Resync, Resource: r.name, Etag: etag, Time: now}, s.cfg.BufferSize, s.cfg.RetainDelivered)
		}
		q.renewLocked(now)
		info := SubscriptionInfo{Queue: q.name, Resource: r.name, Etag: etag, CreatedAt: time.Unix(0, sub.created)}
		q.mu.Unlock()
		r.mu.Unlock()
		notifyAll(ls)
		return info, nil
	}
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
		r = &resource{name: res, subs: make(map[*queue]*subscription)}
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
	if q.dead {
		q.mu.Unlock()
		return false, ErrQueueNotFound
	}
	sub := q.subs[res]
	delete(q.subs, res)
	q.renewLocked(s.cfg.Now())
	q.mu.Unlock()
	if sub == nil {
		return false, nil
	}
	s.unlinkResource(sub.res, q)
	return true, nil
}

// Subscriptions lists queue's subscriptions, sorted by resource, and renews its lease.
func (s *Store) Subscriptions(_ context.Context, p Principal, queueName string) ([]SubscriptionInfo, error) {
	q, err := s.lookup(p, queueName)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		return nil, ErrQueueNotFound
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
// how many queues it reached. The event is shared, never copied; no
// goroutine is started. Readers are woken through their listeners. The
// caller has validated ev; ev must not change afterwards.
func (s *Store) Deliver(ev *Event) int {
	s.resMu.RLock()
	r := s.res[ev.Resource]
	s.resMu.RUnlock()
	if r == nil {
		return 0
	}
	capacity, retain := s.cfg.BufferSize, s.cfg.RetainDelivered
	n := 0
	if ev.Kind == Changed || ev.Kind == Resync {
		r.mu.Lock()
		r.etag = ev.Etag
		r.mu.Unlock()
	}
	r.mu.RLock()
	for q, sub := range r.subs {
		q.mu.Lock()
		if q.dead {
			q.mu.Unlock()
			continue
		}
		if ev.Kind == Changed || ev.Kind == Resync {
			sub.etag = ev.Etag
		}
		ls := q.appendLocked(ev, capacity, retain)
		q.mu.Unlock()
		notifyAll(ls)
		n++
	}
	r.mu.RUnlock()
	s.counters.Deliveries.Add(uint64(n))
	s.counters.Notifications[ev.Kind].Add(uint64(n))
	return n
}

// Invite puts an INVITE from `from` into every queue of toUser's device
// toDevice (toUser "" means from's own user). The caller has checked that
// from may invite toUser. It returns how many queues it reached, or
// ErrDeviceNotFound when the device has no queue.
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

// ResourcesWithScheme returns every resource of scheme that has
// subscribers, with the last etag a publisher reported for it. The plugin
// host compares these with the publisher's current etags after a restart.
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
// those queues. It returns how many queues lost a subscription.
func (s *Store) Revoke(res, user, device string) int {
	s.resMu.RLock()
	r := s.res[res]
	s.resMu.RUnlock()
	if r == nil {
		return 0
	}
	r.mu.RLock()
	var hit []*queue
	for q := range r.subs {
		if q.owner.user == user && (device == "" || q.owner.device == device) {
			hit = append(hit, q)
		}
	}
	r.mu.RUnlock()
	now := s.cfg.Now()
	n := 0
	for _, q := range hit {
		q.mu.Lock()
		sub := q.subs[res]
		if q.dead || sub == nil {
			q.mu.Unlock()
			continue
		}
		delete(q.subs, res)
		ls := q.appendLocked(&Event{Kind: Revoked, Resource: res, Etag: sub.etag, Time: now}, s.cfg.BufferSize, s.cfg.RetainDelivered)
		q.mu.Unlock()
		s.unlinkResource(r, q)
		notifyAll(ls)
		n++
	}
	s.counters.Notifications[Revoked].Add(uint64(n))
	return n
}
