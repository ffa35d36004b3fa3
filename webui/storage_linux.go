package webui

import (
	"fmt"
	"syscall"
)

// statfs reads the usage of the file system holding path. Free is what
// an unprivileged writer (the appliance's own user) may still use, so the
// root reserve counts neither as free nor as used.
func statfs(path string) (diskUsage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return diskUsage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	total := st.Blocks * bs
	used := (st.Blocks - st.Bfree) * bs
	return diskUsage{Used: used, Free: st.Bavail * bs, Total: total}, nil
}
