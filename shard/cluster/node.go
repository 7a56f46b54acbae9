package cluster

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/grpc"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
	"meshgate/shard/ring"
)

// Config describes one node.
type Config struct {
	// Name is the node's unique name in the cluster. Required.
	Name string
	// Gossip is the host:port memberlist binds (UDP and TCP). Empty: a
	// single node that joins nothing.
	Gossip string
	// GossipAdvertise is the host:port peers reach Gossip at. Default Gossip.
	GossipAdvertise string
	// RPC is the host:port the node-to-node gRPC service listens on.
	RPC string
	// RPCAdvertise is the host:port peers reach RPC at. Default RPC.
	RPCAdvertise string
	// Join lists gossip addresses of existing members (any subset).
	Join []string
	// Weight is the node's share of the ring relative to others: 1–16. Default 1.
	Weight int
	// GossipKeys encrypt gossip (AES-GCM, 16, 24 or 32 bytes each); the
	// first encrypts, all decrypt. Empty: gossip travels in clear.
	GossipKeys [][]byte
	// ServerTLS and ClientTLS secure node-to-node RPCs (mutual TLS with
	// the cluster CA). Required with Gossip.
	ServerTLS, ClientTLS *tls.Config
	// Auth authorizes subscriptions at the queue's holder. Nil: the
	// publishers given to Node.Publishers, asked at the resource's owner.
	Auth shard.Authorizer
	// Current asks the publishers for resources' current etags, for the
	// RESYNC notifications of a repair. Nil: RESYNC carries an empty etag.
	Current func(ctx context.Context, resources []string) map[string]string
	// Logger: default discard.
	Logger *slog.Logger
	// ProbeInterval is memberlist's failure-probe period. Default 1 s;
	// a crashed node is declared dead a few intervals later.
	ProbeInterval time.Duration
	// Intercept, if set, runs before every node-to-node RPC this node
	// sends (fault injection); an error fails the call.
	Intercept func(ctx context.Context, method string) error
	// WaitReady: the node joins as a member (it forwards every call) but
	// owns no key, on its own ring or anyone's, until SetReady: a node
	// whose publishers are not up must not be asked to serve resources.
	WaitReady bool
}

const (
	historyTTL   = 2 * time.Minute  // how long a past ring's owners are asked for keys
	ringWait     = time.Second      // how long a call from another ring waits for this node to install it
	settleTime   = 15 * time.Second // after a ring change, nodes may disagree this long
	tombTTL      = 2 * time.Minute  // how long a node forwards keys it handed off
	rebalanceGap = 5 * time.Second  // periodic hand-off of misplaced keys
	rejoinGap    = 15 * time.Second // periodic re-join of seeds
	callTimeout  = 10 * time.Second
)

// Node is one member of a cluster, wrapping its store. Safe for concurrent
// use. The locks and their order are in shard/LOCKS.md.
type Node struct {
	cfg   Config
	log   *slog.Logger
	store *shard.Store

	ring atomic.Pointer[ring.Ring]

	// mu guards the fields below it up to metaMu. No store lock is taken
	// while it is held.
	mu         sync.Mutex
	members    map[string]member // alive members as gossip reports them, self included
	leaving    map[string]bool   // nodes that said they stop owning keys; true once done
	history    []pastRing        // newest first
	installed  chan struct{}     // closed when the next ring is installed (see sameRing)
	peers      map[string]*peer  // clients by node name
	tombs      map[string]tomb   // keys handed off → where
	inflight   map[string]chan struct{}
	takingFrom map[string]string // lists in flight → the node giving them
	// enlisted are interests of queues on their way here in lists on
	// their way here too, to record as the lists land (see enlist).
	enlisted map[string]pendingInterest
	// ownerOps are, per resource this node owns and started a list of
	// through a link still running (see linkAsOwner), the ops that came
	// meanwhile, in order: nil while none.
	ownerOps map[string][]*pb.Op
	waiting  map[string][]*pb.Op  // ops for nodes not members yet (see send)
	crashed  map[string]time.Time // nodes repaired as dead, by when
	left     map[string]time.Time // nodes that left gracefully, by when (see forgetLeft)
	// installedSince are the rings installed since the last rebalance
	// forgot the remembered publishes of keys this node does not own
	// (see rebalance): a key away in any of them is forgotten.
	installedSince []*ring.Ring
	// repairedAt is when this node last started or finished a crash
	// repair, or a rejoin that dropped lists: until lostListWait after
	// it, a list not found may be one being made again (see deliver).
	repairedAt time.Time
	draining   bool
	epoch      uint64
	changedAt  time.Time
	auditedAt  time.Time
	beat       time.Time       // when this node was last seen running (see beatLocked)
	others     *ring.Ring      // the ring installed last, without this node (see locate)
	pubs       LocalPublishers // this node's plugin host, for routed calls
	// recheckDue are resources whose subscriptions here are due a
	// re-check, recheckOf principals due one (wherever their queues
	// are), and rechecking is whether one runs (see recheckLater).
	recheckDue map[string]bool
	recheckOf  map[shard.Subscriber]bool
	rechecking bool

	// metaMu guards metas: members' metadata, copied in memberlist's
	// callbacks (under memberlist's lock). Only admit.mu is taken under it.
	metaMu sync.Mutex
	metas  map[string][]byte

	// stripes order a resource's hand-off (write) against links into its
	// list here (read); see stripe.
	stripes [64]sync.RWMutex
	// rebalMu lets one rebalance run at a time.
	rebalMu sync.Mutex

	admit admission // members whose identity is verified (admit.go)

	ml      *memberlist.Memberlist
	grpcSrv *grpc.Server
	joined  atomic.Bool
	ready   atomic.Bool // may own keys (see Config.WaitReady)
	changed chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	stats   Stats

	refuseRejoined atomic.Int32 // Rejoined calls still to refuse: a test's fault (export_test.go)
	relinkDelay    atomic.Int64 // how long a relink op waits before it runs: a test's fault

	// relinking counts this node's relinks under way (a crash repair's,
	// a rejoin's, a take-back's, a repair's retries): see tick.
	relinking atomic.Int32
}

type member struct {
	rpc    string
	weight int
	ready  bool // owns keys; a member not ready only forwards
}

type pastRing struct {
	r     *ring.Ring
	until time.Time
}

type tomb struct {
	node  string
	until time.Time
	// The state given, kept until the taker acknowledges it, so a Take
	// whose reply was lost can be asked again.
	queue    *pb.QueueState
	resource *pb.ResourceState
}

type meta struct {
	RPC    string `json:"rpc"`
	Weight int    `json:"w"`
	// Unready: the member owns no key yet (its publishers are starting).
	Unready bool `json:"u,omitempty"`
}

// New makes a node around store; Start joins the cluster.
func New(cfg Config, store *shard.Store) (*Node, error) {
	if cfg.Name == "" {
		return nil, errors.New("cluster: node name is required")
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	cfg.Weight = cmp.Or(cfg.Weight, 1)
	if cfg.Weight < 1 || cfg.Weight > ring.MaxWeight {
		return nil, fmt.Errorf("cluster: weight must be 1-%d", ring.MaxWeight)
	}
	cfg.ProbeInterval = cmp.Or(cfg.ProbeInterval, time.Second)
	cfg.GossipAdvertise = cmp.Or(cfg.GossipAdvertise, cfg.Gossip)
	cfg.RPCAdvertise = cmp.Or(cfg.RPCAdvertise, cfg.RPC)
	if cfg.Gossip != "" && (cfg.RPC == "" || cfg.ServerTLS == nil || cfg.ClientTLS == nil) {
		return nil, errors.New("cluster: a gossip address needs an RPC address and cluster TLS")
	}
	for _, k := range cfg.GossipKeys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return nil, fmt.Errorf("cluster: a gossip key is %d bytes; want 16, 24 or 32", l)
		}
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger.With("component", "cluster", "node", cfg.Name), store: store,
		members:    map[string]member{cfg.Name: {rpc: cfg.RPCAdvertise, weight: cfg.Weight, ready: !cfg.WaitReady}},
		leaving:    map[string]bool{},
		peers:      map[string]*peer{},
		metas:      map[string][]byte{},
		tombs:      map[string]tomb{},
		inflight:   map[string]chan struct{}{},
		takingFrom: map[string]string{},
		enlisted:   map[string]pendingInterest{},
		ownerOps:   map[string][]*pb.Op{},
		waiting:    map[string][]*pb.Op{},
		crashed:    map[string]time.Time{},
		left:       map[string]time.Time{},
		admit:      admission{m: map[string]admitState{}},
		installed:  make(chan struct{}),
		changed:    make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	n.ready.Store(!cfg.WaitReady)
	if cfg.WaitReady && cfg.Gossip != "" {
		n.ring.Store(ring.New(0, map[string]int{}))
	} else {
		n.ring.Store(ring.New(0, map[string]int{cfg.Name: cfg.Weight}))
	}
	store.SetPeers(n, cfg.Name)
	n.joined.Store(cfg.Gossip == "") // a single node joins nothing
	return n, nil
}

// SetReady lets the node own keys (see Config.WaitReady): it tells the
// other members and takes its place in the ring. Call it once its
// publishers are up.
func (n *Node) SetReady() {
	if n.ready.Swap(true) {
		return
	}
	if n.ml != nil {
		if err := n.ml.UpdateNode(5 * time.Second); err != nil {
			n.log.Warn("telling the cluster this node is ready", "err", err)
		}
	}
	n.log.Info("ready: owning keys")
	n.membershipChanged()
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Store is the node's own store.
func (n *Node) Store() *shard.Store { return n.store }

// Ring is the node's current view of the ring.
func (n *Node) Ring() *ring.Ring { return n.ring.Load() }

// Joined reports whether the node is part of its cluster: it joined a seed
// (or needs none) and is not draining.
func (n *Node) Joined() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.joined.Load() && !n.draining
}

// Start serves node-to-node RPCs, joins the cluster and keeps the ring in
// step with membership. A failed join is retried in the background.
func (n *Node) Start(ctx context.Context) error {
	if n.cfg.Gossip == "" {
		return nil
	}
	mc, err := n.memberlistConfig() // before serveRPC: a bad address leaves no server behind
	if err != nil {
		return err
	}
	if err := n.serveRPC(); err != nil {
		return err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		n.grpcSrv.Stop()
		return fmt.Errorf("cluster: gossip: %w", err)
	}
	n.ml = ml
	n.wg.Add(3)
	go n.loop()
	// The last event of a list is sent again to the other nodes interested
	// in it, so one lost on the way is never left unannounced (see
	// shard/position.go).
	go n.every(tailTick, n.store.AnnounceTails)
	go n.every(n.cfg.ProbeInterval/4, n.heartbeat) // a few times a probe interval
	if err := n.join(); err != nil {
		n.log.Warn("join failed; retrying in the background", "seeds", n.cfg.Join, "err", err)
	}
	n.membershipChanged()
	return nil
}

// join joins the seeds other than this node; with none, the node is its
// cluster's first member.
func (n *Node) join() error {
	seeds := slices.DeleteFunc(slices.Clone(n.cfg.Join), func(s string) bool { return s == n.cfg.GossipAdvertise })
	if len(seeds) > 0 {
		if k, err := n.ml.Join(seeds); k == 0 {
			return err
		}
	}
	n.joined.Store(true)
	return nil
}

func (n *Node) memberlistConfig() (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.Name
	var err error
	if mc.BindAddr, mc.BindPort, err = splitHostPort(n.cfg.Gossip); err != nil {
		return nil, fmt.Errorf("cluster: gossip address: %w", err)
	}
	if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(n.cfg.GossipAdvertise); err != nil {
		return nil, fmt.Errorf("cluster: gossip advertise address: %w", err)
	}
	mc.ProbeInterval = n.cfg.ProbeInterval
	mc.ProbeTimeout = n.cfg.ProbeInterval / 2
	mc.SuspicionMult = 3
	mc.GossipInterval = 100 * time.Millisecond
	mc.PushPullInterval = 10 * time.Second
	// A node that crashed and came back on other addresses under its
	// name (a pod rescheduled with a new IP) takes the name over once its
	// old instance is dead. memberlist's default (0) refuses it until the
	// dead entry is reaped, 30 s later ("Conflicting address"): the
	// returning node held a ring with itself in it while the others held
	// one without it, and calls between them bounced the whole time.
	mc.DeadNodeReclaimTime = n.cfg.ProbeInterval
	mc.Delegate = delegate{n}
	mc.Events = events{n}
	mc.LogOutput = slogWriter{n.log}
	if len(n.cfg.GossipKeys) > 0 {
		kr, err := memberlist.NewKeyring(n.cfg.GossipKeys[1:], n.cfg.GossipKeys[0])
		if err != nil {
			return nil, fmt.Errorf("cluster: gossip keys: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	return mc, nil
}

func splitHostPort(a string) (string, int, error) {
	host, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	port, err := net.LookupPort("tcp", p)
	return host, port, err
}

// delegate and events are memberlist's hooks. Events run under
// memberlist's node lock: they copy the node's metadata (memberlist
// rewrites it under that lock, so it may not be read after Members
// returns) and signal the loop.
type delegate struct{ n *Node }

func (d delegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(meta{RPC: d.n.cfg.RPCAdvertise, Weight: d.n.cfg.Weight, Unready: !d.n.ready.Load()})
	if len(b) > limit {
		return nil
	}
	return b
}
func (delegate) NotifyMsg([]byte)                {}
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (delegate) LocalState(bool) []byte          { return nil }
func (delegate) MergeRemoteState([]byte, bool)   {}

type events struct{ n *Node }

func (e events) NotifyJoin(m *memberlist.Node)   { e.n.noteMeta(m); e.n.membershipChanged() }
func (e events) NotifyLeave(*memberlist.Node)    { e.n.membershipChanged() }
func (e events) NotifyUpdate(m *memberlist.Node) { e.n.noteMeta(m); e.n.membershipChanged() }

// noteMeta keeps a copy of a member's metadata. Called under memberlist's
// node lock; metaMu is never held while calling memberlist.
func (n *Node) noteMeta(m *memberlist.Node) {
	b := slices.Clone(m.Meta)
	n.metaMu.Lock()
	n.metas[m.Name] = b
	n.metaMu.Unlock()
}

func (n *Node) membershipChanged() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	level := slog.LevelDebug
	switch {
	case strings.Contains(msg, "[ERR]"):
		level = slog.LevelWarn
	case strings.Contains(msg, "[WARN]"):
		level = slog.LevelInfo
	}
	w.log.Log(context.Background(), level, "memberlist", "msg", strings.TrimSpace(msg))
	return len(p), nil
}

// loop rebuilds the ring on membership changes, hands off misplaced keys,
// re-joins seeds and forgets old tombs, until Close.
func (n *Node) loop() {
	defer n.wg.Done()
	rebalance := time.NewTicker(rebalanceGap)
	defer rebalance.Stop()
	rejoin := time.NewTicker(rejoinGap)
	defer rejoin.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-n.changed:
			time.Sleep(20 * time.Millisecond) // let a burst of events settle
			n.rebuild()
		case <-rebalance.C:
			n.tick()
		case <-rejoin.C:
			if n.ml.NumMembers() < len(n.cfg.Join)+1 || !n.joined.Load() {
				if err := n.join(); err == nil {
					n.membershipChanged()
				}
			}
		}
	}
}

// every runs f every d until Close; n.wg counts it.
func (n *Node) every(d time.Duration, f func()) {
	defer n.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			f()
		}
	}
}

// heartbeat notes that this node is running (see beatLocked).
func (n *Node) heartbeat() {
	n.mu.Lock()
	n.beatLocked(time.Now())
	n.mu.Unlock()
}

// stallGap is how long this node may go unseen by its heartbeat before
// it counts as not having run meanwhile (see beatLocked): well under the
// others' time to take it for dead (a probe, its timeout and
// SuspicionMult probe intervals of suspicion), well over a late wake-up
// of a loaded machine.
func (n *Node) stallGap() time.Duration { return max(2*n.cfg.ProbeInterval, time.Second) }

// beatLocked notes that this node runs at now. n.mu held.
//
// Invariant: the post-settle audit runs only once membership has been
// still for settleTime while this node was running to see it. A node
// stopped (SIGSTOP, a paused VM, a stop-the-world) sees nothing change:
// its ring stays the one it had, while the others take it for dead,
// drop it from their lists and make its lists again. Its clocks run on,
// so when it runs again its last ring change looks older than
// settleTime and its loop's next tick, at once, ran the audit, before
// the others had it back and told it it was taken for dead (Rejoined):
// the audit found this node's interest missing from every list the
// others had dropped it from, as dead, and counted each as a RESYNC
// (issue 12: every chaos and churn loop run's audit RESYNCs, "missing",
// all at the node that had been frozen). So a gap longer than stallGap
// since the last beat is a membership change this node did not see: the
// audit is due settleTime after it, and Rejoined does the repair.
// tick beats too, so the tick that runs first after a stop sees the gap
// even if the heartbeat has not run yet.
func (n *Node) beatLocked(now time.Time) {
	if gap := now.Sub(n.beat); !n.beat.IsZero() && gap > n.stallGap() {
		n.changedAt = now
		n.rememberUnheld()
		n.log.Info("this node did not run for a while: membership may have changed meanwhile; the audit waits", "for", gap.Round(time.Millisecond))
	}
	n.beat = now
}

// tick is the loop's periodic work: old tombs and rings forgotten, keys
// handed to their owners, and the post-settle audit once it is due: the
// ring changed since the last audit, and membership has been still long
// enough for every node to see the same ring (settleTime), with no key
// in flight to this node.
func (n *Node) tick() {
	n.expire()
	n.rebalance()
	n.mu.Lock()
	n.beatLocked(time.Now())
	// Invariant: the audit does not run while a relink of this node's is
	// under way. What it would find missing (a list that died with a
	// crashed node and is being made again, this node's interest in a
	// list not linked yet) is the relink's to repair, and the relink
	// announces it (a RESYNC for a lost list); counted by the audit too,
	// it reads as a defect that was none. A due audit runs at the first
	// tick after the relinks end.
	due := n.auditedAt.Before(n.changedAt) && time.Since(n.changedAt) > settleTime && len(n.inflight) == 0 && n.relinking.Load() == 0
	if due {
		n.auditedAt = time.Now()
	}
	n.mu.Unlock()
	if due {
		n.audit()
	}
}

// tellRejoined tells name, repaired as dead at at and a member again,
// that it was taken for dead, so it drops the lists it held then and
// links all its interest again (rejoined). Invariant: a returning node
// hears it as long as it stays a member and this node in the ring: the
// call is asked again until it is answered, or until this node starts
// leaving (draining: only a node in the ring tells, see rebuild). A
// node that never heard it would keep stamping the lists the others
// made again, and the others dropped its interest, so its queues would
// miss their events until the audit; the first call often fails, since
// the connection to a node that was frozen is broken when it comes back.
func (n *Node) tellRejoined(name string, at time.Time) {
	n.askUntilAnswered(name, 0, "tell a returning node it was taken for dead", func(ctx context.Context, p *peer) error {
		_, err := p.client.Rejoined(ctx, &pb.RejoinedRequest{DeadUnixNano: at.UnixNano()})
		return err
	})
}

// askUntilAnswered makes call to node name until it succeeds, as long as
// name is a member (or was not one for less than grace: membership may
// not have caught up yet) and this node is not draining (what: for the
// log).
func (n *Node) askUntilAnswered(name string, grace time.Duration, what string, call func(context.Context, *peer) error) {
	away := time.Time{} // since when name is not a member
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		n.mu.Lock()
		_, member := n.members[name]
		draining := n.draining
		n.mu.Unlock()
		switch {
		case member:
			away = time.Time{}
		case away.IsZero():
			away = time.Now()
		}
		if draining || !member && time.Since(away) >= grace {
			return
		}
		if p := n.peer(name); p != nil {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			err := call(ctx, p)
			cancel()
			if err == nil {
				return
			}
			n.log.Warn("could not "+what+"; asking again", "node", name, "err", err)
		}
		select {
		case <-n.stop:
			return
		case <-time.After(wait):
		}
	}
}

// rebuild derives the ring from membership: the one place it changes.
func (n *Node) rebuild() {
	alive := map[string]member{}
	ms := n.ml.Members() // their names only: the rest changes under memberlist's lock
	n.metaMu.Lock()
	for _, m := range ms {
		var md meta
		if err := json.Unmarshal(n.metas[m.Name], &md); err != nil || md.RPC == "" || !n.admitted(m.Name, md.RPC) {
			continue
		}
		alive[m.Name] = member{rpc: md.RPC, weight: md.Weight, ready: !md.Unready}
	}
	n.metaMu.Unlock()
	n.mu.Lock()
	old := n.ring.Load()
	var crashed, left, gone []string
	for name := range n.members {
		if _, ok := alive[name]; !ok && name != n.cfg.Name {
			if n.leaving[name] {
				left = append(left, name)
				n.left[name] = time.Now()
			} else {
				crashed = append(crashed, name)
			}
			delete(n.leaving, name)
			gone = append(gone, name)
		}
	}
	defer func() {
		for _, g := range gone {
			go n.dropPeer(g)
		}
		if len(left) > 0 {
			go n.forgetLeft(left)
		}
	}()
	n.members = alive
	for name := range alive { // taken for dead, alive again: it must relink
		delete(n.left, name) // back: its interest is new again
		if at, ok := n.crashed[name]; ok {
			delete(n.crashed, name)
			// Invariant: only a node in the ring tells a node it was taken
			// for dead (tellRejoined asks nothing while this node is
			// draining). One that is leaving or has left is in nobody's
			// ring, and after its leave its memberlist still probes, with
			// a view nobody refutes to: under load it takes live members
			// for dead alone. Told so, a member drops every list it held
			// (rejoined), for nothing: the lists were live, and every
			// queue in them gets a RESYNC (before rejoined told the other
			// interested nodes to link again, those queues got nothing
			// until the post-settle audit: issue 12, the audit test's
			// RESYNCs after b left). Had ring members taken it for dead
			// too, each of them tells it.
			go n.tellRejoined(name, at)
		}
	}
	r := n.ringLocked()
	if r.ID() == old.ID() {
		n.mu.Unlock()
		if len(crashed) > 0 {
			n.repair(old, crashed)
		}
		return
	}
	n.installLocked(r)
	n.mu.Unlock()
	n.log.Info("ring changed", "epoch", r.Epoch(), "nodes", r.Nodes(), "crashed", crashed)
	n.stats.RingChanges.Add(1)
	if len(crashed) > 0 {
		n.dropRelays(crashed)
		n.repair(old, crashed)
	}
	go n.rebalance()
}

// forgetLeft takes nodes that left gracefully out of every list held
// here. Invariant: no list names a node that is gone. One that left
// handed every queue away before it said it was done (Leave), so an
// interest still recorded for it is stale: its last interest op was lost
// on the way while the lists it named moved (seen in the churn test: a
// list kept counting a queue of the leaver and sent its events to a node
// that was gone). Each entry is kept with its Ver and a count of 0
// (Store.ForgetNodes), so a late op of the leaver does not name it again.
// A crashed node's entries go with the repair instead. A list that was
// in flight or in a tomb when this ran forgets the leaver as it lands
// (zeroLeftLocked). A node a member again by the time this runs (it
// runs on its own goroutine) is left alone: its interest is new.
func (n *Node) forgetLeft(left []string) {
	n.mu.Lock()
	left = slices.DeleteFunc(left, func(node string) bool { _, gone := n.left[node]; return !gone })
	n.mu.Unlock()
	if k := n.store.ForgetNodes(func(node string) bool { return slices.Contains(left, node) }); k > 0 {
		n.log.Info("lists forgot nodes that left", "nodes", left, "entries", k)
	}
}

// zeroLeftLocked sets to 0 the counts of nodes that left gracefully in
// nodes, the entries of a list landing here: one that was in flight or
// in a tomb when forgetLeft ran
// (TestGracefulLeave_AListOnItsWayWhenTheLeaverLeftForgetsIt). n.mu held.
func (n *Node) zeroLeftLocked(nodes []shard.Interest) {
	for i := range nodes {
		if _, gone := n.left[nodes[i].Node]; gone {
			nodes[i].Count = 0
		}
	}
}

// ringLocked builds the ring of alive members that are ready and not
// leaving. n.mu held.
//
// Invariant (ready before owning): a node owns keys only while it can
// serve them. One that is starting is a member (it forwards calls, and
// others may call it) but in nobody's ring, so no call is served by a node
// whose publishers are not up yet.
func (n *Node) ringLocked() *ring.Ring {
	w := map[string]int{}
	for name, m := range n.members {
		if name == n.cfg.Name {
			m.ready = n.ready.Load()
		}
		if _, leaving := n.leaving[name]; leaving || !m.ready || (name == n.cfg.Name && n.draining) {
			continue
		}
		w[name] = m.weight
	}
	n.epoch++
	return ring.New(n.epoch, w)
}

// installLocked makes r this node's ring, remembering the one it
// replaces for historyTTL. n.mu held.
func (n *Node) installLocked(r *ring.Ring) {
	now := time.Now()
	n.history = append([]pastRing{{r: n.ring.Load(), until: now.Add(historyTTL)}}, n.history...)
	n.history = slices.DeleteFunc(n.history, func(p pastRing) bool { return now.After(p.until) })
	n.ring.Store(r)
	n.installedSince = append(n.installedSince, r)
	n.rememberUnheld()
	w := map[string]int{}
	for _, x := range r.Nodes() {
		if x != n.cfg.Name {
			w[x] = r.Weight(x)
		}
	}
	n.others = ring.New(r.Epoch(), w)
	close(n.installed)
	n.installed = make(chan struct{})
	n.changedAt = now
}

// expire forgets old tombs, rings, kept enlists and nodes that left.
func (n *Node) expire() {
	n.store.ForgetUnheld(nil)
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, t := range n.tombs {
		if now.After(t.until) && t.queue == nil && t.resource == nil { // one not acknowledged is kept: see take
			delete(n.tombs, k)
		}
	}
	for k, at := range n.left {
		if now.Sub(at) > historyTTL {
			delete(n.left, k)
		}
	}
	for k, p := range n.enlisted { // its list never landed here
		if now.After(p.until) {
			delete(n.enlisted, k)
		}
	}
	n.history = slices.DeleteFunc(n.history, func(p pastRing) bool { return now.After(p.until) })
}

// alive reports whether node is a live member. n.mu held.
func (n *Node) aliveLocked(node string) bool {
	_, ok := n.members[node]
	return ok
}

// Close leaves the cluster at once, without hand-off (see Leave), and
// stops. Safe to call twice.
func (n *Node) Close() error {
	if n.closed() {
		return nil
	}
	close(n.stop)
	if n.ml != nil {
		_ = n.ml.Shutdown()
	}
	n.wg.Wait()
	if n.grpcSrv != nil {
		n.grpcSrv.Stop()
	}
	n.mu.Lock()
	peers := n.peers
	n.peers = map[string]*peer{}
	n.mu.Unlock()
	for _, p := range peers {
		p.close()
	}
	return nil
}

// closed reports whether Close has begun.
func (n *Node) closed() bool {
	select {
	case <-n.stop:
		return true
	default:
		return false
	}
}

// Single wraps store as a one-node gateway: every key is local.
func Single(store *shard.Store) *Node {
	n, _ := New(Config{Name: "local"}, store) // cannot fail: the name is set, the rest defaults
	return n
}

// Owns reports whether this node's ring gives key to this node (always,
// on a single node or before the ring exists).
func (n *Node) Owns(key string) bool {
	if n == nil {
		return true
	}
	o := n.ring.Load().Owner(key)
	return o == "" || o == n.cfg.Name
}
