// Package client is meshgate's Go SDK. A Client keeps one queue for its
// device, subscribes it to the resources you Watch, and streams their
// notifications over WebSocket (graphql-transport-ws), falling back to
// HTTP long-poll when WebSocket is blocked. It recovers on its own: it
// reconnects with backoff and jitter and resumes after the last seq it
// saw (nothing buffered is lost, nothing is seen twice); when the gateway
// lost its queue (a node died) it makes a new one, subscribes again, and
// tells you which resources changed while it was away. Safe for
// concurrent use.
package client
