package storage

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzReadMembers reads arbitrary .members files: it must never panic and
// must return only ids of the token grammar, sorted, distinct, at most
// MaxMembers; every skipped line is reported with a line number inside
// the file.
func FuzzReadMembers(f *testing.F) {
	for _, s := range []string{
		"alice\nbob\n", "Zo\xeb\nalice\nbob\n", "# comment\n\n  carol  \r\n", "a b\n..\n.\n", "x\x00y\n",
		"\xef\xbb\xbfalice\n", "alice", "",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, MembersFile)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		lines := len(slices.Collect(func(yield func(int) bool) {
			for i, c := range b {
				if c == '\n' && !yield(i) {
					return
				}
			}
		})) + 1
		got := readMembers(path, func(line int, why string) {
			if line < 0 || line > lines || why == "" {
				t.Fatalf("report of line %d (of %d): %q", line, lines, why)
			}
		})
		if len(got) > MaxMembers || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("members %q", got)
		}
		for _, m := range got {
			if why := badID(m); why != "" {
				t.Fatalf("member %q: %s", m, why)
			}
		}
	})
}
