package client_test

import (
	"context"
	"fmt"
	"time"

	"meshgate/client"
)

// A device watches a resource and sees each change.
func Example() {
	gw := startGateway() // a meshgate on loopback
	defer gw.stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, gw.URL, gw.token("laptop", time.Hour), &client.Options{HTTPClient: gw.HTTP})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	w, err := c.Watch(ctx, "user:alice/inbox", "", "")
	if err != nil {
		panic(err)
	}
	gw.publish("user:alice/inbox", "v1")
	gw.publish("user:alice/inbox", "v2")
	for range 2 {
		ev := <-w.Events()
		fmt.Println(ev.Kind, ev.Resource, ev.Etag)
	}
	// Output:
	// CHANGED user:alice/inbox v1
	// CHANGED user:alice/inbox v2
}

// A device that was offline passes the etag it last saw: if the resource
// changed meanwhile, the first event says so.
func ExampleClient_Watch_changedWhileAway() {
	gw := startGateway()
	defer gw.stop()
	ctx := context.Background()
	gw.publish("user:alice/photos", "v7")

	c, err := client.Dial(ctx, gw.URL, gw.token("phone", time.Hour), &client.Options{HTTPClient: gw.HTTP})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	w, err := c.Watch(ctx, "user:alice/photos", "", "v5") // the phone last saw v5
	if err != nil {
		panic(err)
	}
	ev := <-w.Events()
	fmt.Println(ev.Kind, ev.Etag)
	// Output:
	// CHANGED_WHILE_AWAY v7
}

// When the gateway loses the client's queue (its node died), the client
// makes a new one, subscribes again, and reports what changed meanwhile.
func ExampleClient_recovery() {
	gw := startGateway()
	defer gw.stop()
	ctx := context.Background()
	tok := gw.token("tablet", time.Hour)
	c, err := client.Dial(ctx, gw.URL, tok, &client.Options{HTTPClient: gw.HTTP})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	w, _ := c.Watch(ctx, "user:alice/notes", "", "")
	gw.publish("user:alice/notes", "n1")
	fmt.Println((<-w.Events()).Etag)

	// The queue disappears (as if its node had died), and the resource
	// changes before the client is back.
	lost := c.Queue()
	if err := gw.do(tok, `mutation($q:String!){ deleteQueue(name:$q) }`, map[string]any{"q": lost}); err != nil {
		panic(err)
	}
	gw.publish("user:alice/notes", "n2")

	// The change comes as CHANGED_WHILE_AWAY if it happened while the
	// client had no queue, or as CHANGED on its new queue if the client
	// was back first: either way it is not missed.
	ev := <-w.Events()
	fmt.Println(ev.Etag, c.Queue() != lost)
	gw.publish("user:alice/notes", "n3")
	fmt.Println((<-w.Events()).Etag)
	// Output:
	// n1
	// n2 true
	// n3
}
