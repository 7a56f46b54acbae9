package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// MaxSeq is the largest seq a JSON number carries exactly (2^53-1).
const MaxSeq = 1<<53 - 1

// Seq is a per-queue sequence number, sent as a JSON number.
type Seq uint64

// MarshalGQL writes s as a JSON number.
func (s Seq) MarshalGQL(w io.Writer) {
	var b [20]byte
	_, _ = w.Write(strconv.AppendUint(b[:0], uint64(s), 10))
}

// UnmarshalGQL accepts a non-negative integer up to MaxSeq, as a number or a decimal string.
func (s *Seq) UnmarshalGQL(v any) error {
	var n uint64
	var err error
	switch x := v.(type) {
	case json.Number:
		n, err = strconv.ParseUint(string(x), 10, 64)
	case string:
		n, err = strconv.ParseUint(x, 10, 64)
	case int:
		if x < 0 {
			return fmt.Errorf("seq must be a non-negative integer")
		}
		n = uint64(x)
	case int64:
		if x < 0 {
			return fmt.Errorf("seq must be a non-negative integer")
		}
		n = uint64(x)
	case float64:
		if x < 0 || x != float64(uint64(x)) {
			return fmt.Errorf("seq must be a non-negative integer")
		}
		n = uint64(x)
	default:
		return fmt.Errorf("seq must be a non-negative integer, got %T", v)
	}
	if err != nil || n > MaxSeq {
		return fmt.Errorf("seq must be an integer from 0 to %d", uint64(MaxSeq))
	}
	*s = Seq(n)
	return nil
}

// MaxJSONDepth bounds nesting in a JSON argument.
const MaxJSONDepth = 32

// JSON is any JSON value, kept as its encoded bytes so that it is encoded
// once and shared by every subscriber.
type JSON []byte

// MarshalGQL writes the value as is (null when empty).
func (j JSON) MarshalGQL(w io.Writer) {
	if len(j) == 0 {
		_, _ = io.WriteString(w, "null")
		return
	}
	_, _ = w.Write(j)
}

// UnmarshalGQL encodes the decoded argument value compactly.
func (j *JSON) UnmarshalGQL(v any) error {
	if v == nil {
		*j = nil
		return nil
	}
	if depth(v, 0) > MaxJSONDepth {
		return fmt.Errorf("JSON value nested deeper than %d", MaxJSONDepth)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("JSON value: %w", err)
	}
	*j = bytes.TrimRight(buf.Bytes(), "\n")
	return nil
}

func depth(v any, d int) int {
	if d > MaxJSONDepth {
		return d
	}
	m := d
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			m = max(m, depth(e, d+1))
		}
	case []any:
		for _, e := range x {
			m = max(m, depth(e, d+1))
		}
	}
	return m
}
