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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meshgate/client"
)

// Only a client's current watch of a resource speaks for it at the
// gateway. A watch that is no longer current (REVOKED ended it, or it was
// closed already) and is closed after a new Watch of the same resource
// must leave the new watch's subscription alone.
func TestWatchClose_OldWatchLeavesTheNewOne(t *testing.T) {
	gw := startGateway()
	defer gw.stop()
	ctx := context.Background()
	for _, how := range []string{"revoked", "closed"} {
		t.Run(how, func(t *testing.T) {
			c, err := client.Dial(ctx, gw.URL, gw.token("old-"+how, time.Hour), &client.Options{HTTPClient: gw.HTTP, Transport: "poll"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			hold, err := c.Watch(ctx, "user:alice/hold-"+how, "", "")
			if err != nil {
				t.Fatal(err)
			}
			r := "user:alice/old-" + how
			w, err := c.Watch(ctx, r, "", "")
			if err != nil {
				t.Fatal(err)
			}
			switch how {
			case "revoked":
				if n := gw.store.Revoke(r, "alice", ""); n != 1 {
					t.Fatalf("revoked %d subscriptions; want 1", n)
				}
				if ev := next(t, w); ev.Kind != client.Revoked {
					t.Fatalf("got %s; want REVOKED", ev.Kind)
				}
				for range w.Events() { // closed after REVOKED
				}
			case "closed":
				w.Close()
			}
			w2, err := c.Watch(ctx, r, "", "")
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			subscribed(t, gw, hold, w2, "v1")
		})
	}
}

// A Close and a Watch of one resource made at once, from two goroutines,
// end as the later one says: here the Watch, made after the Close took
// the old watch out, so the resource is subscribed. A proxy in front of
// the gateway holds the Close's unsubscribe until the Watch's subscribe
// has passed (or a while has), as a slow network may.
func TestWatchClose_RacingWatchEndsSubscribed(t *testing.T) {
	gw := startGateway()
	defer gw.stop()
	const r = "user:alice/race"
	var armed atomic.Bool
	unsubscribing := make(chan struct{}, 1)
	subscribedAgain := make(chan struct{})
	var once sync.Once
	target, _ := url.Parse(gw.URL)
	target.Path = ""
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = gw.HTTP.Transport
	rp.ErrorLog = log.New(io.Discard, "", 0) // polls cut short when the client closes
	proxy := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		var op struct {
			Query     string
			Variables map[string]any
		}
		_ = json.Unmarshal(body, &op)
		if armed.Load() && op.Variables["r"] == r {
			switch {
			case strings.Contains(op.Query, "unsubscribe("):
				select {
				case unsubscribing <- struct{}{}:
				default:
				}
				select { // the Watch's subscribe may pass meanwhile
				case <-subscribedAgain:
				case <-time.After(2 * time.Second):
				}
			case strings.Contains(op.Query, "subscribe("):
				rp.ServeHTTP(rw, req)
				once.Do(func() { close(subscribedAgain) })
				return
			}
		}
		rp.ServeHTTP(rw, req)
	}))
	defer proxy.Close()
	ctx := context.Background()
	c, err := client.Dial(ctx, proxy.URL+"/graphql", gw.token("race", time.Hour), &client.Options{HTTPClient: gw.HTTP, Transport: "poll"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hold, err := c.Watch(ctx, "user:alice/race-hold", "", "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, r, "", "")
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		w.Close()
	}()
	<-unsubscribing // the Close took w out and is unsubscribing
	w2, err := c.Watch(ctx, r, "", "")
	if err != nil {
		t.Fatal(err)
	}
	<-closed
	subscribed(t, gw, hold, w2, "v1")
}

// subscribed checks that w's resource is subscribed on its client's
// queue: a change of it and then one of hold's (watched by the same
// client) are queued in that order, so once hold's arrives w's must have.
func subscribed(t *testing.T, gw *gateway, hold, w *client.Watch, etag string) {
	t.Helper()
	gw.publish(w.Resource(), etag)
	gw.publish(hold.Resource(), "h-"+etag)
	for {
		ev := next(t, hold)
		if ev.Etag == "h-"+etag {
			break
		}
	}
	select {
	case ev := <-w.Events():
		if ev.Kind != client.Changed || ev.Etag != etag {
			t.Fatalf("the new watch got %s(%s); want CHANGED(%s)", ev.Kind, ev.Etag, etag)
		}
	default:
		t.Fatalf("the new watch got nothing of %s, queued before hold's h-%s: its subscription is gone", etag, etag)
	}
}
