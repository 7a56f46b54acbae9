package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "meshgate/plugins/proto"
	"meshgate/plugins/sdk"
	"meshgate/shard"
)

// instance is one running plugin process.
type instance struct {
	h        *Host
	name     string
	version  string
	schemes  []string
	client   pb.PublisherClient
	proc     *plugin.Client
	up       bool
	sessions bool    // wants SessionEvents
	direct   *direct // publish_direct: publishes delivered without a call; nil otherwise

	// batch holds its session events when it reads them in batches
	// (session_batches); nil otherwise.
	batch *sessionBatch

	// asks is set once the plugin has asked the host to authorize
	// something: its decisions depend on other plugins' (see
	// kickDependents).
	asks atomic.Bool

	sendMu sync.Mutex
	host   pb.Publisher_HostClient
}

func (inst *instance) owns(scheme string) bool { return slices.Contains(inst.schemes, scheme) }

// supervise runs p until ctx ends, restarting it with exponential backoff
// and jitter whenever it dies. A plugin that ran for a minute is
// considered healthy again: its backoff starts over.
func (h *Host) supervise(ctx context.Context, p Plugin, first chan<- struct{}) {
	log := h.log.With("plugin", p.Name)
	backoff := h.cfg.MinBackoff
	signalled := false
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			h.mu.Lock()
			h.health[p.Name].Restarts++
			h.mu.Unlock()
		}
		started := time.Now()
		err := h.runOnce(ctx, p, attempt, func() {
			if !signalled {
				signalled = true
				first <- struct{}{}
			}
		})
		if !signalled {
			signalled = true
			first <- struct{}{}
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			backoff = h.cfg.MinBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter: [backoff/2, backoff]
		log.Warn("plugin down, restarting", "err", err, "in", wait.Round(time.Millisecond).String(), "attempt", attempt+1)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, h.cfg.MaxBackoff)
	}
}

// command builds p's command line with a minimal environment. For an
// external plugin it also returns the open, checked executable (see
// openPlugin), which the caller closes once the process has started.
func (h *Host) command(p Plugin) (*exec.Cmd, *plugin.SecureConfig, *os.File, error) {
	var cmd *exec.Cmd
	var sc *plugin.SecureConfig
	var bin *os.File
	if p.Builtin != "" {
		c, err := h.cfg.SelfCommand(p.Builtin)
		if err != nil {
			return nil, nil, nil, err
		}
		cmd = c
	} else {
		sum, err := hex.DecodeString(p.SHA256)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sha256: %w", err)
		}
		bin, err = openPlugin(p.Path, sum)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("plugin file: %w", err)
		}
		cmd = exec.Command(p.Path, p.Args...)
		if fd, ok := execPath(); ok {
			// Execute the file that was hashed, not whatever the path
			// names by now.
			cmd.Path, cmd.ExtraFiles = fd, []*os.File{bin}
		} else {
			// A SecureConfig is used up by one launch: make one each time.
			sc = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
		}
	}
	env := cmd.Env // SelfCommand may set test variables
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if h.cfg.DataDir != "" {
		env = append(env, "MESHGATE_DATA_DIR="+h.cfg.DataDir)
	}
	for k, v := range p.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	setDeathSignal(cmd)
	return cmd, sc, bin, nil
}

// runOnce starts p, serves it until it dies or ctx ends, and cleans up.
func (h *Host) runOnce(ctx context.Context, p Plugin, attempt int, started func()) error {
	cmd, sc, bin, err := h.command(p)
	if err != nil {
		return err
	}
	if bin != nil {
		defer bin.Close() // the child has its own descriptor once started
	}
	log := h.log.With("plugin", p.Name)
	proc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.PluginName: &sdk.GRPCPlugin{}},
		Cmd:              cmd,
		SecureConfig:     sc,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     15 * time.Second,
		// Bound what a plugin can make the gateway decode (gRPC's
		// default would be 2 GiB through go-plugin).
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes))},
		// go-plugin's own log parser is off: a plugin's stderr goes, line
		// by line, into our log under its name, whatever it writes.
		Logger: hclog.NewNullLogger(),
		Stderr: &logWriter{log: log},
	})
	defer proc.Kill()
	rpc, err := proc.Client()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return fmt.Errorf("dispense: %w", err)
	}
	client := raw.(pb.PublisherClient)
	dctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
	desc, err := client.Describe(dctx, &pb.DescribeRequest{})
	cancel()
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	inst := &instance{h: h, name: p.Name, version: desc.GetVersion(), schemes: desc.GetSchemes(), client: client, proc: proc, sessions: desc.GetWantsSessions()}
	if desc.GetPublishDirect() {
		inst.direct = newDirect(desc.GetReadOwnSubtree())
	}
	if inst.sessions && desc.GetSessionBatches() {
		inst.batch = newSessionBatch()
	}
	if err := h.register(inst); err != nil {
		return err
	}
	defer h.unregister(inst)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	watch, err := client.Watch(runCtx, &pb.WatchRequest{})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	hs, err := client.Host(runCtx)
	if err != nil {
		return fmt.Errorf("host stream: %w", err)
	}
	inst.sendMu.Lock()
	inst.host = hs
	inst.sendMu.Unlock()
	go inst.serveHost(runCtx, hs)
	if inst.batch != nil {
		go inst.batch.report(runCtx, inst)
	}
	if inst.direct != nil {
		go inst.direct.report(runCtx, inst)
	}
	h.sessions.replay(inst)
	if attempt > 0 {
		// Before any of its events is read: access first, then etags.
		if _, err := h.recheck(ctx, inst); err != nil {
			return err
		}
	}
	log.Info("plugin up", "version", inst.version, "schemes", inst.schemes, "attempt", attempt)
	if attempt > 0 {
		h.resync(ctx, inst)
	}
	started()

	for {
		ev, err := watch.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if proc.Exited() {
				return fmt.Errorf("plugin exited")
			}
			return fmt.Errorf("watch: %w", err)
		}
		inst.handleWatch(ev)
	}
}

// configKey names plugin name's entry in the config file, plugins[i].
func (h *Host) configKey(name string) string {
	for i, p := range h.cfg.Plugins {
		if p.Name == name {
			return fmt.Sprintf("plugins[%d]", i)
		}
	}
	return "plugins[?]"
}

// register makes inst the owner of its schemes.
func (h *Host) register(inst *instance) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(inst.schemes) == 0 {
		return fmt.Errorf("plugin %s owns no scheme", inst.name)
	}
	for _, s := range inst.schemes {
		if _, _, err := shard.ParseResource(s + ":x"); err != nil {
			return fmt.Errorf("plugin %s: scheme %q: %w", inst.name, s, err)
		}
		if other, ok := h.known[s]; ok && other != inst.name {
			return fmt.Errorf("plugin %s (%s): scheme %q already belongs to %s (%s): two plugins cannot own one scheme", inst.name, h.configKey(inst.name), s, other, h.configKey(other))
		}
	}
	for _, s := range inst.schemes {
		h.running[s] = inst
		h.known[s] = inst.name
	}
	inst.up = true
	h.all[inst] = struct{}{}
	if hp := h.health[inst.name]; hp != nil {
		hp.Up = true
	}
	return nil
}

// unregister marks inst's schemes down: subscribing to them fails with
// UNAVAILABLE until the plugin is back.
func (h *Host) unregister(inst *instance) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range inst.schemes {
		if h.running[s] == inst {
			delete(h.running, s)
		}
	}
	inst.up = false
	delete(h.all, inst)
	if hp := h.health[inst.name]; hp != nil {
		hp.Up = false
	}
}

// resync asks a restarted plugin for the current etag of every resource
// of its schemes that has subscribers, and puts a RESYNC in their queues
// wherever it differs from the last one the gateway saw: whatever changed
// while the plugin was down is not silently lost.
func (h *Host) resync(ctx context.Context, inst *instance) {
	known := make(map[string]string)
	for _, s := range inst.schemes {
		for r, e := range h.sink.ResourcesWithScheme(s) {
			known[r] = e
		}
	}
	if len(known) == 0 {
		return
	}
	names := make([]string, 0, len(known))
	for r := range known {
		names = append(names, r)
	}
	slices.Sort(names)
	sent := 0
	for chunk := range slices.Chunk(names, 1000) {
		cctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
		cur, err := inst.client.Current(cctx, &pb.CurrentRequest{Resources: chunk})
		cancel()
		if err != nil {
			h.log.Warn("resync: Current failed; sending RESYNC for every resource", "plugin", inst.name, "err", err)
		}
		// A list whose etag changed while Current ran delivered a publish
		// since: it is at least as new as the plugin's answer, which may
		// have been read before it. A RESYNC with that answer would be
		// stamped after it and take its subscribers back; skip them.
		after := make(map[string]string, len(known))
		for _, s := range inst.schemes {
			maps.Copy(after, h.sink.ResourcesWithScheme(s))
		}
		for _, r := range chunk {
			if e, ok := after[r]; ok && e != known[r] {
				continue
			}
			// A resource the publisher leaves out is one it does not
			// know (the built-in `user:` forgets on restart): the etag the
			// gateway delivered last stands, never erased to "". When
			// Current failed, RESYNC says "something may have changed"
			// with that last etag.
			etag, ok := cur.GetEtags()[r]
			if err == nil && (!ok || etag == known[r]) {
				continue
			}
			if err != nil {
				etag = known[r]
			}
			// "" after a failed Current is not "never published": the
			// list knew no etag and the publisher could not say.
			h.sink.Deliver(&shard.Event{Kind: shard.Resync, EtagUnknown: err != nil && etag == "", Resource: r, Etag: etag, Time: h.cfg.Now()})
			sent++
		}
	}
	h.log.Info("resync after restart", "plugin", inst.name, "resources", len(known), "resynced", sent)
}

// serveHost answers the plugin's questions on the Host stream.
func (inst *instance) serveHost(ctx context.Context, hs pb.Publisher_HostClient) {
	for {
		m, err := hs.Recv()
		if err != nil {
			return
		}
		if a := m.GetPublishedAck(); a != nil {
			if inst.direct != nil {
				inst.direct.ack(a.GetSeq())
			}
			continue
		}
		ask := m.GetAsk()
		if ask == nil {
			continue
		}
		inst.asks.Store(true)
		go func() {
			ans := &pb.Answer{Id: ask.GetId()}
			req := ask.GetRequest()
			pp := req.GetPrincipal()
			etag, err := inst.h.Authorize(ctx, shard.Principal{User: pp.GetUser(), Device: pp.GetDevice(), Scopes: pp.GetScopes()}, req.GetResource(), req.GetProof())
			switch {
			case err == nil:
				ans.Response = &pb.AuthorizeResponse{Allowed: true, Etag: etag}
			case isForbidden(err):
				ans.Response = &pb.AuthorizeResponse{Allowed: false, Reason: err.Error()}
			default:
				ans.Error = err.Error()
			}
			inst.send(&pb.HostMessage{Msg: &pb.HostMessage_Answer{Answer: ans}})
		}()
	}
}

func (inst *instance) send(m *pb.HostMessage) {
	inst.sendMu.Lock()
	defer inst.sendMu.Unlock()
	if inst.host != nil {
		_ = inst.host.Send(m)
	}
}
