package store

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncHot makes every write to the hot tier's file system durable with one
// syncfs(2). Since Linux 5.8 it reports writeback errors of that file
// system, so a failure falls back to fsyncing file by file.
func (s *Store) syncHot() error {
	d, err := os.Open(s.hotRoot)
	if err != nil {
		return fmt.Errorf("open hot tier for syncfs: %w", err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", s.hotRoot, err)
	}
	return nil
}
