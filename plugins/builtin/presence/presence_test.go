package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"meshgate/plugins/sdk"
)

type recorder struct{ events chan sdk.Event }

func (r recorder) Emit(_ context.Context, ev sdk.Event) error { r.events <- ev; return nil }

func (recorder) Authorize(context.Context, sdk.Principal, string, string) (sdk.Decision, error) {
	return sdk.Decision{}, nil
}

// lastUserPayload reads events until the one for presence:user/bob with
// the given count arrives.
func lastUserPayload(t *testing.T, r recorder, count int) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-r.events:
			if ev.Resource != "presence:user/bob" {
				continue
			}
			var p map[string]any
			if err := json.Unmarshal(ev.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if p["count"] == float64(count) {
				return p
			}
		case <-deadline:
			t.Fatalf("no presence:user/bob event with count %d", count)
		}
	}
}

// TestUserPayloadListsAFewDevicesAndCountsMany: a user's payload names
// their devices, sorted, and above MaxListed carries only the count.
func TestUserPayloadListsAFewDevicesAndCountsMany(t *testing.T) {
	p := New(t.TempDir())
	r := recorder{make(chan sdk.Event, 4*MaxListed)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Run(ctx, r) }()

	p.Session(sdk.Principal{User: "bob", Device: "tablet"}, true, time.Now())
	p.Session(sdk.Principal{User: "bob", Device: "phone"}, true, time.Now())
	got := lastUserPayload(t, r, 2)
	if fmt.Sprint(got["online"]) != "[phone tablet]" {
		t.Fatalf("two devices: %v", got)
	}
	for i := range MaxListed {
		p.Session(sdk.Principal{User: "bob", Device: fmt.Sprintf("bot%d", i)}, true, time.Now())
	}
	got = lastUserPayload(t, r, MaxListed+2)
	if _, listed := got["online"]; listed {
		t.Fatalf("%d devices are listed by name", MaxListed+2)
	}
	p.Session(sdk.Principal{User: "bob", Device: "tablet"}, false, time.Now())
	if got = lastUserPayload(t, r, MaxListed+1); got["online"] != nil {
		t.Fatalf("after one left: %v", got)
	}
}
