// Package gctune bounds the garbage collector's headroom in bytes.
//
// Go lets the heap grow to twice the live heap before it collects
// (GOGC=100), and its scavenger keeps about that much memory from the
// operating system. For a gateway holding 100 000 idle connections that
// is hundreds of megabytes of garbage room that nothing needs, since the
// delivery path hardly allocates. Run sets GOGC from the live heap so the
// room above it stays near a fixed number of bytes, never below a floor
// percentage (GC CPU) and never above a ceiling. The room is the same for
// a small heap: with Go's default, a gateway holding a few megabytes
// collects every few megabytes of garbage, and at 2 000 publishes a second
// to ten subscribers that was a fifth of its CPU (BENCHMARKS.md, Cs).
//
// While the heap is being allocated fast (a reconnect storm: thousands of
// TLS handshakes and set-ups a second, each leaving tens of KiB of
// garbage), a fixed room means a collection every few hundred devices,
// each marking the whole live heap, which the storm is growing. So the
// room follows the allocation rate, up to StormHeadroom: about one
// collection per Interval while the storm lasts. When it is over the room
// shrinks back, and once allocation is quiet the memory the storm used
// is returned to the operating system at once (debug.FreeOSMemory), so
// idle connections after a storm cost what they cost before it.
package gctune
