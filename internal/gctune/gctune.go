// Package gctune bounds the garbage collector's headroom in bytes.
//
// Go lets the heap grow to twice the live heap before it collects
// (GOGC=100), and its scavenger keeps about that much memory from the
// operating system. For a gateway holding 100 000 idle connections that
// is hundreds of megabytes of garbage room that nothing needs, since the
// delivery path hardly allocates. Run sets GOGC from the live heap so the
// room above it stays near a fixed number of bytes, never below a floor
// percentage (GC CPU) and never above a ceiling. The room is the same for
// a small heap: with Go's default, a gateway holding a few megabytes
// collects every few megabytes of garbage, and at 2 000 publishes a second
// to ten subscribers that was a fifth of its CPU (BENCHMARKS.md, Cs).
package gctune

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config bounds the headroom. The zero value of a field means its default;
// Validate reports values out of range (Run itself never fails: it falls
// back to the defaults).
type Config struct {
	// Headroom is the heap growth allowed above the live heap between two
	// collections, in bytes. Default 32 MiB.
	Headroom uint64
	// MinPercent and MaxPercent bound the GOGC that Run sets. Defaults 25
	// and 800 (the whole headroom from a 4 MiB live heap up).
	MinPercent, MaxPercent int
	// Interval is how often the live heap is read. Default 1 s.
	Interval time.Duration
}

// Validate reports every field that is out of range, all at once, so a
// caller learns of a bad value instead of Run quietly using a default.
func (c Config) Validate() error {
	var errs []error
	if c.MinPercent < 0 || c.MaxPercent < 0 {
		errs = append(errs, fmt.Errorf("gctune: MinPercent %d and MaxPercent %d must not be negative", c.MinPercent, c.MaxPercent))
	}
	if c.MinPercent > 0 && c.MaxPercent > 0 && c.MaxPercent < c.MinPercent {
		errs = append(errs, fmt.Errorf("gctune: MaxPercent %d is below MinPercent %d", c.MaxPercent, c.MinPercent))
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("gctune: Interval %s must not be negative", c.Interval))
	}
	return errors.Join(errs...)
}

// DefaultHeadroom is Config.Headroom's default: 32 MiB.
const DefaultHeadroom = 32 << 20

func (c Config) withDefaults() Config {
	if c.Headroom == 0 {
		c.Headroom = DefaultHeadroom
	}
	if c.MinPercent <= 0 {
		c.MinPercent = 25
	}
	if c.MaxPercent <= 0 {
		c.MaxPercent = 800
	}
	if c.MaxPercent < c.MinPercent {
		c.MaxPercent = c.MinPercent
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	return c
}

// Percent is the GOGC that keeps the headroom near c.Headroom, within c's
// bounds, when the collector's base (the live heap plus goroutine stacks
// and globals, which GOGC applies to) is live bytes.
func Percent(live uint64, c Config) int {
	c = c.withDefaults()
	if live == 0 {
		return c.MaxPercent
	}
	p := int(c.Headroom * 100 / live)
	return max(c.MinPercent, min(c.MaxPercent, p))
}

// Run adjusts GOGC after each collection until ctx ends, then restores
// the setting it found. It does nothing when the operator set GOGC in the
// environment: their choice stands.
func Run(ctx context.Context, c Config, log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		log.Info("GOGC set in the environment: the collector's headroom is not tuned")
		return
	}
	c = c.withDefaults()
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"},
	}
	orig := debug.SetGCPercent(c.MaxPercent)
	defer debug.SetGCPercent(orig)
	current, lastCycle := c.MaxPercent, uint64(0)
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		cycle := samples[0].Value.Uint64()
		if cycle == lastCycle {
			continue // no collection since the last look: nothing new to go by
		}
		lastCycle = cycle
		base := samples[1].Value.Uint64() + samples[2].Value.Uint64() + samples[3].Value.Uint64()
		if p := Percent(base, c); p != current {
			debug.SetGCPercent(p)
			log.Debug("GOGC adjusted", "gogc", p, "live_heap_stacks_globals", base)
			current = p
		}
	}
}
