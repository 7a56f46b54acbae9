package server_test

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"meshgate/server"
	"meshgate/shard"
)

// streamResp is a response whose body the test's cleanup closes.
type streamResp struct {
	StatusCode int
	Header     http.Header
	Body       io.Reader
}

// post sends a GraphQL request with the given Accept and extra headers.
func (g *gateway) post(tok, accept, query string, vars map[string]any, hdr ...string) streamResp {
	g.t.Helper()
	req, _ := http.NewRequest("POST", g.url, strings.NewReader(gqlBody(query, vars)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return g.send(req)
}

func (g *gateway) send(req *http.Request) streamResp {
	g.t.Helper()
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { resp.Body.Close() })
	return streamResp{resp.StatusCode, resp.Header, resp.Body}
}

// TestStream_Negotiation: the response type follows RFC 9110 over the real
// server, and a query is answered as JSON whenever the client accepts it.
func TestStream_Negotiation(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	for _, tc := range []struct {
		name, accept, query, want string
	}{
		{"q=0 excludes the event stream", "application/json, text/event-stream;q=0", streamQuery, "application/json"},
		{"a query is JSON when JSON is accepted", "text/event-stream, application/json", `{ me { user } }`, "application/json"},
		{"urql's default Accept for a query", "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed", `{ me { user } }`, "application/graphql-response+json"},
		{"a query over SSE alone stays SSE", "text/event-stream", `{ me { user } }`, "text/event-stream"},
		{"a subscription takes the stream", "text/event-stream, application/json", streamQuery, "text/event-stream"},
		{"a validation error of a query is JSON too", "text/event-stream, application/json", `{ nope }`, "application/json"},
		{"Apollo's multipart Accept", "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9", streamQuery, "multipart/mixed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := g.post(alice, tc.accept, tc.query, map[string]any{"q": q})
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.want) {
				t.Fatalf("Content-Type %q, want %s", ct, tc.want)
			}
		})
	}
}

// TestSSE_ErrorsInStream: graphql-sse PROTOCOL.md, distinct connections
// mode: "Validation steps that run before execution of the GraphQL
// operation MUST report errors through an accepted SSE connection by
// emitting `next` events that contain the errors in the data field." Only
// authentication refuses the request.
func TestSSE_ErrorsInStream(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	for _, tc := range []struct{ name, query, code string }{
		{"syntax", "subscription {", "GRAPHQL_PARSE_FAILED"},
		{"validation", "subscription { nope }", "GRAPHQL_VALIDATION_FAILED"},
		{"no such queue", streamQuery, "QUEUE_NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := g.post(alice, "text/event-stream", tc.query, map[string]any{"q": "nope"})
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			ev := newSSEReader(resp.Body)
			if name, data := ev.next(t); name != "next" || !strings.Contains(data, `"code":"`+tc.code+`"`) {
				t.Fatalf("%s %s", name, data)
			}
			if name, _ := ev.next(t); name != "complete" {
				t.Fatal(name)
			}
		})
	}
	resp := g.post("bad", "text/event-stream", streamQuery, map[string]any{"q": "nope"})
	if resp.StatusCode != 401 {
		t.Fatalf("bad token: %d", resp.StatusCode)
	}
}

// TestSSE_LastEventID: each notification event carries `id: <seq>`, and
// Last-Event-ID (or lastEventId) resumes as `after` would.
func TestSSE_LastEventID(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/a")
	for _, e := range []string{"v1", "v2", "v3"} {
		g.publish(alice, "user:alice/a", e, nil)
	}
	readIDs := func(resp streamResp, n int) []string {
		br := bufio.NewReader(resp.Body)
		var ids []string
		for len(ids) < n {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				ids = append(ids, strings.TrimSpace(v))
			}
		}
		return ids
	}
	if ids := readIDs(g.post(alice, "text/event-stream", streamQuery, map[string]any{"q": q}), 3); strings.Join(ids, ",") != "1,2,3" {
		t.Fatalf("ids %v", ids)
	}
	u := strings.Replace(g.url, "/graphql", "/graphql?lastEventId=1", 1)
	req, _ := http.NewRequest("POST", u, strings.NewReader(gqlBody(streamQuery, map[string]any{"q": q})))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if ids := readIDs(g.send(req), 1); ids[0] != "2" {
		t.Fatalf("after lastEventId=1: %v", ids)
	}
	// Reading after n acknowledges n, as `after` does.
	if ids := readIDs(g.post(alice, "text/event-stream", streamQuery, map[string]any{"q": q}, "Last-Event-ID", "2"), 1); ids[0] != "3" {
		t.Fatalf("after Last-Event-ID 2: %v", ids)
	}
	ev := newSSEReader(g.post(alice, "text/event-stream", streamQuery, map[string]any{"q": q}, "Last-Event-ID", "x").Body)
	if name, data := ev.next(t); name != "next" || !strings.Contains(data, `"code":"BAD_USER_INPUT"`) {
		t.Fatalf("bad Last-Event-ID: %s %s", name, data)
	}
}

// TestMultipart_Heartbeats: Apollo's multipart subscriptions get `{}`
// heartbeat parts while idle and `{"payload": …}` parts with results.
func TestMultipart_Heartbeats(t *testing.T) {
	g := start(t, server.Config{SSEKeepAlive: time.Second}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/a")
	resp := g.post(alice, `multipart/mixed;subscriptionSpec="1.0", application/json`, streamQuery, map[string]any{"q": q})
	if ct := resp.Header.Get("Content-Type"); ct != `multipart/mixed;boundary="graphql";subscriptionSpec="1.0"` {
		t.Fatalf("Content-Type %q", ct)
	}
	parts := make(chan string, 16)
	go func() {
		defer close(parts)
		b := make([]byte, 4096)
		var buf string
		for {
			n, err := resp.Body.Read(b)
			buf += string(b[:n])
			for {
				_, rest, ok := strings.Cut(buf, "\r\n--graphql")
				if !ok {
					break
				}
				part, _, ok := strings.Cut(rest, "\r\n--graphql")
				if !ok {
					break
				}
				buf = rest[len(part):]
				parts <- part
			}
			if err != nil {
				if err != io.EOF {
					parts <- "read error: " + err.Error()
				}
				return
			}
		}
	}()
	next := func() string {
		select {
		case p := <-parts:
			return p
		case <-time.After(20 * time.Second):
			t.Fatal("no part within 20 s")
		}
		return ""
	}
	if p := next(); !strings.HasSuffix(p, "\r\n\r\n{}") || !strings.Contains(p, "content-type: application/json") {
		t.Fatalf("want a heartbeat part, got %q", p)
	}
	g.publish(alice, "user:alice/a", "v1", nil)
	for {
		p := next()
		if strings.HasSuffix(p, "{}") {
			continue
		}
		if !strings.Contains(p, `{"payload":{"data":{"notifications":{"seq":1`) {
			t.Fatalf("part %q", p)
		}
		break
	}
}
