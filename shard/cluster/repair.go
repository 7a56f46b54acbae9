package cluster

import (
	"context"
	"slices"
	"time"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// repair rebuilds what crashed nodes held: the crashed nodes are dropped
// from the lists here (their queues died with them), and this node links
// its interest again in every list, with a RESYNC for its queues in the
// lists that lived there. Every list, not only those: one a crashed node
// held without owning it (a hand-off to or from it not finished, a list
// it took over and had not handed back) would otherwise stay lost until
// membership settles, and publishes meanwhile find no list.
func (n *Node) repair(old interface{ Owner(string) string }, crashed []string) {
	start := time.Now()
	n.mu.Lock()
	for _, c := range crashed {
		n.crashed[c] = start
	}
	n.repairedAt = start
	n.mu.Unlock()
	n.rememberUnheld()
	dropped := n.store.ForgetNodes(func(node string) bool { return slices.Contains(crashed, node) })
	lost, _ := n.relink(nil, func(key string) bool { return slices.Contains(crashed, old.Owner(key)) }, true)
	n.stats.Repairs.Add(1)
	n.stats.handoff(time.Since(start))
	n.log.Info("repaired after crash", "crashed", crashed, "resync", lost, "dropped", dropped, "in", time.Since(start))
	n.noteRepaired()
}

// rejoined: the others took this node for dead (it was frozen or cut off)
// at deadAt (unix nanoseconds, the sender's clock) and dropped it from
// their lists. Its interest in every list is linked again, with a
// RESYNC: changes may have been missed.
//
// Invariant: a list a node held when the cluster took it for dead is not
// served after it returns. The survivors made it again (repair) from
// their queues, with the newest etag they delivered, and published to it
// since; the old copy would answer a subscribe with an older etag and
// stamp changes over newer ones. So every list held here since before
// deadAt (shard.Store.HeldSince: made here, imported or merged before
// it) is dropped under its stripe, before the relink: this node, owning
// a key it no longer holds, then asks the owners of the ring without it
// (remembered as a past ring), which hold the copy made again, and a
// list nobody made again starts from the queues here. A take's import of a list takes the same
// stripe, so a list handed here meanwhile is imported before the check
// (it came after deadAt: kept) or lands after the drop.
//
// Invariant: a list that came here after deadAt is the live one and is
// kept, whatever its epoch. The survivors hand this node its lists as
// soon as it is in their ring again, at the same time as they tell it
// it was taken for dead (rebuild), and a list imported whole keeps the
// epoch it had where it lived (possibly long before deadAt). Dropped by
// its epoch, it took every other node's interest with it: only this
// node's was linked again, and the others' queues got no event until
// the post-settle audit found them missing from it (issue 12: the
// chaos and churn runs' audits found RESYNCs, all "missing").
//
// Invariant: a node whose interest a dropped list held hears of it and
// links again (an Op's relink). Not every member took this node for
// dead: a suspicion may reach some and not others (memberlist's
// refutation overtakes it), and one that never did saw no ring change,
// so it links nothing again by itself; its queues got nothing until the
// post-settle audit found them missing (issue 12: the churn test's
// audit RESYNCs). Told, it links where the list is held now, and its
// queues get a RESYNC if it was missing there (relinkOne): every event,
// or one RESYNC, never silence. From the first drop until lostListWait
// after this node's own relink, a publish that finds no list is tried
// again (repairedAt, deliver): the list may be in the making from those
// queues, and a publish answered as reaching nobody meanwhile would
// leave them a RESYNC with an older etag
// (TestRejoined_InterestOfANodeThatNeverTookItForDeadIsLinkedAgain).
// The telling is asked again until the node answers (askUntilAnswered):
// an op in the outbox is dropped after a few failed pushes, and the
// connection of a node just thawed often is broken. A node told links
// late (its links may wait for this one): the publishes acknowledged
// meanwhile with no list to reach are remembered where they found none
// (rememberUnheld), so its queues' RESYNC names the newest of them
// (TestRejoined_ToldNodeLinkingLateGetsWhatWasPublishedMeanwhile).
func (n *Node) rejoined(deadAt uint64) {
	n.mu.Lock()
	n.changedAt = time.Now() // the cluster changed without this node: the audit waits (beatLocked)
	if n.others != nil {     // nil: no ring installed yet (a node just restarted), nothing to remember
		n.history = append([]pastRing{{r: n.others, until: time.Now().Add(historyTTL)}}, n.history...)
	}
	n.mu.Unlock()
	// A publish remembered here before is as stale as the lists dropped
	// below: the others acknowledged newer ones meanwhile.
	n.store.ForgetUnheld(func(string) bool { return true })
	n.rememberUnheld()
	_, lists := n.store.Keys()
	dropped := 0
	told := map[string][]string{} // node → resources whose dropped list held its interest
	for _, res := range lists {
		mu := n.stripe(res)
		mu.Lock()
		if since, held := n.store.HeldSince(res); held && since < deadAt {
			n.noteRepaired()
			st, _ := n.store.ExportResource(res)
			dropped++
			for _, in := range st.Nodes {
				if in.Count > 0 && in.Node != n.cfg.Name {
					told[in.Node] = append(told[in.Node], res)
				}
			}
		}
		mu.Unlock()
	}
	for node, res := range told {
		go n.askUntilAnswered(node, settleTime, "tell a node to link again", func(ctx context.Context, p *peer) error {
			_, err := p.client.Push(ctx, &pb.PushRequest{Ops: []*pb.Op{{Relink: res}}})
			return err
		})
	}
	n.log.Warn("the cluster took this node for dead: linking every subscription again", "dropped", dropped, "told", len(told))
	k, _ := n.relink(nil, func(string) bool { return true }, true)
	if dropped > 0 {
		n.noteRepaired()
	}
	n.stats.Repairs.Add(1)
	n.log.Info("relinked", "resync", k)
}

// rememberUnheld makes the store remember, for historyTTL, the publishes
// that find no list here (shard.Store.RememberUnheld): lists may be in
// the making from other nodes' queues, whose links come when those
// nodes learn of the loss, seconds apart.
func (n *Node) rememberUnheld() { n.store.RememberUnheld(time.Now().Add(historyTTL)) }

// relinkTold links again this node's interest in the lists of res, which
// the node that held them dropped (rejoined there). This node's ring
// did not change, so nothing else here would: the audit is made due
// (changedAt) as after a membership change, as a safety net for a link
// that keeps failing.
func (n *Node) relinkTold(res []string) {
	n.mu.Lock()
	n.changedAt = time.Now()
	n.mu.Unlock()
	n.rememberUnheld()
	if d := n.relinkDelay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	n.relink(res, func(string) bool { return false }, true)
}

// audit records this node's interest again in the list of every resource
// its queues subscribe to, once membership has settled after a change:
// every node knows its own queues, so an interest lost in a hand-off
// comes back, with a RESYNC for the queues here (they may have missed a
// change), and a queue behind a list it is in catches up (relinkOne). It
// should find nothing; it counts the RESYNCs for missing interest. Those
// of a catch-up are the gap repair's, at the queues, when the list's
// tail comes (shard.Store.OfferTail).
func (n *Node) audit() {
	start := time.Now()
	missing, resources := n.relink(nil, func(string) bool { return false }, false)
	if missing == 0 {
		n.log.Debug("audit: this node is in every list it should be", "resources", resources, "in", time.Since(start))
		return
	}
	n.stats.Audited.Add(uint64(missing))
	n.log.Warn("audit: this node was missing from lists; RESYNC with the list's etag", "resync_missing", missing, "in", time.Since(start))
}

// relink links again this node's interest in the list of every resource
// its queues subscribe to (of those in only, if only is not nil), and
// returns how many RESYNCs it appended to subscriptions whose list was
// lost (lost(res), or this node missing from it), and how many resources
// it linked. retry: a link that fails is tried again in the background
// (a repair's: the other survivors may not have dropped the dead node yet
// and route to it).
//
// Invariant (the gateway remembers what it delivered): a lost list's
// RESYNC carries the list's etag after the re-link, and the re-link tells
// the list the newest etag the queues here delivered (each subscription
// knows its last one and that event's position); the publisher's Current
// is used only when no queue here holds an etag a list stamped. A list
// rebuilt after its holder died so starts from the newest etag any queue
// saw, never from "" for a resource that was published, and never from an
// older etag a publisher remembers.
func (n *Node) relink(only []string, lost func(string) bool, retry bool) (resynced, resources int) {
	n.relinking.Add(1)
	defer n.relinking.Add(-1)
	locals := n.store.LocalInterests()
	if only != nil {
		all := locals
		locals = make(map[string]shard.LocalInterest, len(only))
		for _, res := range only {
			if li, ok := all[res]; ok {
				locals[res] = li
			}
		}
	}
	var affected []string
	for res := range locals {
		if lost(res) {
			affected = append(affected, res)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*callTimeout)
	defer cancel()
	etags := n.current(ctx, affected)
	for res, li := range locals {
		isLost := lost(res)
		if isLost {
			if e := etags[res]; e != "" && li.Hint.Pos.At == 0 {
				// The publisher's word, when no queue here holds an etag a
				// list stamped. Never over one that is: the new owner's
				// publisher may keep etags in memory and know only the
				// publishes it saw while it owned the resource.
				li.Hint.Etag = e
			}
			// Nobody here knows an etag: a list this link makes again
			// remembers that its "" is not "never published", and a fresh
			// subscribe to it answers etagUnknown.
			li.Hint.Unknown = li.Hint.Etag == ""
		}
		r, err := n.relinkOne(ctx, res, li, isLost)
		resynced += r
		if err == nil {
			continue
		}
		n.log.Debug("relink: link failed", "resource", res, "err", err)
		if isLost {
			// The loss is announced now, with the newest etag known here;
			// the retry's RESYNC brings the list's own.
			//
			// Invariant: the announcement never goes back behind what a
			// queue delivered. The hint is what the queues held when
			// LocalInterests looked; an event of the old list may have
			// reached one since (while the publisher was asked and the
			// links tried), so the RESYNC carries the hint's position and
			// Store.Resync leaves alone a subscription past it. Without
			// one it was appended after that event: CHANGED e18, then
			// RESYNC e17.
			resynced += n.store.Resync(res, shard.Linked{Etag: li.Hint.Etag, Pos: li.Hint.Pos}, li.Queues)
		}
		if retry {
			n.relinking.Add(1) // until relinkLater ends
			go n.relinkLater(res, li, isLost)
		}
	}
	return resynced, len(locals)
}

// relinkOne links this node's interest li in res's list. If the node was
// not in it, or it was lost, the queues get a RESYNC from the list's
// position. Else the list's holder offers this node its last event again
// (catchUp), behind every event it sent here before, and a queue behind
// the list catches up by position (one that missed the last event, and
// its tail announcements, learns it now; see shard.Store.OfferTail): the
// position the link answers counts events that may still be on their way
// here, so the queues are not moved to it. It returns how many RESYNCs
// it appended.
func (n *Node) relinkOne(ctx context.Context, res string, li shard.LocalInterest, lost bool) (resynced int, err error) {
	added, l, err := n.link(ctx, res, li.Hint, li.Interest, !lost, false)
	switch {
	case err != nil:
		return 0, err
	case added || lost:
		// What its queues missed may include revokes: they are asked
		// again (see recheck).
		n.recheckLater([]string{res}, nil)
		return n.store.Resync(res, l, li.Queues), nil
	}
	return 0, nil
}

// relinkLater retries a repair's link until it succeeds or 30 s pass.
// Once it succeeds, the subscriptions go on from the list's real position:
// events the list stamped meanwhile did not reach them.
func (n *Node) relinkLater(res string, li shard.LocalInterest, lost bool) {
	defer n.relinking.Add(-1)
	var err error
	for range 60 {
		select {
		case <-n.stop:
			return
		case <-time.After(500 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err = n.relinkOne(ctx, res, li, lost)
		cancel()
		if err == nil {
			return
		}
	}
	n.log.Warn("repair: linking failed for 30 s; the subscriptions wait for the audit", "resource", res, "err", err)
}
