package cluster

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
	"meshgate/shard/ring"
)

var stripeSeed = maphash.MakeSeed()

// stripe guards a resource's move against a concurrent local link, which
// would otherwise start a second list here after the first one left.
func (n *Node) stripe(key string) *sync.RWMutex {
	return &n.stripes[maphash.String(stripeSeed, key)%uint64(len(n.stripes))]
}

// give exports keys to node (the Take RPC): each key leaves this store as a
// whole and a tomb remembers where it went, with the state until the taker
// acknowledges it.
func (n *Node) give(r *pb.TakeRequest) *pb.TakeReply {
	to := r.GetNode()
	rep := &pb.TakeReply{}
	if r.GetAck() {
		n.mu.Lock()
		for _, k := range append(r.GetQueues(), r.GetResources()...) {
			if t, ok := n.tombs[k]; ok && t.node == to {
				t.queue, t.resource = nil, nil
				n.tombs[k] = t
			}
		}
		n.mu.Unlock()
		return rep
	}
	if r.GetPrepare() {
		rep.Interest = map[string]int64{}
		for res, k := range n.store.QueueResources(r.GetQueues()) {
			rep.Interest[res] = int64(k)
		}
		return rep
	}
	until := time.Now().Add(tombTTL)
	// mark reports whether key may be exported now; a key already given
	// to the same taker is given again from its tomb (one given to
	// another node is not given).
	// The store is asked before n.mu is taken: n.mu is never held while
	// a store lock is taken (LOCKS.md).
	mark := func(key string) bool {
		held := n.store.Has(key) || n.holdsResource(key)
		n.mu.Lock()
		defer n.mu.Unlock()
		if t, ok := n.tombs[key]; ok && !held {
			switch {
			case t.node == to && t.queue != nil:
				rep.Queues = append(rep.Queues, t.queue)
			case t.node == to && t.resource != nil:
				rep.Resources = append(rep.Resources, t.again())
			}
			return false
		}
		n.tombs[key] = tomb{node: to, until: until}
		return true
	}
	// keep records in key's tomb the state given (nothing given: no tomb).
	keep := func(key string, q *pb.QueueState, r *pb.ResourceState) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if q == nil && r == nil {
			delete(n.tombs, key)
			return
		}
		t := n.tombs[key]
		t.queue, t.resource = q, r
		n.tombs[key] = t
	}
	exported := map[string]*pb.ResourceState{}
	for _, res := range r.GetResources() {
		mu := n.stripe(res)
		mu.Lock()
		if mark(res) {
			var ps *pb.ResourceState // nil: no list here to give
			if st, ok := n.store.ExportResource(res); ok {
				ps = resourceStatePB(st)
				rep.Resources = append(rep.Resources, ps)
				exported[res] = ps
			}
			keep(res, nil, ps)
		}
		mu.Unlock()
	}
	// Marks after the lists left: the deliveries they sent are behind
	// them. Queues go after the marks: ops forwarded for them from now on
	// may wait at the taker for this very hand-off.
	marks := n.outboxMarks()
	var qs []string
	for _, q := range r.GetQueues() {
		if mark(q) {
			qs = append(qs, q)
		}
	}
	n.letGo(to, qs, exported, r.GetCaught())
	for _, q := range qs {
		var ps *pb.QueueState // nil: no queue here to give
		if st, ok := n.store.ExportQueue(q); ok {
			ps = queueStatePB(st)
			rep.Queues = append(rep.Queues, ps)
		}
		keep(q, ps, nil)
	}
	if len(exported) > 0 {
		// Deliveries these lists queued before they left go out first, so
		// the new holder's deliveries follow them. Only those: later ops
		// may wait for this very hand-off at the taker.
		n.flushOutboxes(marks, 2*time.Second)
	}
	n.stats.KeysGiven.Add(uint64(len(rep.Queues) + len(rep.Resources)))
	return rep
}

// letGo readies queues to leave for their taker: the taker recorded
// itself in their resources' lists (caught: each list's position when it
// did; see take), and a list leaving in the same hand-off carries the
// taker's interest (exported). The queues here wait, at most a second,
// for the events their lists stamped before: after those, only the taker
// gets new ones. The taker keeps what arrives for them until they are
// imported (shard.Store.Arriving), and a queue appends an event at
// neither node twice (positions). No call to another node is made here:
// the taker waits for this Take.
func (n *Node) letGo(to string, queues []string, exported map[string]*pb.ResourceState, caught map[string]*pb.Pos) {
	for res, k := range n.store.QueueResources(queues) {
		if ps := exported[res]; ps != nil { // Ver 0: only makes sure the taker is in
			// Under n.mu: the tomb keeps ps, or the copy of it an op
			// reaching the tomb made meanwhile (keepInTomb), and both
			// name the taker.
			in := shard.Interest{Node: to, Count: k}
			n.mu.Lock()
			ps.Nodes = append(ps.Nodes, interestPB(in))
			if t := n.tombs[res]; t.resource != nil && t.resource != ps {
				t.resource.Nodes = append(t.resource.Nodes, interestPB(in))
			}
			n.mu.Unlock()
		}
	}
	want := caughtAt(caught)
	for deadline := time.Now().Add(time.Second); !n.store.Caught(queues, want) && time.Now().Before(deadline); {
		time.Sleep(2 * time.Millisecond)
	}
}

// caughtAt is a take's caught positions (resource → the list's position
// its queues were enlisted at) as shard's.
func caughtAt(caught map[string]*pb.Pos) map[string]shard.Position {
	want := make(map[string]shard.Position, len(caught))
	for res, p := range caught {
		want[res] = shard.Position{Epoch: p.GetEpoch(), Offset: p.GetOffset()}
	}
	return want
}

// relinkLanded links again, as lost, the resources to which queues that
// just landed here subscribe in another epoch than the list they were
// enlisted in (caught).
//
// Invariant: a queue that moves takes its pending relinks with it. Its
// subscription stands in another epoch when its list was lost (its
// holder died, or dropped it as one taken for dead) and made again
// since; the node it came from was to link it again and announce the
// loss (repair, relinkTold), and can no longer once the queue left. The
// link here announces it with the list's etag (a RESYNC), and the
// queue's etag teaches a list that knows none; without it the queue
// learned of it only at the list's next event, or from the audit
// (TestRejoined_AQueueMovingBeforeItsRelinkIsLinkedAgainWhereItLands).
func (n *Node) relinkLanded(queues []string, caught map[string]*pb.Pos) {
	if len(caught) == 0 {
		return
	}
	if lost := n.store.InOtherEpoch(queues, caughtAt(caught)); len(lost) > 0 {
		n.relinking.Add(1) // until the relink ends
		go func() {
			defer n.relinking.Add(-1)
			n.relink(lost, func(string) bool { return true }, true)
		}()
	}
}

// enlist records this node in the lists of the resources that queues
// about to be taken from node subscribe to, except those taken in the
// same hand-off (resources, whose giver adds it), and returns each list's
// position when it did. A list another hand-off is bringing here is
// asked for at its giver, which holds it until that Take: waiting for it
// here could wait for this very hand-off.
func (n *Node) enlist(ctx context.Context, p *peer, queues, resources []string) map[string]*pb.Pos {
	prep, err := p.client.Take(ctx, &pb.TakeRequest{Node: n.cfg.Name, Queues: queues, Prepare: true})
	if err != nil {
		n.log.Debug("hand-off: the queues' resources were not listed", "from", p.name, "err", err)
		return nil
	}
	caught := map[string]*pb.Pos{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16) // links in flight
	for res, k := range prep.GetInterest() {
		if slices.Contains(resources, res) {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			// Ver 0: only makes sure this node is in; the queues' import
			// sends the real count.
			in := shard.Interest{Node: n.cfg.Name, Count: int(k)}
			n.mu.Lock()
			src := n.takingFrom[res]
			n.mu.Unlock()
			var l shard.Linked
			var err error
			if src != "" {
				_, l, err = n.linkAt(ctx, src, res, shard.Hint{}, in, false, n.ring.Load().ID())
				if err != nil && n.enlistOnLanding(res, in) {
					return // recorded as the list lands, or now: it has landed
				}
			} else {
				_, l, err = n.link(ctx, res, shard.Hint{}, in, false, false)
			}
			if err != nil {
				n.log.Debug("hand-off: not recorded in a list before the queues came", "resource", res, "err", err)
				return
			}
			mu.Lock()
			caught[res] = &pb.Pos{Epoch: l.Pos.Epoch, Offset: l.Pos.Offset}
			mu.Unlock()
		})
	}
	wg.Wait()
	return caught
}

// pendingInterest is a queue's interest to record in a list as it lands
// here (enlistOnLanding), unless it lands after until. floor is the
// node's newest interest Ver when it was kept: a word of the node the
// landing list holds with a larger Ver is newer than the enlist.
type pendingInterest struct {
	in    shard.Interest
	floor uint64
	until time.Time
}

// enlistOnLanding records in (a hand-off's Ver 0 interest) in res's list,
// which a take is bringing here and whose giver has let it go already
// (its link failed): as the list lands (landList), or now if it has. It
// reports false if res is no longer in flight here nor held.
//
// Invariant: a queue taken here is in its lists before its old node lets
// it go, even a list on its way here too. Not recorded, the list, landed,
// stamped events for the queue's old node only until the queue's own
// interest came (arrive), and the old node had let the queue go: they
// were lost, then announced by a RESYNC (the churn test's join: "change
// v264 arrived 0 times"); and a list whose only other node then left
// was dropped as empty, and the queues' interest that came next found it
// nowhere, for the 18 s until the audit. Waiting for the list to land
// instead could wait on a take that waits for this one.
func (n *Node) enlistOnLanding(res string, in shard.Interest) bool {
	mu := n.stripe(res)
	mu.Lock() // landList holds it across the import
	defer mu.Unlock()
	if n.holdsResource(res) {
		n.store.Enlist(res, in, n.store.InterestVer())
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inflight[res] == nil {
		return false
	}
	p := n.enlisted[res]
	// The newest enlist's floor: counting a queue too many until its
	// arrival sends the real count costs an event sent for nothing;
	// counting one too few loses its events.
	p.floor = n.store.InterestVer()
	p.in = shard.Interest{Node: in.Node, Count: p.in.Count + in.Count}
	p.until = time.Now().Add(2 * callTimeout)
	n.enlisted[res] = p
	return true
}

// landList imports a list a take brought here, with the interests of
// queues coming here that enlisted in it on its way (enlistOnLanding).
//
// Invariant: the enlist is part of the list that lands, never a second
// step after it, and never outvotes the node's own newer word. Imported
// first, a list whose other entries all count 0 (its last queue left
// while it travelled) was dropped as empty, and the enlist then started
// a list with no etag in a new epoch; and a Ver 0 enlist merged over
// the node's later "0" (its queues came and left before the list landed)
// counted queues the node no longer had, for good.
// TestHandoff_AListLandingWithOnlyAnEnlistKeepsItsStream,
// TestHandoff_AnEnlistOnItsWayDoesNotOutvoteTheNodesNewerWord.
func (n *Node) landList(st *pb.ResourceState) {
	res := st.GetName()
	mu := n.stripe(res)
	mu.Lock() // see rejoined
	defer mu.Unlock()
	rs := resourceStateOf(st)
	n.mu.Lock()
	p, ok := n.enlisted[res]
	delete(n.enlisted, res)
	n.zeroLeftLocked(rs.Nodes)
	n.mu.Unlock()
	if ok && time.Now().Before(p.until) {
		// At its floor: a word of the node sent before the enlist was
		// kept (one waiting for the landing, whenLanded) is older and
		// changes nothing; every later one is newer and wins.
		rs.Nodes = shard.WithEnlist(rs.Nodes, p.in, p.floor)
	}
	n.recheckLater(nil, n.store.ImportResource(rs))
}

// outboxMarks notes how many ops each peer had been given so far.
func (n *Node) outboxMarks() map[*peer]uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	marks := make(map[*peer]uint64, len(n.peers))
	for _, p := range n.peers {
		p.mu.Lock()
		marks[p] = p.queued
		p.mu.Unlock()
	}
	return marks
}

// flushOutboxes waits, at most limit, until every peer has sent the ops it
// had been given when marks were taken.
func (n *Node) flushOutboxes(marks map[*peer]uint64, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for p, m := range marks {
		for p.sentUpTo() < m && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// again is the list a tomb keeps, to be given again or taken back. The
// state may be stale: the taker may have imported it and stamped events
// since (its acknowledgement lost). It goes on in a new epoch, so no
// position is given to two events (shard.Position).
func (t tomb) again() *pb.ResourceState {
	st := proto.Clone(t.resource).(*pb.ResourceState)
	st.Epoch, st.Offset, st.At = shard.NewEpochAbove(st.GetEpoch()), 0, 0
	return st
}

// take moves keys from node to this one. Calls on those keys wait here
// until they arrive.
//
// Invariant (a key given is held by its giver until its taker has it):
// the giver exports keys on the taker's Take and keeps their state in
// its tombs until the taker acknowledges the import. A take that asked
// and did not read the answer (the connection broke, the giver was slow)
// asks again (retake) until the keys land or the giver is gone, and the
// giver gives them again from the tombs to this taker alone; a taker that
// is gone before it acknowledged gets nothing more: its giver takes the
// keys back (takeBack). So keys are never only in a tomb nobody reads.
func (n *Node) take(ctx context.Context, from string, queues, resources []string) error {
	n.store.Arriving(1) // until the keys land: see retake
	asked, err := n.takeOnce(ctx, from, queues, resources)
	if asked && err != nil {
		go n.retake(from, queues, resources) //nolint:gosec // G118: it outlives the Handoff on purpose
	} else {
		n.store.Arriving(-1)
	}
	return err
}

// retake asks from again, with a growing pause, for keys a take asked
// for and did not get, until they land here or from is no longer a
// member (then it takes them back: takeBack).
//
// Invariant: a queue on its way here misses nothing sent here for it
// until it lands, however many times its take asks. This node is in the
// queue's lists since the first try (enlist), and the giver let the queue
// go, so the events stamped meanwhile come here only: they are kept for
// it (shard.Store.Arriving) between the tries too, not only while a take
// call runs. Dropped between two tries, they were announced lost with a
// RESYNC once the queue landed.
func (n *Node) retake(from string, queues, resources []string) {
	defer n.store.Arriving(-1) // take's
	for pause := 500 * time.Millisecond; ; pause = min(2*pause, 8*time.Second) {
		select {
		case <-n.stop:
			return
		case <-time.After(pause):
		}
		if n.peer(from) == nil {
			n.log.Warn("hand-off: the giver is gone before this node got its keys", "from", from)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err := n.takeOnce(ctx, from, queues, resources)
		cancel()
		if err == nil {
			return
		}
	}
}

// takeBack imports again the keys this node gave to a node that is no
// longer a member and had not acknowledged them a callTimeout after
// they were given: it died or left with its take unfinished, and the
// tomb holds the only copy; a list comes back without the taker's
// interest. The queues' subscriptions are then linked again, with a
// RESYNC for those behind their lists (relink): events stamped meanwhile
// went to the taker. It runs before a rebalance (rebalMu held), and
// links holding no lock.
func (n *Node) takeBack() {
	n.mu.Lock()
	var qs []*pb.QueueState
	var rs []shard.ResourceState
	for k, t := range n.tombs {
		if t.queue == nil && t.resource == nil || n.aliveLocked(t.node) || time.Until(t.until) > tombTTL-callTimeout {
			continue
		}
		if t.queue != nil {
			qs = append(qs, t.queue)
		} else {
			st := t.again()
			st.Nodes = slices.DeleteFunc(st.Nodes, func(in *pb.Interest) bool { return in.GetNode() == t.node })
			rs = append(rs, resourceStateOf(st))
			n.zeroLeftLocked(rs[len(rs)-1].Nodes)
		}
		delete(n.tombs, k)
	}
	n.mu.Unlock()
	if len(qs)+len(rs) == 0 {
		return
	}
	for _, st := range rs {
		mu := n.stripe(st.Name)
		mu.Lock() // see rejoined
		n.recheckLater(nil, n.store.ImportResource(st))
		mu.Unlock()
	}
	for _, st := range qs {
		n.store.ImportQueue(queueStateOf(st))
	}
	n.log.Warn("hand-off: took back keys whose taker went away before it had them", "queues", len(qs), "resources", len(rs))
	go n.relink(nil, func(string) bool { return false }, true) // rebalMu is held
}

// takeOnce is one take; asked reports whether the giver was asked for
// the keys (and may have exported them).
func (n *Node) takeOnce(ctx context.Context, from string, queues, resources []string) (asked bool, _ error) {
	start := time.Now()
	done := make(chan struct{})
	// Asked before n.mu is taken (LOCKS.md): a queue imported meanwhile
	// is asked for again, and its giver gives nothing more or a copy
	// ImportQueue refuses.
	absent := slices.DeleteFunc(slices.Clone(queues), n.store.Has)
	n.mu.Lock()
	var qs, rs []string
	for _, k := range absent {
		if n.inflight[k] == nil {
			n.inflight[k] = done
			qs = append(qs, k)
		}
	}
	for _, k := range resources {
		if n.inflight[k] == nil {
			n.inflight[k] = done
			n.takingFrom[k] = from
			rs = append(rs, k)
		}
	}
	n.mu.Unlock()
	release := func(keys []string) { // only this take's marks: another's may follow it
		n.mu.Lock()
		for _, k := range keys {
			if n.inflight[k] == done {
				delete(n.inflight, k)
				delete(n.takingFrom, k)
			}
		}
		n.mu.Unlock()
	}
	defer func() { release(qs); release(rs); close(done) }()
	if len(qs)+len(rs) == 0 {
		return false, nil
	}
	p := n.peer(from)
	if p == nil {
		return false, unavailable(from)
	}
	n.store.Arriving(1)
	defer n.store.Arriving(-1)
	var caught map[string]*pb.Pos
	if len(qs) > 0 {
		ectx, cancel := context.WithTimeout(ctx, callTimeout)
		caught = n.enlist(ectx, p, qs, rs)
		cancel()
	}
	if err := ctx.Err(); err != nil { // nothing was given yet: the giver tries again
		return false, fromStatus(from, err)
	}
	// Once asked, the giver's answer is read even after the Handoff's
	// caller gave up (ctx): the giver exports the keys on the request.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	rep, err := p.client.Take(tctx, &pb.TakeRequest{Node: n.cfg.Name, Queues: qs, Resources: rs, Caught: caught})
	cancel()
	if err != nil {
		n.log.Warn("take failed; asking again", "from", from, "queues", len(qs), "resources", len(rs), "err", err)
		return true, fromStatus(from, err)
	}
	// Lists first, and ops on them may go on: an imported queue tells
	// its lists' holders (perhaps this node) that this node is interested.
	for _, st := range rep.GetResources() {
		n.landList(st)
	}
	release(rs)
	for _, st := range rep.GetQueues() {
		if !n.store.ImportQueue(queueStateOf(st)) {
			n.log.Warn("a queue taken over was already here; kept the one here", "queue", st.GetName())
		}
	}
	n.relinkLanded(qs, caught)
	n.stats.KeysTaken.Add(uint64(len(rep.GetQueues()) + len(rep.GetResources())))
	n.stats.handoff(time.Since(start))
	n.log.Debug("took keys", "from", from, "queues", len(rep.GetQueues()), "resources", len(rep.GetResources()), "in", time.Since(start))
	// The giver may forget the state in its tombs once the keys are here.
	go func() { //nolint:gosec // G118: the acknowledgement outlives the Handoff on purpose
		actx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		_, _ = p.client.Take(actx, &pb.TakeRequest{Node: n.cfg.Name, Queues: qs, Resources: rs, Ack: true})
	}()
	return true, nil
}

// rebalance hands every key this node holds but does not own to its
// owner (which takes it). It returns how many keys are still misplaced.
func (n *Node) rebalance() int {
	n.rebalMu.Lock()
	defer n.rebalMu.Unlock()
	if n.cfg.Gossip == "" {
		return 0
	}
	n.takeBack()
	r := n.ring.Load()
	self := n.cfg.Name
	// A publish remembered for a key this node no longer owns goes to
	// its owner with the keys (shard.Store.ImportUnheld): a late link
	// makes the list there. Not one of a key another node owned in any
	// ring installed since the last rebalance, though it is this node's
	// again now: that node meanwhile may have acknowledged a newer one
	// (which it hands here), and a rebalance reads the ring when it gets
	// rebalMu, while rings may have come and gone during another one's
	// hand-offs. That one is forgotten.
	n.mu.Lock()
	rings := append(n.installedSince, r)
	n.installedSince = nil
	n.mu.Unlock()
	moving := n.store.ForgetUnheld(func(res string) bool {
		return slices.ContainsFunc(rings, func(x *ring.Ring) bool { return x.Owner(res) != self })
	})
	qs, rs := n.store.Keys()
	type keys struct {
		q, r []string
		u    []*pb.Remembered
	}
	groups := map[string]*keys{}
	group := func(o string) *keys {
		g := groups[o]
		if g == nil {
			g = &keys{}
			groups[o] = g
		}
		return g
	}
	for _, q := range qs {
		if o := r.Owner(q); o != "" && o != self {
			group(o).q = append(group(o).q, q)
		}
	}
	for _, res := range rs {
		if o := r.Owner(res); o != "" && o != self {
			group(o).r = append(group(o).r, res)
		}
	}
	for _, u := range moving {
		if o := r.Owner(u.Resource); o != "" && o != self {
			group(o).u = append(group(o).u, rememberedPB(u))
		}
	}
	const chunk = 2000
	left := 0
	for o, g := range groups {
		// The keys still in g after the loop are left misplaced: their
		// owner is not a peer yet, or a hand-off failed.
		for p := n.peer(o); p != nil && len(g.q)+len(g.r)+len(g.u) > 0; {
			cq := g.q[:min(chunk, len(g.q))]
			cr := g.r[:min(chunk-len(cq), len(g.r))]
			cu := g.u[:min(chunk, len(g.u))]
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			_, err := p.client.Handoff(ctx, &pb.HandoffRequest{Node: self, Queues: cq, Resources: cr, Remembered: cu})
			cancel()
			if err != nil {
				n.log.Warn("hand-off failed; will retry", "to", o, "err", err)
				break
			}
			g.q, g.r, g.u = g.q[len(cq):], g.r[len(cr):], g.u[len(cu):]
		}
		// Remembered publishes not handed are put back, for the next
		// rebalance to hand (they are not keys: none is counted left).
		for _, u := range g.u {
			n.store.ImportUnheld(rememberedOf(u))
		}
		left += len(g.q) + len(g.r)
	}
	return left
}

// peerLeaving takes a node that announced its leave out of the ring.
func (n *Node) peerLeaving(node string, done bool) {
	n.mu.Lock()
	was, known := n.leaving[node]
	n.leaving[node] = done || was
	if known {
		n.mu.Unlock()
		return
	}
	r := n.ringLocked()
	n.installLocked(r)
	n.mu.Unlock()
	n.log.Info("peer leaving", "peer", node, "epoch", r.Epoch(), "nodes", r.Nodes())
	go n.rebalance()
}

// Leave hands everything this node holds to the other nodes and leaves the
// cluster, within ctx's deadline. Calls keep being served (forwarded)
// meanwhile; streams move with their queues.
func (n *Node) Leave(ctx context.Context) error {
	if n.cfg.Gossip == "" {
		return nil
	}
	start := time.Now()
	n.mu.Lock()
	n.draining = true
	r := n.ringLocked()
	n.installLocked(r)
	n.mu.Unlock()
	tell := func(ctx context.Context, done bool) {
		askPeers(ctx, n, func(ctx context.Context, p *peer) (*pb.Empty, error) {
			return p.client.Leaving(ctx, &pb.LeavingRequest{Node: n.cfg.Name, Done: done})
		})
	}
	tell(ctx, false)
	left := -1
	for ctx.Err() == nil && len(r.Nodes()) > 0 {
		if left = n.rebalance(); left == 0 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Ops still queued here go out before we say we are gone. Relays
	// reading from here end when the gRPC server stops; their readers
	// follow the tombs to the new holders.
	n.flushOutboxes(n.outboxMarks(), 5*time.Second)
	// Invariant: a node that handed everything off says it is done, even
	// once ctx is spent (the flush may have used it up): told nothing, the
	// others take it for crashed and repair every list. With keys still
	// here it says nothing: they die with it, and the repair is due.
	// With no node to hand them to (an empty ring), no one repairs.
	if left == 0 || len(r.Nodes()) == 0 {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		tell(dctx, true)
		cancel()
	}
	n.log.Info("left the cluster", "handoff", time.Since(start), "misplaced_left", max(left, 0))
	err := n.ml.Leave(2 * time.Second)
	// Streams and calls in flight finish until ctx ends.
	done := make(chan struct{})
	go func() { n.grpcSrv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.grpcSrv.Stop()
	}
	return err
}

var _ shard.Peers = (*Node)(nil)
