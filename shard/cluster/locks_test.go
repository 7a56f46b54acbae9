package cluster

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// TestLockOrder_FanOutAndGiveDoNotDeadlock drives, on one node and the
// same resource at once, the paths that took a resource's lock and the
// node's lock in opposite orders: fan-out of events (the list's lock held
// while routing to a subscriber whose route changed), giving the list
// away to another node (the node's lock held while asking the store
// whether the key is held) and linking subscribers (a writer on the
// list). They must all finish; a deadlock fails the test after 30 s with
// every goroutine's stack.
func TestLockOrder_FanOutAndGiveDoNotDeadlock(t *testing.T) {
	n, store := loneNode(t)
	const res = "user:alice/locks"
	subscribedAt(t, n, shard.Principal{User: "alice", Device: "d"}, res, "e0") // a local subscriber
	var ver atomic.Uint64
	remote := func(i int) shard.Interest { // another node's interest
		return shard.Interest{Node: fmt.Sprint("c", i%2), Count: 1 + i%3, Ver: ver.Add(1)}
	}
	store.AddInterest(res, remote(0), shard.Hint{})
	stop := make(chan struct{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { // fan-out
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				store.SetInterest(res, remote(i)) // another node's interest changes
				store.Deliver(&shard.Event{Kind: shard.Changed, Resource: res, Etag: fmt.Sprint("v", i)})
			}
		})
	}
	wg.Go(func() { // a writer on the list
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			store.AddInterest(res, remote(i), shard.Hint{})
		}
	})
	for range 2 {
		wg.Go(func() { // the list is given away and comes back
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rep := n.give(&pb.TakeRequest{Node: "b", Resources: []string{res}})
				for _, st := range rep.GetResources() {
					store.ImportResource(resourceStateOf(st))
				}
				store.AddInterest(res, remote(i), shard.Hint{})
			}
		})
	}
	go func() {
		time.Sleep(3 * time.Second)
		close(stop)
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		n.Close()
		store.Close()
	case <-time.After(30 * time.Second):
		// Deadlocked goroutines hold the locks Close needs: report and
		// stop the test binary here rather than hang in the cleanup.
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "%s\n", buf[:runtime.Stack(buf, true)])
		panic("deadlock: fan-out, give and link did not finish in 30 s (stacks above)")
	}
}
