package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"meshgate/server"
	"meshgate/shard"
)

func TestHTTP_QueueSubscribePublishPoll(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/inbox")
	if n := g.publish(alice, "user:alice/inbox", "v1", map[string]any{"hello": "world"}); n != 1 {
		t.Fatalf("published to %d queues", n)
	}
	var page struct {
		Items   []note
		LastSeq uint64
		HasMore bool
	}
	g.must(alice, `query($q:String!){ notifications(queue:$q) { items { seq kind resource etag payload } lastSeq hasMore } }`, map[string]any{"q": q}, "notifications", &page)
	if len(page.Items) != 1 || page.LastSeq != 1 || page.Items[0].Kind != "CHANGED" || *page.Items[0].Etag != "v1" {
		t.Fatalf("page = %+v", page)
	}
	jsonEq(t, page.Items[0].Payload, `{"hello":"world"}`)

	var subs []struct{ Resource, Etag string }
	g.must(alice, `query($q:String!){ subscriptions(queue:$q) { resource etag } }`, map[string]any{"q": q}, "subscriptions", &subs)
	if len(subs) != 1 || subs[0].Etag != "v1" {
		t.Fatalf("subscriptions = %+v", subs)
	}
	var queue struct {
		Depth   int
		LastSeq uint64
	}
	g.must(alice, `query($q:String!){ queue(name:$q) { depth lastSeq } }`, map[string]any{"q": q}, "queue", &queue)
	if queue.LastSeq != 1 {
		t.Fatalf("queue = %+v", queue)
	}
}

func TestHTTP_LongPollWakesOnPublish(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/x")
	got := make(chan response, 1)
	go func() {
		got <- g.do(alice, `query($q:String!){ notifications(queue:$q, waitSeconds: 30) { items { seq etag } } }`, map[string]any{"q": q})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Publish until the poll returns: whether it was already parked or
		// not, it must come back with the notification, long before 30 s.
		g.publish(alice, "user:alice/x", "e1", nil)
		select {
		case r := <-got:
			if r.code() != "" || !strings.Contains(string(r.Data["notifications"]), `"etag":"e1"`) {
				t.Fatalf("long-poll returned %+v %s", r.Errors, r.Data["notifications"])
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("long-poll did not return")
		}
	}
}

func TestHTTP_BadInput(t *testing.T) {
	g := start(t, server.Config{MaxDepth: 3, MaxComplexity: 30}, shard.Config{MaxSubscriptionsPerQueue: 2})
	alice := g.token("alice", "laptop")
	bob := g.token("bob", "laptop")
	q := g.createQueue(alice)
	expired, _ := server.Mint(g.key, "alice", "laptop", nil, time.Second, time.Now().Add(-time.Hour))
	forged := alice[:len(alice)-4] + "AAAA"

	nested := `fragment F on Notification { from { user } } query($q:String!){ notifications(queue:$q) { items { ...F } } }`
	complex := `query { ` + manyAliases(40) + ` }`

	for _, tc := range []struct {
		name   string
		tok    string
		method string
		ctype  string
		body   string
		status int
		code   string
	}{
		{"malformed JSON", alice, "POST", "application/json", `{"query":`, 400, "BAD_REQUEST"},
		{"query not a string", alice, "POST", "application/json", `{"query":42}`, 400, "BAD_REQUEST"},
		{"variables not an object", alice, "POST", "application/json", `{"query":"{me{user}}","variables":[1]}`, 400, "BAD_REQUEST"},
		{"no query", alice, "POST", "application/json", `{}`, 400, "BAD_REQUEST"},
		{"body over the limit", alice, "POST", "application/json", `{"query":"` + strings.Repeat(" ", 1<<20) + `{me{user}}"}`, 413, "LIMIT_EXCEEDED"},
		{"wrong content type", alice, "POST", "text/plain", `{"query":"{me{user}}"}`, 415, "BAD_REQUEST"},
		{"unknown operation", alice, "POST", "application/json", `{"query":"query A{me{user}}","operationName":"B"}`, 200, "GRAPHQL_VALIDATION_FAILED"},
		{"syntax error", alice, "POST", "application/json", `{"query":"{ me { "}`, 200, "GRAPHQL_PARSE_FAILED"},
		{"unknown field", alice, "POST", "application/json", `{"query":"{ nope }"}`, 200, "GRAPHQL_VALIDATION_FAILED"},
		{"too deep", alice, "POST", "application/json", gqlBody(nested, map[string]any{"q": q}), 200, "LIMIT_EXCEEDED"},
		{"too complex", alice, "POST", "application/json", gqlBody(complex, nil), 200, "LIMIT_EXCEEDED"},
		{"no token", "", "POST", "application/json", gqlBody(`{me{user}}`, nil), 401, "UNAUTHENTICATED"},
		{"expired token", expired, "POST", "application/json", gqlBody(`{me{user}}`, nil), 401, "UNAUTHENTICATED"},
		{"forged token", forged, "POST", "application/json", gqlBody(`{me{user}}`, nil), 401, "UNAUTHENTICATED"},
		{"invalid resource", alice, "POST", "application/json", gqlBody(`mutation($q:String!){ subscribe(queue:$q, resource:"user:a//b") { etag } }`, map[string]any{"q": q}), 200, "BAD_USER_INPUT"},
		{"unknown scheme", alice, "POST", "application/json", gqlBody(`mutation($q:String!){ subscribe(queue:$q, resource:"nope:a") { etag } }`, map[string]any{"q": q}), 200, "BAD_USER_INPUT"},
		{"another user's resource", alice, "POST", "application/json", gqlBody(`mutation($q:String!){ subscribe(queue:$q, resource:"user:bob/a") { etag } }`, map[string]any{"q": q}), 200, "FORBIDDEN"},
		{"another user's queue", bob, "POST", "application/json", gqlBody(`query($q:String!){ queue(name:$q) { name } }`, map[string]any{"q": q}), 200, "QUEUE_NOT_FOUND"},
		{"unknown queue", alice, "POST", "application/json", gqlBody(`query{ queue(name:"qnope") { name } }`, nil), 200, "QUEUE_NOT_FOUND"},
		{"negative seq", alice, "POST", "application/json", gqlBody(`query($q:String!){ notifications(queue:$q, after:-1) { lastSeq } }`, map[string]any{"q": q}), 200, "BAD_USER_INPUT"},
		{"seq too big", alice, "POST", "application/json", gqlBody(`query($q:String!,$a:Seq){ notifications(queue:$q, after:$a) { lastSeq } }`, map[string]any{"q": q, "a": 1 << 60}), 200, "BAD_USER_INPUT"},
		{"wait too long", alice, "POST", "application/json", gqlBody(`query($q:String!){ notifications(queue:$q, waitSeconds:61) { lastSeq } }`, map[string]any{"q": q}), 200, "BAD_USER_INPUT"},
		{"limit too big", alice, "POST", "application/json", gqlBody(`query($q:String!){ notifications(queue:$q, limit:100000) { lastSeq } }`, map[string]any{"q": q}), 200, "BAD_USER_INPUT"},
		{"ttl too long", alice, "POST", "application/json", gqlBody(`mutation{ createQueue(ttlSeconds: 999999) { name } }`, nil), 200, "BAD_USER_INPUT"},
		{"publish without scope", alice, "POST", "application/json", gqlBody(`mutation{ publish(resource:"user:alice/a", etag:"1") }`, nil), 200, "FORBIDDEN"},
		{"invite to a device with no queue", alice, "POST", "application/json", gqlBody(`mutation{ sendInvite(toDevice:"tablet") }`, nil), 200, "DEVICE_NOT_FOUND"},
		{"subscription over POST", alice, "POST", "application/json", gqlBody(`subscription($q:String!){ notifications(queue:$q) { seq } }`, map[string]any{"q": q}), 400, "BAD_REQUEST"},
		{"method", alice, "PUT", "application/json", gqlBody(`{me{user}}`, nil), 405, "BAD_REQUEST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := g.raw(tc.method, tc.tok, tc.ctype, []byte(tc.body), "application/json")
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("status %d code %q (%+v), want %d %q", r.status, r.code(), r.Errors, tc.status, tc.code)
			}
		})
	}

	t.Run("too many subscriptions", func(t *testing.T) {
		tok := g.token("carol", "pc")
		q := g.createQueue(tok)
		g.subscribe(tok, q, "user:carol/1")
		g.subscribe(tok, q, "user:carol/2")
		r := g.do(tok, `mutation($q:String!){ subscribe(queue:$q, resource:"user:carol/3") { etag } }`, map[string]any{"q": q})
		if r.code() != "LIMIT_EXCEEDED" {
			t.Fatalf("code %q", r.code())
		}
	})
	t.Run("graphql-response+json gets 400 for validation errors", func(t *testing.T) {
		r := g.raw("POST", alice, "application/json", []byte(`{"query":"{ nope }"}`), "application/graphql-response+json")
		if r.status != 400 || r.code() != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("status %d code %q", r.status, r.code())
		}
	})
	t.Run("GET runs queries, never mutations", func(t *testing.T) {
		get := func(query string) response {
			req, _ := http.NewRequest("GET", g.url+"?query="+url.QueryEscape(query), nil)
			req.Header.Set("Authorization", "Bearer "+alice)
			resp, err := g.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var r response
			_ = json.NewDecoder(resp.Body).Decode(&r)
			r.status = resp.StatusCode
			return r
		}
		if r := get(`{ me { user } }`); r.status != 200 || !strings.Contains(string(r.Data["me"]), "alice") {
			t.Fatalf("GET query: %d %+v", r.status, r.Errors)
		}
		if r := get(`mutation { createQueue { name } }`); r.status != 405 {
			t.Fatalf("GET mutation: %d", r.status)
		}
		var qs []struct{ Name string }
		g.must(alice, `{ queues { name } }`, nil, "queues", &qs)
		if len(qs) != 1 {
			t.Fatalf("a GET mutation created a queue: %d queues", len(qs))
		}
	})
	t.Run("still serving", func(t *testing.T) {
		var me struct{ User string }
		g.must(alice, `{ me { user } }`, nil, "me", &me)
		if me.User != "alice" {
			t.Fatal(me)
		}
	})
}

func gqlBody(q string, vars map[string]any) string {
	b, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
	return string(b)
}

func manyAliases(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("a")
		b.WriteString(strings.Repeat("a", i))
		b.WriteString(": me { user } ")
	}
	return b.String()
}
