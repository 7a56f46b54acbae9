// Command gqlgenref is a reference for meshgate's benchmarks: the gqlgen
// server a Go user writes by hand. Each subscription gets a buffered
// channel; a publish sends the event to every channel; gqlgen's stock
// WebSocket transport executes the selection and marshals JSON for every
// subscriber and every event.
package main
