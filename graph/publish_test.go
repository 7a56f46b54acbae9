package graph

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"meshgate/graph/model"
)

// reencode is what the `publish` argument path makes of a JSON value:
// decoded with numbers kept exact (server's decodeRequest), then
// model.JSON.UnmarshalGQL.
func reencode(raw []byte) (model.JSON, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var j model.JSON
	err := j.UnmarshalGQL(v)
	return j, err
}

// TestCanonicalJSON: a value canonicalJSON accepts is kept as it came by
// a planned publish, so it must be byte for byte what the decode and
// encode it skips would make; the common shapes must be accepted.
func TestCanonicalJSON(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{`{"i":123,"t":1733040000000000000}`, true},
		{`{"a":[1,2.50,"x<y>&"],"b":null,"c":true,"d":{},"e":[]}`, true},
		{`"text é ü€😀"`, true},
		{`[12345678901234567890,-0,1e400,1.0E+2]`, true},
		{strings.Repeat("[", 32) + "1" + strings.Repeat("]", 32), true},
		{strings.Repeat("[", 33) + "1" + strings.Repeat("]", 33), false},
		{`{"a": 1}`, false},
		{`{"b":1,"a":2}`, false},
		{`{"a":1,"a":2}`, false},
		{`"a\"b"`, false},
		{`"a\u0041"`, false},
		{"\"a\u2028b\"", false},
		{"\"a\xffb\"", false},
		{`{"é":1,"e":2}`, false},
		{`{"e":1,"é":2}`, true},
	} {
		got := canonicalJSON([]byte(tc.raw))
		if got != tc.want {
			t.Errorf("canonicalJSON(%q) = %v, want %v", tc.raw, got, tc.want)
		}
		if enc, err := reencode([]byte(tc.raw)); got && (err != nil || string(enc) != tc.raw) {
			t.Errorf("canonicalJSON(%q) is true, but its encoding is %q (%v)", tc.raw, enc, err)
		}
	}
}

// FuzzCanonicalJSON: whatever canonicalJSON accepts re-encodes to itself.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"i":1,"t":2}`, `[1,"a",{"b":null}]`, `"\u00e9"`, `{"a":{"b":[true,false]}}`, `-1.5e-3`, `{"a":1,"b":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return // the body was decoded by encoding/json before: never invalid here
		}
		raw = bytes.TrimSpace(raw) // as a json.RawMessage holds a value
		if string(raw) == "null" || !canonicalJSON(raw) {
			// Bind reads a null itself, before canonicalJSON.
			return
		}
		enc, err := reencode(raw)
		if err != nil || !bytes.Equal(enc, raw) {
			t.Fatalf("canonicalJSON(%q) is true, but its encoding is %q (%v)", raw, enc, err)
		}
	})
}
