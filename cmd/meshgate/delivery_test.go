package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"meshgate/client"
	"meshgate/shard/ring"
)

// liftLimits lets one user drive thousands of calls and streams.
func liftLimits(t *testing.T, c *testCluster) {
	cfg := filepath.Join(t.TempDir(), "limits.yaml")
	if err := os.WriteFile(cfg, []byte(`limits:
  max_streams: 100000
  per_user: {request_rate: 1000000, request_burst: 1000000, subscribe_rate: 1000000, subscribe_burst: 1000000, max_streams: 100000}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c.extra = append(c.extra, "--config", cfg)
}

type pollPage struct {
	Notifications struct {
		Items []struct {
			Seq                  uint64
			Kind, Resource, Etag string
		}
		LastSeq uint64
	}
}

// hasEtag polls queue q until a CHANGED or RESYNC of res with etag
// arrives (true) or limit passes (false).
func hasEtag(c *testCluster, n *nodeProc, tok, q, res, etag string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	after := uint64(0)
	for {
		var pg pollPage
		if err := c.gql(n, tok, `query($q:String!,$a:Seq){ notifications(queue:$q, after:$a, limit:100, waitSeconds:1) { items { seq kind resource etag } lastSeq } }`,
			map[string]any{"q": q, "a": after}, &pg); err == nil {
			for _, it := range pg.Notifications.Items {
				if it.Resource == res && it.Etag == etag && (it.Kind == "CHANGED" || it.Kind == "RESYNC") {
					return true
				}
			}
			after = pg.Notifications.LastSeq
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestDelivery_SubscribeRacingPublish: on one node, 1 000 pairs of a
// subscribe and a publish of the same resource, sent at the same time.
// Whatever the order they meet in, the subscriber never stays stale: the
// etag subscribe answers is the published one, or the queue receives it.
func TestDelivery_SubscribeRacingPublish(t *testing.T) {
	c := newTestCluster(t)
	liftLimits(t, c)
	n := c.start("s1", "127.0.0.8")
	pubTok := c.token("racer-publisher", "publish")
	const pairs, workers = 1000, 16
	var stale, answeredNew atomic.Int64
	var mu sync.Mutex
	var example string
	work := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range work {
				tok := c.token(fmt.Sprint("racer", i))
				res := fmt.Sprintf("user:alice/race/%d", i)
				var q struct{ CreateQueue struct{ Name string } }
				if err := c.gql(n, tok, `mutation{ createQueue(ttlSeconds: 600) { name } }`, nil, &q); err != nil {
					t.Error(err)
					return
				}
				if err := c.gql(n, pubTok, `mutation($r:String!){ publish(resource:$r, etag:"old") }`, map[string]any{"r": res}, nil); err != nil {
					t.Error(err)
					return
				}
				var sub struct{ Subscribe struct{ Etag string } }
				var subErr, pubErr error
				var pair sync.WaitGroup
				pair.Go(func() {
					subErr = c.gql(n, tok, `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }`,
						map[string]any{"q": q.CreateQueue.Name, "r": res}, &sub)
				})
				pair.Go(func() {
					pubErr = c.gql(n, pubTok, `mutation($r:String!){ publish(resource:$r, etag:"new") }`, map[string]any{"r": res}, nil)
				})
				pair.Wait()
				if subErr != nil || pubErr != nil {
					t.Errorf("pair %d: subscribe %v, publish %v", i, subErr, pubErr)
					return
				}
				if sub.Subscribe.Etag == "new" {
					answeredNew.Add(1)
					continue
				}
				if !hasEtag(c, n, tok, q.CreateQueue.Name, res, "new", 3*time.Second) {
					stale.Add(1)
					mu.Lock()
					if example == "" {
						example = fmt.Sprintf("pair %d: subscribe answered %q and the queue never received \"new\"", i, sub.Subscribe.Etag)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range pairs {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("%d pairs: %d subscribes answered the new etag, the others received it; %d stale", pairs, answeredNew.Load(), stale.Load())
	if stale.Load() > 0 {
		t.Fatalf("%d of %d subscribers stayed stale; e.g. %s", stale.Load(), pairs, example)
	}
}

// userPlugin is the pid of node n's `user` plugin process.
func userPlugin(t *testing.T, n *nodeProc) int {
	t.Helper()
	for _, pid := range children(n.cmd.Process.Pid) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(b), "\x00")
		if slices.Contains(args, "user") {
			return pid
		}
	}
	t.Fatalf("%s: no user plugin among %v", n.name, children(n.cmd.Process.Pid))
	return 0
}

// TestDelivery_EtagsSurviveAPluginAndAnOwnerDying: the gateway remembers
// the last etag it delivered for every resource with subscribers. A
// `user` plugin killed with -9 (it keeps etags in memory) and, later, a
// resource owner killed with -9, each followed by no further publish:
// every watch of every client still ends with the last published etag,
// and a fresh subscribe answers it, never "".
func TestDelivery_EtagsSurviveAPluginAndAnOwnerDying(t *testing.T) {
	c := newTestCluster(t)
	liftLimits(t, c)
	ns := []*nodeProc{c.start("e1", "127.0.0.8"), c.start("e2", "127.0.0.9"), c.start("e3", "127.0.0.10")}
	c.waitRing("e1", "e2", "e3")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res := make([]string, 12)
	for i := range res {
		res[i] = fmt.Sprintf("user:alice/keep/%d", i)
	}
	pubTok := c.token("keeper", "publish")
	publish := func(etag string) {
		t.Helper()
		for i, r := range res {
			for k := 0; ; k++ {
				err := c.gql(ns[(i+k)%len(ns)], pubTok, `mutation($r:String!,$e:String!){ publish(resource:$r, etag:$e) }`, map[string]any{"r": r, "e": etag}, nil)
				if err == nil {
					break
				}
				if k == 100 {
					t.Fatalf("publish %s: %v", r, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	publish("p0") // before anyone subscribes: subscribe must answer it
	// Nine clients, three on each node, each watching every resource: a
	// resource's subscribers live on every node.
	var watches []*client.Watch
	for i := range 9 {
		urls := []string{ns[i%3].url, ns[(i+1)%3].url, ns[(i+2)%3].url}
		cl, err := client.Dial(ctx, urls[0], c.token(fmt.Sprint("keep", i)), &client.Options{
			HTTPClient: c.client, URLs: urls[1:], MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for _, r := range res {
			w, err := cl.Watch(ctx, r, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if w.Etag() != "p0" {
				t.Fatalf("client %d: subscribe to %s answered %q, want p0", i, r, w.Etag())
			}
			go func() {
				for range w.Events() {
				}
			}()
			watches = append(watches, w)
		}
	}
	allHave := func(etag string) (bad int, example string) {
		for _, w := range watches {
			if got := w.Etag(); got != etag {
				bad++
				if example == "" {
					example = fmt.Sprintf("%s has %q", w.Resource(), got)
				}
			}
		}
		return bad, example
	}
	// freshAnswers subscribes a new queue, on every node, to every
	// resource and reports the answers that are not etag.
	fresh := 0
	freshAnswers := func(etag string) (bad []string) {
		fresh++
		tok := c.token(fmt.Sprint("fresh", fresh))
		for _, n := range c.alive(ns) {
			var q struct{ CreateQueue struct{ Name string } }
			if err := c.gql(n, tok, `mutation{ createQueue(ttlSeconds: 60) { name } }`, nil, &q); err != nil {
				return []string{err.Error()}
			}
			for _, r := range res {
				var sub struct{ Subscribe struct{ Etag string } }
				err := c.gql(n, tok, `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }`, map[string]any{"q": q.CreateQueue.Name, "r": r}, &sub)
				if err != nil || sub.Subscribe.Etag != etag {
					bad = append(bad, fmt.Sprintf("%s at %s: %q %v", r, n.name, sub.Subscribe.Etag, err))
				}
			}
		}
		return bad
	}
	publish("p1")
	if !waitFor(30*time.Second, func() bool { bad, _ := allHave("p1"); return bad == 0 }) {
		_, ex := allHave("p1")
		t.Fatalf("p1 never reached every watch: %s", ex)
	}

	// kill -9 of every node's user plugin; no publish after it.
	var killed []int
	for _, n := range ns {
		pid := userPlugin(t, n)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed = append(killed, pid)
	}
	for i, n := range ns { // each host starts its plugin again
		if !waitFor(30*time.Second, func() bool { pid := userPluginOrZero(n); return pid != 0 && pid != killed[i] }) {
			t.Fatalf("%s: the user plugin was not restarted", n.name)
		}
	}
	var bad []string
	if !waitFor(30*time.Second, func() bool { bad = freshAnswers("p1"); return len(bad) == 0 }) {
		t.Fatalf("after the user plugins restarted, a fresh subscribe answered: %v", bad)
	}
	// The plugins have resynced (their hosts asked Current): no watch lost p1.
	if n, ex := allHave("p1"); n > 0 {
		t.Fatalf("after a user plugin kill -9, %d of %d watches lost the last etag: e.g. %s", n, len(watches), ex)
	}
	t.Logf("user plugin kill -9 ×3: every watch and every fresh subscribe still at p1")

	// kill -9 of the node that owns the most resources; no publish after it.
	publish("p2")
	if !waitFor(30*time.Second, func() bool { bad, _ := allHave("p2"); return bad == 0 }) {
		_, ex := allHave("p2")
		t.Fatalf("p2 never reached every watch: %s", ex)
	}
	r := ring.New(0, map[string]int{"e1": 1, "e2": 1, "e3": 1})
	owned := map[string]int{}
	for _, x := range res {
		owned[r.Owner(x)]++
	}
	victim := ns[0]
	for _, n := range ns {
		if owned[n.name] > owned[victim.name] {
			victim = n
		}
	}
	start := time.Now()
	victim.cmd.Process.Kill()
	<-victim.exited //nolint:errcheck // killed: its exit error is the expected "signal: killed"
	victim.exited <- nil
	var left []string
	for _, n := range ns {
		if n != victim {
			left = append(left, n.name)
		}
	}
	c.waitRing(left...)
	ok := waitFor(60*time.Second, func() bool { bad, _ := allHave("p2"); return bad == 0 })
	if n, ex := allHave("p2"); !ok {
		t.Fatalf("after the owner of %d resources died (kill -9), %d of %d watches do not end with the last etag: e.g. %s", owned[victim.name], n, len(watches), ex)
	}
	t.Logf("owner kill -9 (%s, %d of %d resources): every watch back at p2 %v after the kill", victim.name, owned[victim.name], len(res), time.Since(start).Round(10*time.Millisecond))
	if !waitFor(30*time.Second, func() bool { bad = freshAnswers("p2"); return len(bad) == 0 }) {
		t.Fatalf("after the owner died, a fresh subscribe answered: %v", bad)
	}
}

// userPluginOrZero is userPlugin without failing.
func userPluginOrZero(n *nodeProc) int {
	for _, pid := range children(n.cmd.Process.Pid) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if slices.Contains(strings.Split(string(b), "\x00"), "user") && alive(pid) {
			return pid
		}
	}
	return 0
}

// alive lists the nodes of ns whose process still runs.
func (c *testCluster) alive(ns []*nodeProc) []*nodeProc {
	var out []*nodeProc
	for _, n := range ns {
		select {
		case <-n.done:
		default:
			out = append(out, n)
		}
	}
	return out
}

// outOfOrder counts, over every device not lost, the resources whose
// CHANGED and RESYNC etags ("v<n>", n growing with each publish) went
// back: an older version after a newer one.
func outOfOrder(devs []*device) (n int, example string) {
	for _, d := range devs {
		d.mu.Lock()
		for _, r := range d.res {
			last := -1
			for _, e := range d.order[r] {
				var k int
				if _, err := fmt.Sscanf(e, "v%d", &k); err != nil {
					continue
				}
				if k < last {
					n++
					if example == "" {
						example = fmt.Sprintf("%s: %s arrived as %v", d.name, r, d.order[r])
					}
					break
				}
				last = k
			}
		}
		d.mu.Unlock()
	}
	return n, example
}

// TestDelivery_FrozenNodeKeepsOrder: a 3-node cluster, one node stopped
// (SIGSTOP) for 10 s while a publisher keeps changing resources, then
// continued. At every client, the changes of each resource arrive in the
// order they were published (an older version never after a newer one),
// and once publishing stops every client ends with the last version.
func TestDelivery_FrozenNodeKeepsOrder(t *testing.T) {
	c := newTestCluster(t)
	liftLimits(t, c)
	n1, n2, n3 := c.start("f1", "127.0.0.8"), c.start("f2", "127.0.0.9"), c.start("f3", "127.0.0.10")
	c.waitRing("f1", "f2", "f3")
	serving := &servingSet{}
	serving.set(n1, n2, n3)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	resources := aliceResources("frozen", 12)
	devs := setupDevices(t, c, ctx, serving, 18, resources)
	pubTok := c.token("publisher", "publish")
	publishAll(t, c, serving, pubTok, resources, devs, "warm")

	pub := &publisher{c: c, tok: pubTok, acked: map[string][]string{}}
	pctx, stopPub := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Go(func() { pub.run(pctx, serving.get, resources, 5*time.Millisecond) })
	time.Sleep(time.Second)
	serving.set(n1, n2)
	n3.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(10 * time.Second)
	n3.cmd.Process.Signal(syscall.SIGCONT)
	serving.set(n1, n2, n3)
	time.Sleep(3 * time.Second)
	stopPub()
	pwg.Wait()
	// Publishing stopped: every client that kept its queue ends with the
	// last change of each of its resources.
	last := map[string]string{}
	pub.mu.Lock()
	for r, es := range pub.acked {
		last[r] = es[len(es)-1]
	}
	pub.mu.Unlock()
	stale := func() (n int, example string) {
		for _, d := range devs {
			d.mu.Lock()
			for _, r := range d.res {
				if o := d.order[r]; !d.lost && last[r] != "" && (len(o) == 0 || o[len(o)-1] != last[r]) {
					n++
					if example == "" {
						example = fmt.Sprintf("%s: %s ends with %v, the last published %s", d.name, r, o[max(0, len(o)-3):], last[r])
					}
				}
			}
			d.mu.Unlock()
		}
		return n, example
	}
	converged := waitFor(60*time.Second, func() bool { n, _ := stale(); return n == 0 })
	bad, example := outOfOrder(devs)
	lost, resyncs := 0, 0
	for _, d := range devs {
		d.mu.Lock()
		if d.lost {
			lost++
		}
		resyncs += d.resyncs
		if d.dups > 0 {
			t.Errorf("%s: %d duplicate seqs", d.name, d.dups)
		}
		d.mu.Unlock()
	}
	t.Logf("%d changes published around a 10 s SIGSTOP; %d of %d queues lost, %d RESYNC; %d resources out of order at some client", pub.n, lost, len(devs), resyncs, bad)
	if bad > 0 {
		t.Errorf("%d (client, resource) pairs received an older version after a newer one; e.g. %s", bad, example)
	}
	if !converged {
		n, ex := stale()
		t.Errorf("%d (client, resource) pairs stale after publishing stopped; e.g. %s", n, ex)
	}
}

// TestDelivery_RestartsAnswerOnlyRetryableErrors: a publisher keeps
// publishing through every node while one node is restarted (kill -9,
// then SIGTERM) and another is frozen (SIGSTOP) for a while. Whatever
// fails must fail with a code a client retries: never BAD_USER_INPUT (a
// restarting node that owned keys before its publishers were up answered
// "no publisher for scheme") nor CANCELLED (a call to a frozen owner whose
// connection was closed).
func TestDelivery_RestartsAnswerOnlyRetryableErrors(t *testing.T) {
	c := newTestCluster(t)
	liftLimits(t, c)
	n1, n2, n3 := c.start("r1", "127.0.0.8"), c.start("r2", "127.0.0.9"), c.start("r3", "127.0.0.10")
	c.waitRing("r1", "r2", "r3")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var mu sync.Mutex
	nodes := []*nodeProc{n1, n2, n3}
	codes := map[string]int{}
	var bad []string
	ok := 0
	pubTok := c.token("restart-publisher", "publish")
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; pctx.Err() == nil; i += 4 {
				mu.Lock()
				n := nodes[i%len(nodes)]
				mu.Unlock()
				err := c.gql(n, pubTok, `mutation($r:String!,$e:String!){ publish(resource:$r, etag:$e) }`,
					map[string]any{"r": fmt.Sprintf("user:alice/restart/%d", i%20), "e": fmt.Sprint("v", i)}, nil)
				mu.Lock()
				if err == nil {
					ok++
				} else if code, _, found := strings.Cut(err.Error(), ": "); found && code == strings.ToUpper(code) && !strings.Contains(code, " ") {
					codes[code]++
					if code == "BAD_USER_INPUT" || code == "CANCELLED" || code == "INTERNAL_SERVER_ERROR" {
						bad = append(bad, fmt.Sprintf("%s via %s: %v", code, n.name, err))
					}
				} else {
					codes["transport"]++ // the node is down: connection refused
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	restart := func(n *nodeProc, how syscall.Signal) *nodeProc {
		t.Helper()
		n.cmd.Process.Signal(how)
		select {
		case err := <-n.exited:
			n.exited <- err
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not exit", n.name)
		}
		m := c.restart(n)
		mu.Lock()
		for i := range nodes {
			if nodes[i] == n {
				nodes[i] = m
			}
		}
		mu.Unlock()
		return m
	}
	time.Sleep(time.Second)
	n3 = restart(n3, syscall.SIGKILL)
	c.waitRing("r1", "r2", "r3")
	time.Sleep(time.Second)
	restart(n3, syscall.SIGTERM)
	c.waitRing("r1", "r2", "r3")
	time.Sleep(time.Second)
	n2.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(8 * time.Second)
	n2.cmd.Process.Signal(syscall.SIGCONT)
	c.waitRing("r1", "r2", "r3")
	time.Sleep(time.Second)
	stop()
	wg.Wait()
	t.Logf("%d publishes acknowledged; failures by code: %v", ok, codes)
	if len(bad) > 0 {
		t.Fatalf("%d failures a client would not retry; e.g. %s", len(bad), bad[0])
	}
}
