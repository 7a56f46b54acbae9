package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// TestConfigDefaults: `config defaults` prints a config file that `config
// check` accepts and that reads back as the same config, with a comment on
// every key, and every documented key is printed.
func TestConfigDefaults(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"config", "defaults"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "defaults.yaml")
	if err := os.WriteFile(path, []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"config", "check", "--config", path}, io.Discard, io.Discard); err != nil {
		t.Fatalf("config check refuses the defaults: %v\n%s", err, out.String())
	}
	back, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := yaml.Marshal(back)
	b, _ := yaml.Marshal(want)
	if string(a) != string(b) {
		t.Fatalf("the printed defaults read back differently:\n%s\nwant\n%s", a, b)
	}
	if !strings.Contains(out.String(), "request_rate: 50") || !strings.Contains(out.String(), "buffer_size: 1024") {
		t.Fatalf("component defaults missing:\n%s", out.String())
	}

	// Every key outside a list item has a comment on its line or above it.
	key := regexp.MustCompile(`^( *)(- )?([a-z0-9_]+):`)
	var stack []string
	seen := map[string]bool{}
	lines := strings.Split(out.String(), "\n")
	for i, line := range lines {
		m := key.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		depth := len(m[1]) / 2
		if m[2] != "" || depth > len(stack) {
			continue // inside a list item (plugins)
		}
		stack = append(stack[:depth], m[3])
		p := strings.Join(stack, ".")
		seen[p] = true
		if strings.Contains(line, "#") || (i > 0 && strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#")) {
			continue
		}
		if _, ok := faultComments[m[3]]; ok && strings.HasPrefix(p, "faults.") {
			continue
		}
		t.Errorf("%s: no comment", p)
	}
	for k := range configComments {
		if !seen[k] {
			t.Errorf("%s is documented but not printed", k)
		}
	}
}

// TestConfig_LimitsDecodeIntoTheServer: the limits: section lands in
// server.Config, with its three keys of its own put where the server and
// graph have them.
func TestConfig_LimitsDecodeIntoTheServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(path, []byte(`limits:
  max_depth: 7
  max_streams: 9
  max_payload_bytes: 1000
  per_user: {request_rate: 2.5, max_streams: 3}
  websocket: {max_lag: 40, coalesce_writes: false}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Server.serverConfig(nil)
	if s.MaxDepth != 7 || s.Limits.MaxConns != 9 || s.Limits.MaxConnsPerUser != 3 || s.Limits.RequestRate != 2.5 ||
		s.WS.MaxLag != 40 || !s.WS.NoCoalesce || c.Server.MaxPayloadBytes != 1000 {
		t.Fatalf("%+v (payload %d)", s, c.Server.MaxPayloadBytes)
	}
	if s := (limitsConfig{}).serverConfig(nil); s.WS.NoCoalesce {
		t.Fatal("coalesce_writes absent turned coalescing off")
	}
}
