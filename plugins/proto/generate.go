// Package publisherpb is the generated Go code of the publisher contract,
// publisher.proto. Regenerate with `go generate ./...` (protoc 3.21 from
// Debian's protobuf-compiler, with protoc-gen-go and protoc-gen-go-grpc
// pinned as Go tools in go.mod).
package publisherpb

//go:generate protoc --plugin=protoc-gen-go=../../internal/tools/protoc-gen-go --plugin=protoc-gen-go-grpc=../../internal/tools/protoc-gen-go-grpc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative publisher.proto
