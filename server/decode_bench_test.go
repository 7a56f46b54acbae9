package server

import (
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// BenchmarkDecodeRequest decodes a publish as meshbench sends it.
func BenchmarkDecodeRequest(b *testing.B) {
	body := []byte(`{"query":"mutation($e:String!,$p:JSON){ publish(resource:\"user:bench/feed\", etag:$e, payload:$p) }","variables":{"e":"e123","p":{"i":123,"t":1733040000000000000}}}`)
	b.ReportAllocs()
	for b.Loop() {
		var p graphql.RawParams
		if err := decodeRequest(body, &p); err != nil {
			b.Fatal(err)
		}
	}
}
