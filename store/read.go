package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/store/recfile"
)

// Audio is an open recording file: the decrypted plaintext (the grid
// container, or an upload as it came) with random access, read through
// the chunk index, so playback can start anywhere in an hour-long call
// without decrypting the rest.
type Audio struct {
	Rec meta.Recording
	r   *recfile.Reader
}

// ReadAt reads decrypted plaintext at off.
func (a *Audio) ReadAt(p []byte, off int64) (int, error) { return a.r.ReadAt(p, off) }

// Size is the plaintext length.
func (a *Audio) Size() int64 { return a.r.Size() }

// Close closes the file.
func (a *Audio) Close() error { return a.r.Close() }

// OpenAudio opens a recording's file for reading, on whichever tier it
// lies. A recording still being written can be read up to its last
// flushed chunk (live listen, and playback of a running call).
func (s *Store) OpenAudio(ctx context.Context, id string) (*Audio, error) {
	rec, err := s.recording(id)
	if err != nil {
		return nil, err
	}
	switch rec.Status {
	case meta.StatusDeleted, meta.StatusFailed:
		return nil, fmt.Errorf("%w: recording %s is %s", ErrNoFile, id, rec.Status)
	}
	if len(rec.File.WrappedDEK) == 0 || rec.File.Path == "" {
		return nil, fmt.Errorf("%w: recording %s has no key or path", ErrNoFile, id)
	}
	// In a cluster the file may be on another node only (replica.go).
	if err := s.fetchRemote(ctx, rec); err != nil {
		s.stats.ReadErrors.Add(1)
		return nil, err
	}
	path, err := s.localPath(rec)
	if err != nil {
		s.stats.ReadErrors.Add(1)
		return nil, err
	}
	uid, err := parseID(rec.ID)
	if err != nil {
		return nil, err
	}
	dek, err := s.keys.Load().UnwrapDEK(rec.File.WrappedDEK, uid[:])
	if err != nil {
		s.stats.ReadErrors.Add(1)
		return nil, fmt.Errorf("unwrap key of recording %s: %w", id, err)
	}
	defer keyring.Zero(dek)
	var opts []recfile.OpenOption
	if rec.Status == meta.StatusRecording {
		opts = append(opts, recfile.AllowTruncated())
	}
	r, err := recfile.Open(path, dek, opts...)
	if errors.Is(err, os.ErrNotExist) && rec.Tier == meta.TierHot {
		// The tier mover may have moved the file between our metadata read
		// and the open; the metadata then says where it is now.
		if again, gerr := s.meta.Recording(id); gerr == nil && again.Tier != rec.Tier {
			if p, perr := s.filePath(again); perr == nil {
				rec = again
				r, err = recfile.Open(p, dek, opts...)
			}
		}
	}
	if err != nil {
		s.stats.ReadErrors.Add(1)
		if rec.Tier == meta.TierArchive && errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: recording %s: %w", ErrArchiveUnavailable, id, err)
		}
		return nil, fmt.Errorf("open recording %s: %w", id, err)
	}
	return &Audio{Rec: rec, r: r}, nil
}

// filePath finds a recording's file on its tier.
func (s *Store) filePath(rec meta.Recording) (string, error) {
	switch rec.Tier {
	case meta.TierArchive:
		if s.tier == nil {
			return "", fmt.Errorf("%w: recording %s is on the archive tier but storage.archive_dir is not set", ErrArchiveUnavailable, rec.ID)
		}
		if err := s.tier.checkMounted(); err != nil {
			return "", fmt.Errorf("recording %s: %w", rec.ID, err)
		}
		return filepath.Join(s.tier.root, rec.File.Path), nil
	default:
		return filepath.Join(s.hotRoot, rec.File.Path), nil
	}
}

// Delete crypto-shreds a recording: the commit destroys its wrapped data
// key first, so every copy of the file (archive, backups, other nodes) is
// unreadable from that moment; then the local file is removed. A
// preserved recording is refused (meta.ErrPreserved).
func (s *Store) Delete(ctx context.Context, id, by string) error {
	rec, err := s.meta.Recording(id)
	if err != nil {
		return err
	}
	if rec.Status == meta.StatusRecording {
		return fmt.Errorf("%w: recording %s is still being written", meta.ErrInvalid, id)
	}
	if _, err := s.Apply(ctx, &meta.DeleteRecording{ID: id, By: by, At: s.cfg.Now().UTC()}); err != nil {
		return err
	}
	s.stats.Deleted.Add(1)
	if rec.File.Path == "" {
		return nil
	}
	s.removeSignalling(rec)
	// Remove the file from both tiers: the mover may have moved it between
	// our read and the delete. The key is already gone either way.
	paths := []string{filepath.Join(s.hotRoot, rec.File.Path)}
	if s.tier != nil {
		if err := s.tier.checkMounted(); err == nil {
			paths = append(paths, filepath.Join(s.tier.root, rec.File.Path))
		} else if rec.Tier == meta.TierArchive {
			s.log.Warn("deleted recording's archive file not reachable for removal; its key is destroyed", "id", id, "err", err)
		}
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("remove deleted recording's file", "id", id, "path", p, "err", err)
		}
	}
	return nil
}
