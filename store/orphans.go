package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// sweepOrphans removes from the hot tier the files a crash left without a
// recording: an upload's or an import's file is created before its
// metadata commits (Unflushed: the create commits while the first bytes
// are written), so a crash in between leaves a .cvr, and its .sip, that no
// recording names. Their data key was never committed, so they cannot be
// read by anyone; they only take space. Files of recordings deleted
// (crypto-shredded) whose removal a crash cut short go too.
//
// It walks the hot tier once, on a goroutine of the store's, after
// recovery, and only where this node's metadata is complete (not in a
// cluster, whose metadata may trail the files a peer copies in or an
// outbox still holds). Files modified since shortly before the store
// opened are left alone: they may belong to recordings being created now.
// It stops at Close.
func (s *Store) sweepOrphans(opened time.Time) {
	removed := 0
	err := filepath.WalkDir(s.hotRoot, func(path string, d fs.DirEntry, err error) error {
		select {
		case <-s.stop:
			return filepath.SkipAll
		default:
		}
		if err != nil {
			return nil // an unreadable directory: nothing to learn from it
		}
		if d.IsDir() {
			return nil
		}
		name := d.Name()
		id, ok := strings.CutSuffix(name, ".cvr")
		if !ok {
			id, ok = strings.CutSuffix(name, sigExt)
		}
		if !ok || len(id) != 36 {
			return nil
		}
		if _, err := parseID(id); err != nil {
			return nil
		}
		rec, err := s.meta.Recording(id)
		switch {
		case errors.Is(err, meta.ErrNotFound):
			info, ierr := d.Info()
			// Two seconds' margin: file times come from the kernel's
			// coarse clock (and some filesystems keep whole seconds).
			if ierr != nil || !info.ModTime().Before(opened.Add(-2*time.Second)) {
				return nil
			}
			s.mu.Lock()
			_, running := s.open[id]
			s.mu.Unlock()
			if running {
				return nil
			}
		case err != nil:
			return nil
		case rec.Status != meta.StatusDeleted:
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("remove file left by a crash", "path", path, "err", err)
			return nil
		}
		removed++
		s.stats.OrphansRemoved.Add(1)
		s.log.Info("removed a file no recording names (left by a crash)", "path", path, "recording", id)
		return nil
	})
	if err != nil {
		s.log.Warn("sweep of the hot tier", "err", err)
	}
	if removed > 0 {
		s.log.Info("hot tier swept", "removed", removed)
	}
}
