package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"meshgate/server"
	"meshgate/shard"
)

// TestHTTP_PublishFastPathAnswersAsGqlgen sends the same requests to two
// gateways, one answering `publish` on its fast path and one through
// gqlgen's executor, and compares status, body and what reached the
// subscriber's queue, byte for byte.
func TestHTTP_PublishFastPathAnswersAsGqlgen(t *testing.T) {
	fast := start(t, server.Config{}, shard.Config{})
	slow := start(t, server.Config{}, shard.Config{})
	server.SetPublishFastPath(slow.srv, false)
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	pub := `mutation($r:String!,$e:String!,$p:JSON){ publish(resource:$r, etag:$e, payload:$p) }`
	for i, tc := range []struct {
		name    string
		scopes  []string
		query   string
		vars    string
		opName  string
		changes bool // the subscriber gets a notification
	}{
		{name: "variables", scopes: []string{"publish"}, query: pub, vars: `{"r":"user:alice/inbox","e":"v1","p":{"n":1,"s":"x<y>"}}`, changes: true},
		{name: "literals and an alias", scopes: []string{"publish"}, query: `mutation { p: publish(resource:"user:alice/inbox", etag:"v2", payload:{a:[1,2.5,"x"], b:null}) }`, changes: true},
		{name: "no payload", scopes: []string{"publish"}, query: `mutation M { publish(resource:"user:alice/inbox", etag:"v3") }`, changes: true},
		{name: "null payload variable", scopes: []string{"publish"}, query: pub, vars: `{"r":"user:alice/inbox","e":"v4","p":null}`, changes: true},
		{name: "big number kept exact", scopes: []string{"publish"}, query: pub, vars: `{"r":"user:alice/inbox","e":"v5","p":12345678901234567890}`, changes: true},
		{name: "operation chosen by name", scopes: []string{"publish"}, opName: "B", query: `query A { me { user } } mutation B { publish(resource:"user:alice/inbox", etag:"v6") }`, changes: true},
		{name: "skipped", scopes: []string{"publish"}, query: `mutation { publish(resource:"user:alice/inbox", etag:"v7") @skip(if: true) }`},
		{name: "with __typename", scopes: []string{"publish"}, query: `mutation { __typename publish(resource:"user:alice/inbox", etag:"v8") }`, changes: true},
		{name: "two publishes", scopes: []string{"publish"}, query: `mutation { a: publish(resource:"user:alice/inbox", etag:"v9") b: publish(resource:"user:alice/inbox", etag:"v10") }`, changes: true},
		{name: "no publish scope", query: pub, vars: `{"r":"user:alice/inbox","e":"v11","p":1}`},
		{name: "bad resource", scopes: []string{"publish"}, query: pub, vars: `{"r":"no scheme","e":"v12","p":1}`},
		{name: "bad etag", scopes: []string{"publish"}, query: pub, vars: `{"r":"user:alice/inbox","e":"a\nb","p":1}`},
		{name: "payload too large", scopes: []string{"publish"}, query: pub, vars: `{"r":"user:alice/inbox","e":"v13","p":"` + strings.Repeat("x", 70<<10) + `"}`},
		{name: "payload too deep", scopes: []string{"publish"}, query: pub, vars: `{"r":"user:alice/inbox","e":"v14","p":` + deep + `}`},
		{name: "unknown scheme (the publisher refuses)", scopes: []string{"publish"}, query: pub, vars: `{"r":"nope:x","e":"v16","p":1}`},
		{name: "missing variable", scopes: []string{"publish"}, query: pub, vars: `{"r":"user:alice/inbox"}`},
		{name: "a number for a String variable", scopes: []string{"publish"}, query: pub, vars: `{"r":"user:alice/inbox","e":5}`, changes: true},
		{name: "an object for a String variable", scopes: []string{"publish"}, query: pub, vars: `{"r":"user:alice/inbox","e":{"x":1}}`},
		{name: "unknown argument", scopes: []string{"publish"}, query: `mutation { publish(resource:"user:alice/inbox", etag:"v15", nope:1) }`},
	} {
		device := fmt.Sprint("d", i)
		t.Run(tc.name, func(t *testing.T) {
			var got [2]struct {
				status int
				body   string
				notes  int
			}
			for i, g := range []*gateway{fast, slow} {
				tok := g.token("alice", device, tc.scopes...)
				owner := g.token("alice", device)
				q := g.createQueue(owner)
				g.subscribe(owner, q, "user:alice/inbox")
				body := map[string]any{"query": tc.query}
				if tc.vars != "" {
					body["variables"] = json.RawMessage(tc.vars)
				}
				if tc.opName != "" {
					body["operationName"] = tc.opName
				}
				b, _ := json.Marshal(body)
				req, _ := http.NewRequest(http.MethodPost, g.url, bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := g.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				rb, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got[i].status, got[i].body = resp.StatusCode, string(rb)
				var page struct{ Items []note }
				g.must(owner, `query($q:String!){ notifications(queue:$q) { items { seq kind resource etag payload } } }`, map[string]any{"q": q}, "notifications", &page)
				got[i].notes = len(page.Items)
				if i == 0 && (got[i].notes > 0) != tc.changes {
					t.Errorf("fast path: %d notifications, want some: %v (body %s)", got[i].notes, tc.changes, rb)
				}
			}
			if got[0] != got[1] {
				t.Fatalf("fast path and gqlgen differ:\nfast %d %s (%d notes)\nslow %d %s (%d notes)", got[0].status, got[0].body, got[0].notes, got[1].status, got[1].body, got[1].notes)
			}
		})
	}
}
