package server_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"meshgate/server"
	"meshgate/shard"
)

// These tests cover the parked reader (wsConn.park): an idle WebSocket
// holds no goroutine, and the poller starts one when its socket is
// readable. Every test runs on real loopback sockets, most over TLS.

// waitUntil polls cond until it holds, failing the test after 10 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fastPark parks idle connections after 20 ms rather than a second.
func fastPark(c server.Config) server.Config {
	c.WS.ParkAfter = 20 * time.Millisecond
	return c
}

func needPoller(t *testing.T, g *gateway) {
	t.Helper()
	if server.WSParked(g.srv) < 0 {
		t.Skip("no poller on this system: every WebSocket keeps its reader goroutine")
	}
}

func parked(g *gateway, n int) func() bool {
	return func() bool { return server.WSParked(g.srv) == n }
}

// TestWSPark_IdleThenActive: a subscribed connection parks once idle, and
// a publish, a ping and a new operation each wake it, over and over.
func TestWSPark_IdleThenActive(t *testing.T) {
	for _, useTLS := range []bool{true, false} {
		t.Run(map[bool]string{true: "tls", false: "plain"}[useTLS], func(t *testing.T) {
			g := startServing(t, fastPark(server.Config{}), shard.Config{}, useTLS)
			needPoller(t, g)
			alice := g.token("alice", "laptop", "publish")
			q := g.createQueue(alice)
			g.subscribe(alice, q, "user:alice/doc")
			c := g.dial("graphql-transport-ws")
			c.init(alice)
			c.subscribe("s", streamQuery, map[string]any{"q": q})
			for i := 1; i <= 5; i++ {
				waitUntil(t, "the connection to park", parked(g, 1))
				etag := fmt.Sprint("v", i)
				g.publish(alice, "user:alice/doc", etag, map[string]any{"n": i})
				if n := c.next("s"); n.Etag == nil || *n.Etag != etag {
					t.Fatalf("round %d: got %+v", i, n)
				}
				waitUntil(t, "the connection to park", parked(g, 1))
				c.send(map[string]any{"type": "ping"})
				if m := c.read(); m.Type != "pong" {
					t.Fatalf("round %d: want pong, got %+v", i, m)
				}
				waitUntil(t, "the connection to park", parked(g, 1))
				id := fmt.Sprint("q", i)
				c.subscribe(id, `query($q:String!){ notifications(queue:$q, waitSeconds:0) { lastSeq } }`, map[string]any{"q": q})
				if m := c.read(); m.Type != "next" || m.ID != id || !strings.Contains(string(m.Payload), `"lastSeq"`) {
					t.Fatalf("round %d: want the query's result, got %+v %s", i, m, m.Payload)
				}
				if m := c.read(); m.Type != "complete" || m.ID != id {
					t.Fatalf("round %d: want complete, got %+v", i, m)
				}
			}
		})
	}
}

// TestWSPark_InitAfterParking: a client that sends connection_init only
// after its connection parked (a slow device, a loaded machine) is
// answered: the poller wakes the reader for the first message too.
func TestWSPark_InitAfterParking(t *testing.T) {
	for _, useTLS := range []bool{true, false} {
		g := startServing(t, fastPark(server.Config{}), shard.Config{}, useTLS)
		needPoller(t, g)
		c := g.rawDial("graphql-transport-ws")
		waitUntil(t, "the connection to park", parked(g, 1))
		c.write(textFrame(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + g.token("alice", "laptop")}}))
		if h, p, err := c.readFrame(); err != nil || !strings.Contains(string(p), "connection_ack") {
			t.Fatalf("tls %v: want connection_ack, got %v %q %v", useTLS, h.OpCode, p, err)
		}
	}
}

// heldConn holds what is written to it while hold is set and sends it in
// one write on flush: TLS records written one by one arrive in one TCP
// segment, as a client's kernel may coalesce them.
type heldConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  bytes.Buffer
}

func (h *heldConn) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		return h.buf.Write(b)
	}
	return h.Conn.Write(b)
}

func (h *heldConn) setHold(on bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = on
	if on || h.buf.Len() == 0 {
		return nil
	}
	_, err := h.Conn.Write(h.buf.Bytes())
	h.buf.Reset()
	return err
}

// TestWSPark_BufferedInputIsReadFirst: frames the server already holds
// above its socket are answered without the client sending more: several
// frames in one TLS record (crypto/tls keeps the rest of the plaintext),
// several records in one segment (it keeps the records not yet
// decrypted), and frames sent with the upgrade request (net/http read
// them ahead). Parked with them, the connection would wait forever.
func TestWSPark_BufferedInputIsReadFirst(t *testing.T) {
	g := start(t, fastPark(server.Config{}), shard.Config{})
	needPoller(t, g)
	alice := g.token("alice", "laptop")
	u, _ := url.Parse(g.wsURL)
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	upgrade := "GET /graphql HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
	frames := [][]byte{
		textFrame(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + alice}}),
		textFrame(map[string]any{"type": "ping"}),
		clientFrame(true, ws.OpPing, []byte("are you there")),
	}
	for _, tc := range []struct {
		name string
		send func(tc *tls.Conn, h *heldConn) error
	}{
		{"frames in one record", func(tc *tls.Conn, h *heldConn) error {
			if _, err := tc.Write([]byte(upgrade)); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond) // let the server take the upgrade and park, if it would
			_, err := tc.Write(bytes.Join(frames, nil))
			return err
		}},
		{"records in one segment", func(tc *tls.Conn, h *heldConn) error {
			if _, err := tc.Write([]byte(upgrade)); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			_ = h.setHold(true)
			for _, f := range frames {
				if _, err := tc.Write(f); err != nil {
					return err
				}
			}
			return h.setHold(false)
		}},
		{"frames with the upgrade request", func(tc *tls.Conn, h *heldConn) error {
			_ = h.setHold(true)
			if _, err := tc.Write(append([]byte(upgrade), bytes.Join(frames, nil)...)); err != nil {
				return err
			}
			return h.setHold(false)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			h := &heldConn{Conn: raw}
			cfg := g.client.Transport.(*http.Transport).TLSClientConfig.Clone()
			cfg.NextProtos, cfg.ServerName = []string{"http/1.1"}, "127.0.0.1"
			conn := tls.Client(h, cfg)
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if err := conn.Handshake(); err != nil {
				t.Fatal(err)
			}
			if err := tc.send(conn, h); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close() // a 101 has none; the connection goes on in br
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %s", resp.Status)
			}
			rw := &rawWS{t: t, nc: conn, rd: br}
			// A pong frame may overtake the messages (the writer sends
			// control frames first): any order.
			got := map[string]bool{}
			for range 3 {
				hd, p, err := rw.readFrame()
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				var m wsMsg
				switch {
				case hd.OpCode == ws.OpPong && string(p) == "are you there":
					got["pong frame"] = true
				case hd.OpCode == ws.OpText && json.Unmarshal(p, &m) == nil:
					got[m.Type] = true
				default:
					t.Fatalf("unexpected frame %v %q", hd.OpCode, p)
				}
			}
			if !got["connection_ack"] || !got["pong"] || !got["pong frame"] {
				t.Fatalf("got %v; want connection_ack, pong and the pong frame", got)
			}
		})
	}
}

// rawInit opens a raw graphql-transport-ws connection and reads its ack.
func rawInit(t *testing.T, g *gateway, tok string) *rawWS {
	t.Helper()
	c := g.rawDial("graphql-transport-ws")
	c.write(textFrame(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + tok}}))
	if h, p, err := c.readFrame(); err != nil || !strings.Contains(string(p), "connection_ack") {
		t.Fatalf("want connection_ack, got %v %q %v", h.OpCode, p, err)
	}
	return c
}

// TestWSPark_EndsWhileParked: a parked connection ends whichever side
// ends it, and leaves nothing behind: not in the server's connections,
// not on the poller.
func TestWSPark_EndsWhileParked(t *testing.T) {
	gone := func(t *testing.T, g *gateway) {
		t.Helper()
		waitUntil(t, "the connection to end", func() bool { return server.WSConns(g.srv) == 0 && server.WSParked(g.srv) == 0 })
	}
	t.Run("client hangs up", func(t *testing.T) {
		g := start(t, fastPark(server.Config{}), shard.Config{})
		needPoller(t, g)
		c := rawInit(t, g, g.token("alice", "laptop"))
		waitUntil(t, "the connection to park", parked(g, 1))
		c.nc.Close()
		gone(t, g)
	})
	t.Run("client closes", func(t *testing.T) {
		g := start(t, fastPark(server.Config{}), shard.Config{})
		needPoller(t, g)
		c := rawInit(t, g, g.token("alice", "laptop"))
		waitUntil(t, "the connection to park", parked(g, 1))
		c.write(clientFrame(true, ws.OpClose, ws.NewCloseFrameBody(4000, "bye")))
		if code, _ := c.closeCode(); code != 4000 {
			t.Fatalf("close echoed with %d, want 4000", code)
		}
		gone(t, g)
	})
	t.Run("token expires", func(t *testing.T) {
		// The server's close frame goes out from the writer; the parked
		// reader must wake for the client's answer or the grace period.
		g := start(t, fastPark(server.Config{}), shard.Config{})
		needPoller(t, g)
		tok, err := server.Mint(g.key, "alice", "laptop", nil, 1500*time.Millisecond, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c := rawInit(t, g, tok)
		waitUntil(t, "the connection to park", parked(g, 1))
		if code, _ := c.closeCode(); code != 4403 {
			t.Fatalf("close %d, want 4403", code)
		}
		gone(t, g) // the client never answers: the grace period ends it
	})
	t.Run("client stops answering pings", func(t *testing.T) {
		// abort closes the socket, which epoll does not report.
		g := start(t, fastPark(server.Config{WS: server.WSConfig{PingInterval: 300 * time.Millisecond}}), shard.Config{})
		needPoller(t, g)
		rawInit(t, g, g.token("alice", "laptop"))
		waitUntil(t, "the connection to park", parked(g, 1))
		gone(t, g)
	})
	t.Run("server shuts down", func(t *testing.T) {
		g := start(t, fastPark(server.Config{}), shard.Config{})
		needPoller(t, g)
		c := g.dial("graphql-transport-ws")
		c.init(g.token("alice", "laptop"))
		waitUntil(t, "the connection to park", parked(g, 1))
		done := make(chan error, 1)
		go func() { done <- g.srv.Shutdown(t.Context()) }()
		if code := c.closeCode(); code != 1001 {
			t.Fatalf("close %d, want 1001", code)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		gone(t, g)
	})
}

// TestWSPark_StalledConsumerIsFreed: a subscriber that stops reading while
// parked fills its socket; the writer gives up after WriteTimeout and the
// connection ends, its queue keeping what it missed.
func TestWSPark_StalledConsumerIsFreed(t *testing.T) {
	g := start(t, fastPark(server.Config{WS: server.WSConfig{WriteTimeout: 500 * time.Millisecond},
		Limits: server.Limits{RequestRate: 1e6, RequestBurst: 1e6}}), shard.Config{RetainDelivered: 1024})
	needPoller(t, g)
	alice := g.token("alice", "slow", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/big")
	c := rawInit(t, g, alice)
	c.write(textFrame(map[string]any{"id": "s", "type": "subscribe", "payload": map[string]any{"query": streamQuery, "variables": map[string]any{"q": q}}}))
	waitUntil(t, "the connection to park", parked(g, 1))
	blob := strings.Repeat("x", 40<<10)
	const events = 200
	for i := 1; i <= events; i++ {
		g.publish(alice, "user:alice/big", fmt.Sprint("b", i), map[string]any{"blob": blob})
	}
	waitUntil(t, "the stalled connection to end", func() bool { return server.WSConns(g.srv) == 0 && server.WSParked(g.srv) == 0 })
	// Everything is still in the queue for a resume (pages hold 100).
	r := g.do(alice, `query($q:String!){ notifications(queue:$q, after:100, waitSeconds:0) { lastSeq } }`, map[string]any{"q": q})
	var page struct{ LastSeq uint64 }
	if err := json.Unmarshal(r.Data["notifications"], &page); err != nil || page.LastSeq != events {
		t.Fatalf("queue after the stall: %s %v, want lastSeq %d", r.Data["notifications"], err, events)
	}
}

// TestWSPark_ManyConnections: many subscribed connections all park; one
// publish reaches every one, they all park again, each still answers a
// ping, and closing them all leaves nothing parked.
func TestWSPark_ManyConnections(t *testing.T) {
	const n = 120
	g := start(t, fastPark(server.Config{Limits: server.Limits{RequestRate: 1e6, RequestBurst: 1e6, SubscribeRate: 1e6, SubscribeBurst: 1e6, MaxConnsPerUser: 1000}}), shard.Config{})
	needPoller(t, g)
	pub := g.token("alice", "publisher", "publish")
	var conns []*rawWS
	for i := range n {
		tok := g.token("alice", fmt.Sprint("d", i))
		q := g.createQueue(tok)
		g.subscribe(tok, q, "user:alice/doc")
		c := rawInit(t, g, tok)
		c.write(textFrame(map[string]any{"id": "s", "type": "subscribe", "payload": map[string]any{"query": streamQuery, "variables": map[string]any{"q": q}}}))
		conns = append(conns, c)
	}
	waitUntil(t, "every connection to park", parked(g, n))
	g.publish(pub, "user:alice/doc", "v1", map[string]any{"n": 1})
	for i, c := range conns {
		if _, p, err := c.readFrame(); err != nil || !strings.Contains(string(p), `"etag":"v1"`) {
			t.Fatalf("connection %d: %q %v", i, p, err)
		}
	}
	waitUntil(t, "every connection to park again", parked(g, n))
	for i, c := range conns {
		c.write(clientFrame(true, ws.OpPing, []byte{byte(i)}))
	}
	for i, c := range conns {
		if h, p, err := c.readFrame(); err != nil || h.OpCode != ws.OpPong || !bytes.Equal(p, []byte{byte(i)}) {
			t.Fatalf("connection %d: %v %q %v", i, h.OpCode, p, err)
		}
	}
	for _, c := range conns {
		c.nc.Close()
	}
	waitUntil(t, "every connection to end", func() bool { return server.WSConns(g.srv) == 0 && server.WSParked(g.srv) == 0 })
}

// TestWSPark_SlowInputIsNotCut: input that trickles in slower than
// ParkAfter (a frame a few bytes at a time; over TLS, a record split
// across segments) is read whole: the parking deadline ends a read only
// between frames, and a connection holding part of a TLS record is not
// parked.
func TestWSPark_SlowInputIsNotCut(t *testing.T) {
	ping := textFrame(map[string]any{"type": "ping"})
	expectPong := func(t *testing.T, c *rawWS) {
		t.Helper()
		if h, p, err := c.readFrame(); err != nil || h.OpCode != ws.OpText || !strings.Contains(string(p), `"pong"`) {
			t.Fatalf("want pong, got %v %q %v", h.OpCode, p, err)
		}
	}
	t.Run("a frame in pieces", func(t *testing.T) {
		for _, useTLS := range []bool{false, true} {
			g := startServing(t, fastPark(server.Config{}), shard.Config{}, useTLS)
			needPoller(t, g)
			c := rawInit(t, g, g.token("alice", "laptop"))
			waitUntil(t, "the connection to park", parked(g, 1))
			for i := 0; i < len(ping); i += 3 {
				c.write(ping[i:min(i+3, len(ping))])
				time.Sleep(60 * time.Millisecond) // three times ParkAfter
			}
			expectPong(t, c)
		}
	})
	t.Run("a TLS record across segments", func(t *testing.T) {
		g := start(t, fastPark(server.Config{}), shard.Config{})
		needPoller(t, g)
		u, _ := url.Parse(g.wsURL)
		raw, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		h := &heldConn{Conn: raw}
		cfg := g.client.Transport.(*http.Transport).TLSClientConfig.Clone()
		cfg.NextProtos, cfg.ServerName = []string{"http/1.1"}, "127.0.0.1"
		conn := tls.Client(h, cfg)
		defer conn.Close()
		d := ws.Dialer{Protocols: []string{"graphql-transport-ws"}, Timeout: 10 * time.Second}
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		if err := conn.Handshake(); err != nil {
			t.Fatal(err)
		}
		br, _, err := d.Upgrade(conn, u)
		if err != nil {
			t.Fatal(err)
		}
		c := &rawWS{t: t, nc: conn, rd: conn}
		if br != nil {
			c.rd = br
		}
		c.write(textFrame(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + g.token("alice", "laptop")}}))
		if _, p, err := c.readFrame(); err != nil || !strings.Contains(string(p), "connection_ack") {
			t.Fatalf("want connection_ack, got %q %v", p, err)
		}
		waitUntil(t, "the connection to park", parked(g, 1))
		_ = h.setHold(true)
		if _, err := conn.Write(ping); err != nil {
			t.Fatal(err)
		}
		h.mu.Lock()
		record := bytes.Clone(h.buf.Bytes())
		h.buf.Reset()
		h.hold = false
		h.mu.Unlock()
		for i := 0; i < len(record); i += 7 {
			if _, err := raw.Write(record[i:min(i+7, len(record))]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(60 * time.Millisecond)
		}
		expectPong(t, c)
	})
}
