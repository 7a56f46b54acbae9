package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"meshgate/client"
	"meshgate/shard"
)

// A reader that falls behind gets an OVERFLOW, and then the notifications
// still queued after it: newer than those dropped, but not newer than what
// the gateway answers a subscribe made now. A watch's etags must never go
// back: neither to one of those queued notifications after the client
// took a newer answer, nor anywhere else; and each ends at the resource's
// last etag. Four watches: two whose resources keep some notifications
// after the OVERFLOW (a: known etag, b: never published when watched),
// two whose every change was dropped (c: never published when watched,
// d: known etag).
func TestOverflow_EtagsNeverGoBack(t *testing.T) {
	gw := startGatewayWith(shard.Config{BufferSize: 8, RetainDelivered: 8})
	defer gw.stop()
	ctx := context.Background()
	// Long-poll and a one-event buffer: a watch nobody reads holds the
	// client back, so it stops polling and its queue fills.
	c, err := client.Dial(ctx, gw.URL, gw.token("slow", time.Hour), &client.Options{HTTPClient: gw.HTTP, Transport: "poll", Buffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gw.publish("user:alice/a", "a01")
	gw.publish("user:alice/d", "d01")
	watches := map[string]*client.Watch{}
	for _, r := range []string{"a", "b", "c", "d"} {
		w, err := c.Watch(ctx, "user:alice/"+r, "", "")
		if err != nil {
			t.Fatal(err)
		}
		watches[r] = w
	}
	// a02 fills a's event buffer; the client is stuck handing over a03.
	gw.publish("user:alice/a", "a02")
	gw.publish("user:alice/a", "a03")
	waitFor(t, "the client to hold a03", func() bool { return c.Stats().Notifications == 2 })
	gw.publish("user:alice/c", "c01")
	gw.publish("user:alice/d", "d02")
	for i := 4; i <= 20; i++ {
		gw.publish("user:alice/a", "a"+pad(i))
		if i%4 == 0 {
			gw.publish("user:alice/b", "b"+pad(i/4))
		}
	}
	// The queue holds the last 8 of those 22 (a15..a20, b04, b05) after
	// a03; the 14 before them are dropped.
	last := map[string]string{"a": "a20", "b": "b05", "c": "c01", "d": "d02"}
	var mu sync.Mutex
	seen := map[string][]client.Event{}
	var wg sync.WaitGroup
	for r, w := range watches {
		wg.Go(func() {
			for ev := range w.Events() {
				mu.Lock()
				seen[r] = append(seen[r], ev)
				mu.Unlock()
			}
		})
	}
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for r, e := range last {
			if n := len(seen[r]); n == 0 || seen[r][n-1].Etag != e {
				return false
			}
		}
		return true
	}
	if eventually(done) {
		// A change after all that: once it is in, everything queued
		// before it (the RESYNCs of the subscribes after the OVERFLOW
		// too) is.
		gw.publish("user:alice/a", "a21")
		last["a"] = "a21"
		eventually(done)
	}
	c.Close()
	wg.Wait()
	for _, r := range []string{"a", "b", "c", "d"} {
		evs := seen[r]
		t.Logf("%s: %s", r, trace(evs))
		prev := 0
		if r == "a" || r == "d" {
			prev = 1 // watched at a01, d01
		}
		for _, ev := range evs {
			if ev.Kind != client.Changed && ev.Kind != client.Resync && ev.Kind != client.ChangedWhileAway {
				t.Errorf("%s: unexpected %s", r, ev.Kind)
				continue
			}
			v, err := strconv.Atoi(ev.Etag[1:])
			if err != nil {
				t.Fatalf("%s: etag %q", r, ev.Etag)
			}
			if v < prev {
				t.Errorf("%s: went back from %d to %s %s", r, prev, ev.Kind, ev.Etag)
			}
			prev = v
		}
		if len(evs) == 0 {
			t.Errorf("%s: no event; want it to end at %s", r, last[r])
		} else if got := evs[len(evs)-1].Etag; got != last[r] {
			t.Errorf("%s: ends at %s; want %s", r, got, last[r])
		}
	}
}

func pad(i int) string { return strconv.Itoa(100 + i)[1:] }

func trace(evs []client.Event) string {
	s := ""
	for _, ev := range evs {
		s += " " + string(ev.Kind) + "(" + ev.Etag + ")"
	}
	return s
}

// waitFor polls cond until it holds, or fails the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !eventually(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// eventually polls cond until it holds (true) or 20 s have passed (false).
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// After an OVERFLOW the client subscribes again naming the etag it holds,
// and the RESYNC that answer makes is how a resource whose every change
// was dropped comes current. When that subscribe fails (the node is down,
// or answers UNAVAILABLE while the cluster changes), it must be made
// again: else the watch stays behind for good. Here a proxy in front of
// the gateway answers UNAVAILABLE to d's subscribes with a knownEtag, more
// times than one call's own retries.
func TestOverflow_FailedResubscribeIsRetried(t *testing.T) {
	gw := startGatewayWith(shard.Config{BufferSize: 4, RetainDelivered: 4})
	defer gw.stop()
	const refusals = 4 // more than the 2+len(URLs) tries of one request
	var mu sync.Mutex
	refused := 0
	target, _ := url.Parse(gw.URL)
	target.Path = ""
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = gw.HTTP.Transport
	rp.ErrorLog = log.New(io.Discard, "", 0) // polls cut short when the client closes
	proxy := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var op struct {
			Query     string
			Variables map[string]any
		}
		_ = json.Unmarshal(body, &op)
		if strings.Contains(op.Query, "subscribe(queue:") && op.Variables["r"] == "user:alice/d" && op.Variables["k"] != nil && op.Variables["k"] != "" {
			mu.Lock()
			refuse := refused < refusals
			if refuse {
				refused++
			}
			mu.Unlock()
			if refuse {
				rw.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(rw, `{"errors":[{"message":"the cluster is changing","extensions":{"code":"UNAVAILABLE"}}]}`)
				return
			}
		}
		rp.ServeHTTP(rw, r)
	}))
	defer proxy.Close()
	ctx := context.Background()
	c, err := client.Dial(ctx, proxy.URL+"/graphql", gw.token("slow", time.Hour), &client.Options{HTTPClient: gw.HTTP, Transport: "poll", Buffer: 1, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gw.publish("user:alice/d", "d01")
	hold, err := c.Watch(ctx, "user:alice/hold", "", "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Watch(ctx, "user:alice/d", "", "")
	if err != nil {
		t.Fatal(err)
	}
	// h02 fills hold's event buffer: the client is stuck handing over h03,
	// and its queue fills behind it; d02 is dropped.
	gw.publish("user:alice/hold", "h02")
	gw.publish("user:alice/hold", "h03")
	waitFor(t, "the client to hold h03", func() bool { return c.Stats().Notifications == 2 })
	gw.publish("user:alice/d", "d02")
	for i := 4; i <= 12; i++ {
		gw.publish("user:alice/hold", "h"+pad(i))
	}
	go func() {
		for range hold.Events() {
		}
	}()
	var evs []client.Event
	timeout := time.After(20 * time.Second)
	for d.Etag() != "d02" {
		select {
		case ev := <-d.Events():
			evs = append(evs, ev)
		case <-timeout:
			mu.Lock()
			t.Fatalf("d is at %s after its resubscribe was refused %d times; want d02; d: %s", d.Etag(), refused, trace(evs))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if refused != refusals {
		t.Fatalf("refused %d subscribes; want %d", refused, refusals)
	}
}
