package server

import (
	"context"
	"testing"
)

// TestWriters_CoalesceOnlyWhenBehind: the writers pause to let writes
// coalesce only with a long backlog whose writes already carry two
// notifications or more each, never when they keep up, and never when
// coalescing is off.
func TestWriters_CoalesceOnlyWhenBehind(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWriters(ctx, 1, true)
	w.queued.Store(coalesceBacklog)

	for range 100 {
		w.wrote(1) // keeping up: one notification per write
	}
	if w.shouldPause(pauseEvery) {
		t.Fatal("paused while every write carried one notification")
	}
	for range 100 {
		w.wrote(3)
	}
	if w.shouldPause(pauseEvery - 1) {
		t.Fatal("paused between decision points")
	}
	if !w.shouldPause(pauseEvery) {
		t.Fatal("no pause with a long backlog and three notifications per write")
	}
	if w.shouldPause(2 * pauseEvery) {
		t.Fatal("paused again with no write since the last decision")
	}
	for range 100 {
		w.wrote(3)
	}
	w.queued.Store(coalesceBacklog - 1)
	if w.shouldPause(3 * pauseEvery) {
		t.Fatal("paused with a short backlog")
	}

	off := newWriters(ctx, 1, false)
	off.queued.Store(10 * coalesceBacklog)
	for range 100 {
		off.wrote(5)
	}
	if off.shouldPause(pauseEvery) {
		t.Fatal("paused with coalescing off")
	}
}
