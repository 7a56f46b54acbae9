package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// FuzzDecodeRequest feeds arbitrary bodies to the request decoder, whole
// and split in two as a stream would deliver them: it must never panic,
// must accept exactly the requests that re-encode to the same fields, and
// must never quote the input back in its error.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"query":"{me{user}}"}`,
		`{"query":"query($a:Int){x}","variables":{"a":1},"operationName":"Q","extensions":{"k":[1,{"b":null}]}}`,
		`{"query":42}`, `{"query":"x","variables":[1]}`, `{`, `null`, `{"query":"x"} trailing`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var p graphql.RawParams
		rerr := decodeRequest(body, &p)
		if rerr != nil {
			if len(body) > 8 && len(rerr.msg) > 0 && strings.Contains(rerr.msg, string(body)) {
				t.Fatalf("error echoes the body: %q", rerr.msg)
			}
			return
		}
		// Round trip: what was accepted re-encodes and decodes the same.
		again, _ := json.Marshal(map[string]any{"query": p.Query, "operationName": p.OperationName, "variables": p.Variables, "extensions": p.Extensions})
		var p2 graphql.RawParams
		if rerr := decodeRequest(again, &p2); rerr != nil || p2.Query != p.Query || p2.OperationName != p.OperationName {
			t.Fatalf("round trip of %q failed: %v", body, rerr)
		}
		// Split in two: each half alone is a different document, which
		// decodes or fails without panicking.
		for i := 0; i < len(body); i += max(1, len(body)/4) {
			var q graphql.RawParams
			_ = decodeRequest(body[:i], &q)
			_ = decodeRequest(body[i:], &q)
		}
	})
}
