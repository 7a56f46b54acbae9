package client_test

import (
	"context"
	"testing"
	"time"

	"meshgate/client"
	"meshgate/shard"
)

// TestWatch_EtagUnknown: a RESYNC the gateway flags etagUnknown (as its
// repair sends when a list was made again and nobody knew the version)
// reaches the watch as an ETAG_UNKNOWN event, not as a RESYNC with "",
// which would read "never published"; the watch keeps the last etag it
// knew, and the next change arrives as usual. Over WebSocket and long-poll.
func TestWatch_EtagUnknown(t *testing.T) {
	for _, transport := range []string{"ws", "poll"} {
		t.Run(transport, func(t *testing.T) {
			gw := startGateway()
			defer gw.stop()
			ctx := context.Background()
			c, err := client.Dial(ctx, gw.URL, gw.token("phone", time.Hour), &client.Options{HTTPClient: gw.HTTP, Transport: transport})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const res = "user:alice/doc"
			w, err := c.Watch(ctx, res, "", "")
			if err != nil {
				t.Fatal(err)
			}
			gw.publish(res, "v1")
			if ev := next(t, w); ev.Kind != client.Changed || ev.Etag != "v1" {
				t.Fatalf("first event %+v", ev)
			}
			gw.store.Deliver(&shard.Event{Kind: shard.Resync, EtagUnknown: true, Resource: res, Time: time.Now()})
			if ev := next(t, w); ev.Kind != client.EtagUnknown || ev.Etag != "" || ev.Resource != res {
				t.Fatalf("a RESYNC flagged etagUnknown arrived as %+v, want an ETAG_UNKNOWN event", ev)
			}
			if w.Etag() != "v1" {
				t.Errorf("after ETAG_UNKNOWN the watch knows %q, want the last etag known, v1", w.Etag())
			}
			gw.store.Deliver(&shard.Event{Kind: shard.Resync, Resource: res, Etag: "v1", Time: time.Now()})
			if ev := next(t, w); ev.Kind != client.Resync || ev.Etag != "v1" {
				t.Fatalf("a RESYNC with an etag arrived as %+v", ev)
			}
			gw.publish(res, "v2")
			if ev := next(t, w); ev.Kind != client.Changed || ev.Etag != "v2" {
				t.Fatalf("after it: %+v", ev)
			}
		})
	}
}

// TestWatch_KnownEtagThePublisherForgot: a watch started with the etag
// the app knew (from a previous run) on a gateway whose publisher knows
// none (it keeps etags in memory and restarted) gets ETAG_UNKNOWN, not a
// CHANGED_WHILE_AWAY to "": the resource was published, "" is not its
// version.
func TestWatch_KnownEtagThePublisherForgot(t *testing.T) {
	gw := startGateway()
	defer gw.stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, gw.URL, gw.token("phone", time.Hour), &client.Options{HTTPClient: gw.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const res = "user:alice/forgotten"
	w, err := c.Watch(ctx, res, "", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, w); ev.Kind != client.EtagUnknown || ev.Etag != "" {
		t.Fatalf("first event %+v, want ETAG_UNKNOWN", ev)
	}
	if w.Etag() != "v1" {
		t.Errorf("the watch knows %q, want v1 kept", w.Etag())
	}
	gw.publish(res, "v2")
	if ev := next(t, w); ev.Kind != client.Changed || ev.Etag != "v2" {
		t.Fatalf("after it: %+v", ev)
	}
}
