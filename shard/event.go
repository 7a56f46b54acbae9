package shard

import (
	"sync"
	"sync/atomic"
	"time"
)

// Kind says what a notification reports.
type Kind uint8

// Notification kinds, as in the public schema.
const (
	Changed Kind = iota + 1
	Invite
	Resync
	Overflow
	Revoked
)

var kindNames = [...]string{Changed: "CHANGED", Invite: "INVITE", Resync: "RESYNC", Overflow: "OVERFLOW", Revoked: "REVOKED"}

// String returns the schema name of k, such as "CHANGED".
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "UNKNOWN"
}

// Event is one occurrence, shared by every queue it is appended to: a publish
// to 10 000 subscribers makes one Event and 10 000 pointers to it. It is
// immutable once appended, except for its memo.
type Event struct {
	Kind Kind
	// EtagUnknown marks a RESYNC whose Etag is "" because nobody knows the
	// resource's current version (a list made again after its holder
	// died, or a publisher that forgot, with no queue here that delivered
	// one), not because it was never published. Beside Kind, it packs
	// into the padding after it: no Event grows.
	EtagUnknown bool
	Resource    string // empty for Invite and Overflow
	Etag        string
	Time        time.Time
	// Payload is a JSON value, validated by whoever built the event, or nil.
	Payload []byte
	// From is the sending device, for Invite.
	From *Principal
	// Pos is the event's place in its resource's stream, stamped by the
	// node holding the resource's subscriber list (zero: not stamped, as
	// INVITE, REVOKED and OVERFLOW are not). A subscription never appends
	// an event at or below the last position it appended, so an op sent
	// again after a lost reply, or overtaken, is not delivered twice.
	Pos Position
	// ID names one publication across nodes (0: none). A list holder
	// that is handed a publication it stamped lately (a fan-out op sent
	// again after a lost reply, or handed on when a peer left) gives it
	// the same position again, so no queue appends it twice.
	ID uint64

	memo1  atomic.Pointer[memoEntry] // the common case: one encoding for all
	memoMu sync.Mutex
	memoN  []memoEntry
}

type memoEntry struct {
	key any
	val any
}

// Memo returns the value computed for key, computing it once with compute.
// Transports use it to encode an event once per distinct GraphQL selection
// and share the bytes across every subscriber. Safe for concurrent use;
// compute must not call Memo on the same event.
func (e *Event) Memo(key any, compute func() any) any {
	if m := e.memo1.Load(); m != nil && m.key == key {
		return m.val
	}
	e.memoMu.Lock()
	defer e.memoMu.Unlock()
	if m := e.memo1.Load(); m != nil && m.key == key {
		return m.val
	}
	for _, m := range e.memoN {
		if m.key == key {
			return m.val
		}
	}
	v := compute()
	if e.memo1.Load() == nil {
		e.memo1.Store(&memoEntry{key, v})
	} else if len(e.memoN) < 8 { // beyond 8 distinct selections, recompute rather than grow
		e.memoN = append(e.memoN, memoEntry{key, v})
	}
	return v
}

// Notification is one entry read from a queue: its seq there and the shared event.
type Notification struct {
	Seq uint64
	*Event
}
