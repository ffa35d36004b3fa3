package store

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ArchiveConfig is the archive tier: a NAS/SAN mount that old recordings
// move to.
type ArchiveConfig struct {
	// Dir is the mount point (or a directory on it).
	Dir string
	// AfterDays moves recordings whose call started more than this many
	// days ago; 0 turns age-based moves off.
	AfterDays int
	// HighWatermarkPct also moves the oldest recordings while the hot
	// tier's file system is fuller than this percentage; 0 turns it off.
	HighWatermarkPct int
	// Interval is how often the mover runs.
	Interval time.Duration
}

const archiveMarker = ".callvault-archive"

// tierMover moves sealed recordings from the hot tier to the archive.
type tierMover struct {
	s    *Store
	cfg  ArchiveConfig
	root string
	stop chan struct{}
	done chan struct{}
}

func newTierMover(s *Store, cfg ArchiveConfig) *tierMover {
	return &tierMover{s: s, cfg: cfg, root: filepath.Join(cfg.Dir, "recordings"), stop: make(chan struct{}), done: make(chan struct{})}
}

// checkMounted tells a mounted archive from an empty mount point: the
// marker file is written the first time the archive is used, so when the
// NAS is not mounted the directory underneath lacks it.
func (t *tierMover) checkMounted() error {
	if _, err := os.Stat(filepath.Join(t.cfg.Dir, archiveMarker)); err != nil {
		t.s.stats.ArchiveDown.Store(true)
		return fmt.Errorf("%w: %s is not mounted or not initialised (%s missing): %w", ErrArchiveUnavailable, t.cfg.Dir, archiveMarker, err)
	}
	return nil
}

// Stop stops the mover and waits for it.
func (t *tierMover) Stop() {}
