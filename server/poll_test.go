package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"meshgate/server"
	"meshgate/shard"
)

// TestHTTP_PollFastPathAnswersAsGqlgen gives two gateways, one answering
// the `notifications` query on its fast path and one through gqlgen's
// executor, the same queue contents and the same requests over real HTTP,
// and compares status, content type and body byte for byte, then what the
// request acknowledged.
func TestHTTP_PollFastPathAnswersAsGqlgen(t *testing.T) {
	// One clock for both stores: an INVITE's time is the store's.
	at := time.Date(2026, 12, 1, 12, 0, 0, 123456789, time.UTC)
	qcfg := shard.Config{Now: func() time.Time { return at }}
	fast := start(t, server.Config{}, qcfg)
	slow := start(t, server.Config{}, qcfg)
	server.SetPollFastPath(slow.srv, false)

	all := `query($q:String!){ notifications(queue:$q) { lastSeq hasMore items { seq kind resource etag etagUnknown publishedAt payload from { user device scopes __typename } __typename } __typename } }`
	short := `query($q:String!, $a:Seq, $l:Int, $w:Int){ notifications(queue:$q, after:$a, limit:$l, waitSeconds:$w) { lastSeq hasMore items { seq etag payload } } }`
	for i, tc := range []struct {
		name   string
		query  string
		vars   string // JSON object; "$Q" stands for the queue's name
		opName string
		reader string // whose token: "" the owner, "device" another device of the owner, "user" another user, "none", "bad"
		get    bool   // GET with the request in the URL
		accept string
	}{
		{name: "every field", query: all, vars: `{"q":"$Q"}`},
		{name: "etagUnknown aliased, beside etag", query: `query($q:String!){ notifications(queue:$q) { items { u: etagUnknown kind etag etagUnknown } } }`, vars: `{"q":"$Q"}`},
		{name: "aliases, fragments and order", query: `query($q:String!){ n: notifications(queue:$q, limit:2) { ...P more: hasMore } } fragment P on NotificationPage { l: lastSeq items { s: seq ... on Notification { k: kind } s2: seq from { ... on Principal { d: device } } } }`, vars: `{"q":"$Q"}`},
		{name: "skip and include", query: `query($q:String!, $yes:Boolean!){ notifications(queue:$q) { lastSeq @skip(if:$yes) hasMore @include(if:$yes) items { seq payload @skip(if:false) etag @include(if:$yes) } } }`, vars: `{"q":"$Q","yes":true}`},
		{name: "literals", query: `{ notifications(queue:"$Q", after:1, limit:2) { lastSeq hasMore items { seq } } }`},
		{name: "after acknowledges", query: short, vars: `{"q":"$Q","a":2}`},
		{name: "after as a string", query: short, vars: `{"q":"$Q","a":"3"}`},
		{name: "after past the last seq", query: short, vars: `{"q":"$Q","a":999}`},
		{name: "negative after", query: short, vars: `{"q":"$Q","a":-1}`},
		{name: "after not a number", query: short, vars: `{"q":"$Q","a":"x"}`},
		{name: "explicit nulls", query: short, vars: `{"q":"$Q","a":null,"l":null,"w":null}`},
		{name: "a variable's default", query: `query($q:String!, $l:Int = 1){ notifications(queue:$q, limit:$l) { hasMore items { seq } } }`, vars: `{"q":"$Q"}`},
		{name: "limit 0 only acknowledges", query: short, vars: `{"q":"$Q","a":1,"l":0}`},
		{name: "limit too large", query: short, vars: `{"q":"$Q","l":1001}`},
		{name: "limit a float", query: short, vars: `{"q":"$Q","l":1.5}`},
		{name: "negative wait", query: short, vars: `{"q":"$Q","w":-1}`},
		{name: "wait too long", query: short, vars: `{"q":"$Q","w":61}`},
		{name: "long-poll with notifications waiting", query: short, vars: `{"q":"$Q","w":5}`},
		{name: "long-poll that times out", query: short, vars: `{"q":"$Q","a":5,"w":1}`},
		{name: "unknown queue", query: short, vars: `{"q":"nope"}`},
		{name: "another device's queue", query: short, vars: `{"q":"$Q"}`, reader: "device"},
		{name: "another user's queue", query: short, vars: `{"q":"$Q"}`, reader: "user"},
		{name: "no token", query: short, vars: `{"q":"$Q"}`, reader: "none"},
		{name: "a bad token", query: short, vars: `{"q":"$Q"}`, reader: "bad"},
		{name: "missing queue variable", query: short, vars: `{}`},
		{name: "with another field", query: `query($q:String!){ me { device } notifications(queue:$q) { lastSeq } }`, vars: `{"q":"$Q"}`},
		{name: "with __typename beside it", query: `query($q:String!){ __typename notifications(queue:$q) { lastSeq } }`, vars: `{"q":"$Q"}`},
		{name: "operation chosen by name", opName: "B", query: `query A { me { user } } query B($q:String!) { notifications(queue:$q) { lastSeq items { seq } } }`, vars: `{"q":"$Q"}`},
		{name: "GET", get: true, query: short, vars: `{"q":"$Q","a":1}`},
		{name: "graphql-response+json", accept: "application/graphql-response+json", query: short, vars: `{"q":"$Q","l":1001}`},
		{name: "unknown field", query: `query($q:String!){ notifications(queue:$q) { nope } }`, vars: `{"q":"$Q"}`},
	} {
		device := fmt.Sprint("p", i)
		resource := "user:alice/" + device
		t.Run(tc.name, func(t *testing.T) {
			var got [2]struct{ status, ctype, body, after string }
			for k, g := range []*gateway{fast, slow} {
				owner := g.token("alice", device)
				q := g.createQueue(owner)
				g.subscribe(owner, q, resource)
				fill(t, g, resource, device)
				tok := map[string]string{
					"":       owner,
					"device": g.token("alice", device+"-other"),
					"user":   g.token("bob", device),
					"none":   "",
					"bad":    owner[:len(owner)-4] + "AAAA",
				}[tc.reader]
				query := strings.ReplaceAll(tc.query, "$Q", q)
				vars := strings.ReplaceAll(tc.vars, "$Q", q)
				var req *http.Request
				if tc.get {
					v := url.Values{"query": {query}, "variables": {vars}}
					req, _ = http.NewRequest(http.MethodGet, g.url+"?"+v.Encode(), nil)
				} else {
					body := map[string]any{"query": query}
					if vars != "" {
						body["variables"] = json.RawMessage(vars)
					}
					if tc.opName != "" {
						body["operationName"] = tc.opName
					}
					b, _ := json.Marshal(body)
					req, _ = http.NewRequest(http.MethodPost, g.url, bytes.NewReader(b))
					req.Header.Set("Content-Type", "application/json")
				}
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				if tc.accept != "" {
					req.Header.Set("Accept", tc.accept)
				}
				resp, err := g.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				rb, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got[k].status, got[k].ctype, got[k].body = resp.Status, resp.Header.Get("Content-Type"), string(rb)
				// What the request acknowledged, read past the HTTP paths.
				pg, err := g.store.Poll(context.Background(), shard.Principal{User: "alice", Device: device}, q, 0, 10, 0)
				if err != nil {
					t.Fatal(err)
				}
				got[k].after = fmt.Sprint(len(pg.Items), pg.LastSeq)
			}
			if got[0] != got[1] {
				t.Fatalf("fast path and gqlgen differ:\nfast %+v\nslow %+v", got[0], got[1])
			}
			if !strings.Contains(got[0].body, `"data"`) && !strings.Contains(got[0].body, `"code"`) {
				t.Fatalf("neither data nor a coded error: %s", got[0].body)
			}
		})
	}
}

// fill puts four notifications in the queues subscribed to resource: two
// CHANGED with payloads json.Marshal must rewrite (HTML characters, white
// space, non-ASCII), an INVITE from another device, a RESYNC, and a
// RESYNC whose etag nobody knows.
func fill(t *testing.T, g *gateway, resource, device string) {
	t.Helper()
	at := time.Date(2026, 12, 1, 11, 0, 0, 5, time.UTC)
	g.store.Deliver(&shard.Event{Kind: shard.Changed, Resource: resource, Etag: `e"1<&>`, Time: at, Payload: []byte(`{ "html": "<b>&amp;</b>", "n": [1, 2.50, 1e3],  "u":"h\u00e9 é \u2028" }`)})
	g.store.Deliver(&shard.Event{Kind: shard.Changed, Resource: resource, Etag: "é2", Time: at.Add(time.Second), Payload: []byte(`"x"`)})
	if _, err := g.store.Invite(context.Background(), shard.Principal{User: "alice", Device: "tablet<1>"}, "", device, []byte(`{"sdp":"v=0"}`)); err != nil {
		t.Fatal(err)
	}
	g.store.Deliver(&shard.Event{Kind: shard.Resync, Resource: resource, Etag: "e3", Time: at.Add(2 * time.Second)})
	g.store.Deliver(&shard.Event{Kind: shard.Resync, EtagUnknown: true, Resource: resource, Time: at.Add(3 * time.Second)})
}
