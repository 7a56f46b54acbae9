package host_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"meshgate/plugins/host"
	"meshgate/shard"
)

// storageRig starts the storage plugin with a folder "hr" whose .members
// holds members, and subscribes each of who to it.
func storageRig(t *testing.T, members string, who ...shard.Principal) (*rig, string, map[string]string) {
	t.Helper()
	r := start(t, host.Config{Plugins: []host.Plugin{{Name: "storage", Builtin: "storage"}}, MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second})
	folder := filepath.Join(r.dir, "storage", "hr")
	must(t, os.MkdirAll(folder, 0o755))
	must(t, os.WriteFile(filepath.Join(folder, ".members"), []byte(members), 0o644))
	queues := map[string]string{}
	for _, p := range who {
		waitFor(t, func() bool {
			_, err := r.h.Authorize(context.Background(), p, "storage:folders/hr", "")
			return err == nil
		})
		queues[p.User] = r.queue(t, p, "storage:folders/hr")
	}
	return r, folder, queues
}

// received lists every notification in p's queue now.
func (r *rig) received(t *testing.T, p shard.Principal, q string) []shard.Notification {
	t.Helper()
	pg, err := r.store.Poll(context.Background(), p, q, 0, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pg.Items
}

// TestPlugins_BadMemberLineLosesNoRevocation is the lost revocation: a
// .members line that is not an id (Latin-1 "Zoë") must neither become a
// member nor break the event stream, so removing it together with bob
// revokes bob, and bob never hears of the files added after.
func TestPlugins_BadMemberLineLosesNoRevocation(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	r, folder, qs := storageRig(t, "Zo\xeb\nalice\nbob\n", alice, bob)
	must(t, os.WriteFile(filepath.Join(folder, ".members"), []byte("alice\n"), 0o644))
	r.await(t, bob, qs["bob"], kind(shard.Revoked, "storage:folders/hr"))
	must(t, os.WriteFile(filepath.Join(folder, "hr-notes-about-bob.txt"), []byte("x"), 0o644))
	r.await(t, alice, qs["alice"], kind(shard.Changed, "storage:folders/hr"))
	for _, n := range r.received(t, bob, qs["bob"]) {
		if n.Kind == shard.Changed {
			t.Fatalf("bob, removed, got %s %s", n.Kind, n.Payload)
		}
	}
}

// TestPlugins_RestartRechecksAccess: whatever a plugin could not say while
// it was down is decided again when it is back: the host asks it about
// every subscription of its schemes and revokes where it now says no,
// before it delivers anything new.
func TestPlugins_RestartRechecksAccess(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	r, folder, qs := storageRig(t, "alice\nbob\n", alice, bob)
	pid := r.h.Statuses()[0].PID
	must(t, syscall.Kill(pid, syscall.SIGSTOP)) // it cannot see the change
	must(t, os.WriteFile(filepath.Join(folder, ".members"), []byte("alice\n"), 0o644))
	must(t, syscall.Kill(pid, syscall.SIGKILL))
	r.await(t, bob, qs["bob"], kind(shard.Revoked, "storage:folders/hr"))
	waitFor(t, func() bool { return r.h.Ready() })
	must(t, os.WriteFile(filepath.Join(folder, "after.txt"), []byte("x"), 0o644))
	r.await(t, alice, qs["alice"], func(n shard.Notification) bool {
		return n.Kind == shard.Changed && n.Resource == "storage:folders/hr" && len(n.Payload) > 0
	})
	for _, n := range r.received(t, alice, qs["alice"]) {
		if n.Kind == shard.Revoked {
			t.Fatalf("alice, still a member, was revoked")
		}
	}
	for _, n := range r.received(t, bob, qs["bob"]) {
		if n.Kind == shard.Changed {
			t.Fatalf("bob, removed, got %s %s", n.Kind, n.Payload)
		}
	}
}

// TestPlugins_UnsharingRevokesPresence: alice may watch bob's presence
// because they share a folder; when bob leaves it, her subscription goes
// (REVOKED), as a fresh subscribe would be refused.
func TestPlugins_UnsharingRevokesPresence(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	r := start(t, host.Config{Plugins: host.DefaultPlugins()})
	folder := filepath.Join(r.dir, "storage", "team")
	must(t, os.MkdirAll(folder, 0o755))
	must(t, os.WriteFile(filepath.Join(folder, ".members"), []byte("alice\nbob\n"), 0o644))
	waitFor(t, func() bool {
		_, err := r.h.Authorize(context.Background(), alice, "presence:user/bob", "")
		return err == nil
	})
	q := r.queue(t, alice, "presence:user/bob", "presence:user/alice")
	must(t, os.WriteFile(filepath.Join(folder, ".members"), []byte("alice\n"), 0o644))
	r.await(t, alice, q, kind(shard.Revoked, "presence:user/bob"))
	for _, n := range r.received(t, alice, q) {
		if n.Kind == shard.Revoked && n.Resource == "presence:user/alice" {
			t.Fatal("alice's own presence was revoked")
		}
	}
}
