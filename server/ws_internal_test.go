package server

import (
	"encoding/json"
	"testing"

	"github.com/gobwas/ws"
)

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"1", "sub-42", `q"uote`, `back\\slash`, "tab\t", "é", ""} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != s {
			t.Errorf("%q -> %s (%v)", s, got, err)
		}
	}
}

// BenchmarkStreamFrame is the per-delivery cost of framing a notification
// for one WebSocket once its event is encoded.
func BenchmarkStreamFrame(b *testing.B) {
	c := &wsConn{}
	op := &wsOp{id: "1"}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf, _, _ = c.begin(buf[:0], c.nextType(), op.id, true)
		buf = append(buf, `{"data":{"notifications":{"seq":1}}}`...)
		buf = end(buf, 0, 10)
	}
	_ = ws.OpText
}
