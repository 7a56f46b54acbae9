package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"meshgate/internal/certs"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"meshgate/graph"
	"meshgate/internal/inproc"
	"meshgate/server"
	"meshgate/shard"
	"meshgate/shard/cluster"
)

// gateway is a real meshgate server on a loopback TLS socket.
type gateway struct {
	t      testing.TB
	url    string // https://127.0.0.1:port/graphql
	wsURL  string
	client *http.Client
	key    server.Key
	srv    *server.Server
	store  *shard.Store
}

func start(t testing.TB, scfg server.Config, qcfg shard.Config) *gateway {
	t.Helper()
	return startServing(t, scfg, qcfg, true)
}

// startServing is start, over plain HTTP unless useTLS.
func startServing(t testing.TB, scfg server.Config, qcfg shard.Config, useTLS bool) *gateway {
	t.Helper()
	dir := t.TempDir()
	key, _, err := server.EnsureDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := server.NewAuthenticator([]server.Key{key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := shard.New(qcfg)
	if err != nil {
		t.Fatal(err)
	}
	node := cluster.Single(store)
	srv, err := server.New(scfg, auth, node, &graph.Resolver{Backend: node, Publishers: inproc.New(store, nil)})
	if err != nil {
		t.Fatal(err)
	}
	cert, keyPath, _, _, err := certs.EnsureDevCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := certs.TLSConfig(cert, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	if !useTLS {
		tlsCfg = nil
	}
	go func() { done <- srv.Serve(l, tlsCfg) }()
	pem, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	g := &gateway{
		t:      t,
		url:    "https://" + l.Addr().String() + "/graphql",
		wsURL:  "wss://" + l.Addr().String() + "/graphql",
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}},
		key:    key,
		srv:    srv,
		store:  store,
	}
	if !useTLS {
		g.url, g.wsURL = "http://"+l.Addr().String()+"/graphql", "ws://"+l.Addr().String()+"/graphql"
		g.client = &http.Client{Timeout: 30 * time.Second}
	}
	t.Cleanup(func() {
		// Idle client connections first: an open HTTP/2 connection makes
		// Shutdown wait for its GOAWAY exchange (about 1 s per test).
		g.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		store.Close()
	})
	return g
}

func (g *gateway) token(user, device string, scopes ...string) string {
	g.t.Helper()
	tok, err := server.Mint(g.key, user, device, scopes, time.Hour, time.Now())
	if err != nil {
		g.t.Fatal(err)
	}
	return tok
}

// response is a GraphQL response as a client reads it.
type response struct {
	status int
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (r response) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// do POSTs a GraphQL request.
func (g *gateway) do(tok, query string, vars map[string]any) response {
	g.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return g.raw(http.MethodPost, tok, "application/json", body, "")
}

func (g *gateway) raw(method, tok, ctype string, body []byte, accept string) response {
	g.t.Helper()
	req, _ := http.NewRequest(method, g.url, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		g.t.Fatalf("status %d, body %q: %v", resp.StatusCode, b, err)
	}
	r.status = resp.StatusCode
	return r
}

// must runs a request that must succeed and decodes field into out.
func (g *gateway) must(tok, query string, vars map[string]any, field string, out any) {
	g.t.Helper()
	r := g.do(tok, query, vars)
	if len(r.Errors) > 0 || r.status != 200 {
		g.t.Fatalf("%s: status %d errors %+v", query, r.status, r.Errors)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data[field], out); err != nil {
			g.t.Fatal(err)
		}
	}
}

func (g *gateway) createQueue(tok string) string {
	g.t.Helper()
	var q struct{ Name string }
	g.must(tok, `mutation { createQueue { name } }`, nil, "createQueue", &q)
	return q.Name
}

func (g *gateway) subscribe(tok, queue, res string) {
	g.t.Helper()
	g.must(tok, `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }`, map[string]any{"q": queue, "r": res}, "", nil)
}

func (g *gateway) publish(tok, res, etag string, payload any) int {
	g.t.Helper()
	var n int
	g.must(tok, `mutation($r:String!,$e:String!,$p:JSON){ publish(resource:$r, etag:$e, payload:$p) }`, map[string]any{"r": res, "e": etag, "p": payload}, "publish", &n)
	return n
}

// wsClient speaks graphql-transport-ws (or the legacy protocol) with
// coder/websocket, an implementation independent of the server's.
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
	ctx  context.Context
}

func (g *gateway) dial(proto string) *wsClient {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	g.t.Cleanup(cancel)
	opts := &websocket.DialOptions{HTTPClient: g.client}
	if proto != "" {
		opts.Subprotocols = []string{proto}
	}
	c, resp, err := websocket.Dial(ctx, g.wsURL, opts)
	if err != nil {
		g.t.Fatalf("dial: %v", err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	c.SetReadLimit(1 << 20)
	g.t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: g.t, conn: c, ctx: ctx}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if err := c.conn.Write(c.ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

type wsMsg struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

func (c *wsClient) read() wsMsg {
	c.t.Helper()
	_, b, err := c.conn.Read(c.ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m wsMsg
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("bad message %q", b)
	}
	return m
}

// closeCode reads until the server closes and returns its close code.
func (c *wsClient) closeCode() websocket.StatusCode {
	c.t.Helper()
	for {
		_, _, err := c.conn.Read(c.ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func (c *wsClient) init(tok string) {
	c.t.Helper()
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + tok}})
	if m := c.read(); m.Type != "connection_ack" {
		c.t.Fatalf("want connection_ack, got %+v", m)
	}
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}})
}

// note is a streamed notification.
type note struct {
	Seq      uint64          `json:"seq"`
	Kind     string          `json:"kind"`
	Resource *string         `json:"resource"`
	Etag     *string         `json:"etag"`
	Payload  json.RawMessage `json:"payload"`
}

func (c *wsClient) next(id string) note {
	c.t.Helper()
	m := c.read()
	if m.Type != "next" || m.ID != id {
		c.t.Fatalf("want next for %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	var p struct {
		Data struct {
			Notifications note `json:"notifications"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		c.t.Fatal(err)
	}
	return p.Data.Notifications
}

const streamQuery = `subscription($q:String!,$a:Seq){ notifications(queue:$q, after:$a) { seq kind resource etag payload } }`

func jsonEq(t testing.TB, got json.RawMessage, want string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	_ = json.Unmarshal([]byte(want), &b)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

var _ = strings.Contains
