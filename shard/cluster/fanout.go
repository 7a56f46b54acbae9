package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// Deliver hands ev to its resource's holder, which appends it to every
// subscribed queue. It returns how many queues it reached (or was sent to).
// The plugin host calls it for every event.
func (n *Node) Deliver(ev *shard.Event) int {
	k, _ := n.DeliverChecked(context.Background(), ev)
	return k
}

// DeliverChecked is Deliver that reports an event that did not reach its
// resource's subscriber list: its holder could not be reached, the rings
// of the nodes on the way disagreed, or the list may be in the making
// after a crash (shard.ErrUnavailable). The plugin host answers a publish
// with that error, so the publisher tries again.
//
// Invariant: a publish that answers success has been stamped by its list,
// or no list of its resource exists: the resource's owner, on a ring
// every node on the way shared, holds none, and every node that may hold
// one (locate's invariants) answered that it does not. Then every
// subscriber gets it or a RESYNC (see shard.Store.AnnounceTails). ctx
// bounds every wait on the way (callTimeout if it has no deadline), and
// its end stops the event before it is stamped: a publish its caller gave
// up on, and tried again, is not stamped long after the retry, over the
// newer changes since.
func (n *Node) DeliverChecked(ctx context.Context, ev *shard.Event) (int, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	return n.deliver(ctx, ev, false)
}

// deliver fans ev out where its list is held (see locate; remote: it came
// from another node on this node's ring).
func (n *Node) deliver(ctx context.Context, ev *shard.Event, remote bool) (int, error) {
	if ev.ID == 0 {
		ev.ID = rand.Uint64() | 1 // names this publication on every node it crosses
	}
	there := func(node string, id uint64) (int, error) { return n.deliverAt(ctx, node, ev, id) }
	return serve(ctx, n, ev.Resource, n.holdsResource, remote, there, func(at place) (int, bool, error) {
		if err := ctx.Err(); err != nil {
			return 0, false, fmt.Errorf("%w: the publish of %s was given up on: %v", shard.ErrUnavailable, ev.Resource, err) //nolint:errorlint // UNAVAILABLE is the contract
		}
		k, held := n.store.DeliverHere(ev)
		if !held && n.movedMeanwhile(ev.Resource, at) {
			return 0, true, nil
		}
		if !held && n.repairedLately() {
			// A node died lately (or this node, taken for dead, dropped
			// its lists): the list may have died with it and be in the
			// making again from its queues' side (relink, clients
			// subscribing again). "No list" is not "no
			// subscribers" yet: the publisher tries again.
			return 0, false, fmt.Errorf("%w: the subscriber list of %s may be being made again after a node failed; retry", shard.ErrUnavailable, ev.Resource)
		}
		return k, false, nil
	})
}

// deliverAt sends ev to node for its list, on ring identity id.
func (n *Node) deliverAt(ctx context.Context, node string, ev *shard.Event, id uint64) (int, error) {
	p := n.peer(node)
	if p == nil {
		return 0, unavailable(node)
	}
	rep, err := p.client.Push(ctx, &pb.PushRequest{Ops: []*pb.Op{{Event: eventPB(ev), Fanout: true, Ring: id}}})
	if err = fromStatus(node, err); err != nil {
		if !errors.Is(err, errNotHeld) {
			n.log.Warn("event not delivered", "resource", ev.Resource, "peer", node, "err", err)
		}
		return 0, err
	}
	n.stats.forwarded(node, 1)
	return int(rep.GetReached()), nil
}

// lostListWait is how long after a crash repair a list not found may be
// one that died with the crashed node and is being made again. Ring
// identity does not cover it: the nodes agree, and the list is gone.
const lostListWait = 2 * time.Second

// repairedLately reports whether a crash repair ran here within
// lostListWait, or a rejoin that dropped lists.
func (n *Node) repairedLately() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.repairedAt.IsZero() && time.Since(n.repairedAt) < lostListWait
}

// noteRepaired records that lists held here are being made again now
// (see repairedLately). n.mu not held.
func (n *Node) noteRepaired() {
	n.mu.Lock()
	n.repairedAt = time.Now()
	n.mu.Unlock()
}

// applyOp applies op, an asynchronous change of a resource's list
// (interest, learn), where the list is held: here (applyHere), at
// the node locate names, or, at an owner that does not hold the list, at
// every node that may (only the holder applies it). remote: op came from
// another node on this node's ring. Nobody answers an op: one that
// reaches a node that was asked and holds no list is dropped there; at
// an owner with nobody to ask it is applied here (an interest may start
// the list). One that finds its list in flight here is applied once it
// lands (whenLanded).
func (n *Node) applyOp(op *pb.Op, remote bool) { n.applyOpIn(op, remote, false) }

// applyOpIn is applyOp; chained: op is applied by linkAsOwner's
// goroutine, after the link it waited behind.
func (n *Node) applyOpIn(op *pb.Op, remote, chained bool) {
	res := cmp.Or(op.GetInterestResource(), op.GetLearnResource())
	if res == "" || !chained && n.behindLink(res, op) {
		return
	}
	at, err := n.locate(opNow, res, n.holdsResource, remote)
	if errors.Is(err, context.Canceled) {
		n.whenLanded(res, func() { n.applyOp(op, remote) })
		return
	}
	if err != nil {
		if errors.Is(err, errNotHeld) && op.GetInterestResource() != "" {
			n.keepInTomb(res, interestOf(op.GetInterest()))
		}
		return
	}
	if at.node == "" && len(at.ask) == 0 {
		n.applyHere(op, res)
		return
	}
	if in := interestOf(op.GetInterest()); at.node == "" && op.GetInterestResource() != "" && in.Count > 0 {
		// This node owns res and holds no list: the nodes it would ask
		// each drop an op for a list they do not hold, and a node with
		// queues for res would be in no list. A link asks them in turn
		// and else starts the list here (serve), as a subscribe's does.
		if chained {
			n.linkOwned(res, in, remote)
		} else {
			n.linkAsOwner(res, op, in, remote)
		}
		return
	}
	op.Ring = at.ring
	if at.node != "" {
		at.ask = []string{at.node}
	}
	for _, node := range at.ask {
		if p := n.peer(node); p != nil {
			p.push(op)
		}
	}
}

// behindLink queues op after the link linkAsOwner runs for res, if one
// runs, and reports whether it did.
func (n *Node) behindLink(res string, op *pb.Op) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	ops, ok := n.ownerOps[res]
	if ok {
		n.ownerOps[res] = append(ops, op)
	}
	return ok
}

// linkAsOwner starts res's list through a link (in, op's interest) on
// its own goroutine, then applies the ops on res that came meanwhile, in
// the order they came.
//
// Invariant: a node's interest ops on a resource are applied at its
// owner in the order they reach it, a link in between included. A
// node's "0 queues" that came while its "1 queue" was linking went to
// the nodes asked, which dropped it (they hold no list), and the link
// then counted the queue for good: the list sent the node events for
// nothing, and never became empty.
// TestInterest_AtAnOwnerThatHoldsNoListKeepsTheNewestWord. The ops that
// waited are applied as this node's own (not remote): on the ring they
// came on, this node owns res, where the two are alike; on a ring
// installed since, they go to res's owner there.
func (n *Node) linkAsOwner(res string, op *pb.Op, in shard.Interest, remote bool) {
	n.mu.Lock()
	if ops, ok := n.ownerOps[res]; ok { // one started since applyOpIn looked
		n.ownerOps[res] = append(ops, op)
		n.mu.Unlock()
		return
	}
	n.ownerOps[res] = nil
	n.mu.Unlock()
	go func() { //nolint:gosec // G118: an op's apply outlives its caller
		n.linkOwned(res, in, remote)
		drain(&n.mu, n.ownerOps, res, func(op *pb.Op) { n.applyOpIn(op, false, true) })
	}()
}

// drain applies, in order and with mu released, the items m keeps under
// key (m guarded by mu), those added meanwhile included, then removes key:
// while key is in m, senders add to it rather than act themselves (send,
// behindLink), so nothing overtakes what was kept.
func drain[T any](mu *sync.Mutex, m map[string][]T, key string, apply func(T)) {
	for {
		mu.Lock()
		items := m[key]
		if len(items) == 0 {
			delete(m, key)
			mu.Unlock()
			return
		}
		m[key] = nil
		mu.Unlock()
		for _, x := range items {
			apply(x)
		}
	}
}

// linkOwned records in in res's list through a link, for at most
// callTimeout or until the node stops.
//
// Invariant: an interest an owner took on is recorded unless the node
// stops or callTimeout passes. The op has no sender waiting to try it
// again, so a link cut by membership moving (UNAVAILABLE: a node asked
// is on a ring installed since) is tried again here, as this node's own
// on the ring it has now; dropped, its node's queues got nothing until
// the audit (TestInterest_AnOwnersLinkCutByARingChangeIsTriedOnTheNewRing).
func (n *Node) linkOwned(res string, in shard.Interest, remote bool) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		_, _, err := n.link(ctx, res, shard.Hint{}, in, false, remote)
		if err == nil {
			return
		}
		if !errors.Is(err, shard.ErrUnavailable) || ctx.Err() != nil {
			n.log.Debug("interest not recorded", "resource", res, "node", in.Node, "err", err)
			return
		}
		remote = false
		select {
		case <-ctx.Done():
		case <-time.After(retryGap):
		}
	}
}

// keepInTomb records in, a node's interest in res's list that reached
// this node (asked) after it gave the list away, in the list its tomb
// keeps until the taker acknowledges it.
//
// Invariant: an interest op on a list given and not yet acknowledged is
// applied to the list wherever it is, the giver's tomb included. Between
// a take whose answer was lost and its retake, the list is held nowhere
// and in flight nowhere: its owner (the taker) asks the giver, which
// holds only the tomb, and dropped the op there; the list given again
// from the tomb kept the count the op replaced for ever (a node that
// had no queue in it any more went on getting its events, after it left
// too: the churn test's list that kept counting n2).
// TestHandoff_InterestOpOnAListBetweenATakeAndItsRetakeIsNotLost. The
// state given is never changed in place (it may be being sent): the
// tomb keeps a copy.
func (n *Node) keepInTomb(res string, in shard.Interest) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.tombs[res]
	if !ok || t.resource == nil {
		return
	}
	st := proto.Clone(t.resource).(*pb.ResourceState)
	i := slices.IndexFunc(st.GetNodes(), func(x *pb.Interest) bool { return x.GetNode() == in.Node })
	switch {
	case i < 0:
		st.Nodes = append(st.Nodes, interestPB(in))
	case in.Ver > st.Nodes[i].GetVer():
		st.Nodes[i] = interestPB(in)
	case in.Ver == 0 && st.Nodes[i].GetCount() == 0:
		st.Nodes[i] = interestPB(shard.Interest{Node: in.Node, Count: in.Count, Ver: st.Nodes[i].GetVer()})
	default:
		return
	}
	t.resource = st
	n.tombs[res] = t
}

// revokeFromTomb fans ev, a revoke of a list this node gave away that
// reached it (asked: the list's owner holds none), out to the nodes the
// list its tomb keeps counts, this one included, and returns how many
// queues here it reached; ok is false if the tomb keeps no list.
//
// Invariant: a revoke of a list given and not yet acknowledged reaches
// the list's queues wherever the list is, the giver's tomb included (as
// an interest op does: keepInTomb). Between a take whose answer was lost
// and its retake, the list is held nowhere to stamp it; it goes out
// unstamped (a zero position revokes every subscription it covers, see
// shard's Event.revokes). Dropped there, the revoked principal's queues
// kept their subscriptions and went on getting the resource's changes
// (TestRevoke_OnAListBetweenATakeAndItsRetakeReachesItsQueues).
func (n *Node) revokeFromTomb(ev *shard.Event) (reached int, ok bool) {
	n.mu.Lock()
	t := n.tombs[ev.Resource]
	n.mu.Unlock()
	if t.resource == nil {
		return 0, false
	}
	var others []string
	for _, in := range t.resource.GetNodes() {
		switch {
		case in.GetCount() == 0:
		case in.GetNode() == n.cfg.Name:
			reached = n.store.DeliverLocal(ev)
		default:
			others = append(others, in.GetNode())
		}
	}
	n.Forward(ev, others)
	return reached, true
}

// applyHere applies op to res's list here. A list held nowhere learns
// nothing: the next subscribe starts it.
func (n *Node) applyHere(op *pb.Op, res string) {
	switch {
	case op.GetInterestResource() != "":
		n.store.SetInterest(res, interestOf(op.GetInterest()))
	case n.holdsResource(res): // a learn
		n.store.AddInterest(res, shard.Interest{}, shard.Hint{Etag: op.GetLearnEtag(), Pos: shard.Position{Epoch: op.GetLearnEpoch(), Offset: op.GetLearnOffset(), At: op.GetLearnAt()}})
	}
}

// Revoke removes user's (and device's) subscriptions to resource,
// wherever their queues are: the resource's list stamps the revoke
// (shard.RevokeEvent) and sends it on as it does a change. It returns
// how many queues at the list's holder lost a subscription. A revoke
// has nobody to try it again (a plugin's event stream, a re-check), so
// one that finds the cluster moving (shard.ErrUnavailable) is tried
// again here, for at most callTimeout.
func (n *Node) Revoke(resource, user, device string) int {
	return n.revoke(shard.RevokeEvent(resource, user, device))
}

// revoke is Revoke of ev, a revoke. One with an ID (made again for a
// peer gone, see handOn) is given its old position by a list that
// stamped it lately, so it covers no subscription made after it.
func (n *Node) revoke(ev *shard.Event) int {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	for {
		k, err := n.DeliverChecked(ctx, ev) // the same ID each time: stamped once
		if !errors.Is(err, shard.ErrUnavailable) {
			return k
		}
		select {
		case <-ctx.Done():
			n.log.Warn("revoke not delivered: the cluster kept moving", "resource", ev.Resource, "user", ev.From.User, "device", ev.From.Device, "err", err)
			return 0
		case <-n.stop:
			return 0
		case <-time.After(retryGap):
		}
	}
}

// ResourcesWithScheme lists the resources of scheme whose lists are held here.
func (n *Node) ResourcesWithScheme(scheme string) map[string]string {
	return n.store.ResourcesWithScheme(scheme)
}

// Link implements shard.Peers: it records this node's interest in
// resource's list at its holder.
func (n *Node) Link(ctx context.Context, resource string, in shard.Interest, hint shard.Hint) (shard.Linked, error) {
	_, l, err := n.link(ctx, resource, hint, in, false, false)
	return l, err
}

// Learn implements shard.Peers: resource's holder learns hint.
func (n *Node) Learn(resource string, hint shard.Hint) {
	n.applyOp(&pb.Op{LearnResource: resource, LearnEtag: hint.Etag, LearnEpoch: hint.Pos.Epoch, LearnOffset: hint.Pos.Offset, LearnAt: hint.Pos.At}, false)
}

func (n *Node) linkAt(ctx context.Context, where, resource string, hint shard.Hint, in shard.Interest, catchUp bool, id uint64) (bool, shard.Linked, error) {
	p := n.peer(where)
	if p == nil {
		return false, shard.Linked{}, unavailable(where)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rep, err := p.client.Link(ctx, &pb.LinkRequest{Resource: resource, Interest: interestPB(in), Etag: hint.Etag, HintEpoch: hint.Pos.Epoch, HintOffset: hint.Pos.Offset, HintAt: hint.Pos.At, HintUnknown: hint.Unknown, CatchUp: catchUp, Ring: id})
	n.stats.forwarded(where, 1)
	return rep.GetAdded(), shard.Linked{Pos: shard.Position{Epoch: rep.GetEpoch(), Offset: rep.GetOffset(), At: rep.GetAt()}, Etag: rep.GetEtag(), EtagUnknown: rep.GetEtagUnknown()}, fromStatus(where, err)
}

// Interest implements shard.Peers: resource's holder records in.
func (n *Node) Interest(resource string, in shard.Interest) {
	n.applyOp(&pb.Op{InterestResource: resource, Interest: interestPB(in)}, false)
}

// opNow is a context already done: locate, given it, answers its error
// at once where it would wait for a key in flight to this node.
var opNow = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// whenLanded runs apply, an asynchronous op on key (interest, learn)
// that found key in flight to this node, once that hand-off
// ends, on its own goroutine.
//
// Invariant: an asynchronous op never waits for a key in flight on the
// path that made or received it. Those paths are a give's export of a
// queue (leaveLocal), a take's import (arrive, Arriving), and the Push
// handler that applies a peer's outbox in order; a take in flight waits
// for its giver's Take, and the giver may be waiting on one of those
// paths: a node taking a list from one node while giving queues of that
// list to another, whose take is in turn enlisting through this node, is
// a wait cycle across three nodes that only the takes' 10 s deadlines
// broke (the churn test's join overlapping a leave). Ops on a list are
// idempotent or ordered by Interest.Ver and positions, so applying one
// later, after the list landed, changes nothing but when.
func (n *Node) whenLanded(key string, apply func()) {
	n.mu.Lock()
	ch := n.inflight[key]
	n.mu.Unlock()
	go func() {
		if ch != nil {
			select {
			case <-ch:
			case <-n.stop:
				return
			}
		}
		apply()
	}()
}

// Forward implements shard.Peers: one op per interested node, carrying
// the event once; the node appends it to its own subscribers. Nothing
// waits for what was sent on an old route: positions order it at the
// queue. A node not known here yet (gossip is slower than the hand-off
// that made it interested) gets its ops once it is, in order (see
// waitForPeer); one that is gone gets nothing: its interest goes with it.
func (n *Node) Forward(ev *shard.Event, nodes []string) {
	e := eventPB(ev)
	for _, node := range nodes {
		n.send(node, &pb.Op{Event: e})
	}
}

// send queues op for node, or keeps it until node is a member.
func (n *Node) send(node string, op *pb.Op) {
	n.mu.Lock()
	if w, ok := n.waiting[node]; ok {
		n.waiting[node] = append(w, op)
		n.mu.Unlock()
		return
	}
	_, crashed := n.crashed[node]
	n.mu.Unlock()
	if p := n.peer(node); p != nil {
		p.push(op)
		return
	}
	if crashed {
		return
	}
	n.mu.Lock()
	w, ok := n.waiting[node]
	n.waiting[node] = append(w, op)
	n.mu.Unlock()
	if !ok {
		go n.waitForPeer(node)
	}
}

// waitForPeer hands the ops kept for node to its outbox once it is a
// member, or drops them after settleTime.
func (n *Node) waitForPeer(node string) {
	for deadline := time.Now().Add(settleTime); time.Now().Before(deadline); {
		select {
		case <-n.stop:
			return
		case <-time.After(retryGap):
		}
		if p := n.peer(node); p != nil {
			// Ops sent meanwhile still join the list, so the order holds;
			// they are pushed with n.mu released (push may hand on).
			drain(&n.mu, n.waiting, node, p.push)
			return
		}
	}
	n.mu.Lock()
	k := len(n.waiting[node])
	delete(n.waiting, node)
	n.mu.Unlock()
	n.stats.Dropped.Add(uint64(k))
	n.log.Warn("ops dropped: their node did not become a member", "peer", node, "ops", k)
}

const retryGap = 50 * time.Millisecond

// tailTick is how often the lists held here are asked whether their
// tail is due to be announced (shard.Store.AnnounceTails).
const tailTick = 250 * time.Millisecond

// link records in (a node's interest) in resource's list where it is held
// (see locate; remote: the call came from another node on this node's
// ring), and reports whether the node was not interested yet, with the
// list's state when it joined. An owner whose list nobody holds starts
// it; a node asked for a list it does not hold answers errNotHeld.
// catchUp (a relink's): the holder offers the node its last event again
// if the node was in the list already, in order behind the events it
// sent it (shard.Store.OfferTail), so its queues that are behind catch up.
//
// Invariant: a link served here adds to the list held here, or starts
// one, under the resource's stripe (read), which give holds (write) from
// the tomb's making to the export: a link never starts a second list
// after the first one left, nor beside one in flight here. A list in
// flight here is waited for (locate) holding no stripe: a give of a list
// on the same stripe waits for the stripe, and the take bringing this one
// may need it (its enlist links here).
func (n *Node) link(ctx context.Context, resource string, hint shard.Hint, in shard.Interest, catchUp, remote bool) (bool, shard.Linked, error) {
	type linked struct {
		added bool
		l     shard.Linked
	}
	there := func(node string, id uint64) (linked, error) {
		added, l, err := n.linkAt(ctx, node, resource, hint, in, catchUp, id)
		return linked{added, l}, err
	}
	r, err := serve(ctx, n, resource, n.holdsResource, remote, there, func(at place) (linked, bool, error) {
		mu := n.stripe(resource)
		mu.RLock()
		defer mu.RUnlock()
		if !n.holdsResource(resource) && n.movedMeanwhile(resource, at) {
			return linked{}, true, nil
		}
		added, l := n.store.AddInterest(resource, in, hint)
		if catchUp && !added {
			n.store.OfferTail(resource, in.Node)
		}
		return linked{added, l}, false, nil
	})
	return r.added, r.l, err
}
