package host

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// openPlugin opens an external plugin's executable and checks it, so that
// what is hashed is what runs:
//
//   - the file and every directory above it must not be writable by
//     anyone but the gateway's user or root (a directory writable by
//     others is accepted with the sticky bit, like /tmp); otherwise
//     another user could change the file after it is hashed;
//   - the open file (not the path) is hashed and compared with sum.
//
// The caller executes that same open file (execPath), never the path
// again, and closes it once the process has started.
func openPlugin(path string, sum []byte) (*os.File, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", real)
	}
	if err := checkWriters(real, fi); err != nil {
		f.Close()
		return nil, err
	}
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		di, err := os.Stat(dir)
		if err != nil {
			f.Close()
			return nil, err
		}
		if err := checkWriters(dir, di); err != nil {
			f.Close()
			return nil, err
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("hash %s: %w", real, err)
	}
	if !bytes.Equal(h.Sum(nil), sum) {
		f.Close()
		return nil, errors.New("checksum mismatch: the plugin file is not the one configured (sha256)")
	}
	return f, nil
}

// execPath is how the child executes the open file f given to it as its
// first extra file (descriptor 3): on Linux through /proc, so no one can
// swap the path between the hash and the exec. Elsewhere the path (and
// go-plugin's SecureConfig, which hashes it again) is all there is.
func execPath() (string, bool) {
	if runtime.GOOS != "linux" {
		return "", false
	}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		return "", false
	}
	return "/proc/self/fd/3", true
}

// CheckPluginFile runs the checks a launch makes on an external plugin's
// file (who may write it and the directories above it; its sha256, hex)
// without starting it, for `config check`.
func CheckPluginFile(path, sha256Hex string) error {
	sum, err := hex.DecodeString(sha256Hex)
	if err != nil || len(sum) != sha256.Size {
		return fmt.Errorf("sha256: want %d hex digits", 2*sha256.Size)
	}
	f, err := openPlugin(path, sum)
	if err != nil {
		return err
	}
	return f.Close()
}
