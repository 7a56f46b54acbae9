package client_test

import (
	"context"
	"testing"
	"time"

	"meshgate/client"
)

// TestRemakesALostQueueOnItsStream: when the gateway loses a device's
// queue while it streams, the SDK makes a new queue and subscribes again
// with mutations on the same WebSocket, without a new connection, and the
// watch sees what changed meanwhile and what changes next.
func TestRemakesALostQueueOnItsStream(t *testing.T) {
	gw := startGateway()
	defer gw.stop()
	ctx := context.Background()
	tok := gw.token("phone", time.Hour)
	c, err := client.Dial(ctx, gw.URL, tok, &client.Options{HTTPClient: gw.HTTP, Transport: "ws"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Watch(ctx, "user:alice/inbox", "", "")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, client.Streaming)
	gw.publish("user:alice/inbox", "v1")
	if ev := next(t, w); ev.Etag != "v1" {
		t.Fatalf("first event %+v", ev)
	}
	old := c.Queue()
	// The queue goes, as when its node dies; a change happens meanwhile.
	if err := gw.do(tok, `mutation($q:String!){ deleteQueue(name:$q) }`, map[string]any{"q": old}); err != nil {
		t.Fatal(err)
	}
	gw.publish("user:alice/inbox", "v2")
	// As CHANGED_WHILE_AWAY if the change came before the new queue's
	// subscription, as CHANGED on the new queue if after: either way once.
	ev := next(t, w)
	if ev.Kind != client.ChangedWhileAway && ev.Kind != client.Changed || ev.Etag != "v2" {
		t.Fatalf("after the queue was lost: %+v", ev)
	}
	if c.Queue() == old {
		t.Fatal("still on the lost queue")
	}
	gw.publish("user:alice/inbox", "v3")
	if ev := next(t, w); ev.Kind != client.Changed || ev.Etag != "v3" {
		t.Fatalf("on the new queue: %+v", ev)
	}
	st := c.Stats()
	if st.QueuesCreated != 2 || st.Reconnects != 0 {
		t.Fatalf("stats %+v: want 2 queues and no new connection", st)
	}
}

func waitState(t *testing.T, c *client.Client, want client.State) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %v, want %v", c.State(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
