package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meshgate/plugins/sdk"
)

func TestReadMembers(t *testing.T) {
	long := strings.Repeat("a", 129)
	for _, tc := range []struct {
		name    string
		file    string
		want    []string
		badLine []int
	}{
		{"ids, comments, blanks, duplicates", "bob\n# x\n\nalice\n  carol  \nbob\n", []string{"alice", "bob", "carol"}, nil},
		{"Latin-1 is not a member", "Zo\xeb\nalice\nbob\n", []string{"alice", "bob"}, []int{1}},
		{"spaces inside", "alice smith\nbob\n", []string{"bob"}, []int{1}},
		{"too long", long + "\nbob\n", []string{"bob"}, []int{1}},
		{"dot dot", "..\nbob\n", []string{"bob"}, []int{1}},
		{"UTF-8 outside the grammar", "zoë\nbob\n", []string{"bob"}, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), MembersFile)
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			var bad []int
			got := readMembers(path, func(line int, _ string) { bad = append(bad, line) })
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || fmt.Sprint(bad) != fmt.Sprint(tc.badLine) {
				t.Fatalf("members %q bad lines %v; want %q %v", got, bad, tc.want, tc.badLine)
			}
		})
	}
}

// TestReadMembers_bounded: a .members is read up to MaxMembersBytes and
// MaxMembers ids, and the rest is reported, not decoded.
func TestReadMembers_bounded(t *testing.T) {
	var b strings.Builder
	for i := range MaxMembers + 50 {
		fmt.Fprintf(&b, "user-%06d\n", i)
	}
	path := filepath.Join(t.TempDir(), MembersFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var why []string
	got := readMembers(path, func(_ int, w string) { why = append(why, w) })
	if len(got) != MaxMembers || len(why) != 1 || !strings.Contains(why[0], "members") {
		t.Fatalf("%d members, reports %q", len(got), why)
	}
	big := strings.Repeat("alice\n", MaxMembersBytes/6+100)
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	why = nil
	got = readMembers(path, func(_ int, w string) { why = append(why, w) })
	if len(got) != 1 || len(why) != 1 || !strings.Contains(why[0], "bytes") {
		t.Fatalf("%q, reports %q", got, why)
	}
}

// TestDiff_boundedInBytes: 250 files with 440-byte paths in one change
// make a payload under MaxPayloadBytes that says it is truncated and
// counts every change.
func TestDiff_boundedInBytes(t *testing.T) {
	next := map[string]fileInfo{}
	for i := range 250 {
		next[fmt.Sprintf("%03d-%s", i, strings.Repeat("p", 436))] = fileInfo{Size: 1}
	}
	b := diff(map[string]fileInfo{}, next)
	if len(b) > MaxPayloadBytes {
		t.Fatalf("payload %d bytes, over %d", len(b), MaxPayloadBytes)
	}
	if !strings.Contains(string(b), `"truncated":true`) || !strings.Contains(string(b), `"changes":250`) {
		t.Fatalf("payload does not say it is truncated: %.200s", b)
	}
}

// TestStorage_RevocationsComeFirst: bob removed and a file added in one
// scan: bob's REVOKED is emitted before the change that names the new
// file.
func TestStorage_RevocationsComeFirst(t *testing.T) {
	root := t.TempDir()
	p, rec := New(root), &recorder{}
	dir := filepath.Join(root, "deals")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, MembersFile), []byte("alice\nbob\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.scanFolder(context.Background(), rec, "deals", false)
	if err := os.WriteFile(filepath.Join(dir, MembersFile), []byte("alice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acquisition-of-bobcorp.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.scanFolder(context.Background(), rec, "deals", true)
	revoked, changed := 0, 0
	for _, e := range rec.events {
		switch {
		case e.Kind == sdk.Revoked && e.Principal.User == "bob":
			revoked++
		case e.Kind == sdk.Changed && revoked < 2:
			t.Fatalf("%s CHANGED %s before bob's REVOKED", e.Resource, e.Payload)
		case e.Kind == sdk.Changed:
			changed++
		}
	}
	if revoked != 2 || changed != 2 {
		t.Fatalf("%d REVOKED, %d CHANGED: %+v", revoked, changed, rec.events)
	}
}
