package cluster

import (
	"context"
	"slices"
	"time"

	"meshgate/shard"
)

// repair rebuilds what crashed nodes held: this node links its interest
// again in every list that lived there, at its new holder, with a RESYNC
// for its queues carrying the newest etag they delivered; the crashed
// nodes are dropped from the lists here (their queues died with them).
func (n *Node) repair(old interface{ Owner(string) string }, crashed []string) {
	n.mu.Lock()
	for _, c := range crashed {
		n.crashed[c] = time.Now()
	}
	n.repairedAt = time.Now()
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.repairedAt = time.Now()
		n.mu.Unlock()
	}()
	dead := func(key string) bool { return slices.Contains(crashed, old.Owner(key)) }
	n.relink(dead, crashed)
	// A list a crashed node held without owning it (a hand-off to or
	// from it not finished, a list it took over and had not handed back)
	// is not among those, and would stay lost until membership settles:
	// publishes meanwhile find no list. So every other subscription here
	// is linked again too, as the audit does: a lost list is made again
	// now, and a queue behind its list catches up.
	n.auditAll(true)
}

// relinkLater retries a repair's link until membership settles. Once it
// succeeds, the subscriptions go on from the list's real position (a
// RESYNC with its etag): the failed attempt announced the loss with no
// position, and events the list stamped meanwhile did not reach them.
func (n *Node) relinkLater(res string, hint shard.Hint, li shard.LocalInterest, err error) {
	for range 60 {
		select {
		case <-n.stop:
			return
		case <-time.After(500 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		var l shard.Linked
		_, l, err = n.link(ctx, res, hint, li.Interest, false)
		cancel()
		if err == nil {
			n.store.Resync(res, l, li.Queues)
			return
		}
	}
	n.log.Warn("repair: linking failed for 30 s; the subscriptions wait for their clients", "resource", res, "err", err)
}

// rejoined: the others took this node for dead (it was frozen or cut off)
// and dropped it from their lists. Its interest in every list is linked
// again, with a RESYNC: changes may have been missed.
func (n *Node) rejoined() {
	n.log.Warn("the cluster took this node for dead: linking every subscription again")
	n.relink(func(string) bool { return true }, nil)
}

// relink links again the subscriptions of the queues here to resources
// for which dead is true, and puts a RESYNC in each.
//
// Invariant (the gateway remembers what it delivered): the RESYNC carries
// the list's etag after the re-link, and the re-link tells the list the
// newest etag the queues here delivered (each subscription knows its last
// one and that event's position); the publisher's Current is used only
// when no queue here holds an etag a list stamped. A list rebuilt after
// its holder died so starts from the newest etag any queue saw, never
// from "" for a resource that was published, and never from an older
// etag a publisher remembers.
func (n *Node) relink(dead func(string) bool, crashed []string) {
	start := time.Now()
	dropped := 0
	if crashed != nil {
		dropped = n.store.DropNodes(func(node string) bool { return slices.Contains(crashed, node) })
	}
	locals := n.store.LocalInterests()
	var affected []string
	for res := range locals {
		if dead(res) {
			affected = append(affected, res)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*callTimeout)
	defer cancel()
	etags := n.current(ctx, affected)
	resynced := 0
	for _, res := range affected {
		li := locals[res]
		hint := li.Hint
		if e := etags[res]; e != "" && hint.Pos.At == 0 {
			// The publisher's word, when no queue here holds an etag a
			// list stamped. Never over one that is: the new owner's
			// publisher may keep etags in memory and know only the
			// publishes it saw while it owned the resource, and its
			// answer cannot be ordered against delivered etags.
			hint.Etag = e
		}
		_, l, err := n.link(ctx, res, hint, li.Interest, false)
		if err != nil {
			// Another node may not have seen the change yet and route
			// to the dead one: linking is idempotent, so try again. The
			// loss is announced now, with the newest etag known here.
			go n.relinkLater(res, hint, li, err)
			l = shard.Linked{Etag: hint.Etag}
		}
		resynced += n.store.Resync(res, l, li.Queues)
	}
	n.stats.Repairs.Add(1)
	if crashed == nil {
		n.log.Info("relinked", "resources", len(affected), "resync", resynced, "in", time.Since(start))
		return
	}
	n.stats.handoff(time.Since(start))
	n.log.Info("repaired after crash", "crashed", crashed, "resources", len(affected), "resync", resynced, "dropped", dropped, "in", time.Since(start))
}

var _ shard.Peers = (*Node)(nil)

// audit records this node's interest again in the list of every resource
// its queues subscribe to, once membership has settled after a change:
// every node knows its own queues, so an interest lost in a hand-off
// comes back, with a RESYNC for the queues here (they may have missed a
// change). It should find nothing; it counts what it repairs.
func (n *Node) audit() { n.auditAll(false) }

// auditAll is the audit; retry: a link that fails is tried again in the
// background (a repair's: the other survivors may not have dropped the
// dead node yet and route to it).
func (n *Node) auditAll(retry bool) {
	start := time.Now()
	locals := n.store.LocalInterests()
	ctx, cancel := context.WithTimeout(context.Background(), 2*callTimeout)
	defer cancel()
	k, missing, behind := 0, 0, 0
	for res, li := range locals {
		// The hint is what the queues here delivered, as relink's: a list
		// the audit re-creates (it was lost) starts from the newest etag
		// they saw, and its RESYNC never carries "" for a published
		// resource. A list that learned a later etag keeps its own.
		added, l, err := n.link(ctx, res, li.Hint, li.Interest, false)
		if err != nil {
			n.log.Debug("audit: link failed", "resource", res, "err", err)
			if retry {
				go n.auditLater(res, li)
			}
			continue
		}
		if added {
			missing++
		}
		r, b := n.settleLink(res, l, added, li)
		k, behind = k+r, behind+b
	}
	if behind > 0 {
		n.stats.Repairs.Add(1)
		n.log.Warn("audit: subscriptions were behind their lists; RESYNC with the list's etag", "resync", behind)
	}
	if missing == 0 {
		n.log.Debug("audit: this node is in every list it should be", "resources", len(locals), "in", time.Since(start))
		return
	}
	n.stats.Repairs.Add(1)
	n.log.Warn("audit: this node was missing from subscriber lists; linked again with RESYNC", "resources", missing, "resync", k, "in", time.Since(start))
}

// settleLink applies an audit's link of this node's interest li at l: if
// the node was not in the list (added), its queues get a RESYNC; else
// they are brought up to the list's position, and catch up if they are
// behind (one that missed the last event, and its tail announcements,
// learns it now). It returns both counts.
func (n *Node) settleLink(res string, l shard.Linked, added bool, li shard.LocalInterest) (resynced, behind int) {
	if added {
		return n.store.Resync(res, l, li.Queues), 0
	}
	return 0, n.store.CatchUp(res, l, li.Queues)
}

// auditLater retries a repair's audit link until it succeeds or 30 s
// pass, as relinkLater does.
func (n *Node) auditLater(res string, li shard.LocalInterest) {
	var err error
	for range 60 {
		select {
		case <-n.stop:
			return
		case <-time.After(500 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		var added bool
		var l shard.Linked
		added, l, err = n.link(ctx, res, li.Hint, li.Interest, false)
		cancel()
		if err == nil {
			n.settleLink(res, l, added, li)
			return
		}
	}
	n.log.Warn("repair: linking failed for 30 s; the subscriptions wait for the audit", "resource", res, "err", err)
}
