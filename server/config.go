package server

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"meshgate/internal/faults"
)

// Config sets the front door's limits. A zero field means its default.
// The config file's `limits:` section decodes straight into it (the yaml
// tags; cmd adds the keys that belong elsewhere).
type Config struct {
	// MaxBodyBytes caps a POST body or SSE request. Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// BodyTimeout bounds reading a request's body, from the handler's
	// start: a client that trickles it gets 408 and the connection
	// closes. Default 5 s.
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// MaxQueryBytes caps the query text (also in GET URLs). Default 64 KiB.
	MaxQueryBytes int `yaml:"max_query_bytes"`
	// MaxDepth caps selection depth, introspection excluded. Default 10.
	MaxDepth int `yaml:"max_depth"`
	// MaxComplexity caps gqlgen's complexity score (1 per field). Default 500.
	MaxComplexity int `yaml:"max_complexity"`
	// MaxTokens caps the parser's token count. Default 10 000.
	MaxTokens int `yaml:"max_tokens"`
	// WS configures the WebSocket transports. The config file's
	// limits.websocket section decodes into it in cmd, which also maps
	// its coalesce_writes onto NoCoalesce.
	WS WSConfig `yaml:"-"`
	// Limits protects the node from any one user.
	Limits Limits `yaml:"per_user"`
	// SSEKeepAlive is how often an idle SSE stream gets a comment line,
	// and an idle multipart stream a `{}` heartbeat. Default 15 s.
	SSEKeepAlive time.Duration `yaml:"sse_keep_alive"`
	// CORS lets pages on other origins call /graphql (cmd: the cors:
	// section). Off by default.
	CORS CORSConfig `yaml:"-"`
	// Logger: default discard.
	Logger *slog.Logger `yaml:"-"`
	// Now is the clock. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// Ready reports whether the node can serve everything (plugins up);
	// /readyz answers 503 while it is false. Default: always ready.
	Ready func() bool `yaml:"-"`
	// Plugins reports the publisher plugins for /metrics. Default: none.
	Plugins func() []PluginStatus `yaml:"-"`
	// Faults injects delays and failures into /graphql requests, to rehearse
	// failure. Off by default. FaultSeed makes a run repeatable (0: random).
	Faults    faults.Config `yaml:"-"`
	FaultSeed uint64        `yaml:"-"`
}

// WSConfig sets WebSocket limits.
type WSConfig struct {
	// InitTimeout: a connection that sends no connection_init by then is
	// closed with 4408. Default 3 s, as graphql-ws's reference server.
	InitTimeout time.Duration `yaml:"init_timeout"`
	// PingInterval: idle connections get a ping this often, and are closed
	// after 3 intervals without reading anything. Default 30 s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// KeepAlive: protocol-level keep-alive messages, for clients that watch
	// messages rather than WebSocket frames: a graphql-transport-ws
	// connection gets a `ping` message when nothing was written to it for
	// this long (hasura/go-graphql-client times reads out after 60 s), a
	// legacy one gets `ka` this often (subscriptions-transport-ws closes
	// after 30 s without one). Default 15 s.
	KeepAlive time.Duration `yaml:"keep_alive"`
	// WriteTimeout: a write that takes longer means a stalled consumer,
	// which is disconnected (its queue keeps buffering). Default 10 s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxMessageBytes caps one incoming message; larger ones close with 1009. Default 64 KiB.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MessageRate and MessageBurst limit incoming messages per connection
	// (a token bucket); a flood closes with 4429. Defaults 50/s and 100.
	MessageRate  float64 `yaml:"message_rate"`
	MessageBurst int     `yaml:"message_burst"`
	// MaxOperations caps concurrent operations per connection; more get an
	// error with LIMIT_EXCEEDED. Default 100.
	MaxOperations int `yaml:"max_operations"`
	// MaxQueuedBytes caps the frames (results, errors, acks) queued for a
	// connection and not yet written; a client that does not read past it
	// is closed with 1013. One frame larger than the cap is still sent
	// when nothing else is queued. Default 4 MiB.
	MaxQueuedBytes int `yaml:"max_queued_bytes"`
	// NoCoalesce turns off write coalescing under load (see writers.go):
	// every notification is written as soon as a writer gets to it, at
	// about twice the CPU per delivery when the node is behind.
	NoCoalesce bool `yaml:"-"`
	// ParkAfter: a connection that has begun no frame for this long gives
	// up its reader goroutine until its socket is readable (Linux; see
	// wsConn.park). Default 100 ms: a device setting up over a short
	// round trip is not parked between its messages, and few readers
	// linger (in B, a second's lingering readers left 1.4 KiB of stack
	// memory per connection behind).
	ParkAfter time.Duration `yaml:"-"`
	// MaxLag and LagGrace: a stream more than MaxLag notifications behind
	// its queue for longer than LagGrace is a consumer that cannot keep
	// up. It is closed with 1013 (try again later) and a reason saying so;
	// its queue keeps buffering and it resumes with `after`. Defaults 512
	// and 30 s.
	MaxLag   int           `yaml:"max_lag"`
	LagGrace time.Duration `yaml:"lag_grace"`
}

// DefaultConfig returns the defaults spelled out.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:  1 << 20,
		BodyTimeout:   5 * time.Second,
		MaxQueryBytes: 64 << 10,
		MaxDepth:      10,
		MaxComplexity: 500,
		MaxTokens:     10000,
		WS: WSConfig{
			InitTimeout:     3 * time.Second,
			PingInterval:    30 * time.Second,
			KeepAlive:       15 * time.Second,
			WriteTimeout:    10 * time.Second,
			MaxLag:          512,
			LagGrace:        30 * time.Second,
			MaxMessageBytes: 64 << 10,
			MessageRate:     50,
			MessageBurst:    100,
			MaxOperations:   100,
			MaxQueuedBytes:  4 << 20,
			ParkAfter:       100 * time.Millisecond,
		},
		Limits:       DefaultLimits(),
		SSEKeepAlive: 15 * time.Second,
		CORS:         CORSConfig{MaxAge: 10 * time.Minute},
		Now:          time.Now,
	}
}

// withDefaults fills zero fields and reports every invalid one at once,
// each named by its key in the config file's limits: section.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	var errs []error
	pos := func(name string, v *int, def int) {
		if *v == 0 {
			*v = def
		} else if *v < 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %d", name, *v))
		}
	}
	dur := func(name string, v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		} else if *v < 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", name, *v))
		}
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	} else if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max_body_bytes: must be positive, got %d", c.MaxBodyBytes))
	}
	dur("body_timeout", &c.BodyTimeout, d.BodyTimeout)
	pos("max_query_bytes", &c.MaxQueryBytes, d.MaxQueryBytes)
	pos("max_depth", &c.MaxDepth, d.MaxDepth)
	pos("max_complexity", &c.MaxComplexity, d.MaxComplexity)
	pos("max_tokens", &c.MaxTokens, d.MaxTokens)
	dur("websocket.init_timeout", &c.WS.InitTimeout, d.WS.InitTimeout)
	dur("websocket.ping_interval", &c.WS.PingInterval, d.WS.PingInterval)
	dur("websocket.keep_alive", &c.WS.KeepAlive, d.WS.KeepAlive)
	dur("websocket.write_timeout", &c.WS.WriteTimeout, d.WS.WriteTimeout)
	pos("websocket.max_message_bytes", &c.WS.MaxMessageBytes, d.WS.MaxMessageBytes)
	pos("websocket.message_burst", &c.WS.MessageBurst, d.WS.MessageBurst)
	pos("websocket.max_operations", &c.WS.MaxOperations, d.WS.MaxOperations)
	pos("websocket.max_queued_bytes", &c.WS.MaxQueuedBytes, d.WS.MaxQueuedBytes)
	pos("websocket.max_lag", &c.WS.MaxLag, d.WS.MaxLag)
	dur("websocket.lag_grace", &c.WS.LagGrace, d.WS.LagGrace)
	dur("websocket.park_after", &c.WS.ParkAfter, d.WS.ParkAfter)
	if c.WS.MessageRate == 0 {
		c.WS.MessageRate = d.WS.MessageRate
	} else if c.WS.MessageRate < 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %v", "websocket.message_rate", c.WS.MessageRate))
	}
	dur("sse_keep_alive", &c.SSEKeepAlive, d.SSEKeepAlive)
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.CORS.Check(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Faults.Check(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", "faults", err))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, errors.Join(errs...)
}

// Check reports every invalid field at once, without starting anything.
func (c Config) Check() error {
	_, err := c.withDefaults()
	return err
}
