package shard

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Config sets the store's limits. A zero field means its default. The
// config file's `queues:` section decodes straight into it (the yaml
// tags), and errors name fields by those keys.
type Config struct {
	// DefaultTTL is a new queue's lease when createQueue gives none. Default 300 s.
	DefaultTTL time.Duration `yaml:"default_ttl"`
	// MaxTTL caps a queue's lease. Default 3600 s.
	MaxTTL time.Duration `yaml:"max_ttl"`
	// BufferSize is how many notifications a queue holds before the oldest
	// go (and readers get OVERFLOW). Default 1024, at most 1 048 576.
	BufferSize int `yaml:"buffer_size"`
	// RetainDelivered is how many notifications already written to a stream
	// stay buffered for a reader that reconnects with an older `after`.
	// Default 1024 (the default BufferSize), at most BufferSize. It must
	// cover what a stream can have in flight: a relayed stream's holder
	// writes to another node's relay buffer and its gRPC window, hundreds
	// of notifications under load, and a relay that breaks (its node
	// froze, its reader's connection went) loses them; with 64, the
	// reader resuming elsewhere got an OVERFLOW, subscribed again, was
	// answered the current etags, and then read the older notifications
	// still queued after them (TestRelay_BrokenWithManyInFlightResumesWithoutOverflow).
	RetainDelivered int `yaml:"retain_delivered"`
	// MaxSubscriptionsPerQueue: default 10 000.
	MaxSubscriptionsPerQueue int `yaml:"max_subscriptions_per_queue"`
	// MaxQueuesPerDevice: default 16.
	MaxQueuesPerDevice int `yaml:"max_queues_per_device"`
	// ReapInterval is how often expired queues are removed. Default 1 s.
	ReapInterval time.Duration `yaml:"reap_interval"`
	// MaxPollLimit caps a poll's page. Default 1000.
	MaxPollLimit int `yaml:"max_poll_limit"`
	// MaxWait caps a long-poll. Default 60 s.
	MaxWait time.Duration `yaml:"max_wait"`
	// Now is the clock. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// Rand supplies queue names' randomness. Default crypto/rand.
	Rand io.Reader `yaml:"-"`
	// Logger receives lifecycle logs. Default: discard.
	Logger *slog.Logger `yaml:"-"`
	// Observer hears about device activity (presence). Default: none.
	Observer Observer `yaml:"-"`
}

// DefaultConfig returns the defaults spelled out.
func DefaultConfig() Config {
	return Config{
		DefaultTTL:               300 * time.Second,
		MaxTTL:                   3600 * time.Second,
		BufferSize:               1024,
		RetainDelivered:          1024,
		MaxSubscriptionsPerQueue: 10000,
		MaxQueuesPerDevice:       16,
		ReapInterval:             time.Second,
		MaxPollLimit:             1000,
		MaxWait:                  60 * time.Second,
		Now:                      time.Now,
		Rand:                     rand.Reader,
		Logger:                   slog.New(slog.DiscardHandler),
	}
}

// withDefaults fills zero fields and reports every invalid one at once.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	var errs []error
	setDur := func(v *time.Duration, def time.Duration, name string) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", name, *v))
		}
	}
	setInt := func(v *int, def, limit int, name string) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0 || *v > limit:
			errs = append(errs, fmt.Errorf("%s: must be 1-%d, got %d", name, limit, *v))
		}
	}
	setDur(&c.DefaultTTL, d.DefaultTTL, "default_ttl")
	setDur(&c.MaxTTL, d.MaxTTL, "max_ttl")
	setDur(&c.ReapInterval, d.ReapInterval, "reap_interval")
	setDur(&c.MaxWait, d.MaxWait, "max_wait")
	setInt(&c.BufferSize, d.BufferSize, 1<<20, "buffer_size")
	setInt(&c.RetainDelivered, min(d.RetainDelivered, c.BufferSize), 1<<20, "retain_delivered")
	setInt(&c.MaxSubscriptionsPerQueue, d.MaxSubscriptionsPerQueue, 1<<24, "max_subscriptions_per_queue")
	setInt(&c.MaxQueuesPerDevice, d.MaxQueuesPerDevice, 1<<16, "max_queues_per_device")
	setInt(&c.MaxPollLimit, d.MaxPollLimit, 1<<16, "max_poll_limit")
	if c.RetainDelivered > c.BufferSize {
		errs = append(errs, fmt.Errorf("retain_delivered: %d exceeds buffer_size %d", c.RetainDelivered, c.BufferSize))
	}
	if c.DefaultTTL > c.MaxTTL {
		errs = append(errs, fmt.Errorf("default_ttl: %s exceeds max_ttl %s", c.DefaultTTL, c.MaxTTL))
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	c.Rand = cmp.Or(c.Rand, d.Rand)
	c.Logger = cmp.Or(c.Logger, d.Logger)
	c.Observer = cmp.Or[Observer](c.Observer, nopObserver{})
	return c, errors.Join(errs...)
}

// Check reports every invalid field at once, without starting anything.
func (c Config) Check() error {
	_, err := c.withDefaults()
	return err
}
