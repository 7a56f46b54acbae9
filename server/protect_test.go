package server_test

import (
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"meshgate/server"
	"meshgate/shard"
)

func TestProtection(t *testing.T) {
	g := start(t, server.Config{Limits: server.Limits{
		RequestRate: 1, RequestBurst: 5, SubscribeRate: 1, SubscribeBurst: 2, MaxConnsPerUser: 2, MaxConns: 4,
	}}, shard.Config{})

	t.Run("requests per user", func(t *testing.T) {
		tok, other := g.token("flood", "d"), g.token("calm", "d")
		var last response
		for range 8 {
			last = g.raw("POST", tok, "application/json", []byte(`{"query":"{ me { user } }"}`), "")
		}
		if last.status != http.StatusTooManyRequests || last.code() != "LIMIT_EXCEEDED" {
			t.Fatalf("after a flood: %d %s", last.status, last.code())
		}
		if r := g.raw("POST", other, "application/json", []byte(`{"query":"{ me { user } }"}`), ""); r.status != 200 {
			t.Fatalf("another user is throttled too: %d", r.status)
		}
	})
	t.Run("subscribes per user", func(t *testing.T) {
		tok := g.token("subber", "d")
		q := g.createQueue(tok)
		var codes []string
		for _, r := range []string{"a", "b", "c"} {
			codes = append(codes, g.do(tok, `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }`, map[string]any{"q": q, "r": "user:subber/" + r}).code())
		}
		if strings.Join(codes, ",") != ",,LIMIT_EXCEEDED" {
			t.Fatalf("codes %v", codes)
		}
	})
	t.Run("streams per user and per node", func(t *testing.T) {
		tok := g.token("streamer", "d")
		for range 2 {
			g.dial("graphql-transport-ws").init(tok)
		}
		c := g.dial("graphql-transport-ws")
		c.t = t
		c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + tok}})
		if code := c.closeCode(); code != 4429 {
			t.Fatalf("third stream of one user: %d", code)
		}
		// Two more users fill the node (4 streams); the next is refused
		// before the upgrade.
		g.dial("graphql-transport-ws").init(g.token("u2", "d"))
		g.dial("graphql-transport-ws").init(g.token("u3", "d"))
		_, resp, err := websocket.Dial(t.Context(), g.wsURL, &websocket.DialOptions{HTTPClient: g.client, Subprotocols: []string{"graphql-transport-ws"}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("node full: %v %v", err, resp)
		}
	})
}

func TestLimits_Validate(t *testing.T) {
	if err := (server.Limits{}).Validate(); err != nil {
		t.Fatalf("zero limits (defaults): %v", err)
	}
	err := server.Config{Limits: server.Limits{RequestRate: -1, SubscribeRate: math.NaN(), RequestBurst: -2, MaxConns: -3}}.Check()
	for _, key := range []string{"per_user.request_rate", "per_user.subscribe_rate", "per_user.request_burst", "max_streams"} {
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("Check does not name %s: %v", key, err)
		}
	}
}
