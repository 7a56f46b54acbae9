package shard

import "sync"

// table is one of the store's maps by name (queues, subscriber lists,
// local tables) with its lock. Lookups far outnumber changes, so the
// lock is an RWMutex. A value that leaves a table is marked dead under
// its own lock, taken under mu (removeIf), so a caller that looked it up
// before knows to look again.
type table[V comparable] struct {
	mu sync.RWMutex
	m  map[string]V
}

func newTable[V comparable]() table[V] { return table[V]{m: make(map[string]V)} }

// get returns the value under k, or the zero V.
func (t *table[V]) get(k string) V {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[k]
}

// getOrAdd returns the value under k, adding mk() if there is none.
func (t *table[V]) getOrAdd(k string, mk func() V) V {
	var zero V
	if v := t.get(k); v != zero {
		return v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.m[k]
	if v == zero {
		v = mk()
		t.m[k] = v
	}
	return v
}

// add puts v under k unless k is taken, and reports whether it did.
func (t *table[V]) add(k string, v V) bool { return t.getOrAdd(k, func() V { return v }) == v }

// removeIf deletes k if it still holds v and drop (nil: yes), called
// under mu, agrees; drop marks v dead under v's own lock. It reports
// whether it deleted k.
func (t *table[V]) removeIf(k string, v V, drop func() bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[k] != v || drop != nil && !drop() {
		return false
	}
	delete(t.m, k)
	return true
}

// values returns the values whose key keep accepts (nil: every one).
func (t *table[V]) values(keep func(k string) bool) []V {
	t.mu.RLock()
	defer t.mu.RUnlock()
	vs := make([]V, 0, len(t.m))
	for k, v := range t.m {
		if keep == nil || keep(k) {
			vs = append(vs, v)
		}
	}
	return vs
}

// len is how many values the table holds.
func (t *table[V]) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}
