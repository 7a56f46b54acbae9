package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzConfig loads and validates arbitrary config files: it must never
// panic, and every error must name the file (so an operator can find
// what to fix).
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"listen: 127.0.0.1:8443\nlog_level: debug\n",
		"limits: {max_body_bytes: 1048576, max_depth: 10, websocket: {message_rate: 50, max_queued_bytes: 4194304}}\n",
		"cluster: {bind: 10.0.0.1, join: [10.0.0.2]}\n",
		"cluster: {bind: 127.0.0.2, gossip_keys: [\"not base64\"]}\n",
		"auth: {keys: [{id: k, alg: HS256, secret: short}], max_token_lifetime: 1h}\n",
		"plugins: [{name: x, path: /bin/true, sha256: zz}]\n",
		"unknown_key: 1\n", "listen: [\n", "{", "\xff\xfe", "a: &a [*a]\n", "memory: {gc_headroom_mib: -5}\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadConfig(path)
		if err == nil {
			err = c.validate(path)
		}
		if err != nil && !strings.Contains(err.Error(), path) {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}
