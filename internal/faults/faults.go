package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Config sets one injection point. Zero values mean "never".
type Config struct {
	// DelayProbability (0–1) of adding Delay before the operation.
	DelayProbability float64       `yaml:"delay_probability"`
	Delay            time.Duration `yaml:"delay"`
	// ErrorProbability (0–1) of failing the operation with ErrInjected.
	ErrorProbability float64 `yaml:"error_probability"`
}

// Enabled reports whether c injects anything.
func (c Config) Enabled() bool {
	return c.DelayProbability > 0 && c.Delay > 0 || c.ErrorProbability > 0
}

// Check reports a probability outside 0–1 or a negative delay.
func (c Config) Check() error {
	var errs []error
	for name, p := range map[string]float64{"delay_probability": c.DelayProbability, "error_probability": c.ErrorProbability} {
		if p < 0 || p > 1 {
			errs = append(errs, fmt.Errorf("%s: %v is not between 0 and 1", name, p))
		}
	}
	if c.Delay < 0 {
		errs = append(errs, fmt.Errorf("delay: %s is negative", c.Delay))
	}
	return errors.Join(errs...)
}

// ErrInjected is the failure an Injector makes.
var ErrInjected = errors.New("fault injected")

// Injector applies a Config. A nil *Injector injects nothing. Safe for
// concurrent use.
type Injector struct {
	cfg Config
	mu  sync.Mutex
	rnd *rand.Rand
}

// New returns an injector for cfg, or nil when cfg injects nothing. seed
// makes a run repeatable; 0 means random.
func New(cfg Config, seed uint64) *Injector {
	if !cfg.Enabled() {
		return nil
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Injector{cfg: cfg, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (i *Injector) roll() float64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.rnd.Float64()
}

// Before runs before an operation: it may wait, and it may return
// ErrInjected, which the caller turns into its own failure. It honours ctx.
func (i *Injector) Before(ctx context.Context) error {
	if i == nil {
		return nil
	}
	if i.cfg.Delay > 0 && i.roll() < i.cfg.DelayProbability {
		t := time.NewTimer(i.cfg.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if i.roll() < i.cfg.ErrorProbability {
		return ErrInjected
	}
	return nil
}
