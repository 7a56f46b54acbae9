package host

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommand_runsTheFileItHashed: the plugin file is swapped after it is
// checked and before it runs (the race an attacker with a writable path
// wins); what runs is still the file that was hashed.
func TestCommand_runsTheFileItHashed(t *testing.T) {
	if _, ok := execPath(); !ok {
		t.Skip("no /proc/self/fd: the path is executed")
	}
	dir := filepath.Join(t.TempDir(), "p")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "plugin.sh")
	good := []byte("#!/bin/sh\necho original\n")
	if err := os.WriteFile(path, good, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(good)
	h := &Host{cfg: Config{}}
	cmd, sc, bin, err := h.command(Plugin{Name: "p", Path: path, SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	if sc != nil {
		t.Fatal("a path-based SecureConfig would hash the path again")
	}
	evil := filepath.Join(dir, "evil.sh")
	if err := os.WriteFile(evil, []byte("#!/bin/sh\necho swapped\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(evil, path); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "original" {
		t.Fatalf("ran %q, want the hashed file (original)", got)
	}
}

func TestCheckPluginFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "plugin")
	body := []byte("#!/bin/sh\n")
	if err := os.WriteFile(path, body, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	if err := CheckPluginFile(path, good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"zz", good[:10], strings.Repeat("0", 64)} {
		if err := CheckPluginFile(path, bad); err == nil {
			t.Fatalf("sha256 %q accepted", bad)
		}
	}
	if err := os.Chmod(path, 0o757); err != nil {
		t.Fatal(err)
	}
	if err := CheckPluginFile(path, good); err == nil || !strings.Contains(err.Error(), "writable by") {
		t.Fatalf("a file others may write: %v", err)
	}
}
