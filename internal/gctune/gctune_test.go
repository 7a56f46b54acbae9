package gctune

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercentKeepsHeadroomInBytes(t *testing.T) {
	c := Config{Headroom: 32 << 20}
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 800},
		{2 << 20, 800},   // the ceiling: 16 MiB of room
		{8 << 20, 400},   // small heaps get the whole headroom too
		{32 << 20, 100},  // 32 MiB of room is GOGC 100 here
		{64 << 20, 50},   // then the room stays 32 MiB
		{128 << 20, 25},  // down to the floor
		{1024 << 20, 25}, // and no lower
	} {
		if got := Percent(tc.live, c); got != tc.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
	if got := Percent(64<<20, Config{Headroom: 32 << 20, MinPercent: 60}); got != 60 {
		t.Errorf("floor 60: got %d", got)
	}
}

// TestRunLowersGOGCForALargeHeap holds a live heap four times the headroom
// and checks that Run lowers GOGC after a collection, then restores it.
func TestRunLowersGOGCForALargeHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	keep := make([][]byte, 64)
	for i := range keep {
		keep[i] = make([]byte, 1<<20)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, Config{Headroom: 16 << 20, Interval: 10 * time.Millisecond}, slog.New(slog.DiscardHandler))
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(30 * time.Millisecond)
		p := gogc()
		if p <= 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d with a 64 MiB live heap and 16 MiB of headroom", p)
		}
	}
	runtime.KeepAlive(keep)
	cancel()
	<-done
	if p := gogc(); p != 100 {
		t.Fatalf("after Run, GOGC is %d, want the 100 it found", p)
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

func TestConfig_Validate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	for _, c := range []Config{{MinPercent: -1}, {MaxPercent: 20, MinPercent: 50}, {Interval: -time.Second}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestRoomFollowsAllocation(t *testing.T) {
	c := Config{Headroom: 32 << 20, StormHeadroom: 256 << 20}
	for _, tc := range []struct{ allocated, want uint64 }{
		{0, 32 << 20},          // quiet: the fixed room
		{20 << 20, 32 << 20},   // below the room: still the room
		{100 << 20, 100 << 20}, // a storm: one interval's allocation
		{1 << 30, 256 << 20},   // capped
	} {
		if got := Room(tc.allocated, c); got != tc.want {
			t.Errorf("Room(%d MiB) = %d MiB, want %d", tc.allocated>>20, got>>20, tc.want>>20)
		}
	}
	if got := Room(1<<30, Config{Headroom: 64 << 20, StormHeadroom: 16 << 20}); got != 64<<20 {
		t.Errorf("a storm room below Headroom: %d MiB, want Headroom's 64", got>>20)
	}
}

// TestRunGrowsRoomWhileAllocating: while garbage is allocated fast, Run
// raises GOGC above what the live heap alone would get, and lowers it
// again once the allocation stops.
func TestRunGrowsRoomWhileAllocating(t *testing.T) {
	t.Setenv("GOGC", "")
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	keep := make([][]byte, 32)
	for i := range keep {
		keep[i] = make([]byte, 1<<20)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	cfg := Config{Headroom: 4 << 20, StormHeadroom: 64 << 20, MinPercent: 1, Interval: 50 * time.Millisecond}
	go func() {
		Run(ctx, cfg, slog.New(slog.DiscardHandler))
		close(done)
	}()
	quiet := func() int { // GOGC with nothing allocating: about 4 MiB over 32
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			time.Sleep(120 * time.Millisecond)
			if p := gogc(); p <= 20 {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("GOGC %d with nothing allocating, want about 12", gogc())
			}
		}
	}
	q := quiet()
	stop := make(chan struct{})
	allocDone := make(chan struct{})
	var sink []byte
	go func() {
		defer close(allocDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for range 16 {
				sink = make([]byte, 1<<20)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for gogc() < 3*q {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC stayed at %d while allocating (quiet: %d)", gogc(), q)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	<-allocDone
	_ = sink
	quiet()
	runtime.KeepAlive(keep)
	cancel()
	<-done
}
