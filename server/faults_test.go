package server_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"meshgate/internal/faults"
	"meshgate/server"
	"meshgate/shard"
)

// TestFaults_ClientsRecoverNothingLost turns on fault injection in the
// HTTP pipeline (30 % of requests fail, 20 % are delayed) and shows the
// system degrading gracefully: every failure is a 503 UNAVAILABLE refused
// before anything ran, so a client that retries gets every notification,
// once, in order.
func TestFaults_ClientsRecoverNothingLost(t *testing.T) {
	g := start(t, server.Config{
		Faults:    faults.Config{ErrorProbability: 0.3, DelayProbability: 0.2, Delay: 5 * time.Millisecond},
		FaultSeed: 7,
		Limits:    server.Limits{RequestRate: 1e6, RequestBurst: 1e6},
	}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	injected := 0
	retry := func(query string, vars map[string]any) response {
		for range 100 {
			r := g.do(alice, query, vars)
			if r.status == 503 && r.code() == "UNAVAILABLE" {
				injected++
				continue
			}
			if r.status != 200 || len(r.Errors) > 0 {
				t.Fatalf("%s: %d %+v", query, r.status, r.Errors)
			}
			return r
		}
		t.Fatal("no success in 100 tries")
		return response{}
	}
	var q struct{ Name string }
	if err := json.Unmarshal(retry(`mutation { createQueue { name } }`, nil).Data["createQueue"], &q); err != nil {
		t.Fatal(err)
	}
	retry(`mutation($q:String!){ subscribe(queue:$q, resource:"user:alice/f") { etag } }`, map[string]any{"q": q.Name})
	const n = 50
	for i := range n {
		retry(`mutation($e:String!){ publish(resource:"user:alice/f", etag:$e) }`, map[string]any{"e": fmt.Sprint("e", i)})
	}
	var got []string
	var after uint64
	for len(got) < n {
		var pg struct {
			Items []struct {
				Seq  uint64
				Etag string
			}
			LastSeq uint64
		}
		r := retry(`query($q:String!,$a:Seq){ notifications(queue:$q, after:$a, limit:7) { items { seq etag } lastSeq } }`, map[string]any{"q": q.Name, "a": after})
		if err := json.Unmarshal(r.Data["notifications"], &pg); err != nil {
			t.Fatal(err)
		}
		for _, it := range pg.Items {
			if it.Seq != after+1 {
				t.Fatalf("seq %d after %d: a gap or a duplicate", it.Seq, after)
			}
			after = it.Seq
			got = append(got, it.Etag)
		}
	}
	for i, e := range got {
		if e != fmt.Sprint("e", i) {
			t.Fatalf("notification %d is %s", i, e)
		}
	}
	if injected < 10 {
		t.Fatalf("only %d injected failures: the injector is not on", injected)
	}
}
