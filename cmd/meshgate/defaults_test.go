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
