// Package storage is the built-in publisher of the `storage:` scheme: a
// directory tree on disk stands in for cloud storage. Each directory
// directly under the root is a folder:
//
//   - storage:folders/<name>          its contents (recursive listing)
//   - storage:folders/<name>/members  who may read it
//   - storage:peers/<user>            allowed if the caller shares a folder
//     with <user> (presence asks this)
//
// A folder's members are the user ids in its `.members` file, one per
// line. The etag of the contents is a digest of the listing (paths, sizes,
// modification times); the payload of a change lists what was added,
// modified and removed. Removing a member emits REVOKED for that user on
// both of the folder's resources. Changes are seen through fsnotify,
// debounced per folder, with a periodic rescan as a safety net.
package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"meshgate/plugins/sdk"
)

// MembersFile names the members list in a folder.
const MembersFile = ".members"

// Publisher serves `storage:` from a directory.
type Publisher struct {
	root     string
	debounce time.Duration
	rescan   time.Duration

	mu      sync.RWMutex
	folders map[string]*folder

	// scanned is closed once Run watches the tree and has scanned it:
	// changes made after that are seen. Tests wait on it.
	scanned     chan struct{}
	scannedOnce sync.Once
}

type folder struct {
	files   map[string]fileInfo // relative path → info
	members []string            // sorted
	etag    string
	metag   string
}

type fileInfo struct {
	Size  int64
	MTime int64
}

// New serves the directory root (created if missing).
func New(root string) *Publisher {
	return &Publisher{root: root, debounce: 100 * time.Millisecond, rescan: 30 * time.Second, folders: make(map[string]*folder), scanned: make(chan struct{})}
}

// Info implements sdk.Publisher.
func (*Publisher) Info() sdk.Info {
	return sdk.Info{Name: "storage", Version: "1.0.0", Schemes: []string{"storage"}}
}

// parse returns the folder a resource names and whether it is the members
// resource.
func parse(resource string) (name string, members bool, ok bool) {
	path, _ := strings.CutPrefix(resource, "storage:")
	parts := strings.Split(path, "/")
	switch {
	case len(parts) == 2 && parts[0] == "folders":
		return parts[1], false, true
	case len(parts) == 3 && parts[0] == "folders" && parts[2] == "members":
		return parts[1], true, true
	}
	return "", false, false
}

// Authorize lets members read their folders.
func (p *Publisher) Authorize(_ context.Context, who sdk.Principal, resource, _ string) (sdk.Decision, error) {
	if peer, ok := strings.CutPrefix(resource, "storage:peers/"); ok {
		if p.sharesFolder(who.User, peer) {
			return sdk.Allow(""), nil
		}
		return sdk.Deny("no shared folder"), nil
	}
	name, members, ok := parse(resource)
	if !ok {
		return sdk.Deny("storage resources are storage:folders/<name> and storage:folders/<name>/members"), nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	f := p.folders[name]
	if f == nil || !slices.Contains(f.members, who.User) {
		return sdk.Deny("not a member of folder " + name), nil
	}
	if members {
		return sdk.Allow(f.metag), nil
	}
	return sdk.Allow(f.etag), nil
}

func (p *Publisher) sharesFolder(a, b string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, f := range p.folders {
		if slices.Contains(f.members, a) && slices.Contains(f.members, b) {
			return true
		}
	}
	return false
}

// Current implements sdk.Publisher.
func (p *Publisher) Current(_ context.Context, resources []string) (map[string]string, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make(map[string]string, len(resources))
	for _, r := range resources {
		name, members, ok := parse(r)
		if !ok {
			continue
		}
		f := p.folders[name]
		switch {
		case f == nil:
			out[r] = emptyEtag
		case members:
			out[r] = f.metag
		default:
			out[r] = f.etag
		}
	}
	return out, nil
}

var emptyEtag = digest(nil)

// Run watches the tree and emits changes until ctx ends.
func (p *Publisher) Run(ctx context.Context, h sdk.Host) error {
	if err := os.MkdirAll(p.root, 0o755); err != nil { //nolint:gosec // G301: the shared folder is an ordinary folder of the operator's, under their umask
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	p.watchTree(w, p.root)
	p.scanAll(ctx, h, false) // the initial state, nothing to emit
	p.scannedOnce.Do(func() { close(p.scanned) })

	dirty := map[string]bool{}
	var fire <-chan time.Time
	rescan := time.NewTicker(p.rescan)
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			rel, err := filepath.Rel(p.root, ev.Name)
			if err != nil || rel == "." {
				continue
			}
			name := strings.Split(rel, string(filepath.Separator))[0]
			dirty[name] = true
			if ev.Op&fsnotify.Create != 0 {
				if st, err := os.Lstat(ev.Name); err == nil && st.IsDir() {
					p.watchTree(w, ev.Name) // new directories, recursively
				}
			}
			if fire == nil {
				fire = time.After(p.debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			sdk.Logger().Warn("storage: watcher error; rescanning", "err", err.Error())
			p.scanAll(ctx, h, true)
		case <-fire:
			fire = nil
			for name := range dirty {
				p.scanFolder(ctx, h, name, true)
			}
			clear(dirty)
		case <-rescan.C:
			p.watchTree(w, p.root)
			p.scanAll(ctx, h, true)
		}
	}
}

// watchTree adds a watch on dir and every directory below it. fsnotify
// watches directories, not files, and is not recursive.
func (p *Publisher) watchTree(w *fsnotify.Watcher, dir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: skip it, the rescan tries again
		}
		if d.IsDir() {
			_ = w.Add(path)
		}
		return nil
	})
}

// scanAll rescans every folder that exists or existed.
func (p *Publisher) scanAll(ctx context.Context, h sdk.Host, emit bool) {
	names := map[string]bool{}
	if ents, err := os.ReadDir(p.root); err == nil {
		for _, e := range ents {
			if e.IsDir() && validName(e.Name()) {
				names[e.Name()] = true
			}
		}
	}
	p.mu.RLock()
	for n := range p.folders {
		names[n] = true
	}
	p.mu.RUnlock()
	for n := range names {
		p.scanFolder(ctx, h, n, emit)
	}
}

func validName(n string) bool {
	if n == "" || strings.HasPrefix(n, ".") || len(n) > 128 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// scanFolder reads one folder, diffs it with what was known, and emits.
func (p *Publisher) scanFolder(ctx context.Context, h sdk.Host, name string, emit bool) {
	if !validName(name) {
		return
	}
	dir := filepath.Join(p.root, name)
	next := &folder{files: map[string]fileInfo{}}
	exists := false
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		exists = true
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(dir, path)
			if rel == MembersFile {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil // vanished or unreadable meanwhile
			}
			next.files[filepath.ToSlash(rel)] = fileInfo{info.Size(), info.ModTime().UnixNano()}
			return nil
		})
		next.members = readMembers(filepath.Join(dir, MembersFile))
	}
	next.etag = listingDigest(next.files)
	next.metag = digest([]byte(strings.Join(next.members, "\n")))

	p.mu.Lock()
	prev := p.folders[name]
	if exists {
		p.folders[name] = next
	} else {
		delete(p.folders, name)
	}
	p.mu.Unlock()
	if prev == nil {
		prev = &folder{files: map[string]fileInfo{}, etag: emptyEtag, metag: digest(nil)}
	}
	if !emit {
		return
	}
	res := "storage:folders/" + name
	if prev.etag != next.etag {
		_ = h.Emit(ctx, sdk.Event{Kind: sdk.Changed, Resource: res, Etag: next.etag, Payload: diff(prev.files, next.files)})
	}
	if prev.metag != next.metag {
		added, removed := setDiff(prev.members, next.members)
		payload, _ := json.Marshal(map[string]any{"members": nonNil(next.members), "added": nonNil(added), "removed": nonNil(removed)})
		_ = h.Emit(ctx, sdk.Event{Kind: sdk.Changed, Resource: res + "/members", Etag: next.metag, Payload: payload})
		for _, u := range removed {
			for _, r := range []string{res, res + "/members"} {
				_ = h.Emit(ctx, sdk.Event{Kind: sdk.Revoked, Resource: r, Principal: sdk.Principal{User: u}})
			}
		}
	}
}

func readMembers(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

func listingDigest(files map[string]fileInfo) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var b strings.Builder
	for _, p := range paths {
		f := files[p]
		b.WriteString(p)
		b.WriteByte('\t')
		b.WriteString(itoa(f.Size))
		b.WriteByte('\t')
		b.WriteString(itoa(f.MTime))
		b.WriteByte('\n')
	}
	return digest([]byte(b.String()))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

type entry struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// diff describes what changed between two listings.
func diff(prev, next map[string]fileInfo) []byte {
	var added, modified, removed []entry
	for p, f := range next {
		old, ok := prev[p]
		switch {
		case !ok:
			added = append(added, entry{p, f.Size})
		case old != f:
			modified = append(modified, entry{p, f.Size})
		}
	}
	for p, f := range prev {
		if _, ok := next[p]; !ok {
			removed = append(removed, entry{p, f.Size})
		}
	}
	for _, l := range [][]entry{added, modified, removed} {
		slices.SortFunc(l, func(a, b entry) int { return strings.Compare(a.Path, b.Path) })
	}
	// Bound the payload: a rename storm lists the first entries and says how many.
	const maxEntries = 200
	total := len(added) + len(modified) + len(removed)
	b, _ := json.Marshal(map[string]any{
		"added": nonNil(trimE(added, maxEntries)), "modified": nonNil(trimE(modified, maxEntries)), "removed": nonNil(trimE(removed, maxEntries)),
		"changes": total, "truncated": len(added) > maxEntries || len(modified) > maxEntries || len(removed) > maxEntries,
	})
	return b
}

func trimE(l []entry, n int) []entry {
	if len(l) > n {
		return l[:n]
	}
	return l
}

func setDiff(prev, next []string) (added, removed []string) {
	for _, u := range next {
		if !slices.Contains(prev, u) {
			added = append(added, u)
		}
	}
	for _, u := range prev {
		if !slices.Contains(next, u) {
			removed = append(removed, u)
		}
	}
	return added, removed
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
