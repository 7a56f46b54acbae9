package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"meshgate/client"
)

// TestChaos_ClientsConverge: 200 SDK clients with 5 subscriptions each,
// spread over a 3-node cluster, while a publisher changes resources
// continuously. One node is killed (kill -9) and started again, another
// is frozen (SIGSTOP) for 15 s, a third stopped gracefully (SIGTERM), and a
// `user` plugin is killed (kill -9); publishing stops right after the last
// fault, so no later change can hide a stale view. Then every client's
// last known etag of every resource is the publisher's last one, no watch
// saw an older version of a resource after a newer one, and no client saw
// a seq twice on one queue. The recovery time is reported.
func TestChaos_ClientsConverge(t *testing.T) {
	c := newTestCluster(t)
	// One user drives 1 000 subscriptions: lift the per-user protection.
	cfg := filepath.Join(t.TempDir(), "chaos.yaml")
	if err := os.WriteFile(cfg, []byte(`limits:
  max_streams: 100000
  per_user: {request_rate: 1000000, request_burst: 1000000, subscribe_rate: 1000000, subscribe_burst: 1000000, max_streams: 100000}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c.extra = []string{"--config", cfg}
	n1, n2, n3 := c.start("c1", "127.0.0.5"), c.start("c2", "127.0.0.6"), c.start("c3", "127.0.0.7")
	c.waitRing("c1", "c2", "c3")
	urls := []string{n1.url, n2.url, n3.url}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	const clients, perClient, resources = 200, 5, 60
	res := make([]string, resources)
	for i := range res {
		res[i] = fmt.Sprintf("user:alice/chaos/%d", i)
	}
	type cw struct {
		c  *client.Client
		ws []*client.Watch
	}
	// Every watch's CHANGED, RESYNC and CHANGED_WHILE_AWAY etags ("p<n>",
	// n growing with each publish), in the order the client saw them.
	var omu sync.Mutex
	backwards := 0
	var backExample string
	lastSeen := map[*client.Watch]int{}
	cs := make([]cw, clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range clients {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			first := i % 3
			others := []string{urls[(first+1)%3], urls[(first+2)%3]}
			cl, err := client.Dial(ctx, urls[first], c.token(fmt.Sprint("chaos", i)), &client.Options{
				HTTPClient: c.client, URLs: others, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
			if err != nil {
				t.Error(err)
				return
			}
			cs[i].c = cl
			for j := range perClient {
				w, err := cl.Watch(ctx, res[(i*perClient+j)%resources], "", "")
				if err != nil {
					t.Error(err)
					return
				}
				cs[i].ws = append(cs[i].ws, w)
				go func() {
					for ev := range w.Events() {
						var k int
						if ev.Kind != client.Changed && ev.Kind != client.Resync && ev.Kind != client.ChangedWhileAway {
							continue
						}
						if _, err := fmt.Sscanf(ev.Etag, "p%d", &k); err != nil {
							continue
						}
						omu.Lock()
						if last, ok := lastSeen[w]; ok && k < last {
							backwards++
							if backExample == "" {
								// The wall time lines it up with the node logs.
								backExample = fmt.Sprintf("client %d: %s went from p%d back to p%d (%s, seq %d) at %s", i, w.Resource(), last, k, ev.Kind, ev.Seq, time.Now().UTC().Format("15:04:05.000000"))
							}
						}
						lastSeen[w] = max(lastSeen[w], k)
						omu.Unlock()
					}
				}()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	defer func() {
		for _, x := range cs {
			x.c.Close()
		}
	}()

	// The publisher: each change gets a new etag; a failed call is tried
	// again with the same etag until it is acknowledged.
	serving := &servingSet{}
	serving.set(n1, n2, n3)
	var mu sync.Mutex
	current := map[string]string{}
	changes := 0
	pctx, stopPub := context.WithCancel(ctx)
	pubTok := c.token("chaos-publisher", "publish")
	var pwg sync.WaitGroup
	pwg.Go(func() {
		for i := 0; pctx.Err() == nil; i++ {
			r, etag := res[i%resources], fmt.Sprint("p", i)
			for k := 0; ; k++ {
				ns := serving.get()
				err := c.gql(ns[(i+k)%len(ns)], pubTok, `mutation($r:String!,$e:String!){ publish(resource:$r, etag:$e) }`, map[string]any{"r": r, "e": etag}, nil)
				if err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			mu.Lock()
			current[r] = etag
			changes++
			mu.Unlock()
		}
	})

	time.Sleep(2 * time.Second)
	serving.set(n1, n3)
	killed := time.Now()
	n2.cmd.Process.Kill()
	<-n2.exited //nolint:errcheck // killed: its exit error is the expected "signal: killed"
	c.waitRing("c1", "c3")
	t.Logf("kill -9 c2: dropped from the ring after %v", time.Since(killed).Round(10*time.Millisecond))
	n2 = c.restart(n2)
	c.waitRing("c1", "c2", "c3")
	serving.set(n1, n2, n3)
	t.Logf("c2 restarted and back in the ring %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	time.Sleep(time.Second)
	serving.set(n2, n3)
	n1.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(15 * time.Second)
	n1.cmd.Process.Signal(syscall.SIGCONT)
	c.waitRing("c1", "c2", "c3")
	serving.set(n1, n2, n3)
	t.Logf("c1 frozen for 15 s (SIGSTOP), back in the ring %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	time.Sleep(time.Second)
	serving.set(n1, n2)
	n3.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n3.exited:
		n3.exited <- err
	case <-time.After(30 * time.Second):
		t.Fatal("c3 did not stop within 30 s of SIGTERM")
	}
	c.waitRing("c1", "c2")
	t.Logf("c3 stopped gracefully %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	time.Sleep(time.Second)
	plugin := userPlugin(t, n2)
	if err := syscall.Kill(plugin, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	stopPub() // right after the last fault: no later change hides a stale view
	pwg.Wait()
	stopped := time.Now()
	t.Logf("kill -9 of c2's user plugin, and publishing stopped, %v after the first kill", time.Since(killed).Round(10*time.Millisecond))

	stale := func() (n int, example string) {
		mu.Lock()
		defer mu.Unlock()
		for i, x := range cs {
			for _, w := range x.ws {
				if got, want := w.Etag(), current[w.Resource()]; got != want {
					n++
					if example == "" {
						example = fmt.Sprintf("client %d: %s has %q, the publisher %q", i, w.Resource(), got, want)
					}
				}
			}
		}
		return n, example
	}
	var left int
	var example string
	ok := waitFor(60*time.Second, func() bool { left, example = stale(); return left == 0 })
	dups, recreated, reconnects := uint64(0), uint64(0), uint64(0)
	for _, x := range cs {
		st := x.c.Stats()
		dups += st.Duplicates
		recreated += st.QueuesCreated - 1
		reconnects += st.Reconnects
	}
	mu.Lock()
	t.Logf("%d changes published; converged %v after the publisher stopped (%v after the kill); %d queues re-created, %d reconnects, %d duplicate seqs",
		changes, time.Since(stopped).Round(10*time.Millisecond), time.Since(killed).Round(10*time.Millisecond), recreated, reconnects, dups)
	mu.Unlock()
	if !ok {
		t.Fatalf("%d of %d watches never caught up; e.g. %s", left, clients*perClient, example)
	}
	if dups != 0 {
		t.Fatalf("clients saw %d duplicate seqs", dups)
	}
	omu.Lock()
	t.Logf("watches that saw a resource go back to an older version: %d; the post-settle audit appended %s (it should find nothing)", backwards, c.auditResyncs())
	if backwards != 0 {
		t.Errorf("%d times a watch received an older version after a newer one; e.g. %s", backwards, backExample)
	}
	omu.Unlock()
	if recreated == 0 {
		t.Fatal("no client had to re-create its queue: the kill did not test recovery")
	}
}
