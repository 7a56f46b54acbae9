package server

import (
	"bytes"
	"encoding/json"
	"reflect"
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

// FuzzScanPlanned: whenever scanPlanned reads a body, decodeRequest reads
// the same query, operation name and variables from it, and no extensions.
func FuzzScanPlanned(f *testing.F) {
	for _, s := range []string{
		`{"query":"mutation($e:String!,$p:JSON){ publish(resource:\"user:b/feed\", etag:$e, payload:$p) }","variables":{"e":"e1","p":{"i":1,"t":2}}}`,
		`{"query":"q\n\t\\\/","operationName":null,"variables":null,"extensions":null}`,
		`{"x":[1,{"a":"}"}],"query":"a","variables":{"a":"x","a":[true, false ,null]}} `,
		`{"query":"a","operationName":"B","variables":{"s":"\u00e9","n":-1.5e3}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := scanPlanned(body)
		if !ok {
			return
		}
		var p graphql.RawParams
		if rerr := decodeRequest(body, &p); rerr != nil {
			t.Fatalf("scanPlanned read %q, decodeRequest refused it: %v", body, rerr)
		}
		if got.query != p.Query || got.operationName != p.OperationName || p.Extensions != nil {
			t.Fatalf("%q: scanPlanned read %q %q, decodeRequest %q %q (extensions %v)", body, got.query, got.operationName, p.Query, p.OperationName, p.Extensions)
		}
		vars := map[string]any{}
		for k, raw := range got.vars {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil || dec.More() {
				t.Fatalf("%q: variable %s is %q, not one JSON value", body, k, raw)
			}
			vars[k] = v
		}
		if len(vars) != len(p.Variables) || (len(vars) > 0 && !reflect.DeepEqual(vars, p.Variables)) {
			t.Fatalf("%q: scanPlanned read variables %v, decodeRequest %v", body, vars, p.Variables)
		}
	})
}
