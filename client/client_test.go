package client_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"meshgate/client"
)

func next(t *testing.T, w *client.Watch) client.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no event in 20 s")
	}
	return client.Event{}
}

// A proxy that refuses WebSocket upgrades, as some corporate proxies do:
// the client falls back to long-poll and still gets every change.
func TestFallsBackToLongPoll(t *testing.T) {
	gw := startGateway()
	defer gw.stop()
	target, _ := url.Parse(strings.TrimSuffix(gw.URL, "/graphql"))
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = gw.HTTP.Transport
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "websockets are not allowed here", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go proxy.Serve(l)
	defer proxy.Close()

	ctx := context.Background()
	c, err := client.Dial(ctx, "http://"+l.Addr().String()+"/graphql", gw.token("office", time.Hour), &client.Options{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Watch(ctx, "user:alice/doc", "", "")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.State() != client.Polling && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c.State() != client.Polling {
		t.Fatalf("state %s; want polling", c.State())
	}
	for i := range 3 {
		gw.publish("user:alice/doc", fmt.Sprint("d", i))
		if ev := next(t, w); ev.Etag != fmt.Sprint("d", i) || ev.Seq != uint64(i+1) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
}

// A token that is about to expire is replaced on the live connection,
// through the callback, without losing a notification.
func TestRenewsTokenBeforeExpiry(t *testing.T) {
	gw := startGateway()
	defer gw.stop()
	ctx := context.Background()
	var mu sync.Mutex
	calls := 0
	opts := &client.Options{HTTPClient: gw.HTTP, Token: func(context.Context) (string, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return gw.token("kiosk", time.Hour), nil
	}}
	// Expires in 61 s: the client renews a minute ahead, so at once.
	c, err := client.Dial(ctx, gw.URL, gw.token("kiosk", 61*time.Second), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Watch(ctx, "user:alice/k", "", "")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().TokenRefreshes == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c.Stats().TokenRefreshes == 0 {
		t.Fatal("the token was not renewed")
	}
	for i := range 5 {
		gw.publish("user:alice/k", fmt.Sprint("k", i))
	}
	for i := range 5 {
		if ev := next(t, w); ev.Etag != fmt.Sprint("k", i) {
			t.Fatalf("event %d after renewal: %+v", i, ev)
		}
	}
	if st := c.Stats(); st.Duplicates != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Watches are opened and closed from many goroutines while changes flow.
func TestConcurrentWatches(t *testing.T) {
	gw := startGateway()
	defer gw.stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, gw.URL, gw.token("desk", time.Hour), &client.Options{HTTPClient: gw.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			res := fmt.Sprintf("user:alice/c%d", g)
			w, err := c.Watch(ctx, res, "", "")
			if err != nil {
				t.Error(err)
				return
			}
			gw.publish(res, "x")
			if ev := next(t, w); ev.Etag != "x" || ev.Resource != res {
				t.Errorf("%s: %+v", res, ev)
			}
			w.Close()
		})
	}
	wg.Wait()
	if _, err := c.Watch(ctx, "bad resource", "", ""); !client.IsCode(err, "BAD_USER_INPUT") {
		t.Fatalf("a bad resource: %v", err)
	}
}
