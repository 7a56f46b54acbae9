package main

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNewLogger_Format checks what a person and a collector each get: with
// auto, text lines on a terminal (a real pseudo-terminal) and JSON objects
// on a file; with text or json, that format whatever stderr is.
func TestNewLogger_Format(t *testing.T) {
	isJSON := func(line string) bool {
		var m map[string]any
		return json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "meshgate serving"
	}
	isText := func(line string) bool {
		return strings.Contains(line, "level=INFO") && strings.Contains(line, `msg="meshgate serving"`) && strings.Contains(line, "node=n1")
	}
	file := func(t *testing.T, format string) string {
		f, err := os.Create(filepath.Join(t.TempDir(), "log"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		newLogger(f, format, slog.LevelInfo).Info("meshgate serving", "node", "n1")
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	for _, tc := range []struct {
		format string
		want   func(string) bool
	}{{"", isJSON}, {"auto", isJSON}, {"json", isJSON}, {"text", isText}} {
		t.Run("file/"+tc.format, func(t *testing.T) {
			if line := file(t, tc.format); !tc.want(line) {
				t.Fatalf("format %q on a file wrote %q", tc.format, line)
			}
		})
	}
	for _, tc := range []struct {
		format string
		want   func(string) bool
	}{{"", isText}, {"json", isJSON}} {
		t.Run("terminal/"+tc.format, func(t *testing.T) {
			ptm, pts := openPTY(t)
			newLogger(pts, tc.format, slog.LevelInfo).Info("meshgate serving", "node", "n1")
			line, err := bufio.NewReader(ptm).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line = strings.TrimSpace(line); !tc.want(line) {
				t.Fatalf("format %q on a terminal wrote %q", tc.format, line)
			}
		})
	}
}

// openPTY opens a Linux pseudo-terminal pair: what the program writes to
// pts, the test reads from ptm.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

func TestCheckLogFormat(t *testing.T) {
	for _, f := range []string{"", "auto", "text", "json"} {
		if err := checkLogFormat(f); err != nil {
			t.Errorf("%q: %v", f, err)
		}
	}
	if err := checkLogFormat("loud"); err == nil {
		t.Error("loud: accepted")
	}
}
