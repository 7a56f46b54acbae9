package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"meshgate/server"
	"meshgate/shard"
)

// TestSetup_FastPathAnswersAsGqlgen sends the same operations over a
// real WebSocket, and over HTTP, to two gateways, one answering `createQueue` and
// `subscribe` on their fast path and one through gqlgen's executor, and
// compares every frame the operation brings back and what it left in the
// queue, byte for byte. The gateways share a fixed clock and the same
// seeded randomness, so queue names and times agree.
func TestSetup_FastPathAnswersAsGqlgen(t *testing.T) {
	at := time.Date(2026, 12, 1, 11, 0, 0, 123456789, time.UTC)
	newGateway := func() *gateway {
		return start(t, server.Config{}, shard.Config{
			Now:                      func() time.Time { return at },
			Rand:                     mrand.NewChaCha8([32]byte{1}),
			MaxQueuesPerDevice:       3,
			MaxSubscriptionsPerQueue: 2,
		})
	}
	fast, slow := newGateway(), newGateway()
	server.SetSetupFastPath(slow.srv, false)

	const sub = `mutation($q:String!,$r:String!,$p:String,$k:String){ subscribe(queue:$q, resource:$r, proof:$p, knownEtag:$k) { etag } }`
	allQueue := `mutation { __typename2: createQueue(ttlSeconds: 60) { __typename name createdAt expiresAt ttlSeconds depth lastSeq subscriptionCount } }`
	for i, tc := range []struct {
		name  string
		query string
		vars  map[string]any                            // "$queue" is replaced by a queue made beforehand
		pre   func(g *gateway, user, tok, queue string) // before the operation
	}{
		{name: "createQueue", query: `mutation { createQueue { name } }`},
		{name: "createQueue, every field", query: allQueue},
		{name: "createQueue, variable, fragments, alias, duplicates", query: `mutation M($t:Int) { q: createQueue(ttlSeconds: $t) { ...F n: name name ... on Queue { depth } } } fragment F on Queue { name lastSeq }`, vars: map[string]any{"t": 30}},
		{name: "createQueue, a skipped field", query: `mutation { createQueue { name depth @skip(if: true) ttlSeconds @include(if: true) } }`},
		{name: "createQueue, the whole field skipped", query: `mutation { createQueue @skip(if: true) { name } }`},
		{name: "createQueue, ttl zero", query: `mutation { createQueue(ttlSeconds: 0) { name } }`},
		{name: "createQueue, ttl too long", query: `mutation { createQueue(ttlSeconds: 100000) { name } }`},
		{name: "createQueue, null ttl variable", query: `mutation($t:Int) { createQueue(ttlSeconds: $t) { name } }`, vars: map[string]any{"t": nil}},
		{name: "createQueue, a string for ttl", query: `mutation($t:Int) { createQueue(ttlSeconds: $t) { name } }`, vars: map[string]any{"t": "5"}},
		{name: "createQueue, with __typename beside it", query: `mutation { __typename createQueue { name } }`},
		{name: "createQueue, two of them", query: `mutation { a: createQueue { name } b: createQueue { name } }`},
		{name: "createQueue, an unknown field", query: `mutation { createQueue { name nope } }`},
		{name: "createQueue, too many queues", query: `mutation { createQueue { name } }`, pre: func(g *gateway, _, tok, _ string) {
			g.createQueue(tok)
			g.createQueue(tok)
		}},
		{name: "subscribe", query: sub, vars: map[string]any{"q": "$queue", "r": "user:$user/inbox"}},
		{name: "subscribe, every field, literals", query: `mutation { s: subscribe(queue: "$queue", resource: "user:$user/a", proof: "x") { __typename queue resource etag etagUnknown createdAt } }`},
		{name: "subscribe, a knownEtag the publisher does not know", query: `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r, knownEtag:"gone") { etag u: etagUnknown etagUnknown } }`, vars: map[string]any{"q": "$queue", "r": "user:$user/inbox"}},
		{name: "subscribe, a stale knownEtag, every field", query: `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r, knownEtag:"old") { etag etagUnknown } }`, vars: map[string]any{"q": "$queue", "r": "user:$user/inbox"}, pre: func(g *gateway, user, _, _ string) {
			g.publish(g.token("pub", "p", "publish"), "user:"+user+"/inbox", "e1", nil)
		}},
		{name: "subscribe, a published resource", query: sub, vars: map[string]any{"q": "$queue", "r": "user:$user/inbox"}, pre: func(g *gateway, user, _, _ string) {
			g.publish(g.token("pub", "p", "publish"), "user:"+user+"/inbox", "e1", nil)
		}},
		{name: "subscribe, a stale knownEtag", query: sub, vars: map[string]any{"q": "$queue", "r": "user:$user/inbox", "k": "old"}},
		{name: "subscribe twice", query: sub, vars: map[string]any{"q": "$queue", "r": "user:$user/inbox", "k": ""}, pre: func(g *gateway, user, tok, queue string) {
			g.subscribe(tok, queue, "user:"+user+"/inbox")
		}},
		{name: "subscribe, another user's resource", query: sub, vars: map[string]any{"q": "$queue", "r": "user:someone/inbox"}},
		{name: "subscribe, a bad resource", query: sub, vars: map[string]any{"q": "$queue", "r": "no scheme"}},
		{name: "subscribe, an unknown scheme", query: sub, vars: map[string]any{"q": "$queue", "r": "nope:x"}},
		{name: "subscribe, a bad knownEtag", query: sub, vars: map[string]any{"q": "$queue", "r": "user:$user/inbox", "k": "a\nb"}},
		{name: "subscribe, no such queue", query: sub, vars: map[string]any{"q": "nope", "r": "user:$user/inbox"}},
		{name: "subscribe, another device's queue", query: sub, vars: map[string]any{"q": "$other", "r": "user:$user/inbox"}},
		{name: "subscribe, too many subscriptions", query: sub, vars: map[string]any{"q": "$queue", "r": "user:$user/c"}, pre: func(g *gateway, user, tok, queue string) {
			g.subscribe(tok, queue, "user:"+user+"/a")
			g.subscribe(tok, queue, "user:"+user+"/b")
		}},
		{name: "subscribe, a missing variable", query: sub, vars: map[string]any{"q": "$queue"}},
		{name: "subscribe, a number for a String variable", query: sub, vars: map[string]any{"q": "$queue", "r": "user:$user/inbox", "k": 5}},
	} {
		for _, transport := range []string{"ws", "http"} {
			user := fmt.Sprint("u", i, transport)
			t.Run(tc.name+" over "+transport, func(t *testing.T) {
				var got [2]string
				for j, g := range []*gateway{fast, slow} {
					tok := g.token(user, "d")
					queue := g.createQueue(tok)
					other := g.createQueue(g.token(user, "other"))
					if tc.pre != nil {
						tc.pre(g, user, tok, queue)
					}
					fill := strings.NewReplacer("$queue", queue, "$other", other, "$user", user)
					vars := map[string]any{}
					for k, v := range tc.vars {
						if s, ok := v.(string); ok {
							v = fill.Replace(s)
						}
						vars[k] = v
					}
					var answer string
					if transport == "ws" {
						answer = setupOverWS(t, g, tok, fill.Replace(tc.query), vars)
					} else {
						answer = setupOverHTTP(t, g, tok, fill.Replace(tc.query), vars)
					}
					// What the operation left: the queue's subscriptions and
					// notifications, and the device's queues.
					state := g.do(tok, `query($q:String!){ subscriptions(queue:$q) { resource etag createdAt } notifications(queue:$q) { items { seq kind resource etag etagUnknown } } queues { name subscriptionCount } }`, map[string]any{"q": queue})
					b, _ := json.Marshal(state)
					got[j] = answer + "\n" + string(b)
				}
				if got[0] != got[1] {
					t.Errorf("fast path:\n%s\ngqlgen:\n%s", got[0], got[1])
				}
				t.Logf("%s", got[0])
			})
		}
	}
}

// setupOverWS runs one operation on a fresh WebSocket and returns every
// frame it brought back, up to its complete or error.
func setupOverWS(t *testing.T, g *gateway, tok, query string, vars map[string]any) string {
	t.Helper()
	c := g.dial("graphql-transport-ws")
	c.init(tok)
	c.subscribe("x", query, vars)
	defer c.conn.Close(websocket.StatusNormalClosure, "")
	var frames []string
	for {
		_, b, err := c.conn.Read(c.ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		frames = append(frames, string(b))
		var m wsMsg
		_ = json.Unmarshal(b, &m)
		if m.Type == "complete" || m.Type == "error" {
			return strings.Join(frames, "\n")
		}
	}
}

// setupOverHTTP POSTs one operation and returns the status, the
// Retry-After header and the body.
func setupOverHTTP(t *testing.T, g *gateway, tok, query string, vars map[string]any) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, g.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
}
