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
	// From is the sending device, for Invite; for a revoke in a
	// resource's stream, the principal revoked (see RevokeEvent).
	From *Principal
	// Pos is the event's place in its resource's stream, stamped by the
	// node holding the resource's subscriber list (zero: not stamped, as
	// INVITE, OVERFLOW and the REVOKED notification in a queue are not; a
	// revoke in the stream, RevokeEvent, is). A subscription never appends
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

// RevokeEvent is a revoke of user's subscriptions to res (device "": on
// every device of the user's). It is published like a change: its list
// stamps it, and every node interested in the list removes, where the
// queues are, the subscriptions it covers (Event.revokes), each with a
// REVOKED notification of its own. The revoke itself is a place in the
// stream, never appended to a queue.
func RevokeEvent(res, user, device string) *Event {
	return &Event{Kind: Revoked, Resource: res, From: &Principal{User: user, Device: device}}
}

// revokes reports whether ev, a revoke in the stream of a resource sub
// subscribes to, removes sub, a subscription of a queue owned by o: o is
// the principal revoked (any of the user's devices for a device of ""),
// and sub was not linked after ev was stamped.
//
// Invariant: whether a subscription came before a revoke is read from
// the list's stream, never from two nodes' clocks. A subscription
// linked after the revoke was linked at its offset or past it, in its
// epoch (a link answers the list's position under the list's lock;
// subscription.linked keeps it): where the subscription stands now says
// nothing, since a gap given up or a RESYNC moves it past revokes it
// never saw. Any other
// is revoked: one that was linked before, and, to be safe, one that
// follows another epoch or none yet (a pending subscribe then fails with
// UNAVAILABLE and is tried again, and the publisher is asked again). A
// REVOKED too many costs a subscribe; one too few lets a principal read
// what it may no longer read. Before, a subscription's creation time
// on the node that made it was compared with the revoke's time on the
// node that kept it: a queue from a node whose clock was ahead landed
// subscribed (TestRevoke_AQueueFromANodeWhoseClockIsAheadLandsRevoked).
func (ev *Event) revokes(o owner, sub *subscription) bool {
	if ev.Kind != Revoked || ev.From == nil || o.user != ev.From.User || ev.From.Device != "" && o.device != ev.From.Device {
		return false
	}
	return ev.Pos.IsZero() || ev.Pos.Epoch != sub.pos.Epoch || ev.Pos.Offset > sub.linked
}

// Notification is one entry read from a queue: its seq there and the shared event.
type Notification struct {
	Seq uint64
	*Event
}
