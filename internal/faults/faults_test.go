package faults

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestInjector(t *testing.T) {
	if New(Config{}, 1) != nil {
		t.Fatal("an empty config injects")
	}
	var nilInj *Injector
	if nilInj.Before(context.Background()) != nil {
		t.Fatal("a nil injector injects")
	}
	inj := New(Config{ErrorProbability: 0.3}, 42)
	fails := 0
	for range 10000 {
		if errors.Is(inj.Before(context.Background()), ErrInjected) {
			fails++
		}
	}
	if fails < 2700 || fails > 3300 {
		t.Fatalf("%d failures in 10000 at p=0.3", fails)
	}
	slow := New(Config{DelayProbability: 1, Delay: time.Hour}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := slow.Before(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a delay ignores cancellation: %v", err)
	}
	if err := (Config{ErrorProbability: 2, Delay: -1}).Check(); err == nil {
		t.Fatal("bad config accepted")
	}
}
