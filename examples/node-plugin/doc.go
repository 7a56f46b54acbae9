// Package nodeplugin is a publisher plugin written in JavaScript
// (plugin.mjs), kept here with the Go test that runs it against the real
// plugin host.
//
// proto/publisher.proto is a copy of ../../plugins/proto/publisher.proto, so
// the example stays whole when copied out of the tree; `go generate ./...`
// rewrites it from the original and CI fails when the two differ.
package nodeplugin
