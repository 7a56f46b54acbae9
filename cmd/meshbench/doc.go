// Command meshbench is meshgate's load tool. It speaks only public
// protocols: N WebSocket subscribers (or HTTP long-poll readers), each with
// its own queue subscribed to one resource, and M published events stamped
// with their send time. It runs against meshgate or against the two
// reference servers in bench/ (a hand-rolled gqlgen server and a raw
// WebSocket broadcast), and reports deliveries/s, publish→receive latency,
// connections/s, the server's CPU per million deliveries and RSS per idle
// connection (read from /proc of the server's pid), and lost and
// duplicated notifications.
//
// See BENCHMARKS.md for the scenarios and how to run them.
package main
