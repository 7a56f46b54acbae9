package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"meshgate/shard"
)

// A relayed stream that breaks with many notifications in flight (the
// holder wrote them to the relay, which never passed them on: its node
// froze, or its reader's connection went) resumes, from another reader,
// with every notification its reader had not received, not with an
// OVERFLOW. After an OVERFLOW a client subscribes again and is answered
// the current etags, and the older notifications still in the queue then
// reach it after them: the chaos test's watches "went back" hundreds of
// changes once publishing was fast (/work/stall-logs/s8-ring).
func TestRelay_BrokenWithManyInFlightResumesWithoutOverflow(t *testing.T) {
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	const res, k = "user:alice/relayed", 300
	q := subscribed(t, n2, nil, alice, res)
	r, _ := attach(t, n1, alice, q) // relayed from n2
	for i := range k {
		publish(t, n2, res, fmt.Sprint("e", i))
	}
	lag := r.(interface{ Lag() uint64 })
	if !waitFor(10*time.Second, func() bool { return lag.Lag() == k }) {
		t.Fatalf("the relay holds %d of %d", lag.Lag(), k)
	}
	r.Close() // nothing was read: all k were in flight
	r2, l2 := attach(t, n1, alice, q)
	defer r2.Close()
	var got []shard.Notification
	var err error
	for deadline := time.After(10 * time.Second); len(got) < k; {
		n := len(got)
		if got, err = r2.Next(got, k); err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 && got[0].Kind == shard.Overflow {
			t.Fatalf("the resumed stream began with %s %s: of %d in flight, %d came back", got[0].Kind, got[0].Payload, k, len(got)-1)
		}
		if len(got) > n {
			continue // read all there is before waiting
		}
		select {
		case <-l2.ch:
		case <-deadline:
			t.Fatalf("timed out with %d of %d", len(got), k)
		}
	}
}
