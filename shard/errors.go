package shard

import "errors"

// Sentinel errors. graph/ maps each to a GraphQL extensions.code.
var (
	// ErrQueueNotFound: the queue does not exist, expired, or is not the
	// caller's. The three are deliberately indistinguishable.
	ErrQueueNotFound = errors.New("shard: queue not found")
	// ErrDeviceNotFound: an invite's target device has no queue.
	ErrDeviceNotFound = errors.New("shard: device has no queue")
	// ErrForbidden: the caller may not do this (publisher denied, another user's device).
	ErrForbidden = errors.New("shard: forbidden")
	// ErrLimitExceeded: a documented count limit was reached.
	ErrLimitExceeded = errors.New("shard: limit exceeded")
	// ErrInvalidInput: an argument is malformed or out of range.
	ErrInvalidInput = errors.New("shard: invalid input")
	// ErrUnknownScheme: no publisher owns the resource's scheme.
	ErrUnknownScheme = errors.New("shard: no publisher for scheme")
	// ErrUnavailable: retry. The publisher that owns the resource is
	// down or restarting, or the cluster is moving (membership changing,
	// a key in a hand-off, a peer not reachable); the wrapping error says
	// which.
	ErrUnavailable = errors.New("shard: unavailable")
	// ErrMoved: the queue was handed to another node while the call ran;
	// the cluster retries it there. Callers outside a cluster never see it.
	ErrMoved = errors.New("shard: queue moved to another node")
)
