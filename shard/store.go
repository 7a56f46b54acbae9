package shard

import (
	"context"
	"encoding/base32"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

const queueShards = 64

// Store is one node's state: queues, subscriptions and fan-out. Safe for
// concurrent use. Create it with New and stop it with Close.
type Store struct {
	cfg  Config
	log  *slog.Logger
	seed maphash.Seed

	// queues are the queues held here, by name, in shards: one table's
	// lock for all would be taken by every call.
	queues [queueShards]table[*queue]

	ownerMu sync.Mutex
	owners  map[owner][]*queue // a device's queues, for limits and invites

	res   table[*resource] // the subscriber lists held here, by resource
	local table[*fanout]   // resource → its subscribers held here (local.go)

	// arriving counts queue hand-offs to this node in progress: while
	// any is, local fan-outs keep their recent events (see fanout.recent).
	arriving atomic.Int32
	// ver numbers this node's interest messages (see Interest.Ver); it
	// starts from the clock, so a restarted node's are newer.
	ver atomic.Uint64

	peers Peers  // loopback on a single node
	name  string // this node's name in subscriber lists

	// tailMu guards tails: the lists whose last event is still to be
	// announced to their queues on other nodes (position.go). A leaf,
	// taken under resource.mu.
	tailMu sync.Mutex
	tails  map[*resource]tail

	// unheldUntil (unix nanoseconds) is until when a publish that finds
	// no list here is remembered in unheld (unheld.go, RememberUnheld).
	unheldUntil atomic.Int64
	// unheldMu guards unheld. A leaf, taken under res.mu: read by a
	// publish that remembers (noteUnheld), write by the making of a
	// list (lockList's mk), which orders the two; alone to forget.
	unheldMu sync.Mutex
	unheld   map[string]unheldPub

	// skipMu guards skips: the subscribers whose subscriptions gave up
	// a gap since they were last handed to Peers.Recheck (skipped). A
	// leaf, taken under queue.mu.
	skipMu sync.Mutex
	skips  map[Subscriber]bool

	stop chan struct{}
	done chan struct{}
	once sync.Once

	counters Counters
}

// Counters are cumulative totals since start, for metrics. Updated with one
// atomic add per publish, never per delivery.
type Counters struct {
	// Notifications counts appends by kind (index: Kind).
	Notifications [Revoked + 1]atomic.Uint64
	// Deliveries counts notifications appended to queues by fan-out.
	Deliveries atomic.Uint64
	// Overflows counts OVERFLOW notifications handed to readers.
	Overflows atomic.Uint64
	// UnheldDropped counts publishes that found no list while the store
	// remembered such publishes (RememberUnheld) and were not remembered:
	// maxUnheld were already.
	UnheldDropped atomic.Uint64
	// QueuesCreated and QueuesExpired count queue lifecycles.
	QueuesCreated, QueuesExpired atomic.Uint64
}

// Counters returns the store's totals. Safe for concurrent use.
func (s *Store) Counters() *Counters { return &s.counters }

// New starts a store and its reaper.
func New(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("shard config: %w", err)
	}
	s := &Store{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "shard"),
		seed:   maphash.MakeSeed(),
		owners: make(map[owner][]*queue),
		res:    newTable[*resource](),
		local:  newTable[*fanout](),
		tails:  make(map[*resource]tail),
		unheld: make(map[string]unheldPub),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	for i := range s.queues {
		s.queues[i] = newTable[*queue]()
	}
	s.peers = loopback{s}
	s.ver.Store(uint64(time.Now().UnixNano()))
	go s.reap()
	return s, nil
}

// Close stops the reaper. Safe to call twice.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

func (s *Store) shard(name string) *table[*queue] {
	return &s.queues[maphash.String(s.seed, name)%queueShards]
}

// SetPeers connects the store to a cluster as node name; call it before
// use. Without peers the store is a whole single-node gateway.
func (s *Store) SetPeers(p Peers, name string) { s.peers, s.name = p, name }

// get returns the queue held here under name, or nil.
func (s *Store) get(name string) *queue { return s.shard(name).get(name) }

// Has reports whether the queue name is held here.
func (s *Store) Has(name string) bool {
	q := s.get(name)
	if q == nil {
		return false
	}
	// A queue being exported or removed is dead before it leaves the
	// table: it is no longer held here.
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.dead
}

// lookup finds a live queue owned by p. Another device's queue is reported
// as not found, exactly like a missing one.
func (s *Store) lookup(p Principal, name string) (*queue, error) {
	q := s.get(name)
	if q == nil || q.owner != ownerOf(p) {
		return nil, ErrQueueNotFound
	}
	return q, nil
}

// lockLive finds p's queue name and locks it, or says why not (not
// found, moved, deleted). The caller unlocks q.mu.
func (s *Store) lockLive(p Principal, name string) (*queue, error) {
	q, err := s.lookup(p, name)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	if err := q.goneLocked(); err != nil {
		q.mu.Unlock()
		return nil, err
	}
	return q, nil
}

var nameEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func (s *Store) newName() (string, error) {
	var b [20]byte // 160 bits
	if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
		return "", fmt.Errorf("queue name: %w", err)
	}
	return "q" + nameEncoding.EncodeToString(b[:]), nil
}

// CreateQueue makes a queue owned by p's device. ttl 0 means the default
// lease; it must not exceed MaxTTL.
func (s *Store) CreateQueue(ctx context.Context, p Principal, ttl time.Duration) (QueueInfo, error) {
	return s.CreateQueueWhere(ctx, p, ttl, nil)
}

// CreateQueueWhere is CreateQueue drawing names until accept takes one (nil
// accepts any): a cluster node keeps names the ring gives to itself, so a
// new queue lives where it was asked for. accept must say yes often.
func (s *Store) CreateQueueWhere(_ context.Context, p Principal, ttl time.Duration, accept func(name string) bool) (QueueInfo, error) {
	switch {
	case ttl == 0:
		ttl = s.cfg.DefaultTTL
	case ttl < time.Second || ttl > s.cfg.MaxTTL:
		return QueueInfo{}, fmt.Errorf("%w: ttlSeconds must be 1-%d", ErrInvalidInput, int(s.cfg.MaxTTL/time.Second))
	}
	name, err := s.newName()
	for i := 0; err == nil && accept != nil && !accept(name); i++ {
		if i == 1000 {
			return QueueInfo{}, fmt.Errorf("%w: no queue name this node owns", ErrUnavailable)
		}
		name, err = s.newName()
	}
	if err != nil {
		return QueueInfo{}, err
	}
	now := s.cfg.Now()
	q := &queue{name: name, owner: ownerOf(p), created: now, ttl: ttl, expires: now.Add(ttl)}

	s.ownerMu.Lock()
	if len(s.owners[q.owner]) >= s.cfg.MaxQueuesPerDevice {
		s.ownerMu.Unlock()
		return QueueInfo{}, fmt.Errorf("%w: a device may hold at most %d queues", ErrLimitExceeded, s.cfg.MaxQueuesPerDevice)
	}
	s.owners[q.owner] = append(s.owners[q.owner], q)
	s.ownerMu.Unlock()

	s.shard(name).add(name, q) // names are unguessable: never taken
	s.counters.QueuesCreated.Add(1)
	s.log.Debug("queue created", "queue", name, "user", p.User, "device", p.Device)
	q.mu.Lock()
	info := q.infoLocked(now)
	q.mu.Unlock()
	s.cfg.Observer.Read(p.User, p.Device, ttl)
	return info, nil
}

// Queue returns p's queue and renews its lease.
func (s *Store) Queue(_ context.Context, p Principal, name string) (QueueInfo, error) {
	now := s.cfg.Now()
	q, err := s.lockLive(p, name)
	if err != nil {
		return QueueInfo{}, err
	}
	q.renewLocked(now)
	info := q.infoLocked(now)
	q.mu.Unlock()
	s.cfg.Observer.Read(p.User, p.Device, q.ttl)
	return info, nil
}

// Queues lists p's device's queues.
func (s *Store) Queues(_ context.Context, p Principal) []QueueInfo {
	s.ownerMu.Lock()
	qs := append([]*queue(nil), s.owners[ownerOf(p)]...)
	s.ownerMu.Unlock()
	now := s.cfg.Now()
	out := make([]QueueInfo, 0, len(qs))
	for _, q := range qs {
		q.mu.Lock()
		if !q.dead {
			out = append(out, q.infoLocked(now))
		}
		q.mu.Unlock()
	}
	return out
}

// DeleteQueue removes p's queue, its notifications and its subscriptions.
// Attached streams end with ErrQueueNotFound.
func (s *Store) DeleteQueue(_ context.Context, p Principal, name string) error {
	q, err := s.lookup(p, name)
	if err != nil {
		return err
	}
	if !s.remove(q, nil) {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.goneLocked()
	}
	return nil
}

// remove unlinks q everywhere, if it is live and still (nil: always),
// asked under q's lock, agrees. It reports whether it removed q.
func (s *Store) remove(q *queue, still func() bool) bool {
	q.mu.Lock()
	if q.dead || still != nil && !still() {
		q.mu.Unlock()
		return false
	}
	subs, ls := q.closeLocked()
	q.subs = nil
	q.mu.Unlock()
	remaining := s.drop(q, subs, ls)
	s.cfg.Observer.QueueGone(q.owner.user, q.owner.device, remaining)
	return true
}

// closeLocked marks q dead and its subscriptions removed, and wakes its
// long-polls; it returns the subscriptions and listeners, for drop. mu held.
func (q *queue) closeLocked() (map[string]*subscription, []Listener) {
	q.dead = true
	for _, sub := range q.subs {
		sub.remove()
	}
	if q.waitCh != nil {
		close(q.waitCh)
		q.waitCh = nil
	}
	return q.subs, q.listeners
}

// drop takes q, closed, out of the store and of its local tables, tells
// its listeners, and returns how many queues its device has left.
func (s *Store) drop(q *queue, subs map[string]*subscription, ls []Listener) int {
	remaining := s.forget(q)
	notifyAll(ls)
	for res, sub := range subs {
		s.leaveLocal(res, sub)
	}
	return remaining
}

// reap removes expired queues every ReapInterval until Close.
func (s *Store) reap() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.ReapNow()
		}
	}
}

// ReapNow removes every queue whose lease has ended and returns how many.
// The reaper calls it; tests with an injected clock call it directly.
func (s *Store) ReapNow() int {
	now := s.cfg.Now()
	n := 0
	for i := range s.queues {
		for _, q := range s.queues[i].values(nil) {
			// Asked under q's lock: a reader may have renewed it or
			// attached since the queue was listed.
			if s.remove(q, func() bool { return len(q.listeners) == 0 && now.After(q.expires) }) {
				n++
				s.counters.QueuesExpired.Add(1)
				s.log.Debug("queue expired", "queue", q.name)
			}
		}
	}
	return n
}

// Stats counts what the store holds.
type Stats struct {
	Queues, Subscriptions, Resources int
}

// Stats counts queues, subscriptions and resources with subscribers.
func (s *Store) Stats() Stats {
	var st Stats
	for i := range s.queues {
		qs := s.queues[i].values(nil)
		st.Queues += len(qs)
		for _, q := range qs {
			q.mu.Lock()
			st.Subscriptions += len(q.subs)
			q.mu.Unlock()
		}
	}
	st.Resources = s.res.len()
	return st
}
