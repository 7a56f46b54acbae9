// Package peerpb is the generated Go code of the node-to-node contract,
// peer.proto. Regenerate with `go generate ./...`.
package peerpb

//go:generate go tool buf generate --template ../../../buf.gen.yaml
