// Package peerpb is the generated Go code of the node-to-node contract,
// peer.proto. Regenerate with `go generate ./...`.
package peerpb

//go:generate protoc --plugin=protoc-gen-go=../../../internal/tools/protoc-gen-go --plugin=protoc-gen-go-grpc=../../../internal/tools/protoc-gen-go-grpc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative peer.proto
