package host

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"meshgate/internal/faults"
	pb "meshgate/plugins/proto"
	"meshgate/shard"
)

// Sink is what the host needs from the store; *shard.Store satisfies it.
type Sink interface {
	Deliver(ev *shard.Event) int
	Revoke(resource, user, device string) int
	ResourcesWithScheme(scheme string) map[string]string
	SubscribersWithScheme(scheme string) []shard.Subscriber
}

// MaxPayload caps an event's payload from a plugin. A larger payload, or
// one that is not JSON, is replaced (see droppedPayload): the event is
// still delivered, with its etag, never dropped in silence.
const MaxPayload = 64 << 10

// MaxMessageBytes caps one message the gateway receives from a plugin
// (gRPC's receive limit, checked before decoding): room for a Current
// answer of 1000 resources and a Publish answer of a few events. A
// larger answer fails its call with UNAVAILABLE; a larger Watch event
// ends the stream and the plugin is restarted (and re-checked).
const MaxMessageBytes = 1 << 20

// Host runs the publisher plugins and answers for them. Safe for
// concurrent use. Create it with New, start it with Start, stop it with
// Close.
type Host struct {
	cfg  Config
	log  *slog.Logger
	sink Sink

	mu      sync.RWMutex
	running map[string]*instance // scheme → live plugin
	known   map[string]string    // scheme → plugin name, once described (down or up)
	all     map[*instance]struct{}
	health  map[string]*Health // configured plugin name → health

	sessions *sessions
	faults   *faults.Injector
	// dependents wakes runDependents (capacity 1: kicks coalesce).
	dependents chan struct{}

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started atomic.Bool // Start has returned
}

var _ shard.Authorizer = (*Host)(nil)

// New checks cfg; Start launches the plugins.
func New(cfg Config, sink Sink) (*Host, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	h := &Host{
		cfg: cfg, log: cfg.Logger.With("component", "plugins"), sink: sink,
		running: make(map[string]*instance), known: make(map[string]string), all: make(map[*instance]struct{}),
		health: make(map[string]*Health), dependents: make(chan struct{}, 1),
	}
	for _, p := range cfg.Plugins {
		h.health[p.Name] = &Health{Name: p.Name}
	}
	h.sessions = newSessions(h, cfg.Grace, cfg.Now)
	h.faults = faults.New(cfg.Faults, cfg.FaultSeed)
	return h, nil
}

// SetSink sets where events go; call it before Start. (The store is made
// after the host, because the store reports device activity to the host.)
func (h *Host) SetSink(s Sink) { h.sink = s }

// Observer returns the shard.Observer that feeds presence.
func (h *Host) Observer() shard.Observer { return h.sessions }

// Start launches every plugin and returns once each has started or failed
// its first attempt (a failed plugin keeps being retried in the
// background) or ctx ends.
func (h *Host) Start(ctx context.Context) {
	defer h.started.Store(true)
	runCtx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	first := make(chan struct{}, len(h.cfg.Plugins))
	for _, p := range h.cfg.Plugins {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.supervise(runCtx, p, first)
		}()
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.sessions.run(runCtx)
	}()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.runDependents(runCtx)
	}()
	for range h.cfg.Plugins {
		select {
		case <-first:
		case <-ctx.Done():
			return
		}
	}
}

// Close stops every plugin (go-plugin's graceful shutdown, then a kill)
// and waits for the supervisors. Safe to call twice.
func (h *Host) Close() error {
	if h.cancel != nil {
		h.cancel()
	}
	h.wg.Wait()
	return nil
}

// Ready reports whether every configured plugin is up.
func (h *Host) Ready() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	up := 0
	for inst := range h.all {
		if inst.up {
			up++
		}
	}
	return up == len(h.cfg.Plugins)
}

// Health is a configured plugin's state, for metrics and status pages.
type Health struct {
	Name string
	Up   bool
	// Restarts counts launches after the first.
	Restarts uint64
}

// Health reports every configured plugin, up or down, sorted by name.
func (h *Host) Health() []Health {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]Health, 0, len(h.health))
	for _, p := range h.cfg.Plugins {
		out = append(out, *h.health[p.Name])
	}
	return out
}

// Status describes each plugin for operators.
type Status struct {
	Name, Version string
	Schemes       []string
	Up            bool
	PID           int
	// Direct says the plugin takes publishes directly (publish_direct);
	// Unrecorded counts resources whose last publish it has not
	// acknowledged yet.
	Direct     bool
	Unrecorded int
}

// owner returns the live plugin of resource's scheme.
func (h *Host) owner(resource string) (*instance, error) {
	scheme, _, err := shard.ParseResource(resource)
	if err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if inst := h.running[scheme]; inst != nil {
		return inst, nil
	}
	if name, ok := h.known[scheme]; ok {
		return nil, fmt.Errorf("%w: publisher %s of scheme %q is restarting", shard.ErrUnavailable, name, scheme)
	}
	if !h.started.Load() && !h.describedAllLocked() {
		// Starting, and not every plugin has said which schemes it owns
		// yet: the scheme may be one of theirs. Retryable, not bad input.
		return nil, fmt.Errorf("%w: publishers are starting (scheme %q)", shard.ErrUnavailable, scheme)
	}
	return nil, fmt.Errorf("%w %q", shard.ErrUnknownScheme, scheme)
}

// describedAllLocked reports whether every configured plugin has been up
// once (its schemes are known). h.mu held.
func (h *Host) describedAllLocked() bool {
	names := make(map[string]bool, len(h.known))
	for _, n := range h.known {
		names[n] = true
	}
	for _, p := range h.cfg.Plugins {
		if !names[p.Name] {
			return false
		}
	}
	return true
}

// Authorize asks the owner of resource whether p may read it.
func (h *Host) Authorize(ctx context.Context, p shard.Principal, resource, proof string) (string, error) {
	inst, err := h.owner(resource)
	if err != nil {
		return "", err
	}
	if inst.direct != nil && inst.direct.ownRule && h.faults == nil {
		// The plugin's own rule (read_own_subtree): no call, so no
		// deadline to set and no process to wake.
		scheme, _, _ := shard.ParseResource(resource) // owner parsed it
		return inst.direct.authorizeOwn(p, scheme, resource)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
	defer cancel()
	if err := h.faults.Before(ctx); err != nil {
		return "", fmt.Errorf("%w: publisher %s: %v", shard.ErrUnavailable, inst.name, err) //nolint:errorlint // UNAVAILABLE is the contract; an injected fault or ctx error is only text
	}
	// A publish_direct plugin records delivered publishes later: the
	// answer is never older than one delivered (see direct.answer).
	var before string
	var pendingBefore bool
	if inst.direct != nil {
		before, pendingBefore = inst.direct.etag(resource)
	}
	r, err := inst.client.Authorize(ctx, &pb.AuthorizeRequest{Principal: principalProto(p), Resource: resource, Proof: proof})
	if err != nil {
		return "", callError(inst.name, err)
	}
	if !r.GetAllowed() {
		reason := r.GetReason()
		if reason == "" {
			reason = "not allowed"
		}
		return "", fmt.Errorf("%w: %s", shard.ErrForbidden, reason)
	}
	if inst.direct != nil {
		e, _ := inst.direct.answer(resource, before, pendingBefore, r.GetEtag(), true)
		return e, nil
	}
	return r.GetEtag(), nil
}

// Publish hands a `publish` mutation to the owner of resource and delivers
// the events it returns, exactly as Watch events are delivered. It returns
// how many queues they reached, and shard.ErrUnavailable (retryable) if an
// event did not reach its resource's subscriber list (a cluster moving):
// a publish that answers success was taken by its list.
func (h *Host) Publish(ctx context.Context, p shard.Principal, resource, etag string, payload []byte) (int, error) {
	inst, err := h.owner(resource)
	if err != nil {
		return 0, err
	}
	if inst.direct != nil && h.faults == nil {
		return h.publishDirect(ctx, inst, p, resource, etag, payload) // no call, so no deadline to set
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
	defer cancel()
	if err := h.faults.Before(ctx); err != nil {
		return 0, fmt.Errorf("%w: publisher %s: %v", shard.ErrUnavailable, inst.name, err) //nolint:errorlint // UNAVAILABLE is the contract; an injected fault or ctx error is only text
	}
	if inst.direct != nil {
		return h.publishDirect(ctx, inst, p, resource, etag, payload)
	}
	r, err := inst.client.Publish(ctx, &pb.PublishRequest{Principal: principalProto(p), Resource: resource, Etag: etag, Payload: payload})
	if status.Code(err) == codes.Unimplemented {
		return 0, fmt.Errorf("%w: publisher %s does not accept publish", shard.ErrForbidden, inst.name)
	}
	if err != nil {
		return 0, callError(inst.name, err)
	}
	n := 0
	var failed error // retryable (UNAVAILABLE): an event its list did not get
	for _, ev := range r.GetEvents() {
		k, err := inst.handleChecked(ctx, ev)
		n += k
		if failed == nil {
			failed = err
		}
	}
	return n, failed
}

// callError maps a failed plugin call to the core's errors.
func callError(name string, err error) error {
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: publisher %s did not answer in time", shard.ErrUnavailable, name)
	case codes.Canceled:
		return context.Canceled
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %s", shard.ErrInvalidInput, status.Convert(err).Message())
	case codes.PermissionDenied:
		return fmt.Errorf("%w: %s", shard.ErrForbidden, status.Convert(err).Message())
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: publisher %s: answer larger than %d bytes", shard.ErrUnavailable, name, MaxMessageBytes)
	}
	return fmt.Errorf("%w: publisher %s: %s", shard.ErrUnavailable, name, status.Convert(err).Message())
}

// handleWatch handles an event the plugin reported on its own: in a
// cluster, only the resource's owner delivers it (see Config.Owns).
func (inst *instance) handleWatch(ev *pb.Event) int {
	if ev.GetKind() == pb.Event_REVOKED {
		// Every node re-checks the dependent lists it holds, owner of
		// this resource or not.
		inst.h.kickDependents()
	}
	if own := inst.h.cfg.Owns; own != nil && !inst.sessions && !own(ev.GetResource()) {
		return 0
	}
	return inst.handle(ev)
}

// Current asks the publishers for the current etag of each resource. A
// resource whose publisher is down or does not know it is absent.
func (h *Host) Current(ctx context.Context, resources []string) map[string]string {
	byInst := map[*instance][]string{}
	for _, r := range resources {
		if inst, err := h.owner(r); err == nil {
			byInst[inst] = append(byInst[inst], r)
		}
	}
	out := make(map[string]string, len(resources))
	for inst, rs := range byInst {
		for chunk := range slices.Chunk(rs, 1000) {
			h.currentChunk(ctx, inst, chunk, out)
		}
	}
	return out
}

// currentChunk asks inst for the etags of chunk into out; a
// publish_direct plugin's pending etags are read on both sides of the call
// (see direct.answer).
func (h *Host) currentChunk(ctx context.Context, inst *instance, chunk []string, out map[string]string) {
	type pend struct {
		etag string
		ok   bool
	}
	var before map[string]pend
	if inst.direct != nil {
		before = make(map[string]pend, len(chunk))
		for _, r := range chunk {
			e, ok := inst.direct.etag(r)
			before[r] = pend{e, ok}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
	cur, err := inst.client.Current(cctx, &pb.CurrentRequest{Resources: chunk})
	cancel()
	if err != nil {
		h.log.Warn("Current failed", "plugin", inst.name, "err", err)
		return
	}
	if inst.direct == nil {
		maps.Copy(out, cur.GetEtags())
		return
	}
	for _, r := range chunk {
		e, known := cur.GetEtags()[r]
		if e, known = inst.direct.answer(r, before[r].etag, before[r].ok, e, known); known {
			out[r] = e
		}
	}
}

// checkedSink is a Sink that can report a delivery that did not reach
// its resource's subscriber list (cluster.Node: the list's holder out of
// reach, or the list moving): a publish answers that error, retryable,
// instead of a success no subscriber will see.
type checkedSink interface {
	DeliverChecked(ctx context.Context, ev *shard.Event) (int, error)
}

// handle validates one event from inst and delivers it. Events about
// schemes the plugin does not own, bad resources, etags or payloads are
// dropped: a plugin cannot write outside its schemes.
func (inst *instance) handle(ev *pb.Event) int {
	n, _ := inst.handleChecked(context.Background(), ev)
	return n
}

// handleChecked is handle that reports a CHANGED the sink could not
// deliver (see checkedSink), for a publish to answer; ctx is the
// publish's, and its end stops the delivery before the event is stamped.
func (inst *instance) handleChecked(ctx context.Context, ev *pb.Event) (int, error) {
	h := inst.h
	if !inst.valid(ev) {
		return 0, nil
	}
	payload := ev.GetPayload()
	switch {
	case len(payload) > MaxPayload:
		h.log.Warn("plugin event payload replaced: too large", "plugin", inst.name, "resource", ev.GetResource(), "bytes", len(payload))
		payload = droppedPayload(fmt.Sprintf("larger than %d bytes", MaxPayload), len(payload))
	case len(payload) > 0 && !json.Valid(payload):
		h.log.Warn("plugin event payload replaced: not JSON", "plugin", inst.name, "resource", ev.GetResource(), "bytes", len(payload))
		payload = droppedPayload("not JSON", len(payload))
	}
	at := h.cfg.Now()
	if t := ev.GetTimeUnixNano(); t > 0 {
		at = time.Unix(0, t)
	}
	switch ev.GetKind() {
	case pb.Event_CHANGED:
		if inst.direct != nil {
			inst.direct.record(ev.GetResource(), ev.GetEtag()) // before it is delivered (direct.authorizeOwn)
		}
		sev := &shard.Event{Kind: shard.Changed, Resource: ev.GetResource(), Etag: ev.GetEtag(), Time: at, Payload: payload}
		if cs, ok := h.sink.(checkedSink); ok {
			return cs.DeliverChecked(ctx, sev)
		}
		return h.sink.Deliver(sev), nil
	case pb.Event_REVOKED:
		p := ev.GetPrincipal()
		if p.GetUser() == "" {
			h.log.Warn("plugin event dropped: REVOKED without a user", "plugin", inst.name, "resource", ev.GetResource())
			return 0, nil
		}
		return h.sink.Revoke(ev.GetResource(), p.GetUser(), p.GetDevice()), nil
	}
	h.log.Warn("plugin event dropped: unknown kind", "plugin", inst.name, "kind", ev.GetKind().String())
	return 0, nil
}

// droppedPayload stands in for a payload the gateway will not carry:
// subscribers still learn the resource changed (and its etag), and why
// they get no details.
func droppedPayload(reason string, n int) []byte {
	b, _ := json.Marshal(map[string]any{"dropped": true, "reason": "payload " + reason, "bytes": n})
	return b
}

// valid reports whether inst may deliver ev at all (its scheme, a good
// etag), and logs why not.
func (inst *instance) valid(ev *pb.Event) bool {
	h := inst.h
	scheme, _, err := shard.ParseResource(ev.GetResource())
	if err != nil || !inst.owns(scheme) {
		h.log.Warn("plugin event dropped: resource outside its schemes", "plugin", inst.name, "resource", ev.GetResource())
		return false
	}
	if shard.ValidEtag(ev.GetEtag()) != nil {
		h.log.Warn("plugin event dropped: bad etag", "plugin", inst.name, "resource", ev.GetResource())
		return false
	}
	return true
}

func principalProto(p shard.Principal) *pb.Principal {
	return &pb.Principal{User: p.User, Device: p.Device, Scopes: p.Scopes}
}

// Statuses describes every running plugin.
func (h *Host) Statuses() []Status {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []Status
	for inst := range h.all {
		st := Status{Name: inst.name, Version: inst.version, Schemes: inst.schemes, Up: inst.up, Direct: inst.direct != nil}
		if inst.direct != nil {
			st.Unrecorded = inst.direct.pending()
		}
		if rc := inst.proc.ReattachConfig(); rc != nil {
			st.PID = rc.Pid
		}
		out = append(out, st)
	}
	return out
}
