// Command rawws is a reference for meshgate's benchmarks: a raw WebSocket
// broadcast server with no GraphQL. POST /publish with a JSON body writes
// that body, framed once, to every connection. It is this machine's
// practical limit for fan-out over WebSocket: what meshgate's per-delivery
// CPU is compared with.
package main
