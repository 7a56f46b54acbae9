package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

