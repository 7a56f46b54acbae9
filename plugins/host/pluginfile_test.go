package host_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshgate/internal/testkit"
	"meshgate/plugins/host"
)

// TestPlugins_WritableByOthersRefused: a plugin file others may write
// (or one in a directory they may write without the sticky bit) is
// refused before it is hashed or run: its checksum would prove nothing.
func TestPlugins_WritableByOthersRefused(t *testing.T) {
	t.Parallel() // each test has its own store, host, plugin processes and data directory
	self, _ := os.Executable()
	for _, tc := range []struct {
		name              string
		fileMode, dirMode os.FileMode
	}{
		{"file 0777", 0o777, 0o755},
		{"file 0775", 0o775, 0o755},
		{"directory 0777", 0o755, 0o777},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "plugins")
			must(t, os.Mkdir(dir, 0o755))
			path := filepath.Join(dir, "plugin")
			copyFile(t, self, path)
			must(t, os.Chmod(path, tc.fileMode))
			must(t, os.Chmod(dir, tc.dirMode))
			var logs testkit.Buffer
			r := start(t, host.Config{
				Plugins:    []host.Plugin{{Name: "w", Path: path, Args: []string{"-test.run=^$"}, SHA256: sha256File(t, path), Env: map[string]string{"MESHGATE_TEST_PLUGIN": "user"}}},
				Logger:     newLogger(&logs),
				MinBackoff: 5 * time.Second,
			})
			// The refusal is logged once the first attempt has ended.
			waitFor(t, func() bool { return strings.Contains(logs.String(), "writable by") })
			if r.h.Ready() || len(r.h.Statuses()) != 0 {
				t.Fatal("a plugin others may write was started")
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	must(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	must(t, err)
	_, err = io.Copy(dst, src)
	must(t, err)
	must(t, dst.Close())
}
