package host_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"meshgate/internal/faults"
	"meshgate/internal/testkit"
	"meshgate/plugins/builtin/presence"
	"meshgate/plugins/builtin/storage"
	"meshgate/plugins/builtin/user"
	"meshgate/plugins/host"
	"meshgate/plugins/sdk"
	"meshgate/shard"
)

// TestMain lets the test binary run as a plugin: the host starts it again
// with MESHGATE_TEST_PLUGIN set, through exactly the path a plugin takes.
func TestMain(m *testing.M) {
	if name := os.Getenv("MESHGATE_TEST_PLUGIN"); name != "" {
		dir := os.Getenv("MESHGATE_DATA_DIR")
		switch name {
		case "user":
			sdk.Serve(user.New())
		case "user-unary":
			sdk.Serve(unary{user.New()})
		case "user-asked":
			sdk.Serve(asked{user.New()})
		case "user-rule-only":
			sdk.Serve(ruleOnly{user.New()})
		case "user-current-fails":
			sdk.Serve(currentFails{user.New()})
		case "storage":
			sdk.Serve(storage.New(filepath.Join(dir, "storage")))
		case "presence":
			sdk.Serve(presence.New(dir))
		case "slow":
			sdk.Serve(slow{})
		case "burst":
			sdk.Serve(&burst{})
		case "big":
			sdk.Serve(big{})
		}
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// unary is the user publisher without PublishDirect: every publish is a
// Publish call, the path third-party plugins take.
type unary struct{ *user.Publisher }

func (u unary) Info() sdk.Info {
	i := u.Publisher.Info()
	i.PublishDirect = false
	return i
}

// slow answers nothing until its caller gives up.
type slow struct{}

func (slow) Info() sdk.Info { return sdk.Info{Name: "slow", Version: "0", Schemes: []string{"slow"}} }
func (slow) Authorize(ctx context.Context, _ sdk.Principal, _, _ string) (sdk.Decision, error) {
	<-ctx.Done()
	return sdk.Decision{}, ctx.Err()
}
func (slow) Current(ctx context.Context, _ []string) (map[string]string, error) { return nil, nil }
func (slow) Run(ctx context.Context, _ sdk.Host) error                          { <-ctx.Done(); return nil }

// burst emits n events through Watch when asked to publish {"n": n}.
type burst struct{}

func (*burst) Info() sdk.Info {
	return sdk.Info{Name: "burst", Version: "0", Schemes: []string{"burst"}}
}
func (*burst) Authorize(context.Context, sdk.Principal, string, string) (sdk.Decision, error) {
	return sdk.Allow(""), nil
}
func (*burst) Current(context.Context, []string) (map[string]string, error) { return nil, nil }

var burstHost = make(chan sdk.Host, 1)

func (*burst) Run(ctx context.Context, h sdk.Host) error { burstHost <- h; <-ctx.Done(); return nil }
func (*burst) Publish(ctx context.Context, _ sdk.Principal, resource, _ string, payload []byte) ([]sdk.Event, error) {
	var n int
	_, _ = fmt.Sscanf(string(payload), `{"n":%d}`, &n) // a payload without n publishes 0 events
	h := <-burstHost
	defer func() { burstHost <- h }()
	body := []byte(`{"k":"v"}`)
	for i := range n {
		if err := h.Emit(ctx, sdk.Event{Kind: sdk.Changed, Resource: resource, Etag: fmt.Sprint(i), Payload: body}); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func selfCommand(name string) (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{"MESHGATE_TEST_PLUGIN=" + name}
	return cmd, nil
}

type rig struct {
	h     *host.Host
	store *shard.Store
	dir   string
}

func start(t *testing.T, cfg host.Config) *rig {
	t.Helper()
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.SelfCommand = selfCommand
	if cfg.Grace == 0 {
		cfg.Grace = 200 * time.Millisecond
	}
	h, err := host.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := shard.New(shard.Config{Observer: h.Observer()})
	if err != nil {
		t.Fatal(err)
	}
	h.SetSink(store)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h.Start(ctx)
	t.Cleanup(func() { h.Close(); store.Close() })
	return &rig{h: h, store: store, dir: dir}
}

var (
	alice = shard.Principal{User: "alice", Device: "laptop", Scopes: []string{"publish"}}
	bob   = shard.Principal{User: "bob", Device: "phone"}
)

func (r *rig) queue(t *testing.T, p shard.Principal, resources ...string) string {
	t.Helper()
	q, err := r.store.CreateQueue(context.Background(), p, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range resources {
		if _, err := r.store.Subscribe(context.Background(), r.h, p, q.Name, res, "", ""); err != nil {
			t.Fatalf("subscribe %s: %v", res, err)
		}
	}
	return q.Name
}

// await polls p's queue until a notification matches, or fails after 20 s.
func (r *rig) await(t *testing.T, p shard.Principal, q string, match func(shard.Notification) bool) shard.Notification {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var after uint64
	for time.Now().Before(deadline) {
		pg, err := r.store.Poll(context.Background(), p, q, after, 100, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range pg.Items {
			if match(n) {
				return n
			}
		}
		after = pg.LastSeq
	}
	t.Fatalf("no matching notification in %s", q)
	return shard.Notification{}
}

func kind(k shard.Kind, res string) func(shard.Notification) bool {
	return func(n shard.Notification) bool { return n.Kind == k && n.Resource == res }
}

func TestPlugins_UserStoragePresence(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	r := start(t, host.Config{Plugins: host.DefaultPlugins()})
	folder := filepath.Join(r.dir, "storage", "photos")
	must(t, os.MkdirAll(folder, 0o755))
	must(t, os.WriteFile(filepath.Join(folder, ".members"), []byte("alice\nbob\n"), 0o644))
	// The storage plugin sees the new folder through fsnotify; wait for it.
	waitFor(t, func() bool {
		_, err := r.h.Authorize(context.Background(), bob, "storage:folders/photos", "")
		return err == nil
	})

	t.Run("publish goes through the user plugin", func(t *testing.T) {
		q := r.queue(t, alice, "user:alice/inbox")
		n, err := r.h.Publish(context.Background(), alice, "user:alice/inbox", "v1", []byte(`{"x":1}`))
		if err != nil || n != 1 {
			t.Fatalf("publish: %d %v", n, err)
		}
		got := r.await(t, alice, q, kind(shard.Changed, "user:alice/inbox"))
		if got.Etag != "v1" || string(got.Payload) != `{"x":1}` {
			t.Fatalf("%+v", got.Event)
		}
		if _, err := r.h.Authorize(context.Background(), bob, "user:alice/inbox", ""); !errors.Is(err, shard.ErrForbidden) {
			t.Fatalf("bob reading alice's user: resource: %v", err)
		}
	})
	t.Run("files reach subscribers", func(t *testing.T) {
		q := r.queue(t, bob, "storage:folders/photos")
		must(t, os.WriteFile(filepath.Join(folder, "cat.jpg"), []byte("meow"), 0o644))
		got := r.await(t, bob, q, kind(shard.Changed, "storage:folders/photos"))
		if !strings.Contains(string(got.Payload), `"path":"cat.jpg"`) {
			t.Fatalf("payload %s", got.Payload)
		}
		must(t, os.Remove(filepath.Join(folder, "cat.jpg")))
		got = r.await(t, bob, q, func(n shard.Notification) bool {
			return n.Kind == shard.Changed && strings.Contains(string(n.Payload), `"removed":[{"path":"cat.jpg"`)
		})
		_ = got
	})
	t.Run("presence follows sessions and asks storage", func(t *testing.T) {
		q := r.queue(t, alice, "presence:user/bob")
		tablet := shard.Principal{User: "bob", Device: "tablet"}
		st, err := r.store.Attach(context.Background(), tablet, r.queue(t, tablet), 0, nopListener{})
		if err != nil {
			t.Fatal(err)
		}
		r.await(t, alice, q, func(n shard.Notification) bool {
			return n.Kind == shard.Changed && strings.Contains(string(n.Payload), `"tablet"`)
		})
		carol := shard.Principal{User: "carol", Device: "pc"}
		if _, err := r.h.Authorize(context.Background(), carol, "presence:user/bob", ""); !errors.Is(err, shard.ErrForbidden) {
			t.Fatalf("carol shares no folder with bob: %v", err)
		}
		// Disconnecting: offline once the grace period (200 ms here) passes.
		st.Close()
		r.await(t, alice, q, func(n shard.Notification) bool {
			return n.Kind == shard.Changed && n.Resource == "presence:user/bob" && !strings.Contains(string(n.Payload), `"tablet"`)
		})
	})
	t.Run("removing a member revokes", func(t *testing.T) {
		q := r.queue(t, bob, "storage:folders/photos")
		must(t, os.WriteFile(filepath.Join(folder, ".members"), []byte("alice\n"), 0o644))
		r.await(t, bob, q, kind(shard.Revoked, "storage:folders/photos"))
		subs, _ := r.store.Subscriptions(context.Background(), bob, q)
		if len(subs) != 0 {
			t.Fatalf("bob still subscribed: %+v", subs)
		}
	})
}

type nopListener struct{}

func (nopListener) Notify() {}

func TestPlugins_CrashRestartResync(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	var logs testkit.Buffer
	r := start(t, host.Config{Plugins: []host.Plugin{{Name: "user", Builtin: "user"}}, MinBackoff: time.Second, MaxBackoff: 2 * time.Second, Logger: newLogger(&logs)})
	q := r.queue(t, alice, "user:alice/inbox")
	if _, err := r.h.Publish(context.Background(), alice, "user:alice/inbox", "v1", nil); err != nil {
		t.Fatal(err)
	}
	pid := r.h.Statuses()[0].PID
	must(t, syscall.Kill(pid, syscall.SIGKILL))
	// While it is down, its scheme answers UNAVAILABLE; the rest serves.
	waitFor(t, func() bool {
		_, err := r.h.Authorize(context.Background(), alice, "user:alice/x", "")
		return errors.Is(err, shard.ErrUnavailable)
	})
	if _, err := r.store.Queue(context.Background(), alice, q); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st := r.h.Statuses()
		return r.h.Ready() && len(st) == 1 && st[0].PID != pid && strings.Contains(logs.String(), "resync after restart")
	})
	// The restarted plugin lost its etags and leaves them out of Current:
	// the gateway keeps the last one it delivered. No RESYNC erases it,
	// and a new subscriber is answered it.
	pg, err := r.store.Poll(context.Background(), alice, q, 0, 100, 0)
	must(t, err)
	for _, n := range pg.Items {
		if n.Kind == shard.Resync {
			t.Fatalf("a RESYNC with etag %q after the restart: the plugin knew nothing new", n.Etag)
		}
	}
	q2, err := r.store.CreateQueue(context.Background(), alice, 0)
	must(t, err)
	sub, err := r.store.Subscribe(context.Background(), r.h, alice, q2.Name, "user:alice/inbox", "", "")
	must(t, err)
	if sub.Etag != "v1" {
		t.Fatalf("after the restart, subscribe answered %q, want the last delivered v1", sub.Etag)
	}
}

func TestPlugins_ChecksumMismatchRefused(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	self, _ := os.Executable()
	good := sha256File(t, self)
	var logs testkit.Buffer
	r := start(t, host.Config{
		Plugins: []host.Plugin{
			{Name: "bad", Path: self, Args: []string{"-test.run=^$"}, SHA256: strings.Repeat("0", 64), Env: map[string]string{"MESHGATE_TEST_PLUGIN": "user"}},
			{Name: "good", Path: self, Args: []string{"-test.run=^$"}, SHA256: good, Env: map[string]string{"MESHGATE_TEST_PLUGIN": "slow"}},
		},
		Logger:     newLogger(&logs),
		MinBackoff: 5 * time.Second,
	})
	if r.h.Ready() {
		t.Fatal("ready with a plugin refused")
	}
	if !strings.Contains(logs.String(), "checksum") {
		t.Fatalf("no checksum error in the log:\n%s", logs.String())
	}
	if _, err := r.h.Authorize(context.Background(), alice, "user:alice/x", ""); !errors.Is(err, shard.ErrUnknownScheme) {
		t.Fatalf("the refused plugin's scheme: %v", err)
	}
	if len(r.h.Statuses()) != 1 {
		t.Fatalf("the good external plugin should run: %+v", r.h.Statuses())
	}
}

func TestPlugins_SlowPluginHitsItsDeadline(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	self, _ := os.Executable()
	r := start(t, host.Config{Plugins: []host.Plugin{
		{Name: "slow", Path: self, Args: []string{"-test.run=^$"}, SHA256: sha256File(t, self), Env: map[string]string{"MESHGATE_TEST_PLUGIN": "slow"}},
		{Name: "user", Builtin: "user"},
	}, CallTimeout: 300 * time.Millisecond})
	done := make(chan error, 1)
	began := time.Now()
	go func() {
		_, err := r.h.Authorize(context.Background(), alice, "slow:anything", "")
		done <- err
	}()
	// The hanging plugin blocks nobody else.
	if _, err := r.h.Authorize(context.Background(), alice, "user:alice/x", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, shard.ErrUnavailable) {
			t.Fatalf("slow plugin: %v, want ErrUnavailable", err)
		}
		if d := time.Since(began); d > 5*time.Second {
			t.Fatalf("the deadline did not hold: %s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call to a hanging plugin never returned")
	}
}

func TestPlugins_NoOrphansAfterClose(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	r := start(t, host.Config{Plugins: host.DefaultPlugins()})
	var pids []int
	for _, s := range r.h.Statuses() {
		pids = append(pids, s.PID)
	}
	if len(pids) != 3 {
		t.Fatalf("pids %v", pids)
	}
	r.h.Close()
	for _, pid := range pids {
		waitFor(t, func() bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", pid)) // gone: neither running nor a zombie
			return err != nil
		})
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 15 s")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sha256File(t testing.TB, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	_, _ = io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

func newLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestPlugins_InjectedFaultsAreUnavailable(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	r := start(t, host.Config{Plugins: []host.Plugin{{Name: "user", Builtin: "user"}}, Faults: faults.Config{ErrorProbability: 0.5}, FaultSeed: 3})
	var ok, unavailable int
	for range 40 {
		_, err := r.h.Authorize(context.Background(), alice, "user:alice/x", "")
		switch {
		case err == nil:
			ok++
		case errors.Is(err, shard.ErrUnavailable):
			unavailable++
		default:
			t.Fatal(err)
		}
	}
	if ok == 0 || unavailable == 0 {
		t.Fatalf("ok %d, unavailable %d: want both", ok, unavailable)
	}
}
