package host

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// topKeys lists a JSON object's top-level keys, duplicates included.
func topKeys(t *testing.T, line string) []string {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(line))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %q", line)
	}
	var keys []string
	for d.More() {
		k, _ := d.Token()
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// TestLogWriter_pluginCannotForgeGatewayLines: a plugin's JSON fields go
// under plugin_log; the gateway's message and keys are its own.
func TestLogWriter_pluginCannotForgeGatewayLines(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil)).With("component", "plugins", "plugin", "storage")
	w := &logWriter{log: log}
	_, _ = w.Write([]byte(`{"level":"WARN","msg":"meshgate serving","url":"https://evil.example/","component":"server","plugin":"other","time":"x"}` + "\n" + "plain text line\n"))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	for _, l := range lines {
		seen := map[string]bool{}
		for _, k := range topKeys(t, l) {
			if seen[k] {
				t.Fatalf("duplicate key %q in %s", k, l)
			}
			seen[k] = true
			switch k {
			case "time", "level", "msg", "component", "plugin", "plugin_log":
			default:
				t.Fatalf("plugin set top-level key %q: %s", k, l)
			}
		}
		var m struct {
			Msg       string         `json:"msg"`
			Level     string         `json:"level"`
			Component string         `json:"component"`
			Plugin    string         `json:"plugin"`
			PluginLog map[string]any `json:"plugin_log"`
		}
		_ = json.Unmarshal([]byte(l), &m)
		if m.Msg != "plugin log" || m.Component != "plugins" || m.Plugin != "storage" {
			t.Fatalf("gateway keys overridden: %s", l)
		}
		if m.PluginLog["msg"] == nil && m.PluginLog["line"] == nil {
			t.Fatalf("plugin's message lost: %s", l)
		}
	}
	var first struct {
		Level     string         `json:"level"`
		PluginLog map[string]any `json:"plugin_log"`
	}
	_ = json.Unmarshal([]byte(lines[0]), &first)
	if first.Level != "WARN" || first.PluginLog["msg"] != "meshgate serving" || first.PluginLog["url"] != "https://evil.example/" || first.PluginLog["component"] != "server" {
		t.Fatalf("plugin fields not kept under plugin_log: %s", lines[0])
	}
}

// TestLogWriter_lineIsBounded: a plugin that writes without newlines
// holds at most maxLogLine bytes in the host; the rest is logged in
// pieces.
func TestLogWriter_lineIsBounded(t *testing.T) {
	var out bytes.Buffer
	w := &logWriter{log: slog.New(slog.NewJSONHandler(&out, nil))}
	chunk := bytes.Repeat([]byte("x"), 4<<10)
	for range 64 { // 256 KiB, no newline
		_, _ = w.Write(chunk)
		if len(w.buf) > maxLogLine {
			t.Fatalf("holding %d bytes, over %d", len(w.buf), maxLogLine)
		}
	}
	if n := strings.Count(out.String(), "\n"); n < 256/20 {
		t.Fatalf("%d records for 256 KiB", n)
	}
}
