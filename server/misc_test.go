package server_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"meshgate/server"
	"meshgate/shard"
)

func TestWS_TokenInUpgradeHeader(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop")
	h := http.Header{}
	h.Set("Authorization", "Bearer "+alice)
	conn, resp, err := websocket.Dial(t.Context(), g.wsURL, &websocket.DialOptions{HTTPClient: g.client, HTTPHeader: h, Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	defer conn.CloseNow()
	c := &wsClient{t: t, conn: conn, ctx: t.Context()}
	c.send(map[string]any{"type": "connection_init"})
	if m := c.read(); m.Type != "connection_ack" {
		t.Fatalf("header token refused: %+v", m)
	}
}

func TestPublicEndpoints(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	base := strings.TrimSuffix(g.url, "/graphql")
	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		// A transport that does not add Accept-Encoding itself, so the
		// test sees exactly what the server sent.
		tr := g.client.Transport.(*http.Transport).Clone()
		tr.DisableCompression = true
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, _ := get(p, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d without a token", p, resp.StatusCode)
		}
	}
	resp, body := get("/", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/graphiql/graphiql.min.js") || strings.Contains(string(body), "cdn") {
		t.Fatalf("GraphiQL page: %d, CDN-free: %v", resp.StatusCode, !strings.Contains(string(body), "cdn"))
	}
	for _, asset := range []string{"graphiql.min.js", "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js", "graphql-ws.min.js"} {
		resp, gz := get("/graphiql/"+asset, map[string]string{"Accept-Encoding": "gzip"})
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%s: %d %q", asset, resp.StatusCode, resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(strings.NewReader(string(gz)))
		if err != nil {
			t.Fatalf("%s: %v", asset, err)
		}
		plain, _ := io.ReadAll(zr)
		resp, raw := get("/graphiql/"+asset, nil)
		if resp.StatusCode != 200 || string(raw) != string(plain) || len(raw) < 1000 {
			t.Fatalf("%s without gzip: %d, %d bytes", asset, resp.StatusCode, len(raw))
		}
	}
	if resp, _ := get("/graphiql/../server.go", nil); resp.StatusCode != 404 {
		t.Fatalf("path escape: %d", resp.StatusCode)
	}
}

func TestSSE_PostWithHeader(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/a")
	req, _ := http.NewRequest("POST", g.url, strings.NewReader(gqlBody(streamQuery, map[string]any{"q": q})))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ev := newSSEReader(resp.Body)
	g.publish(alice, "user:alice/a", "v1", map[string]any{"k": 1})
	if name, data := ev.next(t); name != "next" || !strings.Contains(data, `"payload":{"k":1}`) {
		t.Fatalf("%s %s", name, data)
	}
	// A query over SSE: one next, then complete.
	req, _ = http.NewRequest("POST", g.url, strings.NewReader(gqlBody(`{ me { user } }`, nil)))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp2, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	ev2 := newSSEReader(resp2.Body)
	if name, data := ev2.next(t); name != "next" || !strings.Contains(data, "alice") {
		t.Fatalf("%s %s", name, data)
	}
	if name, _ := ev2.next(t); name != "complete" {
		t.Fatal(name)
	}
}
