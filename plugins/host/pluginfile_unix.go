//go:build unix

package host

import (
	"fmt"
	"os"
	"syscall"
)

// checkWriters refuses a plugin file, or a directory above it, that
// someone other than the gateway's user or root could change.
func checkWriters(path string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, neither root nor the gateway's user: it could be rewritten", path, uid)
	}
	m := fi.Mode()
	switch {
	case fi.IsDir() && m&0o002 != 0 && m&os.ModeSticky == 0:
		return fmt.Errorf("directory %s is writable by others (mode %s): the plugin could be swapped", path, m)
	case !fi.IsDir() && m&0o022 != 0:
		return fmt.Errorf("%s is writable by group or others (mode %s): it could be rewritten", path, m.Perm())
	}
	return nil
}
