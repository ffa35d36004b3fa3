package store

// Copies of recording files on other cluster nodes.
//
// A sealed recording's file is immutable and carries its seal hash
// (File.SHA256: for format version 2 files a hash of the header and every
// chunk's GCM tag, for older ones the SHA-256 of the whole encrypted file;
// see store/recfile/seal.go), so a copy is the file's bytes as stored. It
// travels encrypted; the receiver authenticates every chunk with the
// recording's data key (unwrapped from the replicated metadata with its
// own keyring) as the bytes arrive, and compares the seal hash. The store
// offers what a copier needs and nothing of the network:
//
//   - OpenSealedFile: the encrypted file as stored, for a peer to read;
//   - InstallReplica: write a received copy to <hot>/.incoming, verify it on
//     the way, fsync, compare with the seal hash, rename it to its place on
//     the hot tier, fsync the directory, then commit AddReplica so the
//     metadata says where the copy is. A half-received or wrong copy never
//     reaches its final name, so it is never served; DropPartialReplicas
//     removes what a crash left in .incoming;
//   - a RemoteFiles fallback (SetRemoteFiles): OpenAudio on a node without
//     the file fetches it into the local hot tier first, the same way, and
//     then serves it like any local file.
//
// The copy is the tier mover's (tier.go) without its commit of a new
// location: sealCheck, mkdirAllSync and syncDir are shared.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/callvault/callvault/store/meta"
)

// incomingDir is where copies are received, under the hot root; the
// dot keeps it apart from the YYYY/ directories of recordings.
const incomingDir = ".incoming"

// RemoteFiles fetches a sealed recording's encrypted file, as stored,
// from a node that holds it, and its SIP side file (encrypted, nil if it
// has none) from its writer or a copy (the cluster provides it).
type RemoteFiles interface {
	FetchFile(ctx context.Context, rec meta.Recording) (io.ReadCloser, error)
	FetchSignalling(ctx context.Context, rec meta.Recording) ([]byte, error)
}

// replicaState is the store's part in file replication: the remote source
// and the fetches in flight, so concurrent plays of one recording fetch it
// once.
type replicaState struct {
	mu       sync.Mutex
	remote   RemoteFiles
	inflight map[string]chan struct{}
}

// SetRemoteFiles makes OpenAudio fetch a sealed recording's file from r
// when this node does not hold it; nil turns that off.
func (s *Store) SetRemoteFiles(r RemoteFiles) {
	s.rep.mu.Lock()
	s.rep.remote = r
	s.rep.mu.Unlock()
}

// sealed reports whether rec's file is final and has a seal hash to verify
// a copy against.
func sealed(rec meta.Recording) bool {
	return (rec.Status == meta.StatusComplete || rec.Status == meta.StatusRecovered) && rec.File.SHA256 != "" && rec.File.Path != ""
}

// localPath is where this node keeps rec's file: the writer's own file
// may have moved to its archive tier; a copy is always on the hot tier.
func (s *Store) localPath(rec meta.Recording) (string, error) {
	if !filepath.IsLocal(rec.File.Path) {
		return "", fmt.Errorf("%w: recording %s: path %q is not relative to the tier root", ErrNoFile, rec.ID, rec.File.Path)
	}
	if rec.Node == "" || rec.Node == s.cfg.Node {
		return s.filePath(rec)
	}
	return filepath.Join(s.hotRoot, rec.File.Path), nil
}

// OpenSealedFile opens a sealed recording's encrypted file as stored, for
// a peer to copy. It returns the recording as the metadata has it now; the
// reader verifies the bytes against rec.File.SHA256 (InstallReplica).
func (s *Store) OpenSealedFile(id string) (*os.File, meta.Recording, error) {
	rec, err := s.meta.Recording(id)
	if err != nil {
		return nil, rec, err
	}
	if !sealed(rec) {
		return nil, rec, fmt.Errorf("%w: recording %s is %s, not sealed", ErrNoFile, id, rec.Status)
	}
	p, err := s.localPath(rec)
	if err != nil {
		return nil, rec, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, rec, fmt.Errorf("%w: recording %s: %w", ErrNoFile, id, err)
	}
	return f, rec, nil
}

// HasFile reports whether this node holds rec's file (one stat).
func (s *Store) HasFile(rec meta.Recording) bool {
	p, err := s.localPath(rec)
	if err != nil {
		return false
	}
	_, err = os.Lstat(p)
	return err == nil
}

// InstallReplica receives a copy of a sealed recording's file from r,
// verifies it against the seal hash, installs it atomically on the hot
// tier and commits AddReplica. It returns the bytes installed. A copy that
// does not match (cut off, damaged) is removed and wraps errSealMismatch;
// nothing is ever left under the recording's own name unless verified.
func (s *Store) InstallReplica(ctx context.Context, rec meta.Recording, r io.Reader) (int64, error) {
	if !sealed(rec) {
		return 0, fmt.Errorf("%w: recording %s is %s, not sealed", ErrNoFile, rec.ID, rec.Status)
	}
	check, err := s.newSealCheck(rec)
	if err != nil {
		return 0, err
	}
	if !filepath.IsLocal(rec.File.Path) {
		return 0, fmt.Errorf("%w: recording %s: path %q is not relative to the tier root", ErrNoFile, rec.ID, rec.File.Path)
	}
	in := filepath.Join(s.hotRoot, incomingDir)
	if err := os.MkdirAll(in, 0o700); err != nil {
		return 0, s.classify(fmt.Errorf("replica of %s: %w", rec.ID, err))
	}
	tmp, err := os.CreateTemp(in, rec.ID+"-*.part")
	if err != nil {
		return 0, s.classify(fmt.Errorf("replica of %s: %w", rec.ID, err))
	}
	n, err := check.copy(ctx, tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	dst := filepath.Join(s.hotRoot, rec.File.Path)
	if err == nil {
		if err = mkdirAllSync(filepath.Dir(dst), s.hotRoot); err == nil {
			err = os.Rename(tmp.Name(), dst)
		}
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		if errors.Is(err, errSealMismatch) {
			return 0, err
		}
		return 0, s.classify(fmt.Errorf("replica of %s: %w", rec.ID, err))
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return 0, fmt.Errorf("replica of %s: fsync directory: %w", rec.ID, err)
	}
	if _, err := s.Apply(ctx, &meta.AddReplica{ID: rec.ID, Node: s.cfg.Node}); err != nil {
		if errors.Is(err, meta.ErrDeleted) {
			// Deleted while it travelled: its key is gone, the copy is noise.
			_ = os.Remove(dst)
		}
		// Otherwise the file is in place and verified; the copier
		// commits AddReplica again on its next pass.
		return n, fmt.Errorf("replica of %s: record the copy: %w", rec.ID, err)
	}
	return n, nil
}

// DropPartialReplicas removes copies a crash or a cut connection left in
// the incoming directory. The copier calls it once before its first pass.
func (s *Store) DropPartialReplicas() (int, error) {
	in := filepath.Join(s.hotRoot, incomingDir)
	ents, err := os.ReadDir(in)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".part") {
			continue
		}
		if err := os.Remove(filepath.Join(in, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
		n++
	}
	return n, nil
}

// DropDeletedReplica removes this node's hot-tier file of a deleted
// recording, a copy or the writer's own (Delete removes the files only on
// the node that runs it; the key is destroyed everywhere at once, so the
// file is already unreadable). It reports whether there was a file.
func (s *Store) DropDeletedReplica(rec meta.Recording) (bool, error) {
	if rec.Status != meta.StatusDeleted || !filepath.IsLocal(rec.File.Path) || rec.File.Path == "" {
		return false, nil
	}
	err := os.Remove(filepath.Join(s.hotRoot, rec.File.Path))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// fetchRemote makes sure this node holds rec's file before OpenAudio opens
// it: a sealed recording whose file is missing here is fetched from the
// remote source, verified and installed. Without a remote source, or for
// a file that is here (or not sealed), it does nothing.
func (s *Store) fetchRemote(ctx context.Context, rec meta.Recording) error {
	s.rep.mu.Lock()
	remote := s.rep.remote
	s.rep.mu.Unlock()
	if remote == nil || !sealed(rec) || s.HasFile(rec) {
		return nil
	}
	// One fetch per recording at a time; the others wait for it.
	for {
		s.rep.mu.Lock()
		wait, busy := s.rep.inflight[rec.ID]
		if !busy {
			if s.rep.inflight == nil {
				s.rep.inflight = map[string]chan struct{}{}
			}
			done := make(chan struct{})
			s.rep.inflight[rec.ID] = done
			s.rep.mu.Unlock()
			defer func() {
				s.rep.mu.Lock()
				delete(s.rep.inflight, rec.ID)
				s.rep.mu.Unlock()
				close(done)
			}()
			break
		}
		s.rep.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		if s.HasFile(rec) {
			return nil
		}
	}
	if s.HasFile(rec) {
		return nil
	}
	rc, err := remote.FetchFile(ctx, rec)
	if err != nil {
		return fmt.Errorf("%w: recording %s is not on this node (%s) and no peer could send it: %w", ErrNoFile, rec.ID, s.cfg.Node, err)
	}
	defer rc.Close()
	n, err := s.InstallReplica(ctx, rec, rc)
	if err != nil {
		if !s.HasFile(rec) {
			return fmt.Errorf("%w: fetch recording %s from a peer: %w", ErrNoFile, rec.ID, err)
		}
		// Installed and verified; only recording the copy failed (the
		// cluster's copier records it on its next pass). Play it.
		s.log.Warn("fetched recording file from a peer, but recording the copy failed", "id", rec.ID, "err", err)
	}
	s.log.Info("fetched recording file from a peer for playback", "id", rec.ID, "bytes", n)
	return nil
}
