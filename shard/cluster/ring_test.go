package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"meshgate/internal/certs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"meshgate/shard"
	"meshgate/shard/cluster"
	"meshgate/shard/ring"
)

// A publish routed on one ring to a node on another must not answer
// success unstamped: n2 believes n1 owns the resource, n1 (which has not
// learned of n3) believes it owns it and knows of no list, and the list
// is at n3, its owner on the ring the cluster agrees on. With hop counts,
// n1 served "no list" as success with 0 subscribers; with ring identity,
// n1 sees n2's ring is not its own and answers UNAVAILABLE, and the
// publish tried again once the rings agree reaches the list.
func TestDeliver_WrongRouteIsUnavailableNotSuccess(t *testing.T) {
	nodes := startNodes(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	two := map[string]int{"n1": 1, "n2": 1}
	res := ""
	for i := 0; res == ""; i++ {
		if r := fmt.Sprintf("user:alice/w%d", i); n3.Ring().Owner(r) == "n3" && ring.New(0, two).Owner(r) == "n1" {
			res = r
		}
	}
	subscribed(t, n3, nil, alice, res)
	if _, held := n3.store.HasResource(res); !held {
		t.Fatal("the list is not at its owner n3")
	}
	restore1 := n1.Believe(two)
	restore2 := n2.Believe(map[string]int{"n1": 1})
	k, err := n2.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "e1", Time: time.Now()})
	if !errors.Is(err, shard.ErrUnavailable) {
		t.Fatalf("a publish on a wrong route answered %d, %v; want UNAVAILABLE", k, err)
	}
	restore1()
	restore2()
	k = 0
	err = untilAvailable(func() (err error) {
		k, err = n2.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "e2", Time: time.Now()})
		return err
	})
	if err != nil || k != 1 {
		t.Fatalf("once the rings agree the publish reached %d (err %v), want 1", k, err)
	}
}

// A stream of a queue that is gone (its node deleted it, or died with
// it) ends QUEUE_NOT_FOUND from any node, so its client makes a new
// queue: n1 sends it to the queue's owner n2, which does not hold it and
// sends it on to a node that may (a past ring's owner), which holds
// nothing and says so. Without hop counts, before streams carried a ring
// identity, the two nodes sent the stream back and forth until the
// reader's node gave up with UNAVAILABLE, and the client retried forever
// (the chaos test's 335 watches of c2's clients never caught up after
// c2's kill -9, with 0 queues re-created).
func TestAttach_QueueGoneIsNotFoundFromEveryNode(t *testing.T) {
	nodes := startNodes(t, 3)
	ctx := context.Background()
	q := newQueue(t, nodes[1], alice)
	if err := nodes[1].DeleteQueue(ctx, alice, q); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := n.Attach(actx, alice, q, 0, &listener{ch: make(chan struct{}, 1)})
		cancel()
		if !errors.Is(err, shard.ErrQueueNotFound) {
			t.Errorf("attach at %s to a deleted queue: %v, %v; want QUEUE_NOT_FOUND", n.Name(), r, err)
		}
		if r != nil {
			r.Close()
		}
	}
}

// A publish whose sender gave up on it is never stamped, even when its
// call reaches the list's holder only later: one that waited in the
// socket of a frozen node, served when it thawed, was stamped over the
// changes published since (gRPC's timeout counts from when the receiver
// reads the call), and watches went back to it.
func TestDeliver_CallPastItsSendersDeadlineIsNotStamped(t *testing.T) {
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	ctx := context.Background()
	res := ownedBy(n1, "n2", "late")
	q := subscribed(t, n2, nil, alice, res)
	err := n1.PushAfterDeadline("n2", &shard.Event{Kind: shard.Changed, Resource: res, Etag: "late", Time: time.Now()})
	if !errors.Is(err, shard.ErrUnavailable) {
		t.Errorf("a fan-out past its sender's deadline answered %v; want UNAVAILABLE", err)
	}
	pg, err := n2.Poll(ctx, alice, q, 0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range pg.Items {
		if it.Etag == "late" {
			t.Fatalf("the queue got the publish its sender gave up on: %+v", pg.Items)
		}
	}
}

type localPubs struct{ allowAll }

func (localPubs) Publish(context.Context, shard.Principal, string, string, []byte) (int, error) {
	return 1, nil
}

// A publish sent to its resource's owner carries a deadline, even when
// its caller set none (a GraphQL mutation's context has none): the owner
// serves it by that deadline, so one that waited in a frozen owner's
// socket is not stamped when the owner thaws.
func TestPublish_SentToTheOwnerCarriesItsDeadline(t *testing.T) {
	ca, caKey := devCA(t)
	var withDeadline, publishes atomic.Int32
	n1 := startNodeWith(t, "n1", ca, caKey, "", func(ctx context.Context, m string) error {
		if strings.HasSuffix(m, "/Publish") {
			publishes.Add(1)
			if md, _ := metadata.FromOutgoingContext(ctx); len(md.Get("meshgate-deadline-ns")) > 0 {
				withDeadline.Add(1)
			}
		}
		return nil
	})
	n2 := startNode(t, "n2", ca, caKey, n1.gossip)
	waitRing(t, []*testNode{n1.testNode, n2.testNode}, 2)
	n2.Publishers(localPubs{})
	res := ownedBy(n1.testNode, "n2", "pub")
	if k, err := n1.Publishers(localPubs{}).Publish(context.Background(), alice, res, "e1", nil); err != nil || k != 1 {
		t.Fatalf("publish at the owner: %d, %v", k, err)
	}
	if publishes.Load() != 1 || withDeadline.Load() != 1 {
		t.Fatalf("%d publishes sent to the owner, %d with a deadline; want 1 and 1", publishes.Load(), withDeadline.Load())
	}
}

// A node the cluster took for dead comes back holding its old copy of a
// list, while the survivors made the list again and delivered newer
// etags through it (review finding 6). Told it was taken for dead, the
// node drops its old copy: a subscribe through it answers the etag of
// the copy made again, which it asks the ring without it for, not the
// old one.
func TestRejoined_OldListIsDroppedNotServed(t *testing.T) {
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	ctx := context.Background()
	res := ownedBy(n1, "n2", "j")
	subscribed(t, n1, nil, alice, res)
	publish(t, n1, res, "old")
	if _, held := n2.store.HasResource(res); !held {
		t.Fatal("the list is not at its owner n2")
	}
	// n2 was taken for dead: n1 made the list again from its queue and
	// delivered a newer etag through it.
	deadAt := time.Now()
	at := uint64(deadAt.UnixNano()) + 1
	n1.store.AddInterest(res, shard.Interest{Node: "n1", Count: 1, Ver: 1 << 40}, shard.Hint{Etag: "new", Pos: shard.Position{Epoch: at, Offset: 1, At: at}})
	n2.RejoinedAt(deadAt)
	if _, held := n2.store.HasResource(res); held {
		t.Fatal("the node taken for dead still holds its old list")
	}
	bob := shard.Principal{User: "bob", Device: "d"}
	q2 := newQueue(t, n2, bob)
	sub, err := n2.Subscribe(ctx, nil, bob, q2, res, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if sub.Etag != "new" {
		t.Errorf("a subscribe through the returned node answered %q, want %q (the list made again)", sub.Etag, "new")
	}
}

// The first call to a node that comes back often fails: its
// connections broke while it was frozen. It must still hear that it was
// taken for dead, or it goes on serving the list it held then (issue
// 12: Rejoined was sent once and its failure ignored).
func TestRejoined_ToldAgainWhenTheFirstCallsFail(t *testing.T) {
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	res := ownedBy(n1, "n2", "r")
	subscribed(t, n1, nil, alice, res)
	if _, held := n2.store.HasResource(res); !held {
		t.Fatal("the list is not at its owner n2")
	}
	n2.RefuseRejoined(2)
	deadAt := time.Now()
	n1.TellRejoined("n2", deadAt)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		// Dropped, or made again since: n2 tells n1, whose interest the
		// old list held, to link again, and n1's link starts a new one.
		if since, held := n2.store.HeldSince(res); !held || since > uint64(deadAt.UnixNano()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("n2 still holds the list it held when it was taken for dead: it never heard it was")
		}
	}
}

// A node told it was taken for dead before it installed any ring (a
// restarted node the others still remember as crashed: WaitReady, its
// first ring not built yet) keeps serving: the chaos test's restarted c2
// panicked on a nil past ring in locate.
func TestRejoined_BeforeAnyRingIsInstalled(t *testing.T) {
	store, err := shard.New(shard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ca, caKey := devCA(t)
	srv, cli, err := certs.TLSFromCA(ca, caKey, "n1")
	if err != nil {
		t.Fatal(err)
	}
	n, err := cluster.New(cluster.Config{Name: "n1", Gossip: "127.0.0.1:0", RPC: "127.0.0.1:0", ServerTLS: srv, ClientTLS: cli, WaitReady: true}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.RejoinedAt(time.Now())
	if _, err := n.DeliverChecked(context.Background(), &shard.Event{Kind: shard.Changed, Resource: "user:alice/r", Etag: "e1", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
}
