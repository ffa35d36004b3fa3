// Package store is everything a recording is once it is at rest: metadata
// in bbolt (store/meta), encrypted recording files (store/recfile) under
// per-recording keys (store/keyring), tiers, and audio rendering
// (store/audio). Every metadata change is a Command applied through a
// Committer, so a cluster can replay the same bytes on every node.
//
// The store knows nothing of HTTP, raft or packets: the import-graph test
// in package test keeps it that way.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// Sentinel errors of the store.
var (
	// ErrInUse: another process holds the data directory.
	ErrInUse = errors.New("data directory in use")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// Config is the store's own configuration, built by the appliance.
type Config struct {
	// DataDir holds meta.db, the hot tier (recordings/) and the lock.
	DataDir string
}

// Store is an open data directory.
type Store struct {
	cfg       Config
	lock      *dirLock
	meta      *meta.DB
	committer Committer
}

// Open locks the data directory (failing at once, naming the holder, if
// another process has it) and opens the metadata database.
func Open(cfg Config) (*Store, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	db, err := meta.Open(filepath.Join(cfg.DataDir, "meta.db"), meta.Options{Timeout: 2 * time.Second})
	if err != nil {
		_ = lock.release()
		return nil, fmt.Errorf("open metadata: %w", err)
	}
	return &Store{cfg: cfg, lock: lock, meta: db, committer: LocalCommitter{DB: db}}, nil
}

// Meta returns the metadata database, for reads. Writes go through Apply.
func (s *Store) Meta() *meta.DB { return s.meta }

// Ready reports whether the store can serve.
func (s *Store) Ready(ctx context.Context) error {
	if s.meta == nil {
		return ErrClosed
	}
	return nil
}

// Close closes the metadata and releases the data directory.
func (s *Store) Close() error {
	var errs []error
	if s.meta != nil {
		errs = append(errs, s.meta.Close())
		s.meta = nil
	}
	errs = append(errs, s.lock.release())
	return errors.Join(errs...)
}
