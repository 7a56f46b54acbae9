package sdk

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/go-plugin"
)

// Handshake is contract version 1's go-plugin handshake. The gateway
// refuses a plugin whose handshake differs.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "MESHGATE_PLUGIN",
	MagicCookieValue: "publisher-v1",
}

// PluginName is the name the publisher is dispensed under.
const PluginName = "publisher"

// Principal is who is calling: a user and one of their devices.
type Principal struct {
	User, Device string
	Scopes       []string
}

// Info describes a publisher.
type Info struct {
	Name, Version string
	// Schemes are the resource schemes it owns: "storage" owns "storage:…".
	Schemes []string
	// PublishDirect says the publisher accepts every `publish` as it is:
	// one Changed event with the published etag and payload, whoever
	// publishes (the gateway has checked the publish scope). The gateway
	// then delivers a publish at once, without a round trip to the
	// plugin, and calls Publish afterwards, in order and in batches, so
	// the publisher records the etag; the events Publish returns are
	// ignored and its errors only logged. Until Publish has returned, the
	// gateway answers Authorize and Current for that resource with the
	// published etag itself. Only a Publishable publisher may set it.
	PublishDirect bool
	// ReadOwnSubtree, with PublishDirect, is the publisher's Authorize
	// rule, declared so the gateway applies it without a round trip: a
	// principal may read "<scheme>:<own user id>" and everything below
	// it ("<scheme>:<user id>/…"), whatever the proof, and nothing else
	// (reason "<scheme>:<id> belongs to another user"). The gateway then
	// answers the etag of the last publish it delivered for the resource
	// since the plugin started, so set it only when the publisher's etags
	// are exactly those of its publishes and events. Authorize must still
	// answer the same (gateways without the rule, fault injection, and
	// access re-checks after a restart call it).
	ReadOwnSubtree bool
}

// Decision is an authorization answer.
type Decision struct {
	Allowed bool
	// Reason says why not; the client sees it with code FORBIDDEN.
	Reason string
	// Etag is the resource's current version when allowed.
	Etag string
}

// Allow returns an allowing decision with etag.
func Allow(etag string) Decision { return Decision{Allowed: true, Etag: etag} }

// Deny returns a denying decision with a reason.
func Deny(reason string) Decision { return Decision{Reason: reason} }

// Kind is what an event reports.
type Kind int

// Event kinds.
const (
	Changed Kind = iota + 1 // the resource has a new etag
	Revoked                 // Principal lost access to the resource
)

// Event is one change of one resource.
type Event struct {
	Kind     Kind
	Resource string
	Etag     string
	// Payload is a JSON value, or nil.
	Payload []byte
	// Time is when it happened; zero means now.
	Time time.Time
	// Principal is who lost access, for Revoked (an empty Device means
	// every device of the user).
	Principal Principal
}

// Publisher is what a plugin implements. Its methods are called
// concurrently and must honour ctx: the gateway gives every call a
// deadline and gives up when it passes.
type Publisher interface {
	// Info names the publisher and its schemes.
	Info() Info
	// Authorize says whether p may read resource given proof.
	Authorize(ctx context.Context, p Principal, resource, proof string) (Decision, error)
	// Current returns the current etags of resources ("": none, never
	// published; missing: unknown to this publisher, and the gateway keeps
	// the last etag it delivered).
	Current(ctx context.Context, resources []string) (map[string]string, error)
	// Run watches the publisher's world and reports changes with
	// h.Emit until ctx ends. It returns nil when ctx ends.
	Run(ctx context.Context, h Host) error
}

// Publishable is implemented by publishers that accept changes reported
// through the gateway's `publish` mutation. It returns the events to
// deliver.
type Publishable interface {
	Publish(ctx context.Context, p Principal, resource, etag string, payload []byte) ([]Event, error)
}

// SessionWatcher is implemented by publishers that want to know when
// devices come online and go offline (presence).
type SessionWatcher interface {
	Session(p Principal, online bool, at time.Time)
}

// Host is the gateway, as a plugin sees it.
type Host interface {
	// Emit reports an event. It blocks while the gateway is not reading
	// (bounded buffer) and returns ctx.Err() if ctx ends first. An event
	// that cannot go on the wire (a string that is not UTF-8) is refused
	// with ErrBadEvent and never reaches the stream, so one bad event
	// cannot end the stream and lose the events behind it.
	Emit(ctx context.Context, ev Event) error
	// Authorize asks the owner of resource (another publisher) whether p
	// may read it.
	Authorize(ctx context.Context, p Principal, resource, proof string) (Decision, error)
}

// Logger returns a logger that writes JSON lines to stderr, where the
// gateway picks them up.
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, nil))
}

// Serve runs p as a plugin: it answers the gateway's handshake, serves the
// contract, runs p.Run, and exits when the gateway goes. It does not return.
func Serve(p Publisher) {
	srv := newServer(p)
	go srv.run()
	go exitWithParent()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &GRPCPlugin{Impl: srv}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
	os.Exit(0)
}

// exitWithParent ends the plugin when the gateway dies without stopping
// it (the gateway also asks Linux to kill plugins with it; this covers a
// kill that raced the start).
func exitWithParent() {
	parent := os.Getppid()
	for range time.Tick(time.Second) {
		if os.Getppid() != parent {
			os.Exit(3)
		}
	}
}
