package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fsnotify/fsnotify"

	"meshgate/plugins/sdk"
)

// MembersFile names the members list in a folder.
const MembersFile = ".members"

// Limits on one folder's members list and on a change's payload.
const (
	// MaxMembersBytes is how much of a .members file is read; the rest is
	// ignored and reported.
	MaxMembersBytes = 1 << 20
	// MaxMembers caps a folder's members.
	MaxMembers = 10000
	// MaxPayloadBytes caps a change's payload, below the gateway's 64 KiB:
	// a listing that does not fit names the first entries that do and
	// says "truncated": true with the counts.
	MaxPayloadBytes = 48 << 10
)

// Publisher serves `storage:` from a directory.
type Publisher struct {
	root     string
	debounce time.Duration
	rescan   time.Duration

	mu      sync.RWMutex
	folders map[string]*folder

	// scanned is closed once Run watches the tree and has scanned it:
	// changes made after that are seen (tests wait on it), and Authorize
	// and Current answer only after it: before, an empty map would deny
	// every member, and a re-check after a restart would revoke them all.
	scanned     chan struct{}
	scannedOnce sync.Once
}

type folder struct {
	files    map[string]fileInfo // relative path → info
	members  []string            // sorted, distinct
	isMember map[string]bool     // the same ids, for constant-time checks
	etag     string
	metag    string
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

// waitReady waits for the first scan.
func (p *Publisher) waitReady(ctx context.Context) error {
	select {
	case <-p.scanned:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Authorize lets members read their folders.
func (p *Publisher) Authorize(ctx context.Context, who sdk.Principal, resource, _ string) (sdk.Decision, error) {
	if err := p.waitReady(ctx); err != nil {
		return sdk.Decision{}, err
	}
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
	if f == nil || !f.isMember[who.User] {
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
		if f.isMember[a] && f.isMember[b] {
			return true
		}
	}
	return false
}

// Current implements sdk.Publisher.
func (p *Publisher) Current(ctx context.Context, resources []string) (map[string]string, error) {
	if err := p.waitReady(ctx); err != nil {
		return nil, err
	}
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
	next := &folder{files: map[string]fileInfo{}, isMember: map[string]bool{}}
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
		next.members = readMembers(filepath.Join(dir, MembersFile), func(line int, why string) {
			sdk.Logger().Warn("storage: .members line skipped", "folder", name, "line", line, "why", why)
		})
		for _, m := range next.members {
			next.isMember[m] = true
		}
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
		prev = &folder{files: map[string]fileInfo{}, isMember: map[string]bool{}, etag: emptyEtag, metag: digest(nil)}
	}
	if !emit {
		return
	}
	res := "storage:folders/" + name
	// Revocations first: a member removed in the same scan as a change
	// must be gone before the change (whose payload names files) is
	// delivered; the host handles a plugin's events in order.
	var added, removed []string
	if prev.metag != next.metag {
		added, removed = setDiff(prev, next)
		for _, u := range removed {
			for _, r := range []string{res, res + "/members"} {
				_ = h.Emit(ctx, sdk.Event{Kind: sdk.Revoked, Resource: r, Principal: sdk.Principal{User: u}})
			}
		}
	}
	if prev.metag != next.metag {
		_ = h.Emit(ctx, sdk.Event{Kind: sdk.Changed, Resource: res + "/members", Etag: next.metag, Payload: membersPayload(next.members, added, removed)})
	}
	if prev.etag != next.etag {
		_ = h.Emit(ctx, sdk.Event{Kind: sdk.Changed, Resource: res, Etag: next.etag, Payload: diff(prev.files, next.files)})
	}
}

// readMembers reads a members file: one id per line, blank lines and
// lines starting with # ignored. A line that is not an id is reported
// through bad (with its 1-based number) and skipped. Linear in the file,
// which is read up to MaxMembersBytes; at most MaxMembers ids are kept.
func readMembers(path string, bad func(line int, why string)) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxMembersBytes+1))
	if err != nil {
		return nil
	}
	if len(b) > MaxMembersBytes {
		bad(0, fmt.Sprintf("file longer than %d bytes: the rest is ignored", MaxMembersBytes))
		b = b[:MaxMembersBytes]
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i] // no half line
		}
	}
	seen := map[string]bool{}
	var out []string
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || seen[l] {
			continue
		}
		if why := badID(l); why != "" {
			bad(i+1, why)
			continue
		}
		if len(out) == MaxMembers {
			bad(i+1, fmt.Sprintf("more than %d members: the rest is ignored", MaxMembers))
			break
		}
		seen[l] = true
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// badID says why s is not a user id of the gateway's token grammar
// (1-128 bytes of A-Za-z0-9-._@, not "." or ".."), or "" if it is one.
func badID(s string) string {
	if !utf8.ValidString(s) {
		return "not UTF-8"
	}
	if len(s) > 128 {
		return "longer than 128 bytes"
	}
	if s == "." || s == ".." {
		return "not an id"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '@') {
			return "not an id (A-Za-z0-9-._@)"
		}
	}
	return ""
}

// membersPayload is the members resource's change, bounded like diff: the
// lists are cut to what fits MaxPayloadBytes and say so.
func membersPayload(members, added, removed []string) []byte {
	budget := MaxPayloadBytes - 256
	cut := func(l []string) []string {
		n := 0
		for i, u := range l {
			n += len(u) + 3
			if n > budget/3 {
				return l[:i]
			}
		}
		return l
	}
	m, a, r := cut(members), cut(added), cut(removed)
	payload, _ := json.Marshal(map[string]any{
		"members": nonNil(m), "added": nonNil(a), "removed": nonNil(r),
		"count": len(members), "truncated": len(m) < len(members) || len(a) < len(added) || len(r) < len(removed),
	})
	return payload
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
	// Bound the payload in entries and in bytes: a rename storm, or
	// long paths, list the first entries that fit and say how many there
	// were. Each kind gets a third of MaxPayloadBytes.
	const maxEntries = 200
	total := len(added) + len(modified) + len(removed)
	a, m, r := fit(added, maxEntries), fit(modified, maxEntries), fit(removed, maxEntries)
	b, _ := json.Marshal(map[string]any{
		"added": nonNil(a), "modified": nonNil(m), "removed": nonNil(r),
		"changes": total, "truncated": len(a) < len(added) || len(m) < len(modified) || len(r) < len(removed),
	})
	return b
}

// fit returns the longest prefix of l of at most n entries whose JSON
// fits a third of MaxPayloadBytes (less room for the rest of the object).
func fit(l []entry, n int) []entry {
	l = trimE(l, n)
	budget := (MaxPayloadBytes - 256) / 3
	used := 0
	for i, e := range l {
		used += len(e.Path) + 40 // {"path":"…","size":…}, plus escapes at worst in the margin
		for j := 0; j < len(e.Path); j++ {
			if c := e.Path[j]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				used += 5
			}
		}
		if used > budget {
			return l[:i]
		}
	}
	return l
}

func trimE(l []entry, n int) []entry {
	if len(l) > n {
		return l[:n]
	}
	return l
}

// setDiff lists the members next adds to prev and those it removes, in
// order: linear, with the folders' member sets.
func setDiff(prev, next *folder) (added, removed []string) {
	for _, u := range next.members {
		if !prev.isMember[u] {
			added = append(added, u)
		}
	}
	for _, u := range prev.members {
		if !next.isMember[u] {
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
