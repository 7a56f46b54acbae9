package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"meshgate/plugins/host"
	"meshgate/plugins/sdk"
	"meshgate/shard"
)

// big answers a publish of {"n": n} with one event whose payload is a
// JSON string of n bytes (or, with "raw", n bytes that are not JSON).
type big struct{}

func (big) Info() sdk.Info { return sdk.Info{Name: "big", Version: "0", Schemes: []string{"big"}} }
func (big) Authorize(context.Context, sdk.Principal, string, string) (sdk.Decision, error) {
	return sdk.Allow("e0"), nil
}
func (big) Current(context.Context, []string) (map[string]string, error) { return nil, nil }
func (big) Run(ctx context.Context, _ sdk.Host) error                    { <-ctx.Done(); return nil }
func (big) Publish(_ context.Context, _ sdk.Principal, resource, etag string, payload []byte) ([]sdk.Event, error) {
	var req struct {
		N   int  `json:"n"`
		Raw bool `json:"raw"`
	}
	_ = json.Unmarshal(payload, &req)
	body := []byte(`"` + strings.Repeat("x", req.N) + `"`)
	if req.Raw {
		body = []byte(strings.Repeat("{", req.N))
	}
	return []sdk.Event{{Kind: sdk.Changed, Resource: resource, Etag: etag, Payload: body}}, nil
}

func bigPlugin(t *testing.T) host.Plugin {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return host.Plugin{Name: "big", Path: self, Args: []string{"-test.run=^$"}, SHA256: sha256File(t, self), Env: map[string]string{"MESHGATE_TEST_PLUGIN": "big"}}
}

// TestPlugins_OversizedEventIsDeliveredNotDropped: an event over the
// payload limit still reaches subscribers as CHANGED with its etag, and a
// payload saying it was too large; so does one that is not JSON.
func TestPlugins_OversizedEventIsDeliveredNotDropped(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	r := start(t, host.Config{Plugins: []host.Plugin{bigPlugin(t)}})
	q := r.queue(t, alice, "big:x")
	for i, req := range []string{fmt.Sprintf(`{"n":%d}`, host.MaxPayload+10), `{"n":100,"raw":true}`} {
		etag := fmt.Sprint("e", i+1)
		if _, err := r.h.Publish(context.Background(), alice, "big:x", etag, []byte(req)); err != nil {
			t.Fatal(err)
		}
		got := r.await(t, alice, q, func(n shard.Notification) bool { return n.Kind == shard.Changed && n.Etag == etag })
		var p struct {
			Dropped bool   `json:"dropped"`
			Reason  string `json:"reason"`
			Bytes   int    `json:"bytes"`
		}
		if err := json.Unmarshal(got.Payload, &p); err != nil || !p.Dropped || p.Reason == "" || p.Bytes == 0 {
			t.Fatalf("%s: payload %.200s (%v)", req, got.Payload, err)
		}
	}
}

// TestPlugins_ReceiveSizeIsBounded: a plugin's answer larger than
// host.MaxMessageBytes is refused by gRPC before it is decoded, so a
// plugin cannot make the gateway hold what it sends.
func TestPlugins_ReceiveSizeIsBounded(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	r := start(t, host.Config{Plugins: []host.Plugin{bigPlugin(t)}})
	r.queue(t, alice, "big:x")
	_, err := r.h.Publish(context.Background(), alice, "big:x", "e1", []byte(fmt.Sprintf(`{"n":%d}`, 8<<20)))
	if !errors.Is(err, shard.ErrUnavailable) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("publish of an 8 MiB answer: %v", err)
	}
	// The plugin is still usable.
	if _, err := r.h.Publish(context.Background(), alice, "big:x", "e2", []byte(`{"n":10}`)); err != nil {
		t.Fatal(err)
	}
}
