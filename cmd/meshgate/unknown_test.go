package main

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"meshgate/shard/ring"
)

// TestDelivery_UnknownEtagIsSaid: `""` means "never published" and
// nothing else. A `user:` resource is published (p1) while nobody
// subscribes, so no subscriber list remembers it; its owner's `user`
// plugin is killed with -9 (it keeps etags in memory, and restarts
// knowing none). A queue on another node then subscribes with knownEtag
// p1: the gateway cannot know the current version, and must say so
// (etagUnknown) in the answer and in the RESYNC, not answer "". Then the
// owner is killed with -9, no publish after it: the list is made again
// at a new owner from what the queues' side knows (nothing) and what its
// publisher answers (nothing), and its RESYNC says "unknown" too, as
// does a fresh subscribe on any node. At no point does the queue hold,
// or a subscribe answer, a plain "" for the resource.
func TestDelivery_UnknownEtagIsSaid(t *testing.T) {
	c := newTestCluster(t)
	ns := []*nodeProc{c.start("u1", "127.0.0.11"), c.start("u2", "127.0.0.12"), c.start("u3", "127.0.0.13")}
	c.waitRing("u1", "u2", "u3")
	r := ring.New(0, map[string]int{"u1": 1, "u2": 1, "u3": 1})
	byName := map[string]*nodeProc{}
	for _, n := range ns {
		byName[n.name] = n
	}
	// A resource owned by u1 or u2, so the queue can live on u3.
	var res string
	var owner *nodeProc
	for i := 0; owner == nil || owner.name == "u3"; i++ {
		res = fmt.Sprintf("user:alice/unknown/%d", i)
		owner = byName[r.Owner(res)]
	}
	at := byName["u3"]
	pubTok := c.token("publisher", "publish")
	if !waitFor(30*time.Second, func() bool {
		return c.gql(owner, pubTok, `mutation($r:String!){ publish(resource:$r, etag:"p1") }`, map[string]any{"r": res}, nil) == nil
	}) {
		t.Fatal("publish p1 failed")
	}

	// kill -9 of the owner's user plugin: it forgets p1, and no list holds it.
	pid := userPlugin(t, owner)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { p := userPluginOrZero(owner); return p != 0 && p != pid }) {
		t.Fatalf("%s: the user plugin was not restarted", owner.name)
	}

	tok := c.token("unknown")
	var q struct{ CreateQueue struct{ Name string } }
	if err := c.gql(at, tok, `mutation{ createQueue(ttlSeconds: 120) { name } }`, nil, &q); err != nil {
		t.Fatal(err)
	}
	var sub struct {
		Subscribe struct {
			Etag        string
			EtagUnknown bool
		}
	}
	if !waitFor(30*time.Second, func() bool {
		return c.gql(at, tok, `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r, knownEtag:"p1") { etag etagUnknown } }`,
			map[string]any{"q": q.CreateQueue.Name, "r": res}, &sub) == nil
	}) {
		t.Fatal("subscribe failed")
	}
	if sub.Subscribe.Etag != "p1" && !sub.Subscribe.EtagUnknown {
		t.Fatalf("after the user plugin restarted, subscribe with knownEtag p1 answered %q, not flagged unknown: a client takes it for \"never published\"", sub.Subscribe.Etag)
	}
	t.Logf("subscribe after the plugin restart: etag %q, etagUnknown %v", sub.Subscribe.Etag, sub.Subscribe.EtagUnknown)

	type item struct {
		Seq                  uint64
		Kind, Resource, Etag string
		EtagUnknown          bool
	}
	var seen []item
	after := uint64(0)
	read := func() {
		var pg struct {
			Notifications struct {
				Items   []item
				LastSeq uint64
			}
		}
		if err := c.gql(at, tok, `query($q:String!,$a:Seq){ notifications(queue:$q, after:$a, limit:100, waitSeconds:1) { items { seq kind resource etag etagUnknown } lastSeq } }`,
			map[string]any{"q": q.CreateQueue.Name, "a": after}, &pg); err == nil {
			seen = append(seen, pg.Notifications.Items...)
			after = pg.Notifications.LastSeq
		}
	}
	read()
	resyncs := func() int {
		k := 0
		for _, it := range seen {
			if it.Resource == res && it.Kind == "RESYNC" {
				k++
			}
		}
		return k
	}
	before := resyncs()

	// kill -9 of the owner; no publish after it.
	owner.cmd.Process.Kill()
	<-owner.exited //nolint:errcheck // killed: its exit error is the expected "signal: killed"
	owner.exited <- nil
	var left []string
	for _, n := range ns {
		if n != owner {
			left = append(left, n.name)
		}
	}
	c.waitRing(left...)
	if !waitFor(60*time.Second, func() bool { read(); return resyncs() > before }) {
		t.Fatalf("the owner died and the queue got no RESYNC for %s: %+v", res, seen)
	}
	for _, it := range seen {
		if it.Resource == res && it.Etag == "" && !it.EtagUnknown {
			t.Fatalf("seq %d: %s of %s with a plain \"\" (read: never published), though p1 was published: %+v", it.Seq, it.Kind, res, seen)
		}
		if it.Resource == res && it.Etag != "" && it.Etag != "p1" {
			t.Fatalf("seq %d: %s of %s with etag %q, never published: %+v", it.Seq, it.Kind, res, it.Etag, seen)
		}
	}
	t.Logf("owner %s kill -9: the queue at %s holds %+v", owner.name, at.name, seen)

	// A fresh subscribe, with no knownEtag, on every surviving node: the
	// list made again remembers that it lost track, so "" is flagged.
	fresh := c.token("fresh")
	for _, n := range c.alive(ns) {
		var fq struct{ CreateQueue struct{ Name string } }
		if err := c.gql(n, fresh, `mutation{ createQueue(ttlSeconds: 60) { name } }`, nil, &fq); err != nil {
			t.Fatal(err)
		}
		if err := c.gql(n, fresh, `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag etagUnknown } }`,
			map[string]any{"q": fq.CreateQueue.Name, "r": res}, &sub); err != nil {
			t.Fatal(err)
		}
		if sub.Subscribe.Etag != "p1" && !sub.Subscribe.EtagUnknown {
			t.Fatalf("after the owner died, a fresh subscribe at %s answered a plain %q: a client takes it for \"never published\"", n.name, sub.Subscribe.Etag)
		}
	}
}
