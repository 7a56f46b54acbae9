package shard

import (
	"errors"
	"strings"
	"testing"
)

func TestParseResource(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"simple", "user:alice", true},
		{"nested", "storage:folders/photos/2026", true},
		{"rich segment", "feeds:a-b.c_d~e@f+g=h,i:j", true},
		{"no colon", "user", false},
		{"empty scheme", ":x", false},
		{"upper scheme", "User:x", false},
		{"digit first", "1x:y", false},
		{"empty path", "user:", false},
		{"empty segment", "user:a//b", false},
		{"leading slash", "user:/a", false},
		{"trailing slash", "user:a/", false},
		{"dot segment", "user:a/./b", false},
		{"dotdot segment", "user:a/../b", false},
		{"space", "user:a b", false},
		{"non-ascii", "user:caf\u00e9", false},
		{"too long", "user:" + strings.Repeat("a", MaxResourceLen), false},
		{"longest", "user:" + strings.Repeat("a", MaxResourceLen-5), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseResource(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseResource(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error %v is not ErrInvalidInput", err)
			}
		})
	}
}

func FuzzParseResource(f *testing.F) {
	for _, s := range []string{"user:alice", "storage:folders/a/b", "x:..", "a:b//c", ":", "z:\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scheme, path, err := ParseResource(s)
		if err != nil {
			return
		}
		if scheme+":"+path != s {
			t.Fatalf("round trip: %q -> %q %q", s, scheme, path)
		}
		// Every accepted resource re-parses the same, and split in two at
		// its first colon it is still scheme and path.
		if s2, p2, err := ParseResource(scheme + ":" + path); err != nil || s2 != scheme || p2 != path {
			t.Fatalf("reparse %q: %v", s, err)
		}
		for _, seg := range strings.Split(path, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted bad segment in %q", s)
			}
		}
	})
}
