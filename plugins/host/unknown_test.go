package host_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"meshgate/internal/testkit"
	"meshgate/plugins/builtin/user"
	"meshgate/plugins/host"
	"meshgate/shard"
)

// currentFails is the user publisher whose Current always fails, as a
// plugin that is up but cannot read its store.
type currentFails struct{ *user.Publisher }

func (currentFails) Current(context.Context, []string) (map[string]string, error) {
	return nil, errors.New("store unreadable")
}

// TestPlugins_RestartWithCurrentFailingSaysEtagUnknown: after a plugin
// restart whose Current fails, the host puts a RESYNC in every queue
// ("something may have changed") with the last etag the gateway
// delivered. For a resource the gateway delivered none of, that RESYNC's
// "" is not "never published": it is flagged EtagUnknown. One that has an
// etag is not flagged.
func TestPlugins_RestartWithCurrentFailingSaysEtagUnknown(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	r := start(t, host.Config{Plugins: []host.Plugin{{Name: "user", Path: self, Args: []string{"-test.run=^$"}, SHA256: sha256File(t, self),
		Env: map[string]string{"MESHGATE_TEST_PLUGIN": "user-current-fails"}}},
		MinBackoff: time.Second, MaxBackoff: 2 * time.Second, Logger: newLogger(&logs)})
	qNone := r.queue(t, alice, "user:alice/none")
	qKnown := r.queue(t, alice, "user:alice/known")
	if _, err := r.h.Publish(context.Background(), alice, "user:alice/known", "v1", nil); err != nil {
		t.Fatal(err)
	}
	r.await(t, alice, qKnown, kind(shard.Changed, "user:alice/known"))
	pid := r.h.Statuses()[0].PID
	must(t, syscall.Kill(pid, syscall.SIGKILL))
	waitFor(t, func() bool {
		st := r.h.Statuses()
		return r.h.Ready() && len(st) == 1 && st[0].PID != pid && strings.Contains(logs.String(), "resync after restart")
	})
	if !strings.Contains(logs.String(), "Current failed") {
		t.Fatalf("the restarted plugin's Current did not fail: %s", logs.String())
	}
	none := r.await(t, alice, qNone, kind(shard.Resync, "user:alice/none"))
	if none.Etag != "" || !none.EtagUnknown {
		t.Errorf("RESYNC of a resource with no delivered etag: %q unknown %v, want \"\" flagged unknown", none.Etag, none.EtagUnknown)
	}
	known := r.await(t, alice, qKnown, kind(shard.Resync, "user:alice/known"))
	if known.Etag != "v1" || known.EtagUnknown {
		t.Errorf("RESYNC of a resource delivered at v1: %q unknown %v, want v1, known", known.Etag, known.EtagUnknown)
	}
}
