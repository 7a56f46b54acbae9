package host_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"meshgate/plugins/builtin/user"
	"meshgate/plugins/host"
	"meshgate/plugins/sdk"
	"meshgate/shard"
)

// asked is the user publisher with publish_direct but without its
// read_own_subtree rule: the host calls Authorize.
type asked struct{ *user.Publisher }

func (a asked) Info() sdk.Info {
	i := a.Publisher.Info()
	i.ReadOwnSubtree = false
	return i
}

// ruleOnly declares the rule but refuses every Authorize call: what it
// allows, the host allowed without asking.
type ruleOnly struct{ *user.Publisher }

func (r ruleOnly) Info() sdk.Info { return r.Publisher.Info() }
func (ruleOnly) Authorize(context.Context, sdk.Principal, string, string) (sdk.Decision, error) {
	return sdk.Deny("asked"), nil
}

// TestPlugins_ReadOwnSubtreeAnswersAsAuthorize runs the same Authorize
// calls, between publishes, against the user plugin with its
// read_own_subtree rule (answered by the host) and without it (an
// Authorize call each): both give the same etags and the same errors,
// before and after the plugin has recorded the publishes. A plugin that
// declares the rule is not asked at all.
func TestPlugins_ReadOwnSubtreeAnswersAsAuthorize(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	selfPlugin := func(env string) host.Plugin {
		return host.Plugin{Name: "user", Path: self, Args: []string{"-test.run=^$"}, SHA256: sha256File(t, self),
			Env: map[string]string{"MESHGATE_TEST_PLUGIN": env}}
	}
	calls := []struct {
		who      shard.Principal
		resource string
		publish  string // publish this etag first
	}{
		{alice, "user:alice/inbox", ""},
		{alice, "user:alice", ""},
		{alice, "user:alice/inbox", "v1"},
		{alice, "user:alice/inbox/deeper", "w1"},
		{alice, "user:alice/inbox", "v2"},
		{bob, "user:alice/inbox", ""},
		{alice, "user:alicex/inbox", ""},
		{alice, "user:/x", ""},
		{alice, "nope:x", ""},
		{alice, "no scheme", ""},
	}
	run := func(t *testing.T, p host.Plugin) []string {
		r := start(t, host.Config{Plugins: []host.Plugin{p}})
		ctx := context.Background()
		var out []string
		for _, c := range calls {
			if c.publish != "" {
				if _, err := r.h.Publish(ctx, alice, c.resource, c.publish, nil); err != nil {
					t.Fatal(err)
				}
			}
			e, err := r.h.Authorize(ctx, c.who, c.resource, "some proof")
			out = append(out, fmt.Sprintf("%s %s: %q %v", c.who.User, c.resource, e, err))
		}
		// Once the plugin has recorded every publish, the answers stay.
		waitFor(t, func() bool { return r.h.Statuses()[0].Unrecorded == 0 })
		for _, res := range []string{"user:alice/inbox", "user:alice/inbox/deeper", "user:alice/other"} {
			e, err := r.h.Authorize(ctx, alice, res, "")
			out = append(out, fmt.Sprintf("recorded %s: %q %v", res, e, err))
		}
		return out
	}
	rule := run(t, host.Plugin{Name: "user", Builtin: "user"})
	call := run(t, selfPlugin("user-asked"))
	for i := range rule {
		if rule[i] != call[i] {
			t.Errorf("rule %s\ncall %s", rule[i], call[i])
		}
	}
	t.Logf("%q", rule)

	r := start(t, host.Config{Plugins: []host.Plugin{selfPlugin("user-rule-only")}})
	if _, err := r.h.Authorize(context.Background(), alice, "user:alice/inbox", ""); err != nil {
		t.Fatalf("the rule was not applied: %v", err)
	}
	if _, err := r.h.Authorize(context.Background(), bob, "user:alice/inbox", ""); err == nil || err.Error() != "shard: forbidden: user:alice belongs to another user" {
		t.Fatalf("bob: %v", err)
	}
}
