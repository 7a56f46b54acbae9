// Package server is meshgate's front door: the HTTPS listener and its TLS
// certificate, bearer-token authentication, the GraphQL transports on one
// endpoint (/graphql: POST and GET, WebSocket with graphql-transport-ws and
// the legacy subscriptions-transport-ws, SSE with graphql-sse), GraphiQL at
// /, health endpoints, request limits and graceful shutdown.
//
// It calls graph (gqlgen's executor and the notification encoder) and shard
// (streams); neither knows it exists. Streaming transports serve the
// `notifications` subscription themselves: each connection has one reader
// goroutine, and a writer goroutine only while it has something to send.
//
// Lock order: conn.mu → nothing (queue locks are taken inside shard calls
// made without conn.mu held).
package server
