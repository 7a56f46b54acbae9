// Package server is meshgate's front door: the HTTPS listener and its TLS
// certificate, bearer-token authentication, the GraphQL transports on one
// endpoint (/graphql: POST and GET, WebSocket with graphql-transport-ws and
// the legacy subscriptions-transport-ws, SSE with graphql-sse, Apollo's
// multipart subscriptions; Accept negotiated as RFC 9110 says), GraphiQL
// at /, health endpoints, request limits and graceful shutdown.
//
// It calls graph (gqlgen's executor and the notification encoder) and shard
// (streams); neither knows it exists. Streaming transports serve the
// `notifications` subscription themselves: a WebSocket has a reader
// goroutine only while it has input (an idle one is parked on the epoll
// poller, internal/netpoll, and a goroutine starts when its socket is
// readable: wsConn.park), and connections with output pending queue for
// a small pool of writers (writers.go). One wheel drives every
// connection's timers.
// The WebSocket code is split by role: wsframe.go is the RFC 6455 frame
// codec, wstransport.go and wslegacy.go the two protocol state machines,
// wswriter.go the write side, ws.go the connection.
//
// Hostile input is bounded before work proportional to it is done: every
// frame takes a rate token, a connection's output queue has a byte bound,
// a body has a deadline and is read only after the token is checked, and
// an operation is measured on its fragment graph (limits.go) before
// anything expands it. README's Limits table lists every bound.
//
// Lock order: wsConn.mu → writers.mu (a wake-up queues the connection),
// wsConn.mu → netpoll.Poller's (park arms the wait under wsConn.mu);
// neither is held across a shard call, so queue locks never nest inside
// them.
package server
