// Package store is everything a recording is once it is at rest: metadata
// in bbolt (store/meta), encrypted recording files (store/recfile) under
// per-recording keys (store/keyring), tiers, and audio rendering
// (store/audio). Every metadata change is a Command applied through a
// Committer, so a cluster can replay the same bytes on every node.
//
// Layout of a data directory:
//
//	<data>/LOCK                  flock + the holder's PID and command line
//	<data>/meta.db               bbolt: recordings, indexes, users, keyring (sealed)
//	<data>/recordings/YYYY/MM/DD/<id>.cvr   encrypted recording files (hot tier)
//	<archive>/recordings/...     the same layout on the archive tier
//	<archive>/.callvault-archive marker: tells a mounted archive from an empty mount point
//
// The master key never lives in the data directory (it comes from a key
// file beside it, a passphrase, the environment or a systemd credential),
// so a copy of the data directory alone reveals no audio.
//
// The store knows nothing of HTTP, raft or packets: the import-graph test
// in package test keeps it that way. For the same reason it does not
// import Prometheus (which imports net/http): it counts in Stats, and the
// appliance exports those counters.
package store

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/meta"
)

// Sentinel errors of the store.
var (
	// ErrInUse: another process holds the data directory.
	ErrInUse = errors.New("data directory in use")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrNoMasterKey: no master key source was configured.
	ErrNoMasterKey = errors.New("no master key source configured")
	// ErrKeyPlacement: the master key file is inside the data directory.
	ErrKeyPlacement = errors.New("master key must not be stored in the data directory")
	// ErrDiskFull: the hot tier has less free space than storage.min_free_bytes,
	// or a write ran out of space.
	ErrDiskFull = errors.New("hot tier is full")
	// ErrArchiveUnavailable: the archive tier is not mounted, not writable,
	// or the file is missing from it.
	ErrArchiveUnavailable = errors.New("archive tier unavailable")
	// ErrNoFile: the recording has no readable file (deleted, failed, or
	// still being written).
	ErrNoFile = errors.New("recording has no readable file")
)

// Config is the store's own configuration, built by the appliance.
type Config struct {
	// DataDir holds meta.db, the hot tier (recordings/) and the lock.
	DataDir string
	// Keys says where the master key comes from.
	Keys KeySource
	// FlushInterval is how often open recordings are flushed (≤ 1 s).
	FlushInterval time.Duration
	// MinFreeBytes: below this much free space on the hot tier, new
	// recordings are refused.
	MinFreeBytes int64
	// Archive is the archive tier; zero value: none.
	Archive ArchiveConfig
	// PurgeInterval is how often recordings whose retention ran out are
	// deleted; 0 turns the purge off (Purge can still be called).
	PurgeInterval time.Duration
	// Node names this appliance in recordings it creates.
	Node string
	// DeferRecovery leaves the recovery of recordings a crash left open to
	// the caller's Recover, after SetCommitter (a cluster node).
	DeferRecovery bool
	// Log receives the store's log lines; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
}

// Store is an open data directory.
type Store struct {
	cfg       Config
	log       *slog.Logger
	lock      *dirLock
	meta      *meta.DB
	committer Committer
	hotRoot   string

	master    []byte
	keySource string
	keys      atomic.Pointer[keyring.Keyring]
	signer    ed25519.PrivateKey // see signing.go
	sigLocks  sigLocks           // serialise signalling appends (signalling.go)
	dirs      dirSyncs           // fsyncs of unflushed recordings' directories (recording.go)
	rep       replicaState       // copies from and to cluster peers (replica.go)

	// Created lists files Open created that an operator must know about
	// (a new master key file): the caller prints them.
	Created []string
	// KeySource says where the master key came from.
	KeySource string

	stats Stats

	mu      sync.Mutex
	open    map[string]*Recorder
	pending pendingRecs // created while the cluster had no quorum (pending.go)
	// recoverMu keeps two Recover calls from recovering one file together.
	recoverMu sync.Mutex
	closed    bool
	stop      chan struct{}
	stopped   chan struct{}
	tier      *tierMover
	// purgeDone is closed when the purge loop has stopped (at once when
	// there is none).
	purgeDone chan struct{}
	// sweepDone is closed when the sweep for files left by a crash has
	// ended (orphans.go), at once when there is none.
	sweepDone chan struct{}
}

// Open locks the data directory (failing at once, naming the holder, if
// another process has it), opens the metadata, unseals the keyring with
// the master key, recovers recordings a crash left open, and starts the
// flusher.
func Open(cfg Config) (_ *Store, err error) {
	if cfg.FlushInterval <= 0 || cfg.FlushInterval > time.Second {
		cfg.FlushInterval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg: cfg, log: cfg.Log, lock: lock,
		hotRoot: filepath.Join(cfg.DataDir, "recordings"),
		open:    make(map[string]*Recorder),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			if s.meta != nil {
				_ = s.meta.Close()
			}
			_ = lock.release()
		}
	}()
	if err := os.MkdirAll(s.hotRoot, 0o700); err != nil {
		return nil, fmt.Errorf("create hot tier: %w", err)
	}
	if dev := ext4WithoutJournal(s.hotRoot); dev != "" {
		s.log.Warn("the data directory is on an ext4 file system without a journal: after a power cut it may need fsck before recordings on it are readable, "+
			"and creating files soon after many were deleted is slow (the kernel steps over recently freed inodes one by one); an ext4 with a journal or XFS avoids both",
			"dir", cfg.DataDir, "device", dev)
	}
	db, err := meta.Open(filepath.Join(cfg.DataDir, "meta.db"), meta.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open metadata: %w", err)
	}
	s.meta = db
	s.committer = LocalCommitter{DB: db}

	master, source, err := s.masterKey(cfg.Keys)
	if err != nil {
		return nil, err
	}
	s.master, s.keySource, s.KeySource = master, source, source
	if err := s.openKeyring(master); err != nil {
		return nil, err
	}
	if err := s.openSigningKey(context.Background()); err != nil {
		return nil, err
	}
	if cfg.Archive.Dir != "" {
		s.tier = newTierMover(s, cfg.Archive)
	}
	s.sweepDone = make(chan struct{})
	if !cfg.DeferRecovery {
		if err := s.recover(context.Background()); err != nil {
			return nil, fmt.Errorf("recover recordings left open: %w", err)
		}
		opened := time.Now()
		go func() {
			defer close(s.sweepDone)
			s.sweepOrphans(opened)
		}()
	} else {
		close(s.sweepDone)
	}
	go s.flushLoop()
	s.purgeDone = make(chan struct{})
	if cfg.PurgeInterval > 0 {
		go s.purgeLoop(cfg.PurgeInterval)
	} else {
		close(s.purgeDone)
	}
	if s.tier != nil {
		// After recovery, so the mover never sees a half-recovered file.
		s.tier.start()
	}
	return s, nil
}

// Meta returns the metadata database, for reads. Writes go through Apply.
func (s *Store) Meta() *meta.DB { return s.meta }

// Stats returns the store's counters (the appliance exports them).
func (s *Store) Stats() *Stats { return &s.stats }

// Ready reports whether the store can serve.
func (s *Store) Ready(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// flushLoop flushes every open recording each FlushInterval, so a crash
// loses at most that much audio even of a call nobody writes to right now.
func (s *Store) flushLoop() {
	defer close(s.stopped)
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.flushAll()
		}
	}
}

func (s *Store) flushAll() {
	s.mu.Lock()
	recs := make([]*Recorder, 0, len(s.open))
	for _, r := range s.open {
		if !r.unflushed {
			recs = append(recs, r)
		}
	}
	s.mu.Unlock()
	// Seal every recording's chunk first (each under its own lock, briefly),
	// then make them durable together: one syncfs for the hot tier instead
	// of an fsync per open recording, which at a thousand live calls was a
	// thousand journal commits a second.
	dirty := recs[:0]
	for _, r := range recs {
		need, err := r.seal()
		switch {
		case err != nil && !errors.Is(err, ErrClosed):
			s.log.Error("flush recording", "id", r.id, "err", err)
		case need:
			dirty = append(dirty, r)
		}
	}
	if len(dirty) > 1 && s.syncHot() == nil {
		s.stats.Syncs.Add(1)
		return
	}
	// One file, no syncfs, or syncfs failed: fsync each, so an error
	// lands on the recording it belongs to.
	for _, r := range dirty {
		s.stats.Syncs.Add(1)
		if err := r.syncFile(); err != nil {
			s.log.Error("flush recording", "id", r.id, "err", err)
		}
	}
}

// Close seals every recording still open (as complete, with what was
// written), stops the background work and closes the metadata.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	recs := make([]*Recorder, 0, len(s.open))
	for _, r := range s.open {
		recs = append(recs, r)
	}
	s.mu.Unlock()

	close(s.stop)
	<-s.stopped
	<-s.purgeDone
	<-s.sweepDone
	if s.tier != nil {
		s.tier.Stop()
	}
	var errs []error
	for _, r := range recs {
		if _, err := r.Close(context.Background(), Final{}); err != nil {
			errs = append(errs, fmt.Errorf("seal %s: %w", r.id, err))
		}
	}
	// Sign the audit log's tail, so entries written since the last
	// checkpoint cannot be cut off unnoticed while the appliance is down.
	if err := s.Checkpoint(context.Background()); err != nil {
		errs = append(errs, fmt.Errorf("audit checkpoint: %w", err))
	}
	keyring.Zero(s.signer)
	errs = append(errs, s.meta.Close())
	if kr := s.keys.Load(); kr != nil {
		kr.Zeroize()
	}
	keyring.Zero(s.master)
	errs = append(errs, s.lock.release())
	return errors.Join(errs...)
}
