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
	// StormHeadroom is the most the headroom grows to while allocation
	// is fast: the room is what was allocated over the last Interval,
	// between Headroom and StormHeadroom. Default 256 MiB; equal to
	// Headroom (or below it), a fixed room.
	StormHeadroom uint64
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

// DefaultStormHeadroom is Config.StormHeadroom's default: 256 MiB.
const DefaultStormHeadroom = 256 << 20

func (c Config) withDefaults() Config {
	if c.Headroom == 0 {
		c.Headroom = DefaultHeadroom
	}
	if c.StormHeadroom == 0 {
		c.StormHeadroom = DefaultStormHeadroom
	}
	c.StormHeadroom = max(c.StormHeadroom, c.Headroom)
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
	return percent(live, c.Headroom, c)
}

// percent is the GOGC that leaves room above live, within c's bounds; c
// has its defaults.
func percent(live, room uint64, c Config) int {
	if live == 0 {
		return c.MaxPercent
	}
	p := int(room * 100 / live)
	return max(c.MinPercent, min(c.MaxPercent, p))
}

// Room is the headroom for a heap that allocated allocated bytes over the
// last Interval: that much, between c.Headroom and c.StormHeadroom.
func Room(allocated uint64, c Config) uint64 {
	c = c.withDefaults()
	return max(c.Headroom, min(c.StormHeadroom, allocated))
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
		{Name: "/gc/heap/allocs:bytes"},
	}
	orig := debug.SetGCPercent(c.MaxPercent)
	defer debug.SetGCPercent(orig)
	metrics.Read(samples)
	current, lastCycle, lastAllocs, base := c.MaxPercent, uint64(0), samples[4].Value.Uint64(), uint64(0)
	busy := false // allocating more than a quarter of Headroom an Interval since the last return
	var freed time.Time
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		allocs := samples[4].Value.Uint64()
		allocated := allocs - lastAllocs
		room := Room(allocated, c)
		lastAllocs = allocs
		// The live heap is known only as of the last collection.
		if cycle := samples[0].Value.Uint64(); cycle != lastCycle {
			lastCycle = cycle
			base = samples[1].Value.Uint64() + samples[2].Value.Uint64() + samples[3].Value.Uint64()
		}
		if lastCycle == 0 {
			continue // no collection yet: nothing to go by
		}
		if p := percent(base, room, c); p != current {
			debug.SetGCPercent(p)
			log.Debug("GOGC adjusted", "gogc", p, "live_heap_stacks_globals", base, "room", room)
			current = p
		}
		switch {
		case allocated > c.Headroom/4:
			busy = true
		case busy && allocated < c.Headroom/16 && time.Since(freed) > time.Minute:
			busy = false
			freed = time.Now()
			// Quiet after a busy spell (a storm, connections arriving):
			// collect its garbage, and the stacks of its exited
			// goroutines (the runtime frees those only at a collection,
			// and a quiet heap may not collect for minutes), and give
			// the memory back now rather than let the scavenger return
			// it slowly. At most once a minute: each is a whole
			// collection.
			debug.FreeOSMemory()
			log.Debug("busy spell over: memory returned")
		}
	}
}
