package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"meshgate/server"
	"meshgate/shard"
)

func TestWS_StreamReplaysThenPushesLive(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/a")
	for i := 1; i <= 3; i++ {
		g.publish(alice, "user:alice/a", fmt.Sprint("e", i), map[string]any{"n": i})
	}
	c := g.dial("graphql-transport-ws")
	c.init(alice)
	c.subscribe("s1", streamQuery, map[string]any{"q": q, "a": 1}) // resume after seq 1
	for want := uint64(2); want <= 3; want++ {
		if n := c.next("s1"); n.Seq != want || *n.Etag != fmt.Sprint("e", want) {
			t.Fatalf("replay: got %+v want seq %d", n, want)
		}
	}
	for i := 4; i <= 20; i++ {
		g.publish(alice, "user:alice/a", fmt.Sprint("e", i), map[string]any{"n": i})
		n := c.next("s1")
		if n.Seq != uint64(i) || n.Kind != "CHANGED" || *n.Resource != "user:alice/a" {
			t.Fatalf("live: got %+v want seq %d", n, i)
		}
		jsonEq(t, n.Payload, fmt.Sprintf(`{"n":%d}`, i))
	}
	// Queries and mutations work on the same socket, between stream events.
	c.subscribe("q1", `{ me { user device } }`, nil)
	if m := c.read(); m.Type != "next" || m.ID != "q1" || !strings.Contains(string(m.Payload), `"device":"laptop"`) {
		t.Fatalf("query result: %+v %s", m, m.Payload)
	}
	if m := c.read(); m.Type != "complete" || m.ID != "q1" {
		t.Fatalf("query complete: %+v", m)
	}
	// Client complete stops the stream: nothing more arrives for s1.
	c.send(map[string]any{"id": "s1", "type": "complete"})
	c.send(map[string]any{"type": "ping"})
	if m := c.read(); m.Type != "pong" {
		t.Fatalf("want pong, got %+v", m)
	}
	g.publish(alice, "user:alice/a", "late", nil)
	c.send(map[string]any{"type": "ping"})
	if m := c.read(); m.Type != "pong" {
		t.Fatalf("after complete, got %+v (a stopped stream sent data)", m)
	}
}

func TestWS_ManyStreamsShareOneEncoding(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{MaxQueuesPerDevice: 64})
	alice := g.token("alice", "laptop", "publish")
	const n = 20
	clients := make([]*wsClient, n)
	for i := range clients {
		tok := g.token("alice", fmt.Sprint("dev", i))
		q := g.createQueue(tok)
		g.subscribe(tok, q, "user:alice/feed")
		clients[i] = g.dial("graphql-transport-ws")
		clients[i].init(tok)
		clients[i].subscribe("s", streamQuery, map[string]any{"q": q})
	}
	for e := 1; e <= 5; e++ {
		if got := g.publish(alice, "user:alice/feed", fmt.Sprint("v", e), nil); got != n {
			t.Fatalf("published to %d", got)
		}
	}
	for i, c := range clients {
		for e := uint64(1); e <= 5; e++ {
			if nt := c.next("s"); nt.Seq != e || *nt.Etag != fmt.Sprint("v", e) {
				t.Fatalf("client %d: %+v", i, nt)
			}
		}
	}
}

func TestWS_QueueDeletedEndsStreamWithCode(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop")
	q := g.createQueue(alice)
	c := g.dial("graphql-transport-ws")
	c.init(alice)
	c.subscribe("s", streamQuery, map[string]any{"q": q})
	c.send(map[string]any{"type": "ping"}) // the subscribe has been processed once pong arrives
	if m := c.read(); m.Type != "pong" {
		t.Fatal(m)
	}
	g.must(alice, `mutation($q:String!){ deleteQueue(name:$q) }`, map[string]any{"q": q}, "", nil)
	m := c.read()
	if m.Type != "error" || m.ID != "s" || !strings.Contains(string(m.Payload), "QUEUE_NOT_FOUND") {
		t.Fatalf("want error QUEUE_NOT_FOUND, got %+v %s", m, m.Payload)
	}
	// Unknown queue on subscribe: an error once the operation runs is a
	// result then complete, as graphql-ws's reference server sends it
	// (PROTOCOL.md keeps `error` for what fails "before execution starts,
	// usually due to validation errors"); the connection stays up.
	c.subscribe("s2", streamQuery, map[string]any{"q": "qnope"})
	if m := c.read(); m.Type != "next" || m.ID != "s2" || !strings.Contains(string(m.Payload), `"errors":[{`) || !strings.Contains(string(m.Payload), "QUEUE_NOT_FOUND") {
		t.Fatalf("%+v %s", m, m.Payload)
	}
	if m := c.read(); m.Type != "complete" || m.ID != "s2" {
		t.Fatalf("want complete, got %+v", m)
	}
	// Validation errors come as error, without complete.
	c.subscribe("s3", `subscription { nope }`, nil)
	if m := c.read(); m.Type != "error" || m.ID != "s3" || !strings.Contains(string(m.Payload), "GRAPHQL_VALIDATION_FAILED") {
		t.Fatalf("%+v %s", m, m.Payload)
	}
	c.send(map[string]any{"type": "ping"})
	if m := c.read(); m.Type != "pong" {
		t.Fatalf("expected nothing between error and pong, got %+v", m)
	}
}

func TestWS_CloseCodes(t *testing.T) {
	g := start(t, server.Config{WS: server.WSConfig{InitTimeout: time.Second, MaxMessageBytes: 4096, MessageRate: 5, MessageBurst: 10}}, shard.Config{})
	alice := g.token("alice", "laptop")
	for _, tc := range []struct {
		name  string
		proto string
		run   func(c *wsClient)
		want  websocket.StatusCode
	}{
		{"no subprotocol", "", func(*wsClient) {}, 4406},
		{"bad token", "graphql-transport-ws", func(c *wsClient) {
			c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer nope"}})
		}, 4403},
		{"no token", "graphql-transport-ws", func(c *wsClient) {
			c.send(map[string]any{"type": "connection_init"})
		}, 4403},
		{"no init in time", "graphql-transport-ws", func(*wsClient) {}, 4408},
		{"subscribe before ack", "graphql-transport-ws", func(c *wsClient) {
			c.subscribe("1", `{ me { user } }`, nil)
		}, 4401},
		{"second init", "graphql-transport-ws", func(c *wsClient) {
			c.init(alice)
			c.send(map[string]any{"type": "connection_init"})
		}, 4429},
		{"duplicate id", "graphql-transport-ws", func(c *wsClient) {
			c.init(alice)
			vars := map[string]any{"q": g.createQueue(alice)} // a stream stays active
			c.subscribe("1", streamQuery, vars)
			c.subscribe("1", streamQuery, vars)
		}, 4409},
		{"invalid JSON", "graphql-transport-ws", func(c *wsClient) {
			_ = c.conn.Write(c.ctx, websocket.MessageText, []byte("{"))
		}, 4400},
		{"unknown type", "graphql-transport-ws", func(c *wsClient) {
			c.send(map[string]any{"type": "hello"})
		}, 4400},
		{"subscribe without id", "graphql-transport-ws", func(c *wsClient) {
			c.init(alice)
			c.send(map[string]any{"type": "subscribe", "payload": map[string]any{"query": "{me{user}}"}})
		}, 4400},
		{"message too big", "graphql-transport-ws", func(c *wsClient) {
			c.init(alice)
			big, _ := json.Marshal(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": `{ me { user } }` + strings.Repeat(" ", 5000)}})
			_ = c.conn.Write(c.ctx, websocket.MessageText, big) // the server may stop reading mid-message
		}, 1009},
		{"flood", "graphql-transport-ws", func(c *wsClient) {
			c.init(alice)
			for range 100 {
				if c.conn.Write(c.ctx, websocket.MessageText, []byte(`{"type":"pong"}`)) != nil {
					return
				}
			}
		}, 4429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := g.dial(tc.proto)
			c.t = t
			tc.run(c)
			if got := c.closeCode(); got != tc.want {
				t.Fatalf("close code %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("still serving", func(t *testing.T) {
		c := g.dial("graphql-transport-ws")
		c.init(alice)
	})
}

func TestWS_LegacyProtocol(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/a")
	c := g.dial("graphql-ws")
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + alice}})
	if m := c.read(); m.Type != "connection_ack" {
		t.Fatal(m)
	}
	if m := c.read(); m.Type != "ka" {
		t.Fatal(m)
	}
	c.send(map[string]any{"id": "1", "type": "start", "payload": map[string]any{"query": streamQuery, "variables": map[string]any{"q": q}}})
	c.send(map[string]any{"id": "2", "type": "start", "payload": map[string]any{"query": `{ me { user } }`}})
	if m := c.read(); m.Type != "data" || m.ID != "2" {
		t.Fatalf("%+v", m)
	}
	if m := c.read(); m.Type != "complete" || m.ID != "2" {
		t.Fatalf("%+v", m)
	}
	g.publish(alice, "user:alice/a", "v9", nil)
	m := c.read()
	if m.Type != "data" || m.ID != "1" || !strings.Contains(string(m.Payload), `"etag":"v9"`) {
		t.Fatalf("%+v %s", m, m.Payload)
	}
	c.send(map[string]any{"id": "1", "type": "stop"})
	c.send(map[string]any{"type": "connection_terminate"})
	if code := c.closeCode(); code != websocket.StatusNormalClosure {
		t.Fatalf("close %d", code)
	}
}

func TestWS_ShutdownSaysGoingAwayAndLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop")
	q := g.createQueue(alice)
	c := g.dial("graphql-transport-ws")
	c.init(alice)
	c.subscribe("s", streamQuery, map[string]any{"q": q})
	c.send(map[string]any{"type": "ping"})
	if m := c.read(); m.Type != "pong" {
		t.Fatal(m)
	}
	done := make(chan error, 1)
	go func() { done <- g.srv.Shutdown(t.Context()) }()
	if code := c.closeCode(); code != websocket.StatusGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The queue survives its stream: the client resumes elsewhere.
	if _, err := g.store.Queue(t.Context(), shard.Principal{User: "alice", Device: "laptop"}, q); err != nil {
		t.Fatal(err)
	}
	g.client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+3 { // the store's reaper, the test client's leftovers
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSSE_StreamAndEventSourceAuth(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/a")
	g.publish(alice, "user:alice/a", "v1", nil)

	// GET, as an EventSource sends it: no headers, the token in extensions.
	vars, _ := json.Marshal(map[string]any{"q": q})
	ext, _ := json.Marshal(map[string]any{"authorization": "Bearer " + alice})
	u := g.url + "?query=" + urlq(streamQuery) + "&variables=" + urlq(string(vars)) + "&extensions=" + urlq(string(ext))
	resp, err := g.client.Get(u) // no Accept header: JSON, not a stream
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("GET without Accept: event-stream and without header: %d (extensions only count for SSE)", resp.StatusCode)
	}
	req, _ := newReq("GET", u, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err = g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	ev := newSSEReader(resp.Body)
	if name, data := ev.next(t); name != "next" || !strings.Contains(data, `"seq":1`) {
		t.Fatalf("%s %s", name, data)
	}
	g.publish(alice, "user:alice/a", "v2", nil)
	if name, data := ev.next(t); name != "next" || !strings.Contains(data, `"etag":"v2"`) {
		t.Fatalf("%s %s", name, data)
	}
	g.must(alice, `mutation($q:String!){ deleteQueue(name:$q) }`, map[string]any{"q": q}, "", nil)
	if name, data := ev.next(t); name != "next" || !strings.Contains(data, "QUEUE_NOT_FOUND") {
		t.Fatalf("%s %s", name, data)
	}
	if name, _ := ev.next(t); name != "complete" {
		t.Fatalf("want complete, got %s", name)
	}
}

// A consumer that cannot keep up is told so with 1013 and a reason, while
// its queue keeps what it has not read; it resumes with `after`.
func TestWS_SlowConsumerIsClosedAndResumes(t *testing.T) {
	g := start(t, server.Config{WS: server.WSConfig{MaxLag: 3, LagGrace: 200 * time.Millisecond},
		Limits: server.Limits{RequestRate: 1e6, RequestBurst: 1e6}},
		shard.Config{RetainDelivered: 1024})
	alice := g.token("alice", "slow", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/big")
	c := g.dial("graphql-transport-ws")
	c.init(alice)
	c.subscribe("s", `subscription($q:String!,$a:Seq){ notifications(queue:$q, after:$a) { seq payload } }`, map[string]any{"q": q, "a": 0})
	blob := strings.Repeat("x", 40<<10)
	const events = 300
	for i := 1; i <= events; i++ {
		g.publish(alice, "user:alice/big", fmt.Sprint("b", i), map[string]any{"blob": blob})
	}
	// Read slowly until the server gives up on us.
	var last uint64
	var code websocket.StatusCode
	var reason string
	for {
		_, b, err := c.conn.Read(c.ctx)
		if err != nil {
			code = websocket.CloseStatus(err)
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				reason = ce.Reason
			}
			break
		}
		var m struct {
			Payload struct {
				Data struct{ Notifications struct{ Seq uint64 } }
			}
		}
		_ = json.Unmarshal(b, &m)
		last = m.Payload.Data.Notifications.Seq
		time.Sleep(20 * time.Millisecond)
	}
	if code != 1013 || !strings.Contains(reason, "too slow") {
		t.Fatalf("closed with %d %q; want 1013 and a reason", code, reason)
	}
	if last == 0 || last == events {
		t.Fatalf("read %d of %d before the close", last, events)
	}
	// Resume: everything after the last one read is still there.
	c2 := g.dial("graphql-transport-ws")
	c2.init(alice)
	c2.subscribe("s", `subscription($q:String!,$a:Seq){ notifications(queue:$q, after:$a) { seq kind } }`, map[string]any{"q": q, "a": last})
	for want := last + 1; want <= events; want++ {
		if n := c2.next("s"); n.Seq != want || n.Kind != "CHANGED" {
			t.Fatalf("after resuming: %+v, want seq %d", n, want)
		}
	}
}
