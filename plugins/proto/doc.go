// Package publisherpb is the generated Go code of the publisher contract,
// publisher.proto. Regenerate with `go generate ./...`: buf compiles the
// .proto and runs protoc-gen-go and protoc-gen-go-grpc, all three pinned as
// Go tools in go.mod (../../buf.gen.yaml), so nothing needs installing.
package publisherpb
