package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Buffer is a strings.Builder safe for concurrent use: exec's copier
// writes a child's output into it while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p. Safe for concurrent use.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far. Safe for concurrent use.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Node returns the node executable for a test that runs the JavaScript in
// dir, once dir's node_modules holds module. Without it the test skips,
// telling how to enable it (`npm ci` in dir); with MESHGATE_REQUIRE_NODE=1
// (CI) that is a failure instead, so CI cannot pass by skipping.
func Node(t testing.TB, dir, module string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", module)); err != nil {
		if os.Getenv("MESHGATE_REQUIRE_NODE") == "1" {
			t.Fatalf("%s has no node_modules/%s: run npm ci there", dir, module)
		}
		t.Skipf("run `npm ci` in %s to enable this test", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found")
	}
	return node
}
