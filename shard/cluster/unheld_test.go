package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"meshgate/shard"
	"meshgate/shard/ring"
)

type answers string

func (a answers) Authorize(context.Context, shard.Principal, string, string) (string, error) {
	return string(a), nil
}

// A publish n1 remembered before the cluster took it for dead is not
// served after it returns, as the lists it held then are not (rejoined):
// meanwhile the others acknowledged newer publishes. Here: n1 remembers
// v1 (no list), n2 takes n1 for dead and acknowledges v2 (no list
// either), n1 hears it was taken for dead; a fresh subscribe, whose
// publisher answers v2, must answer v2.
func TestRejoined_PublishRememberedBeforeTheDeathIsNotServed(t *testing.T) {
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	res := ownedBy(n1, "n1", "unheld")
	n1.RememberUnheldNow() // a ring change here lately
	if _, err := n1.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v1", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	restore := n2.Believe(map[string]int{"n2": 1}) // n2 takes n1 for dead
	if _, err := n2.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v2", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	deadAt := time.Now()
	restore()
	n2.Tick()
	time.Sleep(10 * time.Millisecond)
	n1.RejoinedAt(deadAt)

	if etag := freshSubscribe(t, n2, res, "v2"); etag != "v2" {
		t.Errorf("subscribe answered %q, the publish n1 remembered before it was taken for dead, over the publisher's v2", etag)
	}
}

// A key that moves away and back between two of its node's rebalances
// (a rebalance waits for rebalMu while another one's hand-offs run, and
// reads the ring when it gets it) keeps the publish remembered before:
// rebalance's ForgetUnheld sees only the ring of its time, where the key
// is this node's again. Meanwhile its owner of the moment acknowledged a
// newer publish (no list there either), which that node forgets at its
// own rebalance. A fresh subscribe then answers the older etag over the
// publisher's.
func TestUnheld_KeyAwayAndBackBetweenRebalancesForgetsWhatItRemembered(t *testing.T) {
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	away := map[string]int{"n1": 1, "n2": 1000}
	var res string
	for i := 0; ; i++ {
		res = fmt.Sprintf("user:alice/flap%d", i)
		if n1.Ring().Owner(res) == "n1" && ring.New(1, away).Owner(res) == "n2" {
			break
		}
	}
	n1.RememberUnheldNow() // a ring change here lately
	if _, err := n1.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v1", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	back1, back2 := n1.Believe(away), n2.Believe(away) // res is n2's
	if _, err := n2.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: res, Etag: "v2", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	back1() // and n1's again, before n1's rebalance ran
	back2()
	n2.Tick()
	n1.Tick()

	if etag := freshSubscribe(t, n2, res, "v2"); etag != "v2" {
		t.Errorf("subscribe answered %q, remembered before the key went away, over the publisher's v2", etag)
	}
}

// freshSubscribe subscribes a new queue of n to res, whose publisher
// answers etag (and so does the client), and returns the etag the
// subscribe answered.
func freshSubscribe(t *testing.T, n *testNode, res, etag string) string {
	t.Helper()
	q := newQueue(t, n, alice)
	var info shard.SubscriptionInfo
	if err := untilAvailable(func() error {
		var err error
		info, err = n.Store().Subscribe(context.Background(), answers(etag), alice, q, res, "", etag)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return info.Etag
}
