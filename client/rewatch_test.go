package client_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"meshgate/client"
)

// A resource watched, closed and watched again on the same queue: the
// queue may still hold notifications for the first watch that the client
// has not read, older than what the new Watch's subscribe answered. The
// new watch must never see them.
func TestWatchAgain_NothingOlderThanItsSubscribe(t *testing.T) {
	gw := startGateway()
	defer gw.stop()
	ctx := context.Background()
	for _, transport := range []string{"poll", "ws"} {
		t.Run(transport, func(t *testing.T) {
			// A one-event buffer that nobody reads holds the client back, so
			// r's notifications stay queued, unread.
			c, err := client.Dial(ctx, gw.URL, gw.token("again-"+transport, time.Hour), &client.Options{HTTPClient: gw.HTTP, Transport: transport, Buffer: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			hold, err := c.Watch(ctx, "user:alice/hold-"+transport, "", "")
			if err != nil {
				t.Fatal(err)
			}
			r := "user:alice/r-" + transport
			w, err := c.Watch(ctx, r, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if transport == "ws" {
				waitState(t, c, client.Streaming)
			}
			gw.publish(hold.Resource(), "h1")
			gw.publish(hold.Resource(), "h2")
			waitFor(t, "the client to hold h2", func() bool { return c.Stats().Notifications == 2 })
			for i := 1; i <= 3; i++ {
				gw.publish(r, "r"+strconv.Itoa(i))
			}
			w.Close()
			gw.publish(r, "r4")
			w2, err := c.Watch(ctx, r, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if e := w2.Etag(); e != "r4" {
				t.Fatalf("the new watch starts at %q; want r4", e)
			}
			go func() {
				for range hold.Events() {
				}
			}()
			gw.publish(r, "r5")
			var evs []client.Event
			timeout := time.After(20 * time.Second)
			for len(evs) == 0 || evs[len(evs)-1].Etag != "r5" {
				select {
				case ev := <-w2.Events():
					evs = append(evs, ev)
				case <-timeout:
					t.Fatalf("no r5; the new watch saw%s", trace(evs))
				}
			}
			t.Logf("the new watch saw%s", trace(evs))
			for _, ev := range evs {
				if v, _ := strconv.Atoi(ev.Etag[1:]); v < 4 {
					t.Errorf("the new watch went back from r4 to %s(%s)", ev.Kind, ev.Etag)
				}
			}
		})
	}
}
