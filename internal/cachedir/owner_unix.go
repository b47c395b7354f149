//go:build unix

package cachedir

import (
	"fmt"
	"os"
	"syscall"
)

func checkOwner(dir string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("cache directory %s belongs to uid %d, not to you (uid %d)", dir, st.Uid, uid)
	}
	return nil
}
