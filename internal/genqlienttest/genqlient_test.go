package genqlienttest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Khan/genqlient/graphql"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"meshgate/graph"
	"meshgate/internal/inproc"
	"meshgate/server"
	"meshgate/shard"
	"meshgate/shard/cluster"
)

// gateway starts a real meshgate on a loopback socket (plain HTTP) and
// returns its /graphql URL and a token minter.
func gateway(t *testing.T, cfg server.Config) (string, func(user string, scopes ...string) string) {
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
	store, err := shard.New(shard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	node := cluster.Single(store)
	srv, err := server.New(cfg, auth, node, &graph.Resolver{Backend: node, Publishers: inproc.New(store, nil)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l, nil) }()
	t.Cleanup(func() {
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
	mint := func(user string, scopes ...string) string {
		tok, err := server.Mint(key, user, "genqlient", scopes, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	return "http://" + l.Addr().String() + "/graphql", mint
}

// bearer is a graphql.Doer that adds the token, as an application's would.
type bearer struct{ token string }

func (b bearer) Do(r *http.Request) (*http.Response, error) {
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultClient.Do(r)
}

// dialer adapts github.com/coder/websocket to genqlient's Dialer (genqlient
// leaves the WebSocket library to the application). With answerPings it
// also answers graphql-transport-ws `ping` messages, which genqlient 0.8.1
// does not know: it fails the connection on a message without an id.
type dialer struct{ answerPings bool }

func (d dialer) DialContext(ctx context.Context, url string, h http.Header) (graphql.WSConn, error) {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return nil, err
	}
	return &wsConn{c: c, answerPings: d.answerPings}, nil
}

type wsConn struct {
	c           *websocket.Conn
	answerPings bool
	pings       atomic.Int32
}

func (w *wsConn) ReadMessage() (int, []byte, error) {
	for {
		typ, b, err := w.c.Read(context.Background())
		if err != nil {
			return 0, nil, err
		}
		var m struct{ Type string }
		if w.answerPings && json.Unmarshal(b, &m) == nil && m.Type == "ping" {
			w.pings.Add(1)
			if err := w.c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"pong"}`)); err != nil {
				return 0, nil, err
			}
			continue
		}
		return int(typ), b, nil
	}
}

func (w *wsConn) WriteMessage(typ int, data []byte) error {
	if typ == 8 && len(data) >= 2 { // genqlient's close message
		return w.c.Close(websocket.StatusCode(binary.BigEndian.Uint16(data)), string(data[2:]))
	}
	return w.c.Write(context.Background(), websocket.MessageType(typ), data)
}

func (w *wsConn) Close() error { return w.c.CloseNow() }

// code is the extensions.code of the first GraphQL error in err, as
// genqlient hands it to the application.
func code(t *testing.T, err error) string {
	t.Helper()
	var list gqlerror.List
	var httpErr *graphql.HTTPError
	switch {
	case errors.As(err, &list) && len(list) > 0:
		c, _ := list[0].Extensions["code"].(string)
		return c
	case errors.As(err, &httpErr) && len(httpErr.Response.Errors) > 0:
		c, _ := httpErr.Response.Errors[0].Extensions["code"].(string)
		return c
	}
	t.Fatalf("not a GraphQL error: %T %v", err, err)
	return ""
}

// TestGenqlient: genqlient's generated code creates a queue, subscribes
// it, publishes, polls and streams notifications, and every error reaches
// the application with its extensions.code: over HTTP as a gqlerror.List
// (200) or an *graphql.HTTPError (401), over WebSocket as the result's
// errors (a `next` with errors then `complete`, which genqlient parses).
func TestGenqlient(t *testing.T) {
	url, mint := gateway(t, server.Config{WS: server.WSConfig{KeepAlive: time.Second}})
	ctx := context.Background()
	alice := mint("alice", "publish")
	c := graphql.NewClient(url, bearer{alice})

	q, err := CreateQueue(ctx, c, 60)
	if err != nil {
		t.Fatal(err)
	}
	queue := q.CreateQueue.Name
	if _, err := Subscribe(ctx, c, queue, "user:alice/notes"); err != nil {
		t.Fatal(err)
	}
	for _, etag := range []string{"v1", "v2"} {
		p, err := Publish(ctx, c, "user:alice/notes", etag, json.RawMessage(`{"title":"groceries"}`))
		if err != nil || p.Publish != 1 {
			t.Fatalf("publish %s: %v %+v", etag, err, p)
		}
	}
	page, err := Poll(ctx, c, queue, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	items := page.Notifications.Items
	if len(items) != 2 || items[0].Etag != "v1" || items[1].Etag != "v2" || items[1].Kind != NotificationKindChanged ||
		string(items[0].Payload) != `{"title":"groceries"}` || items[0].PublishedAt.IsZero() || page.Notifications.LastSeq != items[1].Seq {
		t.Fatalf("poll: %+v", page.Notifications)
	}

	t.Run("errors_keep_their_code", func(t *testing.T) {
		_, err := Poll(ctx, c, "no-such-queue", 0, 0)
		if got := code(t, err); got != "QUEUE_NOT_FOUND" {
			t.Errorf("poll a missing queue: %s (%v)", got, err)
		}
		_, err = Subscribe(ctx, c, queue, "not a resource")
		if got := code(t, err); got != "BAD_USER_INPUT" {
			t.Errorf("subscribe to a bad resource: %s (%v)", got, err)
		}
		_, err = CreateQueue(ctx, graphql.NewClient(url, bearer{"not-a-token"}), 60)
		var httpErr *graphql.HTTPError
		if !errors.As(err, &httpErr) || httpErr.StatusCode != 401 || code(t, err) != "UNAUTHENTICATED" {
			t.Errorf("a bad token: %v", err)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		d := dialer{answerPings: true}
		var conn *wsConn
		ws := graphql.NewClientUsingWebSocket(strings.Replace(url, "http", "ws", 1), dialFunc(func(ctx context.Context, u string, h http.Header) (graphql.WSConn, error) {
			wc, err := d.DialContext(ctx, u, h)
			if err == nil {
				conn = wc.(*wsConn)
			}
			return wc, err
		}), graphql.WithConnectionParams(map[string]any{"authorization": "Bearer " + alice}))
		errc, err := ws.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		notes, _, err := Stream(ctx, ws, queue, 1)
		if err != nil {
			t.Fatal(err)
		}
		next := func() StreamWsResponse {
			t.Helper()
			select {
			case r, ok := <-notes:
				if !ok {
					t.Fatal("stream completed")
				}
				return r
			case err := <-errc:
				t.Fatalf("websocket: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("nothing within 20 s")
			}
			return StreamWsResponse{}
		}
		if r := next(); r.Data == nil || r.Data.Notifications.Etag != "v2" {
			t.Fatalf("resumed after seq 1: %+v", r)
		}
		// Idle until the gateway has sent protocol pings; the stream lives on.
		for deadline := time.Now().Add(20 * time.Second); conn.pings.Load() < 2; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no ping message within 20 s")
			}
		}
		if _, err := Publish(ctx, c, "user:alice/notes", "v3", nil); err != nil {
			t.Fatal(err)
		}
		if r := next(); r.Data == nil || r.Data.Notifications.Etag != "v3" || string(r.Data.Notifications.Payload) != "null" {
			t.Fatalf("after idle: %+v", r)
		}
		// A subscribe-time error is a result with errors, then complete.
		missing, _, err := Stream(ctx, ws, "no-such-queue", 0)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-missing:
			if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "QUEUE_NOT_FOUND" {
				t.Fatalf("%+v", r)
			}
		case err := <-errc:
			t.Fatalf("websocket: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("no error result")
		}
		if _, ok := <-missing; ok {
			t.Fatal("the failed stream did not complete")
		}
	})

	// Without answering ping messages in its WSConn, genqlient 0.8.1 ends
	// the connection at the first one (15 s of silence by default). This
	// documents why the adapter above answers them; it fails, and the
	// README should change, when genqlient learns them.
	t.Run("ping_messages_need_the_adapter", func(t *testing.T) {
		ws := graphql.NewClientUsingWebSocket(strings.Replace(url, "http", "ws", 1), dialer{},
			graphql.WithConnectionParams(map[string]any{"authorization": "Bearer " + alice}))
		errc, err := ws.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		select {
		case err := <-errc:
			if !strings.Contains(err.Error(), "unknown subscription ID") {
				t.Fatalf("%v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("genqlient read a ping message: update the README and the adapter's comment")
		}
	})
}

type dialFunc func(ctx context.Context, url string, h http.Header) (graphql.WSConn, error)

func (f dialFunc) DialContext(ctx context.Context, url string, h http.Header) (graphql.WSConn, error) {
	return f(ctx, url, h)
}
