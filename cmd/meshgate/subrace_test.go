package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDelivery_SubscribeAtomicWithPublishes: many subscribes, each to a
// fresh resource (its list has delivered nothing), each sent while a
// publisher publishes v1, v2 and v3 of that resource one after another,
// through other nodes. Subscribe is atomic with publish: every publish
// is either reflected in the etag it answers or delivered after it, so a
// watch (the answer, then the CHANGED and RESYNC etags its queue
// receives) never goes back, and once v4 is published after all of them
// every queue ends at v4. On two nodes a queue and its resource's list
// are often on different nodes, so an event the list stamped after the
// link may still be on its way to the queue's node when the publisher
// answers a later etag (shard's TestSubscribe_AtomicWithPublish pins
// that interleaving; here it is met by chance).
func TestDelivery_SubscribeAtomicWithPublishes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []string // name=ip
		pairs int
	}{
		{"one node", []string{"sa1=127.0.0.11"}, 600},
		{"two nodes", []string{"sb1=127.0.0.12", "sb2=127.0.0.13"}, 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t)
			liftLimits(t, c)
			var ns []*nodeProc
			var names []string
			for _, nip := range tc.nodes {
				name, ip, _ := strings.Cut(nip, "=")
				ns = append(ns, c.start(name, ip))
				names = append(names, name)
			}
			if len(ns) > 1 {
				c.waitRing(names...)
			}
			racePublishes(t, c, ns, strings.ReplaceAll(tc.name, " ", ""), tc.pairs)
		})
	}
}

// subRace is one pair's resource and queue, and its watch: the answer,
// then the etags its queue received for the resource.
type subRace struct {
	res, tok, queue string
	watch           []string
	after           uint64
}

func racePublishes(t *testing.T, c *testCluster, ns []*nodeProc, prefix string, pairs int) {
	t.Helper()
	pubTok := c.token("subrace-publisher", "publish")
	on := func(i int) *nodeProc { return ns[i%len(ns)] }
	// publish retries what a client retries (a node busy starting).
	publish := func(i, k int, res, etag string) error {
		var err error
		for try := range 20 {
			if err = c.gql(on(i+k+try), pubTok, `mutation($r:String!,$e:String!){ publish(resource:$r, etag:$e) }`, map[string]any{"r": res, "e": etag}, nil); err == nil {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return err
	}
	races := make([]*subRace, pairs)
	const workers = 16
	work := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range work {
				r := &subRace{res: fmt.Sprintf("user:alice/subrace/%s/%d", prefix, i), tok: c.token(fmt.Sprintf("subrace-%s-%d", prefix, i))}
				var q struct{ CreateQueue struct{ Name string } }
				if err := c.gql(on(i), r.tok, `mutation{ createQueue(ttlSeconds: 600) { name } }`, nil, &q); err != nil {
					t.Error(err)
					continue
				}
				r.queue = q.CreateQueue.Name
				var sub struct{ Subscribe struct{ Etag string } }
				var subErr, pubErr error
				var pair sync.WaitGroup
				pair.Go(func() {
					subErr = c.gql(on(i+1), r.tok, `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }`,
						map[string]any{"q": r.queue, "r": r.res}, &sub)
				})
				pair.Go(func() {
					for k := 1; k <= 3 && pubErr == nil; k++ {
						pubErr = publish(i, k, r.res, fmt.Sprint("v", k))
					}
				})
				pair.Wait()
				if subErr != nil || pubErr != nil {
					t.Errorf("pair %d: subscribe %v, publish %v", i, subErr, pubErr)
					continue
				}
				r.watch = []string{"answer " + sub.Subscribe.Etag}
				races[i] = r
			}
		})
	}
	for i := range pairs {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		return
	}
	// v4, published after every pair, is the last event of each list:
	// once a queue has it, it has appended (or dropped) every earlier one.
	for i, r := range races {
		if err := publish(i, 0, r.res, "v4"); err != nil {
			t.Fatalf("publish v4 of %s: %v", r.res, err)
		}
	}
	work = make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range work {
				readUntil(c, on(i), races[i], "v4", 10*time.Second)
			}
		})
	}
	for i := range pairs {
		work <- i
	}
	close(work)
	wg.Wait()
	var back, stale []string
	answered := map[string]int{}
	for _, r := range races {
		answered[strings.TrimPrefix(r.watch[0], "answer ")]++
		last := -1
		for _, w := range r.watch {
			_, etag, _ := strings.Cut(w, " ")
			k := -1
			if etag != "" {
				if _, err := fmt.Sscanf(etag, "v%d", &k); err != nil {
					t.Fatalf("%s: etag %q is not vN", r.res, etag)
				}
			}
			if k < last {
				back = append(back, fmt.Sprintf("%s: %v", r.res, r.watch))
				break
			}
			last = k
		}
		if !strings.HasSuffix(r.watch[len(r.watch)-1], " v4") {
			stale = append(stale, fmt.Sprintf("%s: %v", r.res, r.watch))
		}
	}
	t.Logf("%d subscribes racing v1-v3 on %d node(s): answered %v; %d watches went back, %d did not end at v4", pairs, len(ns), answered, len(back), len(stale))
	if len(back) > 0 {
		t.Errorf("%d of %d watches went back; e.g. %s", len(back), pairs, strings.Join(back[:min(3, len(back))], "; "))
	}
	if len(stale) > 0 {
		t.Errorf("%d of %d watches did not end at v4; e.g. %s", len(stale), pairs, strings.Join(stale[:min(3, len(stale))], "; "))
	}
}

// readUntil reads r's queue through n, appending to r.watch every
// CHANGED and RESYNC etag of r.res, until one is etag or limit passes.
func readUntil(c *testCluster, n *nodeProc, r *subRace, etag string, limit time.Duration) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		var pg pollPage
		if err := c.gql(n, r.tok, `query($q:String!,$a:Seq){ notifications(queue:$q, after:$a, limit:100, waitSeconds:1) { items { seq kind resource etag } lastSeq } }`,
			map[string]any{"q": r.queue, "a": r.after}, &pg); err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		done := false
		for _, it := range pg.Notifications.Items {
			if it.Resource == r.res && (it.Kind == "CHANGED" || it.Kind == "RESYNC") {
				r.watch = append(r.watch, it.Kind+" "+it.Etag)
				done = done || it.Etag == etag
			}
		}
		r.after = pg.Notifications.LastSeq
		if done {
			return
		}
	}
}

// TestDelivery_TheSameSubscribeTwiceAtOnceSucceedsTwice: a client sends
// one subscribe twice at once (a page's effect run twice, as React's
// StrictMode does; a retry racing its first try), for many queues, on
// two nodes so that each link crosses the network. Both answer, with the
// same etag, and the queue holds the subscription once.
func TestDelivery_TheSameSubscribeTwiceAtOnceSucceedsTwice(t *testing.T) {
	c := newTestCluster(t)
	liftLimits(t, c)
	ns := []*nodeProc{c.start("sd1", "127.0.0.12"), c.start("sd2", "127.0.0.13")}
	c.waitRing("sd1", "sd2")
	const queues = 200
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				n, tok := ns[i%2], c.token(fmt.Sprintf("twice-%d", i))
				res := fmt.Sprintf("user:alice/twice/%d", i)
				var q struct{ CreateQueue struct{ Name string } }
				if err := c.gql(n, tok, `mutation{ createQueue(ttlSeconds: 600) { name } }`, nil, &q); err != nil {
					t.Error(err)
					continue
				}
				var subs [2]struct{ Subscribe struct{ Etag string } }
				var errs [2]error
				var pair sync.WaitGroup
				for k := range 2 {
					pair.Go(func() {
						errs[k] = c.gql(ns[(i+k)%2], tok, `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }`,
							map[string]any{"q": q.CreateQueue.Name, "r": res}, &subs[k])
					})
				}
				pair.Wait()
				if errs[0] != nil || errs[1] != nil || subs[0] != subs[1] {
					t.Errorf("queue %d: the two subscribes answered %+v, %+v (errors %v, %v); want the same etag twice", i, subs[0], subs[1], errs[0], errs[1])
					continue
				}
				var got struct{ Subscriptions []struct{ Resource string } }
				if err := c.gql(n, tok, `query($q:String!){ subscriptions(queue:$q) { resource } }`, map[string]any{"q": q.CreateQueue.Name}, &got); err != nil || len(got.Subscriptions) != 1 {
					t.Errorf("queue %d holds %+v (%v); want one subscription", i, got.Subscriptions, err)
				}
			}
		})
	}
	for i := range queues {
		work <- i
	}
	close(work)
	wg.Wait()
}
