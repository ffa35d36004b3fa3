package store

// Copies of a recording's SIP side file (signalling.go) on other cluster
// nodes, so an export on any node carries the call's SIP messages.
//
// Unlike the audio file, the side file is not sealed: capture appends the
// messages of a call as flush passes hand them over, a few of them (the
// answer to the BYE) possibly after the recording was sealed. So a copy is
// not checked against a hash but record by record: every record must
// authenticate under the recording's signalling key at its position, which
// a node holding the keyring can check; a copy replaces the local file
// only when it holds more messages. The writer's file is the freshest, so
// a node that is not the recording's writer asks it again when it reads
// the messages (Signalling), and keeps whatever it has if the writer is
// not reachable.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// MaxSignallingFile bounds a side file copied between nodes (a call's SIP
// is kilobytes; a long call with many re-INVITEs perhaps a megabyte).
const MaxSignallingFile = 64 << 20

// signalRefresh bounds the wait for the writer's copy when reading.
const signalRefresh = 3 * time.Second

// SignallingFile returns a recording's SIP side file as stored (encrypted),
// for a peer to copy; nil, and no error, if the recording has none here.
func (s *Store) SignallingFile(id string) ([]byte, error) {
	rec, err := s.meta.Recording(id)
	if err != nil {
		return nil, err
	}
	if rec.Status == meta.StatusDeleted || rec.Status == meta.StatusFailed {
		return nil, fmt.Errorf("%w: recording %s is %s", ErrNoFile, id, rec.Status)
	}
	mu := s.sigLocks.of(id)
	mu.Lock()
	defer mu.Unlock()
	b, err := os.ReadFile(s.signalPath(rec))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signalling of %s: %w", id, err)
	}
	if len(b) > MaxSignallingFile {
		return nil, fmt.Errorf("%w: side file of %s has %d bytes (limit %d)", ErrSignalling, id, len(b), MaxSignallingFile)
	}
	return b, nil
}

// InstallSignalling keeps a peer's copy of rec's side file if every record
// in it authenticates and it holds more messages than this node's copy; it
// reports whether it did. A torn last record (the writer was appending) is
// left out. The file is replaced atomically: written beside, fsynced,
// renamed, the directory fsynced.
func (s *Store) InstallSignalling(rec meta.Recording, b []byte) (bool, error) {
	if len(b) > MaxSignallingFile {
		return false, fmt.Errorf("%w: side file of %s has %d bytes (limit %d)", ErrSignalling, rec.ID, len(b), MaxSignallingFile)
	}
	if rec.Status == meta.StatusDeleted || rec.Status == meta.StatusFailed {
		return false, fmt.Errorf("%w: recording %s is %s", ErrNoFile, rec.ID, rec.Status)
	}
	if !filepath.IsLocal(rec.File.Path) {
		return false, fmt.Errorf("%w: recording %s: path %q is not relative to the tier root", ErrNoFile, rec.ID, rec.File.Path)
	}
	aead, hdr, err := s.signalAEAD(rec)
	if err != nil {
		return false, err
	}
	msgs, err := readSignals(b, hdr, aead)
	if err != nil {
		return false, fmt.Errorf("copy of the signalling of %s: %w", rec.ID, err)
	}
	if len(msgs) == 0 {
		return false, nil
	}
	b = b[:wholeRecords(b, len(hdr))]
	mu := s.sigLocks.of(rec.ID)
	mu.Lock()
	defer mu.Unlock()
	path := s.signalPath(rec)
	if local, err := os.ReadFile(path); err == nil {
		if have, err := readSignals(local, hdr, aead); err == nil && len(have) >= len(msgs) {
			return false, nil
		}
	}
	if err := mkdirAllSync(filepath.Dir(path), s.hotRoot); err != nil {
		return false, s.classify(fmt.Errorf("signalling of %s: %w", rec.ID, err))
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sip-*.part")
	if err != nil {
		return false, s.classify(fmt.Errorf("signalling of %s: %w", rec.ID, err))
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return false, s.classify(fmt.Errorf("signalling of %s: %w", rec.ID, err))
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return true, fmt.Errorf("signalling of %s: fsync directory: %w", rec.ID, err)
	}
	return true, nil
}

// wholeRecords is the length of b's header and its whole records (readSignals
// has checked every length).
func wholeRecords(b []byte, off int) int {
	for off+4 <= len(b) {
		rl := int(binary.BigEndian.Uint32(b[off:]))
		if off+4+rl > len(b) {
			break
		}
		off += 4 + rl
	}
	return off
}

// refreshSignalling asks the recording's writer (through the cluster) for
// its side file and keeps it if it has more messages than this node's.
// Best effort: reading goes on with the local copy if it fails.
func (s *Store) refreshSignalling(rec meta.Recording) {
	s.rep.mu.Lock()
	remote := s.rep.remote
	s.rep.mu.Unlock()
	if remote == nil || rec.Node == "" || rec.Node == s.cfg.Node {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), signalRefresh)
	defer cancel()
	b, err := remote.FetchSignalling(ctx, rec)
	if err == nil && len(b) > 0 {
		_, err = s.InstallSignalling(rec, b)
	}
	if err != nil {
		s.log.Warn("signalling from the recording's writer", "id", rec.ID, "node", rec.Node, "err", err)
	}
}
