package server

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"meshgate/internal/faults"
)

// Config sets the front door's limits. A zero field means its default.
type Config struct {
	// MaxBodyBytes caps a POST body or SSE request. Default 1 MiB.
	MaxBodyBytes int64
	// MaxQueryBytes caps the query text (also in GET URLs). Default 64 KiB.
	MaxQueryBytes int
	// MaxDepth caps selection depth, introspection excluded. Default 10.
	MaxDepth int
	// MaxComplexity caps gqlgen's complexity score (1 per field). Default 500.
	MaxComplexity int
	// MaxTokens caps the parser's token count. Default 10 000.
	MaxTokens int
	// WS configures the WebSocket transports.
	WS WSConfig
	// Limits protects the node from any one user.
	Limits Limits
	// SSEKeepAlive is how often an idle SSE stream gets a comment line. Default 15 s.
	SSEKeepAlive time.Duration
	// Logger: default discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Ready reports whether the node can serve everything (plugins up);
	// /readyz answers 503 while it is false. Default: always ready.
	Ready func() bool
	// Plugins reports the publisher plugins for /metrics. Default: none.
	Plugins func() []PluginStatus
	// Faults injects delays and failures into /graphql requests, to rehearse
	// failure. Off by default. FaultSeed makes a run repeatable (0: random).
	Faults    faults.Config
	FaultSeed uint64
}

// WSConfig sets WebSocket limits.
type WSConfig struct {
	// InitTimeout: a connection that sends no connection_init by then is
	// closed with 4408. Default 10 s.
	InitTimeout time.Duration
	// PingInterval: idle connections get a ping this often, and are closed
	// after 3 intervals without reading anything. Default 30 s.
	PingInterval time.Duration
	// WriteTimeout: a write that takes longer means a stalled consumer,
	// which is disconnected (its queue keeps buffering). Default 10 s.
	WriteTimeout time.Duration
	// MaxMessageBytes caps one incoming message; larger ones close with 1009. Default 64 KiB.
	MaxMessageBytes int
	// MessageRate and MessageBurst limit incoming messages per connection
	// (a token bucket); a flood closes with 4429. Defaults 50/s and 100.
	MessageRate  float64
	MessageBurst int
	// MaxOperations caps concurrent operations per connection; more get an
	// error with LIMIT_EXCEEDED. Default 100.
	MaxOperations int
	// NoCoalesce turns off write coalescing under load (see writers.go):
	// every notification is written as soon as a writer gets to it, at
	// about twice the CPU per delivery when the node is behind.
	NoCoalesce bool
	// MaxLag and LagGrace: a stream more than MaxLag notifications behind
	// its queue for longer than LagGrace is a consumer that cannot keep
	// up. It is closed with 1013 (try again later) and a reason saying so;
	// its queue keeps buffering and it resumes with `after`. Defaults 512
	// and 30 s.
	MaxLag   int
	LagGrace time.Duration
}

// DefaultConfig returns the defaults spelled out.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:  1 << 20,
		MaxQueryBytes: 64 << 10,
		MaxDepth:      10,
		MaxComplexity: 500,
		MaxTokens:     10000,
		WS: WSConfig{
			InitTimeout:     10 * time.Second,
			PingInterval:    30 * time.Second,
			WriteTimeout:    10 * time.Second,
			MaxLag:          512,
			LagGrace:        30 * time.Second,
			MaxMessageBytes: 64 << 10,
			MessageRate:     50,
			MessageBurst:    100,
			MaxOperations:   100,
		},
		Limits:       DefaultLimits(),
		SSEKeepAlive: 15 * time.Second,
		Now:          time.Now,
	}
}

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
		errs = append(errs, fmt.Errorf("MaxBodyBytes: must be positive, got %d", c.MaxBodyBytes))
	}
	pos("MaxQueryBytes", &c.MaxQueryBytes, d.MaxQueryBytes)
	pos("MaxDepth", &c.MaxDepth, d.MaxDepth)
	pos("MaxComplexity", &c.MaxComplexity, d.MaxComplexity)
	pos("MaxTokens", &c.MaxTokens, d.MaxTokens)
	dur("WS.InitTimeout", &c.WS.InitTimeout, d.WS.InitTimeout)
	dur("WS.PingInterval", &c.WS.PingInterval, d.WS.PingInterval)
	dur("WS.WriteTimeout", &c.WS.WriteTimeout, d.WS.WriteTimeout)
	pos("WS.MaxMessageBytes", &c.WS.MaxMessageBytes, d.WS.MaxMessageBytes)
	pos("WS.MessageBurst", &c.WS.MessageBurst, d.WS.MessageBurst)
	pos("WS.MaxOperations", &c.WS.MaxOperations, d.WS.MaxOperations)
	pos("WS.MaxLag", &c.WS.MaxLag, d.WS.MaxLag)
	dur("WS.LagGrace", &c.WS.LagGrace, d.WS.LagGrace)
	if c.WS.MessageRate == 0 {
		c.WS.MessageRate = d.WS.MessageRate
	} else if c.WS.MessageRate < 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %v", "WS.MessageRate", c.WS.MessageRate))
	}
	dur("SSEKeepAlive", &c.SSEKeepAlive, d.SSEKeepAlive)
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Faults.Check(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", "Faults", err))
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
