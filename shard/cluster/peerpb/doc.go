// Package peerpb is the generated Go code of the node-to-node contract,
// peer.proto. Regenerate with `go generate ./...`.
package peerpb
