// Package graph is meshgate's GraphQL layer: gqlgen's generated executor
// (generated.go), thin resolvers that translate GraphQL into calls on the
// core (shard) and the publishers, the one function that maps core errors to
// extensions.code, and the notification encoder that streaming transports
// use to turn an event into response bytes once per distinct selection.
//
// It knows GraphQL; it does not know sockets, TLS or tokens (server/ puts
// the authenticated principal in the context with WithPrincipal).
package graph
