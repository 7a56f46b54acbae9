package shard

// Subscriber is one principal subscribed to a resource, as a subscriber
// list held here records it: the queue owner's user and device (scopes are
// not kept with a subscription).
type Subscriber struct {
	Resource, User, Device string
}

// SubscribersWithScheme lists every distinct (resource, user, device) in
// the subscriber lists of scheme held here, for a publisher host that must
// ask again who may read what (a restarted plugin may have lost the
// revocations it was about to send). Safe for concurrent use; takes
// resMu, then each list's mu, one at a time.
func (s *Store) SubscribersWithScheme(scheme string) []Subscriber {
	prefix := scheme + ":"
	s.resMu.RLock()
	rs := make([]*resource, 0)
	for name, r := range s.res {
		if len(name) > len(prefix) && name[:len(prefix)] == prefix {
			rs = append(rs, r)
		}
	}
	s.resMu.RUnlock()
	var out []Subscriber
	seen := map[Subscriber]bool{}
	for _, r := range rs {
		r.mu.RLock()
		for _, ref := range r.subs {
			sub := Subscriber{Resource: r.name, User: ref.who.user, Device: ref.who.device}
			if !seen[sub] {
				seen[sub] = true
				out = append(out, sub)
			}
		}
		r.mu.RUnlock()
	}
	return out
}
