package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"meshgate/shard"
	"meshgate/shard/ring"
)

type allowAll struct{}

func (allowAll) Authorize(_ context.Context, _ shard.Principal, res, _ string) (string, error) {
	return "etag-" + res, nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startRing starts k nodes n1…nk in this process and waits until every
// one sees all of them.
func startRing(t *testing.T, k int) []*Node {
	t.Helper()
	ca, caKey, _, err := EnsureDevCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*Node
	var seed []string
	for i := range k {
		name := fmt.Sprintf("n%d", i+1)
		store, err := shard.New(shard.Config{})
		if err != nil {
			t.Fatal(err)
		}
		srv, cli, err := TLSFromCA(ca, caKey, name)
		if err != nil {
			t.Fatal(err)
		}
		gossip := freeAddr(t)
		n, err := New(Config{Name: name, Gossip: gossip, RPC: freeAddr(t), Join: seed, ServerTLS: srv, ClientTLS: cli, Auth: allowAll{}, ProbeInterval: 200 * time.Millisecond}, store)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close(); store.Close() })
		if seed == nil {
			seed = []string{gossip}
		}
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range nodes {
		for len(n.Ring().Nodes()) != k {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %v", n.Name(), n.Ring().Nodes())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}

// believe installs on n a ring of weights that no other node uses, with
// no memory of past rings: a node that has not caught up with membership.
func believe(n *Node, weights map[string]int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.ring.Load()
	n.installLocked(n.viewOf(ring.New(old.Epoch()+1, weights)), old)
	n.history = nil
}

// A publish routed on one ring to a node on another must not answer
// success unstamped: n2 believes n1 owns the resource, n1 (which has not
// learned of n3) believes it owns it and knows of no list, and the list
// is at n3, its owner on the ring the cluster agrees on. Before ring
// identity, n1 served "no list" as success with 0 subscribers.
func TestDeliver_WrongRouteIsUnavailableNotSuccess(t *testing.T) {
	nodes := startRing(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	one := map[string]int{"n1": 1}
	two := map[string]int{"n1": 1, "n2": 1}
	res := ""
	for i := 0; res == ""; i++ {
		r := fmt.Sprintf("user:alice/w%d", i)
		if n3.Ring().Owner(r) == "n3" && ring.New(0, two).Owner(r) == "n1" {
			res = r
		}
	}
	alice := shard.Principal{User: "alice", Device: "phone"}
	q, err := n3.CreateQueue(ctx, alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n3.Subscribe(ctx, nil, alice, q.Name, res, "", ""); err != nil {
		t.Fatal(err)
	}
	if !n3.holdsResource(res) {
		t.Fatal("the list is not at its owner n3")
	}
	real1, real2 := n1.ring.Load(), n2.ring.Load()
	believe(n1, two)
	believe(n2, one)
	k, err := n2.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "e1", Time: time.Now()})
	if !errors.Is(err, shard.ErrUnavailable) {
		t.Fatalf("a publish on a wrong route answered %d, %v; want UNAVAILABLE", k, err)
	}
	// Membership converges: the retried publish reaches the list.
	for _, x := range []struct {
		n *Node
		v *view
	}{{n1, real1}, {n2, real2}} {
		x.n.mu.Lock()
		x.n.installLocked(x.v, x.n.ring.Load())
		x.n.mu.Unlock()
	}
	if k, err := n2.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "e2", Time: time.Now()}); err != nil || k != 1 {
		t.Fatalf("once the rings agree the publish reached %d (err %v), want 1", k, err)
	}
}

// A call from another ring waits for this node to install that ring, and
// is woken by the install; a ring never installed answers UNAVAILABLE.
func TestSameRing_WaitsForTheSendersRing(t *testing.T) {
	store, err := shard.New(shard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	n, err := New(Config{Name: "n1"}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	next := n.viewOf(ring.New(1, map[string]int{"n1": 1, "n2": 2}))
	done := make(chan error, 1)
	go func() { done <- n.sameRing(ctx, next.id) }()
	n.mu.Lock()
	n.installLocked(next, n.ring.Load())
	n.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatalf("a call on the ring just installed: %v", err)
	}
	other := n.viewOf(ring.New(2, map[string]int{"n1": 2, "n2": 2})) // other weights: another identity
	if other.id == next.id {
		t.Fatal("two rings with other weights share an identity")
	}
	if err := n.sameRing(ctx, other.id); !errors.Is(err, shard.ErrUnavailable) {
		t.Fatalf("a call on a ring never installed: %v, want UNAVAILABLE", err)
	}
}

// Review finding 6: a node the cluster took for dead comes back holding
// its old copy of a list, while the survivors made the list again and
// delivered newer etags through it. Told it was taken for dead, the node
// drops its old copy: a subscribe through it answers the etag of the
// copy made again (asked at the owner it displaced), not the old one.
func TestRejoined_OldListIsDroppedNotServed(t *testing.T) {
	nodes := startRing(t, 2)
	n1, n2 := nodes[0], nodes[1]
	ctx := context.Background()
	res := ""
	for i := 0; res == ""; i++ {
		if r := fmt.Sprintf("user:alice/j%d", i); n1.Ring().Owner(r) == "n2" {
			res = r
		}
	}
	alice := shard.Principal{User: "alice", Device: "phone"}
	q1, err := n1.CreateQueue(ctx, alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n1.Subscribe(ctx, nil, alice, q1.Name, res, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.DeliverChecked(ctx, &shard.Event{Kind: shard.Changed, Resource: res, Etag: "old", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if !n2.holdsResource(res) {
		t.Fatal("the list is not at its owner n2")
	}
	// n2 was taken for dead: n1 made the list again from its queue and
	// delivered a newer etag through it.
	deadAt := uint64(time.Now().UnixNano())
	n1.store.AddInterest(res, shard.Interest{Node: "n1", Count: 1, Ver: 1 << 40}, shard.Hint{Etag: "new", Pos: shard.Position{Epoch: deadAt + 1, Offset: 1, At: deadAt + 1}})
	n2.rejoined(deadAt)
	if n2.holdsResource(res) {
		t.Fatal("the node taken for dead still holds its old list")
	}
	bob := shard.Principal{User: "bob", Device: "d"}
	q2, err := n2.CreateQueue(ctx, bob, 0)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := n2.Subscribe(ctx, nil, bob, q2.Name, res, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if sub.Etag != "new" {
		t.Errorf("a subscribe through the returned node answered %q, want %q (the list made again)", sub.Etag, "new")
	}
}
