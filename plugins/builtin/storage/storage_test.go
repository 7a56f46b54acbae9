package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"meshgate/plugins/sdk"
)

// recorder is an in-memory sdk.Host for unit tests.
type recorder struct {
	mu     sync.Mutex
	events []sdk.Event
}

func (r *recorder) Emit(_ context.Context, ev sdk.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) Authorize(context.Context, sdk.Principal, string, string) (sdk.Decision, error) {
	return sdk.Decision{}, nil
}

// wait returns the first event matching ok, failing after 10 s.
func (r *recorder) wait(t *testing.T, ok func(sdk.Event) bool) sdk.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, ev := range r.events {
			if ok(ev) {
				r.mu.Unlock()
				return ev
			}
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	n := len(r.events)
	r.mu.Unlock()
	t.Fatalf("no matching event in 10 s (%d others)", n)
	return sdk.Event{}
}

func (r *recorder) reset() { r.mu.Lock(); r.events = nil; r.mu.Unlock() }

func run(t *testing.T) (*Publisher, *recorder, string) {
	root := t.TempDir()
	p := New(root)
	p.rescan = 500 * time.Millisecond
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx, rec) }()
	t.Cleanup(func() { cancel(); <-done })
	select { // changes made before Run watches the tree would be missed
	case <-p.scanned:
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher did not finish its first scan")
	}
	return p, rec, root
}

var alice = sdk.Principal{User: "alice", Device: "d"}

func TestStorage_FolderAppearsChangesAndVanishes(t *testing.T) {
	p, rec, root := run(t)
	dir := filepath.Join(root, "docs")
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, MembersFile), []byte("alice\n# a comment\nbob\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "deep.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling")); err != nil { // not followed, not fatal
		t.Fatal(err)
	}
	ev := rec.wait(t, func(e sdk.Event) bool {
		return e.Resource == "storage:folders/docs" && strings.Contains(string(e.Payload), "a/b/deep.txt")
	})
	d, _ := p.Authorize(context.Background(), alice, "storage:folders/docs", "")
	if !d.Allowed || d.Etag != ev.Etag {
		t.Fatalf("authorize %+v, last event etag %s", d, ev.Etag)
	}
	if d, _ := p.Authorize(context.Background(), sdk.Principal{User: "carol"}, "storage:folders/docs", ""); d.Allowed {
		t.Fatal("carol is no member")
	}
	if d, _ := p.Authorize(context.Background(), alice, "storage:peers/bob", ""); !d.Allowed {
		t.Fatal("alice and bob share docs")
	}
	cur, _ := p.Current(context.Background(), []string{"storage:folders/docs"})
	if cur["storage:folders/docs"] != ev.Etag {
		t.Fatalf("Current %v vs %s", cur, ev.Etag)
	}

	rec.reset()
	os.RemoveAll(dir)
	rec.wait(t, func(e sdk.Event) bool {
		return e.Resource == "storage:folders/docs" && strings.Contains(string(e.Payload), `"removed":[{"path":"a/b/deep.txt"`)
	})
	for _, u := range []string{"alice", "bob"} {
		rec.wait(t, func(e sdk.Event) bool {
			return e.Kind == sdk.Revoked && e.Principal.User == u && e.Resource == "storage:folders/docs"
		})
	}
	if d, _ := p.Authorize(context.Background(), alice, "storage:folders/docs", ""); d.Allowed {
		t.Fatal("a vanished folder still authorizes")
	}
}

func TestStorage_RenameStormIsBoundedAndConverges(t *testing.T) {
	p, rec, root := run(t)
	dir := filepath.Join(root, "storm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, MembersFile), []byte("alice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 {
		if err := os.Rename(filepath.Join(dir, fmt.Sprintf("f%03d", i)), filepath.Join(dir, fmt.Sprintf("g%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Eventually the published etag is the etag of what is on disk, and
	// no payload lists more than 200 entries per kind.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, _ := p.Authorize(context.Background(), alice, "storage:folders/storm", "")
		rec.mu.Lock()
		var last sdk.Event
		for _, e := range rec.events {
			if e.Resource == "storage:folders/storm" {
				last = e
				var body map[string]any
				if err := json.Unmarshal(e.Payload, &body); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"added", "modified", "removed"} {
					if n := len(body[k].([]any)); n > 200 {
						t.Fatalf("%s lists %d entries", k, n)
					}
				}
			}
		}
		rec.mu.Unlock()
		if last.Etag != "" && last.Etag == d.Etag && d.Etag == listingDigest(scan(t, dir)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("did not converge: last event %q, authorize %q", last.Etag, d.Etag)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scan(t *testing.T, dir string) map[string]fileInfo {
	out := map[string]fileInfo{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() == MembersFile {
			continue
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fileInfo{info.Size(), info.ModTime().UnixNano()}
	}
	return out
}
