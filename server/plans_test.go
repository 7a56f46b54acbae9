package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"meshgate/server"
	"meshgate/shard"
)

// TestHTTP_PlannedPublishAnswersAsGqlgen sends each request twice to a
// gateway with the publish fast path (the first plans the document, the
// second is answered from the plan, without gqlgen, its payload kept as
// it came) and to one without it, and compares status, headers, body and
// the subscriber's whole page of notifications (etags and payload bytes)
// byte for byte. Bodies are written by hand, so their bytes (whitespace,
// key order, escapes) are exactly the ones sent.
func TestHTTP_PlannedPublishAnswersAsGqlgen(t *testing.T) {
	lift := server.Config{Limits: server.Limits{RequestRate: 1e6, RequestBurst: 1e6}}
	fast := start(t, lift, shard.Config{})
	slow := start(t, lift, shard.Config{})
	server.SetPublishFastPath(slow.srv, false)
	const pub = `mutation($r:String!,$e:String!,$p:JSON){ publish(resource:$r, etag:$e, payload:$p) }`
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace // a JSON string's inside
	body := func(query, rest string) string { return `{"query":"` + q(query) + `"` + rest + `}` }
	vars := func(v string) string { return body(pub, `,"variables":`+v) }
	nest := func(n int) string { return strings.Repeat(`[`, n) + `1` + strings.Repeat(`]`, n) }
	for i, tc := range []struct {
		name    string
		body    string // %d is replaced with the request's number
		planned bool   // the fast gateway answers it from a plan
	}{
		{"as meshbench sends it", body(`mutation($e:String!,$p:JSON){ publish(resource:"user:alice/inbox", etag:$e, payload:$p) }`, `,"variables":{"e":"e%d","p":{"i":1,"t":1733040000000000000}}`), true},
		{"all variables", vars(`{"r":"user:alice/inbox","e":"v%d","p":{"a":[1,2.50,"x<y>&"],"b":null,"c":true,"d":{}}}`), true},
		{"payload with spaces", vars(`{"r":"user:alice/inbox","e":"v%d","p":{"a": 1, "b":[1, 2]}}`), false},
		{"payload keys out of order", vars(`{"r":"user:alice/inbox","e":"v%d","p":{"b":1,"a":2}}`), false},
		{"payload with a key twice", vars(`{"r":"user:alice/inbox","e":"v%d","p":{"a":1,"a":2}}`), false},
		{"payload with escapes", vars(`{"r":"user:alice/inbox","e":"v%d","p":{"s":"a\"b\\c\n\u0041\u00e9"}}`), false},
		{"payload with U+2028", vars(`{"r":"user:alice/inbox","e":"v%d","p":"a` + "\u2028" + `b"}`), false},
		{"payload with invalid UTF-8", vars(`{"r":"user:alice/inbox","e":"v%d","p":"a` + "\xff" + `b"}`), false},
		{"payload with unicode", vars(`{"r":"user:alice/inbox","e":"v%d","p":{"e":"x","é":"ü€😀"}}`), true},
		{"payload numbers kept as written", vars(`{"r":"user:alice/inbox","e":"v%d","p":[12345678901234567890,-0,1e400,1.0E+2]}`), true},
		{"payload a string", vars(`{"r":"user:alice/inbox","e":"v%d","p":"just text"}`), true},
		{"payload null", vars(`{"r":"user:alice/inbox","e":"v%d","p":null}`), true},
		{"payload missing", vars(`{"r":"user:alice/inbox","e":"v%d"}`), true},
		{"payload 32 deep", vars(`{"r":"user:alice/inbox","e":"v%d","p":` + nest(32) + `}`), true},
		{"payload 33 deep", vars(`{"r":"user:alice/inbox","e":"v%d","p":` + nest(33) + `}`), false},
		{"payload too large", vars(`{"r":"user:alice/inbox","e":"v%d","p":"` + strings.Repeat("x", 70<<10) + `"}`), true},
		{"etag with an escape", vars(`{"r":"user:alice/inbox","e":"v\u0031%d","p":1}`), true},
		{"etag with a newline", vars(`{"r":"user:alice/inbox","e":"a\nb%d","p":1}`), true},
		{"etag a number", vars(`{"r":"user:alice/inbox","e":%d,"p":1}`), false},
		{"etag null", vars(`{"r":"user:alice/inbox","e":null,"p":1,"n":%d}`), false},
		{"etag missing", vars(`{"r":"user:alice/inbox","p":%d}`), false},
		{"variables null", vars(`null,"n":%d`), false},
		{"variables not an object", vars(`[%d]`), false},
		{"variables twice", vars(`{"r":"user:alice/inbox","e":"v%d"},"variables":{"p":1}`), false},
		{"a variable with escaped name", vars(`{"r":"user:alice/inbox","\u0065":"v%d","p":1}`), false},
		{"a variable named twice", vars(`{"r":"user:alice/inbox","e":"x","e":"v%d","p":1}`), true},
		{"query twice", body(`mutation { publish(resource:"user:alice/inbox", etag:"q") }`, `,"query":"`+q(pub)+`","variables":{"r":"user:alice/inbox","e":"v%d"}`), false},
		{"query in capitals", `{"QUERY":"` + q(pub) + `","variables":{"r":"user:alice/inbox","e":"v%d"}}`, false},
		{"an unknown key", vars(`{"r":"user:alice/inbox","e":"v%d","p":1},"other":[1,{"a":"}"}]`), true},
		{"an unknown key first", `{"x":{"y":"\"}"},"query":"` + q(pub) + `","variables":{"r":"user:alice/inbox","e":"v%d","p":1}}`, true},
		{"query with a \\u escape", `{"query":"mutation($r:String!,$e:String!,$p:JSON){ publish(resource:$r, etag:$e, payload:$p) \u007d","variables":{"r":"user:alice/inbox","e":"v%d"}}`, false},
		{"query with newlines", body("mutation($e:String!) {\n  publish(resource:\"user:alice/inbox\", etag:$e)\n}", `,"variables":{"e":"v%d"}`), true},
		{"query not a string", `{"query":5,"variables":{"e":"v%d"}}`, false},
		{"operationName a number", body(pub, `,"operationName":%d,"variables":{"r":"user:alice/inbox","e":"v1"}`), false},
		{"a body that is an array", `[` + vars(`{"r":"user:alice/inbox","e":"v%d"}`) + `]`, false},
		{"extra variables", vars(`{"r":"user:alice/inbox","e":"v%d","p":1,"x":[1,2]}`), true},
		{"extensions", vars(`{"r":"user:alice/inbox","e":"v%d","p":1},"extensions":{"a":1}`), false},
		{"whitespace in the body", "{ \"query\" : \"" + q(pub) + "\" ,\n \"variables\" : { \"r\" : \"user:alice/inbox\" , \"e\" : \"v%d\" , \"p\" : 1 } }", true},
		{"resource refused", vars(`{"r":"no scheme","e":"v%d","p":1}`), true},
		{"unknown scheme", vars(`{"r":"nope:x","e":"v%d","p":1}`), true},
		{"another user's resource", vars(`{"r":"user:bob/inbox","e":"v%d","p":1}`), true},
		{"same variable twice", body(`mutation($x:String!){ publish(resource:"user:alice/inbox", etag:$x, payload:$x) }`, `,"variables":{"x":"v%d"}`), false},
		{"resource and etag one variable", body(`mutation($x:String!){ publish(resource:$x, etag:$x) }`, `,"variables":{"x":"user:alice/inbox%d"}`), true},
		{"literals and an alias", body(`mutation { p: publish(resource:"user:alice/inbox", etag:"lit", payload:{a:[1,2.5,"x"], b:null}) }`, `,"n":%d`), true},
		{"variable inside a literal", body(`mutation($e:String!){ publish(resource:"user:alice/inbox", etag:$e, payload:{e:$e}) }`, `,"variables":{"e":"v%d"}`), false},
		{"a JSON! variable", body(`mutation($e:String!,$p:JSON!){ publish(resource:"user:alice/inbox", etag:$e, payload:$p) }`, `,"variables":{"e":"v%d","p":{"k":1}}`), true},
		{"a JSON! variable null", body(`mutation($e:String!,$p:JSON!){ publish(resource:"user:alice/inbox", etag:$e, payload:$p) }`, `,"variables":{"e":"v%d","p":null}`), false},
		{"a default value", body(`mutation($e:String! = "d",$p:JSON){ publish(resource:"user:alice/inbox", etag:$e, payload:$p) }`, `,"variables":{"p":%d}`), false},
		{"a nullable String variable", body(`mutation($e:String){ publish(resource:"user:alice/inbox", etag:$e) }`, `,"variables":{"e":"v%d"}`), false},
		{"skip with a variable", body(`mutation($e:String!,$s:Boolean!){ publish(resource:"user:alice/inbox", etag:$e) @skip(if:$s) }`, `,"variables":{"e":"v%d","s":false}`), false},
		{"operation by name", body(`query A { me { user } } mutation B($e:String!){ publish(resource:"user:alice/inbox", etag:$e) }`, `,"operationName":"B","variables":{"e":"v%d"}`), true},
		{"operation by another name", body(`mutation B($e:String!){ publish(resource:"user:alice/inbox", etag:$e) }`, `,"operationName":"C","variables":{"e":"v%d"}`), false},
		{"operation name null", body(`mutation B($e:String!){ publish(resource:"user:alice/inbox", etag:$e) }`, `,"operationName":null,"variables":{"e":"v%d"}`), true},
		{"with __typename", body(`mutation($e:String!){ __typename publish(resource:"user:alice/inbox", etag:$e) }`, `,"variables":{"e":"v%d"}`), false},
		{"two publishes", body(`mutation($e:String!){ a: publish(resource:"user:alice/inbox", etag:$e) b: publish(resource:"user:alice/inbox", etag:$e) }`, `,"variables":{"e":"v%d"}`), false},
		{"trailing data", vars(`{"r":"user:alice/inbox","e":"v%d","p":1}} x`), false},
	} {
		device := fmt.Sprint("d", i)
		t.Run(tc.name, func(t *testing.T) {
			type answer struct {
				status       int
				ctype, retry string
				body, page   string
			}
			var got [2][2]answer
			planned := server.PlannedAnswers(fast.srv)
			for g, gw := range []*gateway{fast, slow} {
				tok := gw.token("alice", device, "publish")
				owner := gw.token("alice", device)
				queue := gw.createQueue(owner)
				gw.subscribe(owner, queue, "user:alice/inbox")
				post := func(tok, b string) answer {
					req, _ := http.NewRequest(http.MethodPost, gw.url, strings.NewReader(b))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := gw.client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					rb, _ := io.ReadAll(resp.Body)
					return answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), retry: resp.Header.Get("Retry-After"), body: string(rb)}
				}
				for n := range 2 {
					got[g][n] = post(tok, strings.ReplaceAll(tc.body, "%d", fmt.Sprint(n)))
				}
				// The whole page as the gateway encodes it: seq, kind,
				// resource, etag and the payload's bytes.
				page := post(owner, `{"query":"query($q:String!){ notifications(queue:$q) { items { seq kind resource etag payload } } }","variables":{"q":"`+queue+`"}}`)
				got[g][1].page = page.body
			}
			if got[0] != got[1] {
				t.Fatalf("the planned path and gqlgen differ:\nfast %+v\nslow %+v", got[0], got[1])
			}
			if answered := server.PlannedAnswers(fast.srv) > planned; answered != tc.planned {
				t.Errorf("answered from a plan: %v, want %v (answer %+v)", answered, tc.planned, got[0][0])
			}
		})
	}
}
