package host_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"meshgate/plugins/host"
	"meshgate/shard"
)

// TestPlugins_PublishDirectAnswersAsAPublishCall runs the same publishes
// through the user plugin with publish_direct (delivered at once, reported
// to the plugin afterwards) and without it (a Publish call each): both
// give the same counts, errors, deliveries and etags, before and after
// the plugin has recorded them.
func TestPlugins_PublishDirectAnswersAsAPublishCall(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		plugin host.Plugin
		direct bool
	}{
		{"direct", host.Plugin{Name: "user", Builtin: "user"}, true},
		{"publish call", host.Plugin{Name: "user", Path: self, Args: []string{"-test.run=^$"}, SHA256: sha256File(t, self),
			Env: map[string]string{"MESHGATE_TEST_PLUGIN": "user-unary"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, host.Config{Plugins: []host.Plugin{tc.plugin}})
			if st := r.h.Statuses(); len(st) != 1 || st[0].Direct != tc.direct {
				t.Fatalf("statuses %+v, want direct %v", st, tc.direct)
			}
			ctx := context.Background()
			const res = "user:alice/inbox"
			q := r.queue(t, alice, res)

			// A publish reaches the subscriber with its etag and payload,
			// and the very next Authorize and Current answer that etag.
			n, err := r.h.Publish(ctx, alice, res, "v1", []byte(`{"x":1}`))
			if err != nil || n != 1 {
				t.Fatalf("publish: %d %v", n, err)
			}
			if e, err := r.h.Authorize(ctx, alice, res, ""); err != nil || e != "v1" {
				t.Fatalf("authorize right after publish: %q %v", e, err)
			}
			if cur := r.h.Current(ctx, []string{res, "user:alice/other"}); cur[res] != "v1" || cur["user:alice/other"] != "" {
				t.Fatalf("current right after publish: %v", cur)
			}
			got := r.await(t, alice, q, kind(shard.Changed, res))
			if got.Etag != "v1" || string(got.Payload) != `{"x":1}` {
				t.Fatalf("delivered %+v", got.Event)
			}

			// Many publishes in a row: the plugin records them in order.
			for i := 2; i <= 200; i++ {
				if n, err := r.h.Publish(ctx, alice, res, fmt.Sprint("v", i), nil); err != nil || n != 1 {
					t.Fatalf("publish %d: %d %v", i, n, err)
				}
			}
			if e, _ := r.h.Authorize(ctx, alice, res, ""); e != "v200" {
				t.Fatalf("authorize after 200 publishes: %q", e)
			}
			waitFor(t, func() bool { return r.h.Statuses()[0].Unrecorded == 0 })
			// Now the plugin itself answers.
			if e, err := r.h.Authorize(ctx, alice, res, ""); err != nil || e != "v200" {
				t.Fatalf("authorize once recorded: %q %v", e, err)
			}
			if cur := r.h.Current(ctx, []string{res}); cur[res] != "v200" {
				t.Fatalf("current once recorded: %v", cur)
			}

			// Refusals are the same: another user's resource is still not
			// readable, an unknown scheme is unknown, and an event the
			// host would drop (a bad etag) reaches nobody, and a payload that
			// is not JSON is replaced and the change still delivered.
			if _, err := r.h.Authorize(ctx, bob, res, ""); !errors.Is(err, shard.ErrForbidden) {
				t.Fatalf("bob: %v", err)
			}
			if _, err := r.h.Publish(ctx, alice, "nope:x", "v1", nil); !errors.Is(err, shard.ErrUnknownScheme) {
				t.Fatalf("unknown scheme: %v", err)
			}
			if n, err := r.h.Publish(ctx, alice, res, "bad etag\n", nil); err != nil || n != 0 {
				t.Fatalf("bad etag: %d %v", n, err)
			}
			if n, err := r.h.Publish(ctx, alice, res, "v201", []byte(`{not json`)); err != nil || n != 1 {
				t.Fatalf("bad payload: %d %v", n, err)
			}
		})
	}
}
