package cluster

import (
	"context"
	"slices"
	"sync"
	"time"

	"meshgate/shard"
)

// repair rebuilds what crashed nodes held: they are dropped from the
// lists here (their queues died with them), and every subscription here
// is linked again at once (relink). A list that lived on a crashed node
// is made again at its new holder from every survivor's interest; one a
// crashed node held without owning it (a hand-off to or from it not
// finished) is made again too, so publishes do not find it missing until
// membership settles.
func (n *Node) repair(old interface{ Owner(string) string }, crashed []string) {
	start := time.Now()
	n.mu.Lock()
	for _, c := range crashed {
		n.crashed[c] = start
	}
	n.repairedAt = start
	n.mu.Unlock()
	dropped := n.store.DropNodes(func(node string) bool { return slices.Contains(crashed, node) })
	k := n.relink(func(res string) bool { return slices.Contains(crashed, old.Owner(res)) })
	n.mu.Lock()
	n.repairedAt = time.Now()
	n.mu.Unlock()
	n.stats.handoff(time.Since(start))
	n.log.Info("repaired after crash", "crashed", crashed, "resync", k, "dropped", dropped, "in", time.Since(start))
}

// rejoined: the others took this node for dead (it was frozen or cut off)
// at deadAt (a wall-clock time in unix nanoseconds, the sender's) and
// dropped it from their lists. Its interest in every list is linked
// again, with a RESYNC: changes may have been missed.
//
// Invariant: a list a node held when the cluster took it for dead is not
// served after it returns. The survivors made it again (repair) from
// their queues, with the newest etag they delivered, and published to
// it since; the old copy would answer a subscribe with an older etag and
// stamp changes a watch has seen newer ones of. So every list here made
// before deadAt (its epoch: the wall-clock time it was made or merged)
// is dropped, under its stripe, before the relink: this node, owning a
// key it no longer holds, then asks the owner on the ring without it
// (remembered as a past ring), which holds the copy made again (locate),
// and a list nobody made again is started from the queues here. Lists
// made or taken here since are kept.
func (n *Node) rejoined(deadAt uint64) {
	n.mu.Lock() // the others ran on the ring without this node: remember it
	n.history = append([]pastRing{{r: n.viewOf(n.ring.Load().without), until: time.Now().Add(historyTTL)}}, n.history...)
	n.mu.Unlock()
	_, lists := n.store.Keys()
	dropped := 0
	for _, res := range lists {
		mu := n.stripe(res)
		mu.Lock()
		if e, held := n.store.ListEpoch(res); held && e < deadAt {
			n.store.ExportResource(res)
			dropped++
		}
		mu.Unlock()
	}
	n.log.Warn("the cluster took this node for dead: linking every subscription again", "dropped", dropped)
	n.relink(func(string) bool { return true })
}

// audit records this node's interest again in the list of every resource
// its queues subscribe to, once membership has settled after a change:
// every node knows its own queues, so an interest lost in a hand-off
// comes back, with a RESYNC for the queues here (they may have missed a
// change). It should find nothing; it counts what it repairs.
func (n *Node) audit() { n.relink(nil) }

// relink links this node's interest again in the list of every resource
// its queues subscribe to, and returns how many RESYNCs it appended. A
// queue whose node was not in the list (added) gets a RESYNC; one already
// in it is brought up to the list's position (settleLink). lost (nil for
// the audit) names the lists that may have died (their holder crashed,
// or took this node for dead): a link that fails for one of them is
// announced at once; with lost set, every failed link is retried in the
// background (relinkLater), since a crashed node may also have held
// lists it did not own.
//
// Invariant (the gateway remembers what it delivered): a link tells the
// list the newest etag the queues here delivered (each subscription knows
// its last one and that event's position), and the RESYNC carries the
// list's etag after it; the publisher's Current is asked only for a lost
// list no queue here holds a stamped etag of. A list made again after its
// holder died so starts from the newest etag any queue saw, never from
// "" for a resource that was published, and never from an older etag a
// publisher remembers.
func (n *Node) relink(lost func(string) bool) int {
	start := time.Now()
	locals := n.store.LocalInterests()
	ctx, cancel := context.WithTimeout(context.Background(), 2*callTimeout)
	defer cancel()
	var unknown []string // lost lists whose etag no queue here knows
	for res, li := range locals {
		if lost != nil && lost(res) && li.Hint.Pos.At == 0 {
			unknown = append(unknown, res)
		}
	}
	etags := n.current(ctx, unknown)
	resynced, missing, behind := 0, 0, 0
	var failed []string
	for res, li := range locals {
		if e := etags[res]; e != "" {
			li.Hint.Etag = e
		}
		added, l, err := n.link(ctx, res, li.Hint, li.Interest, false)
		if err != nil {
			n.log.Debug("relink: link failed", "resource", res, "err", err)
			if lost == nil {
				continue // the next audit tries again
			}
			// Another node may not have seen the change yet and route to
			// the dead one: linking is idempotent, so try again. The loss
			// of a list that may have died is announced now, with the
			// newest etag known here at its position: a queue that has
			// appended a later one since is left alone (Resync).
			if lost(res) {
				resynced += n.store.Resync(res, shard.Linked{Etag: li.Hint.Etag, Pos: li.Hint.Pos}, li.Queues)
			}
			failed = append(failed, res)
			continue
		}
		if added {
			missing++
		}
		r, b := n.settleLink(res, l, added, li)
		resynced, behind = resynced+r, behind+b
	}
	if len(failed) > 0 {
		go n.relinkLater(failed)
	}
	if missing+behind > 0 {
		n.stats.Repairs.Add(1)
	}
	if lost == nil && missing+behind > 0 {
		n.log.Warn("audit: subscriptions were missing from or behind their lists; linked again with RESYNC", "resources", missing, "behind", behind, "resync", resynced+behind, "in", time.Since(start))
	}
	return resynced + behind
}

// settleLink applies a link of this node's interest li at l: if the node
// was not in the list (added), its queues get a RESYNC; else they are
// brought up to the list's position, and catch up if they are behind (one
// that missed the last event, and its tail announcements, learns it now).
// It returns both counts.
func (n *Node) settleLink(res string, l shard.Linked, added bool, li shard.LocalInterest) (resynced, behind int) {
	if added {
		return n.store.Resync(res, l, li.Queues), 0
	}
	return 0, n.store.CatchUp(res, l, li.Queues)
}

// relinkLater retries a repair's failed links until they succeed or 30 s
// pass, reading this node's interest afresh each round: a link made late
// carries the newest etag the queues here delivered by then, never the
// one they had when the repair began (a list it starts would begin from
// that, and its RESYNC go back). Once a link succeeds, the subscriptions
// go on from the list's real position (settleLink).
func (n *Node) relinkLater(failed []string) {
	var mu sync.Mutex
	var err error
	for round := 0; round < 60 && len(failed) > 0; round++ {
		select {
		case <-n.stop:
			return
		case <-time.After(500 * time.Millisecond):
		}
		locals := n.store.LocalInterests()
		var left []string
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16) // links in flight
		for _, res := range failed {
			li, ok := locals[res]
			if !ok {
				continue // no queue here subscribes to it any more
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				defer cancel()
				added, l, e := n.link(ctx, res, li.Hint, li.Interest, false)
				if e == nil {
					n.settleLink(res, l, added, li)
					return
				}
				mu.Lock()
				left, err = append(left, res), e
				mu.Unlock()
			})
		}
		wg.Wait()
		failed = left
	}
	if len(failed) > 0 {
		n.log.Warn("repair: linking failed for 30 s; the subscriptions wait for the audit", "resources", len(failed), "err", err)
	}
}

var _ shard.Peers = (*Node)(nil)
