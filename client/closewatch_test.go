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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meshgate/client"
	"meshgate/shard"
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
	px := startHoldingProxy(t, gw, func(op operation) bool { return op.is("unsubscribe", r) }, func(op operation) bool { return op.is("subscribe", r) })
	ctx := context.Background()
	c, err := client.Dial(ctx, px.URL+"/graphql", gw.token("race", time.Hour), &client.Options{HTTPClient: gw.HTTP, Transport: "poll"})
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
	px.armed.Store(true)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		w.Close()
	}()
	<-px.holding // the Close took w out and is unsubscribing
	w2, err := c.Watch(ctx, r, "", "")
	if err != nil {
		t.Fatal(err)
	}
	<-closed
	subscribed(t, gw, hold, w2, "v1")
}

// operation is a GraphQL request the holding proxy sees.
type operation struct {
	Query     string
	Variables map[string]any
}

// is reports whether op is a subscribe or unsubscribe (field) of resource.
func (op operation) is(field, resource string) bool {
	if op.Variables["r"] != resource {
		return false
	}
	i := strings.Index(op.Query, "subscribe(")
	un := i >= 2 && op.Query[i-2:i] == "un"
	return i >= 0 && un == (field == "unsubscribe")
}

// holdingProxy forwards to a gateway; once armed, it holds the first
// operation that held matches until one that first matches has been
// answered, or 2 s have passed, as a slow network may.
type holdingProxy struct {
	*httptest.Server
	armed   atomic.Bool
	holding chan struct{} // the held operation arrived
	passed  chan struct{} // and was answered
}

func startHoldingProxy(t *testing.T, gw *gateway, held, first func(operation) bool) *holdingProxy {
	px := &holdingProxy{holding: make(chan struct{}), passed: make(chan struct{})}
	firstDone := make(chan struct{})
	var holdOnce, firstOnce sync.Once
	target, _ := url.Parse(gw.URL)
	target.Path = ""
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = gw.HTTP.Transport
	rp.ErrorLog = log.New(io.Discard, "", 0) // polls cut short when the client closes
	px.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		var op operation
		_ = json.Unmarshal(body, &op)
		if px.armed.Load() && op.is("subscribe", "user:alice/again-hold-lost-queue") {
			time.Sleep(300 * time.Millisecond)
		}
		if !px.armed.Load() {
			rp.ServeHTTP(rw, req)
			return
		}
		isHeld := false
		if held(op) {
			holdOnce.Do(func() { isHeld = true })
		}
		if isHeld {
			close(px.holding)
			select {
			case <-firstDone:
			case <-time.After(2 * time.Second):
			}
			rp.ServeHTTP(rw, req)
			close(px.passed)
			return
		}
		rp.ServeHTTP(rw, req)
		if first(op) {
			firstOnce.Do(func() { close(firstDone) })
		}
	}))
	t.Cleanup(px.Close)
	return px
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

// A watch closed while the client subscribes it again on its own (after an
// OVERFLOW, on the same queue; after its queue was lost, on a new one)
// ends unsubscribed, whichever of the two the gateway gets first. The
// proxy holds that subscribe until the Close's unsubscribe has passed (or
// a while has).
func TestWatchClose_WhileTheClientSubscribesAgain(t *testing.T) {
	for _, after := range []string{"overflow", "lost-queue"} {
		t.Run(after, func(t *testing.T) {
			gw := startGatewayWith(shard.Config{BufferSize: 4, RetainDelivered: 4})
			defer gw.stop()
			r := "user:alice/again-" + after
			px := startHoldingProxy(t, gw, func(op operation) bool { return op.is("subscribe", r) }, func(op operation) bool { return op.is("unsubscribe", r) })
			ctx := context.Background()
			tok := gw.token("again-"+after, time.Hour)
			// Long-poll and a one-event buffer: a watch nobody reads holds
			// the client back, so its queue fills.
			c, err := client.Dial(ctx, px.URL+"/graphql", tok, &client.Options{HTTPClient: gw.HTTP, Transport: "poll", Buffer: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			gw.publish(r, "r01")
			hold, err := c.Watch(ctx, "user:alice/again-hold-"+after, "", "")
			if err != nil {
				t.Fatal(err)
			}
			w, err := c.Watch(ctx, r, "", "")
			if err != nil {
				t.Fatal(err)
			}
			px.armed.Store(true)
			switch after {
			case "overflow":
				gw.publish(hold.Resource(), "h02") // fills hold's buffer: the client holds h03
				gw.publish(hold.Resource(), "h03")
				waitFor(t, "the client to hold h03", func() bool { return c.Stats().Notifications == 2 })
				for i := 4; i <= 12; i++ {
					gw.publish(hold.Resource(), "h"+pad(i))
				}
				go func() {
					for range hold.Events() {
					}
				}()
			case "lost-queue":
				if err := gw.do(tok, `mutation($q:String!){ deleteQueue(name:$q) }`, map[string]any{"q": c.Queue()}); err != nil {
					t.Fatal(err)
				}
			}
			<-px.holding // r's subscribe again is on its way
			w.Close()
			<-px.passed
			// On a new queue the client subscribes its watches one by one
			// in map order: when r's came first, hold's may still be on
			// its way once r's has passed. Wait for it, then look.
			var subs []string
			waitFor(t, "the queue to be subscribed to "+hold.Resource(), func() bool {
				subs = gw.subscriptions(t, tok, c.Queue())
				return slices.Contains(subs, hold.Resource())
			})
			if len(subs) != 1 || subs[0] != hold.Resource() {
				t.Fatalf("the queue is subscribed to %v; want only %s", subs, hold.Resource())
			}
		})
	}
}

// subscriptions lists the resources queue q is subscribed to.
func (g *gateway) subscriptions(t *testing.T, tok, q string) []string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": `query($q:String!){ subscriptions(queue:$q) { resource } }`, "variables": map[string]any{"q": q}})
	req, _ := http.NewRequest("POST", g.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := g.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data   struct{ Subscriptions []struct{ Resource string } }
		Errors []struct{ Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Errors) > 0 {
		t.Fatalf("subscriptions of %s: %v %v", q, err, out.Errors)
	}
	var rs []string
	for _, s := range out.Data.Subscriptions {
		rs = append(rs, s.Resource)
	}
	slices.Sort(rs)
	return rs
}
