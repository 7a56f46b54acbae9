package server_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"meshgate/server"
	"meshgate/shard"
)

// rawWS is a WebSocket client that writes frames byte for byte, for the
// attacks a conforming client library would refuse to make.
type rawWS struct {
	t  testing.TB
	nc net.Conn
	rd io.Reader
}

func (g *gateway) rawDial(proto string) *rawWS {
	g.t.Helper()
	d := ws.Dialer{Timeout: 10 * time.Second}
	if tr, ok := g.client.Transport.(*http.Transport); ok {
		d.TLSConfig = tr.TLSClientConfig.Clone()
		d.TLSConfig.NextProtos = []string{"http/1.1"}
	}
	if proto != "" {
		d.Protocols = []string{proto}
	}
	nc, br, _, err := d.Dial(context.Background(), g.wsURL)
	if err != nil {
		g.t.Fatalf("dial: %v", err)
	}
	g.t.Cleanup(func() { nc.Close() })
	var rd io.Reader = nc
	if br != nil {
		rd = io.MultiReader(br, nc)
	}
	return &rawWS{t: g.t, nc: nc, rd: rd}
}

var _ = tls.VersionTLS13

// write sends raw bytes.
func (c *rawWS) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// frame encodes one masked client frame.
func clientFrame(fin bool, op ws.OpCode, p []byte) []byte {
	var b strings.Builder
	h := ws.Header{Fin: fin, OpCode: op, Length: int64(len(p)), Masked: true, Mask: [4]byte{7, 1, 9, 3}}
	_ = ws.WriteHeader(&b, h)
	m := append([]byte(nil), p...)
	ws.Cipher(m, h.Mask, 0)
	b.Write(m)
	return []byte(b.String())
}

func textFrame(v any) []byte {
	b, _ := json.Marshal(v)
	return clientFrame(true, ws.OpText, b)
}

// readFrame reads one server frame, failing the test after 10 s.
func (c *rawWS) readFrame() (ws.Header, []byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, err := ws.ReadHeader(c.rd)
	if err != nil {
		return h, nil, err
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(c.rd, p)
	return h, p, err
}

// closeCode reads until a close frame and returns its code and how many
// frames of each opcode came before it.
func (c *rawWS) closeCode() (ws.StatusCode, map[ws.OpCode]int) {
	c.t.Helper()
	seen := map[ws.OpCode]int{}
	for {
		h, p, err := c.readFrame()
		if err != nil {
			c.t.Fatalf("no close frame (after %v): %v", seen, err)
		}
		if h.OpCode == ws.OpClose {
			if len(p) < 2 {
				return 0, seen
			}
			return ws.StatusCode(binary.BigEndian.Uint16(p)), seen
		}
		seen[h.OpCode]++
	}
}

// TestWS_PingFloodIsRateLimited: control frames count toward the
// connection's message rate, before any authentication, so a ping flood
// from a client that never reads ends with 4429 and never queues more than
// one pong.
func TestWS_PingFloodIsRateLimited(t *testing.T) {
	g := start(t, server.Config{WS: server.WSConfig{MessageRate: 1, MessageBurst: 20}}, shard.Config{})
	c := g.rawDial("graphql-transport-ws")
	ping := clientFrame(true, ws.OpPing, make([]byte, 125))
	var flood []byte
	for range 200 {
		flood = append(flood, ping...)
	}
	c.write(flood)
	code, seen := c.closeCode()
	if code != 4429 {
		t.Fatalf("close code %d after %v, want 4429", code, seen)
	}
	if seen[ws.OpPong] > 21 {
		t.Fatalf("%d pongs for a burst of 20", seen[ws.OpPong])
	}
}

// TestWS_OutputQueueIsBounded: results a client does not read are queued
// up to WS.MaxQueuedBytes; past that the connection closes with 1013
// instead of buffering without end.
func TestWS_OutputQueueIsBounded(t *testing.T) {
	g := start(t, server.Config{WS: server.WSConfig{MaxQueuedBytes: 256 << 10, WriteTimeout: time.Minute}}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/big")
	big := strings.Repeat("x", 60<<10)
	for i := range 10 {
		g.publish(alice, "user:alice/big", fmt.Sprint("e", i), map[string]any{"s": big})
	}
	c := g.rawDial("graphql-transport-ws")
	c.write(textFrame(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + alice}}))
	query := `query($q:String!){ notifications(queue:$q, limit:10) { items { seq payload } } }`
	var burst []byte
	for i := range 60 { // ~36 MB of results: more than loopback buffers hold
		burst = append(burst, textFrame(map[string]any{"id": fmt.Sprint(i), "type": "subscribe", "payload": map[string]any{"query": query, "variables": map[string]any{"q": q}}})...)
	}
	c.write(burst)
	// Give the server time to produce everything before reading: poll the
	// socket's readiness with a deadline rather than sleeping blind.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && server.WSClosing(g.srv) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	code, seen := c.closeCode()
	if code != 1013 {
		t.Fatalf("close code %d after %v, want 1013", code, seen)
	}
}

// TestWS_FrameAttacks: hostile framing closes with the code RFC 6455 and
// PROTOCOL.md give it, and a fragmented message (which RFC 6455 allows) is
// served like a whole one.
func TestWS_FrameAttacks(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop")
	initMsg := func() []byte {
		return textFrame(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + alice}})
	}
	closeBody := func(code uint16) []byte { return []byte{byte(code >> 8), byte(code)} }
	for _, tc := range []struct {
		name  string
		proto string
		in    func() []byte
		want  ws.StatusCode
	}{
		{"close 1005 echoed", "graphql-transport-ws", func() []byte { return clientFrame(true, ws.OpClose, closeBody(1005)) }, 1002},
		{"close 1006 echoed", "graphql-transport-ws", func() []byte { return clientFrame(true, ws.OpClose, closeBody(1006)) }, 1002},
		{"close 1015 echoed", "graphql-transport-ws", func() []byte { return clientFrame(true, ws.OpClose, closeBody(1015)) }, 1002},
		{"close 999 echoed", "graphql-transport-ws", func() []byte { return clientFrame(true, ws.OpClose, closeBody(999)) }, 1002},
		{"close 5000 echoed", "graphql-transport-ws", func() []byte { return clientFrame(true, ws.OpClose, closeBody(5000)) }, 1002},
		{"valid close is echoed", "graphql-transport-ws", func() []byte { return clientFrame(true, ws.OpClose, closeBody(4000)) }, 4000},
		{"length top bit", "graphql-transport-ws", func() []byte {
			return []byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}
		}, 1002},
		{"text not UTF-8", "graphql-transport-ws", func() []byte { return clientFrame(true, ws.OpText, []byte(`{"type":"ping","x":"`+"\xeb"+`"}`)) }, 1007},
		{"binary frame", "graphql-transport-ws", func() []byte { return clientFrame(true, ws.OpBinary, []byte(`{"type":"ping"}`)) }, 4400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := g.rawDial(tc.proto)
			c.t = t
			c.write(append(initMsg(), tc.in()...))
			if code, seen := c.closeCode(); code != tc.want {
				t.Fatalf("close %d after %v, want %d", code, seen, tc.want)
			}
		})
	}
	t.Run("fragmented messages", func(t *testing.T) {
		c := g.rawDial("graphql-transport-ws")
		c.t = t
		c.write(initMsg())
		msg := []byte(`{"type":"subscribe","id":"q1","payload":{"query":"{ me { user } }"}}`)
		var in []byte
		for i := 0; i < len(msg); i += 7 {
			op := ws.OpContinuation
			if i == 0 {
				op = ws.OpText
			}
			end := min(i+7, len(msg))
			in = append(in, clientFrame(end == len(msg), op, msg[i:end])...)
		}
		c.write(in)
		var got []string
		for len(got) < 3 {
			h, p, err := c.readFrame()
			if err != nil || h.OpCode != ws.OpText {
				t.Fatalf("after %q: %v %v %q", got, h.OpCode, err, p)
			}
			got = append(got, string(p))
		}
		if !strings.Contains(got[0], "connection_ack") || !strings.Contains(got[1], `"user":"alice"`) || !strings.Contains(got[2], "complete") {
			t.Fatalf("got %q", got)
		}
	})
}
