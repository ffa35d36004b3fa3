package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/store/recfile"
	"github.com/google/uuid"
)

// Recorder is one recording being written. Writes are serialised by its
// own mutex, so the store's flusher can flush it while a producer writes.
type Recorder struct {
	s    *Store
	id   string
	rel  string
	path string

	mu     sync.Mutex
	w      *recfile.Writer
	audio  hash.Hash // SHA-256 of the plaintext, fed by the writer as it seals chunks: the audio hash sealed on Close
	dek    []byte
	err    error // first write error; the recording is then recovered on Close
	closed bool
	// unflushed recordings (uploads, imports: Unflushed, Bulk) are left
	// out of the once-a-second flush: a crash discards an upload anyway
	// (its sender got no 201), and an import is run again.
	unflushed bool
	// sig is where the recording's signalling side file ends, kept by
	// AppendSignalling under the recording's signalling lock while the
	// recording is open (signalling.go).
	sig sigEnd
	// created is the metadata the recording was created with, for Close
	// when the cluster keeps its seal in the outbox (pending.go).
	created meta.Recording
	// createDone is closed when the create commit of an unflushed recording,
	// which runs while the first bytes are written, has ended, with its
	// error in createErr; nil for a recording committed before Create
	// returned. Close, Flush and Abort wait for it (waitCreated).
	createDone chan struct{}
	createErr  error
	createGone bool // waitCreated cleaned up after a failed create commit
}

// Final is what the producer knows when a recording ends.
type Final struct {
	DurationMs      *int64
	Channels        *int
	Codecs          []string
	Quality         []meta.ChannelQuality
	DurationFlagged *bool
	// Audit entries the caller wants committed with the seal, after the
	// store's own seal entry, in the same transaction (an upload's "who
	// uploaded it": one commit instead of one each, and never a sealed
	// upload without its entry).
	Audit []meta.AuditEntry
}

// CreateOption adjusts one recording's writer.
type CreateOption func(*createOptions)

type createOptions struct {
	unflushed bool
	pipelined bool
	chunkSize int
}

// ChunkSize sets the plaintext size of the recording file's chunks (the
// writer buffers one chunk). A live call flushed every second fills about
// 16 KiB a second; giving it 16 KiB chunks instead of 64 KiB keeps the
// memory of thousands of open recordings down at no cost in seeking.
func ChunkSize(n int) CreateOption { return func(o *createOptions) { o.chunkSize = n } }

// ChunkOverhead is what a chunk adds to its plaintext in the file and in
// the writer's buffer (length and tag): a chunk size of 16 KiB minus it
// makes the buffer exactly 16 KiB, a size class of Go's allocator.
const ChunkOverhead = recfile.Overhead

// Unflushed marks a recording that nobody needs back after a crash (an
// import of a capture file, which is simply run again): it is left out of
// the once-a-second flush, so its chunks are cut only when full and its
// writer's chunk buffer takes the caller's bytes as they come; its file's
// header and directory entry are not fsynced at create (the header by the
// seal's fsync, the directory entry by one fsync shared with every file
// created in that directory since the last one, before the create
// commits); and its create commits while the caller writes, on a goroutine
// the Recorder owns, so the creates of many recordings share bbolt
// transactions. The writer stays synchronous (no goroutines, one chunk
// buffer). After a crash such a recording may have no file, or one without
// a readable header: recovery then marks it failed; whatever Recover can
// read it keeps, as for any recording.
func Unflushed() CreateOption { return func(o *createOptions) { o.unflushed = true } }

// Bulk marks a recording written as fast as it can be (an upload): it is
// Unflushed, and its encrypting writer runs pipelined, sealing on the
// caller's goroutine while two goroutines write and hash, at the cost of
// about 1 MiB of buffers. Live calls write slowly and stay synchronous;
// an import of a thousand calls at once is better off Unflushed alone
// (a thousand pipelines cost more than they overlap).
func Bulk() CreateOption {
	return func(o *createOptions) { o.unflushed, o.pipelined = true, true }
}

// Create starts a recording: it decides the ID (UUIDv7) if rec has none,
// makes a fresh data key, wraps it under the active key term, commits the
// metadata with status "recording", and opens the encrypted file on the
// hot tier. rec.File.Format must say what will be written (grid, wav, mp3).
func (s *Store) Create(ctx context.Context, rec meta.Recording, opts ...CreateOption) (*Recorder, error) {
	var o createOptions
	for _, opt := range opts {
		opt(&o)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if err := s.checkSpace(); err != nil {
		return nil, err
	}
	if rec.ID == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		rec.ID = u.String()
	}
	id, err := parseID(rec.ID)
	if err != nil {
		return nil, err
	}
	if rec.Start.IsZero() {
		rec.Start = s.cfg.Now().UTC()
	}
	if rec.Node == "" {
		rec.Node = s.cfg.Node
	}
	kr := s.keys.Load()
	dek, err := keyring.NewDEK(rand.Reader)
	if err != nil {
		return nil, err
	}
	wrapped, err := kr.WrapDEK(dek, id[:])
	if err != nil {
		keyring.Zero(dek)
		return nil, err
	}
	t := rec.Start.UTC()
	rel := filepath.Join(fmt.Sprintf("%04d/%02d/%02d", t.Year(), t.Month(), t.Day()), rec.ID+".cvr")
	path := filepath.Join(s.hotRoot, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		keyring.Zero(dek)
		return nil, s.classify(fmt.Errorf("create directory: %w", err))
	}
	// The audio hash is fed where each chunk is sealed: on the pipelined
	// writer's sealing goroutine for a bulk recording, off the uploader's.
	audioHash := sha256.New()
	wopts := []recfile.CreateOption{recfile.PlainHash(audioHash)}
	if o.unflushed {
		wopts = append(wopts, recfile.DeferHeaderSync())
	}
	if o.pipelined {
		wopts = append(wopts, recfile.Pipelined())
	}
	w, err := recfile.Create(path, recfile.Header{RecordingID: id, ChunkSize: o.chunkSize}, dek, rand.Reader, wopts...)
	if err != nil {
		keyring.Zero(dek)
		return nil, s.classify(fmt.Errorf("create recording file: %w", err))
	}
	var dirSeq uint64
	if o.unflushed {
		dirSeq = s.dirs.created(filepath.Dir(path))
	}
	rec.Status = meta.StatusRecording
	rec.Tier = meta.TierHot
	rec.Reference = ""
	rec.File.Path = rel
	rec.File.WrappedDEK = wrapped
	rec.File.KeyTerm = kr.ActiveTerm()
	rec.File.SHA256 = ""
	// The file exists before the metadata, and is removed if the commit
	// fails: metadata never points at a file that was not created.
	// Open before it is committed, so Recover, which may run at any time in
	// a cluster, never takes it for a recording a crash left open.
	r := &Recorder{s: s, id: rec.ID, rel: rel, path: path, w: w, dek: dek, unflushed: o.unflushed, audio: audioHash, created: rec}
	s.mu.Lock()
	s.open[rec.ID] = r
	s.mu.Unlock()
	s.stats.RecordingsOpen.Add(1)
	if o.unflushed {
		// An upload or an import streams while its metadata commits: the
		// commit is a round of fsyncs (in a cluster, a forward to the
		// leader too) that its first bytes need not wait for, and the
		// creates of an import's many calls, committing side by side, share
		// transactions (the committer's group commit). Nothing reads the
		// recording before its producer has the ID, which it decided or
		// Close's answer gives; what must follow the create waits for it
		// (WaitCreated, and Close, Flush and Abort).
		// The directory entry is made durable here too (the writer was told
		// to leave it, recfile.DeferHeaderSync), before the create and so
		// the seal can commit: one fsync for every file created in the
		// directory before it (dirSyncs).
		r.createDone = make(chan struct{})
		go func() {
			defer close(r.createDone)
			if err := s.dirs.sync(filepath.Dir(path), dirSeq); err != nil {
				r.createErr = s.classify(fmt.Errorf("fsync the directory of %s: %w", rel, err))
				return
			}
			r.createErr = s.commitCreate(ctx, rec)
		}()
		return r, nil
	}
	if err := s.commitCreate(ctx, rec); err != nil {
		r.mu.Lock()
		r.dropUncreated()
		r.mu.Unlock()
		return nil, err
	}
	return r, nil
}

// commitCreate commits a new recording's metadata.
func (s *Store) commitCreate(ctx context.Context, rec meta.Recording) error {
	res, err := s.Apply(ctx, &meta.CreateRecording{Recording: rec})
	if err != nil {
		return fmt.Errorf("commit new recording: %w", err)
	}
	if res.Deferred {
		s.pending.add(rec)
	}
	s.stats.RecordingsCreated.Add(1)
	return nil
}

// WaitCreated waits until the recording's metadata is committed, for a
// producer whose next Command names the recording (a bookmark, a link):
// an Unflushed recording commits its create while it is written. After a
// failed create commit the recording is gone (file removed, never in the
// metadata) and its error is returned again by every later call.
func (r *Recorder) WaitCreated() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waitCreated()
}

// waitCreated waits, with r.mu held, for an unflushed recording's create commit
// (a seal, a flush or a discard never overtakes it) and returns its error;
// after a failed one the recording is gone: file removed, never in the
// metadata.
func (r *Recorder) waitCreated() error {
	if r.createDone == nil {
		return nil
	}
	<-r.createDone
	if r.createErr != nil && !r.createGone {
		r.dropUncreated()
	}
	return r.createErr
}

// dropUncreated removes a recording whose create commit failed, and the
// SIP messages appended to it meanwhile.
func (r *Recorder) dropUncreated() {
	r.createGone, r.closed = true, true
	_ = r.w.Abort()
	keyring.Zero(r.dek)
	r.s.leaveOpen(r, func() {
		if err := os.Remove(r.s.signalPath(r.created)); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.s.log.Warn("remove signalling of a recording never created", "id", r.id, "err", err)
		}
	})
	r.s.stats.RecordingsOpen.Add(-1)
}

// leaveOpen takes r out of the open recordings under its signalling lock
// (see AppendSignalling), running also (if not nil) under that lock.
func (s *Store) leaveOpen(r *Recorder, also func()) {
	mu := s.sigLocks.of(r.id)
	mu.Lock()
	defer mu.Unlock()
	s.mu.Lock()
	delete(s.open, r.id)
	s.mu.Unlock()
	if also != nil {
		also()
	}
}

// ID returns the recording's ID.
func (r *Recorder) ID() string { return r.id }

// Write appends plaintext (encrypted in chunks on its way to disk).
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.writable(); err != nil {
		return 0, err
	}
	n, err := r.w.Write(p)
	return n, r.wrote(int64(n), err)
}

// writable says whether the recording takes more bytes: not after Close
// or Abort, nor after a write failed. r.mu is held.
func (r *Recorder) writable() error {
	if r.closed {
		return ErrClosed
	}
	return r.err
}

// wrote counts n bytes written and makes err, the writer's, the
// recording's sticky error, classified (a full disk is ErrDiskFull).
// r.mu is held.
func (r *Recorder) wrote(n int64, err error) error {
	r.s.stats.BytesWritten.Add(n)
	if err != nil {
		r.err = r.s.classify(fmt.Errorf("write recording %s: %w", r.id, err))
		return r.err
	}
	return nil
}

// Available is how many bytes fit in the current chunk before it is
// sealed, so a framed writer can avoid splitting a frame across chunks.
func (r *Recorder) Available() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0
	}
	return r.w.Available()
}

// Flush seals what was written so far into a chunk and fsyncs it. The
// fsync runs outside the recorder's lock, so a producer writing the next
// second of audio does not wait for the disk.
func (r *Recorder) Flush() error {
	need, err := r.seal()
	if err != nil || !need {
		return err
	}
	return r.syncFile()
}

// seal seals the current chunk under the lock and reports whether the file
// owes an fsync (see recfile.Writer.Seal).
func (r *Recorder) seal() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.waitCreated(); err != nil {
		return false, err
	}
	if r.closed {
		return false, ErrClosed
	}
	if r.err != nil {
		return false, r.err
	}
	need, err := r.w.Seal()
	if err != nil {
		r.err = r.s.classify(fmt.Errorf("flush recording %s: %w", r.id, err))
		return false, r.err
	}
	return need, nil
}

// syncFile fsyncs the file without holding the lock. A recording closed
// meanwhile was fsynced by Close; a failed fsync makes the recording's
// error sticky, so Close recovers it up to its last good chunk.
func (r *Recorder) syncFile() error {
	err := r.w.SyncFile()
	if err == nil || errors.Is(err, os.ErrClosed) {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil && !r.closed {
		r.err = r.s.classify(fmt.Errorf("flush recording %s: %w", r.id, err))
	}
	return r.s.classify(fmt.Errorf("flush recording %s: %w", r.id, err))
}

// Close seals the recording: the last chunk is written, the file fsynced,
// its SHA-256 recorded as the seal hash, and the status set to complete.
// If a write failed earlier (a full disk), the file is cut back to its
// last good chunk instead and the recording marked recovered: what was
// stored is kept, nothing is lost silently.
func (r *Recorder) Close(ctx context.Context, f Final) (meta.Recording, error) {
	r.mu.Lock()
	if err := r.waitCreated(); err != nil {
		r.mu.Unlock()
		return meta.Recording{}, err
	}
	if r.closed {
		r.mu.Unlock()
		return meta.Recording{}, ErrClosed
	}
	r.closed = true
	werr := r.err
	var sum [32]byte
	var size int64
	var audioHash string
	status := meta.StatusComplete
	if werr == nil {
		size = r.w.Size()
		sum, werr = r.w.Close()
		if werr != nil {
			werr = r.s.classify(fmt.Errorf("seal recording %s: %w", r.id, werr))
		} else {
			// Only now: the writer feeds the hash as it seals, the last
			// chunk inside Close.
			audioHash = hex.EncodeToString(r.audio.Sum(nil))
		}
	}
	if werr != nil {
		// The writer's file handle may hold a torn chunk; Recover works on
		// the path, cuts it and appends a last chunk.
		_ = r.w.Abandon()
		res, err := recfile.Recover(r.path, r.dek)
		if err != nil {
			r.mu.Unlock()
			r.s.forget(r, false)
			_, _ = r.s.Apply(ctx, &meta.UpdateRecording{ID: r.id, Status: meta.StatusFailed})
			return meta.Recording{}, errors.Join(werr, fmt.Errorf("recover after failed write: %w", err))
		}
		sum, size, status = res.SealHash, res.KeptBytes, meta.StatusRecovered
	}
	keyring.Zero(r.dek)
	r.mu.Unlock()

	if werr != nil {
		// Cut back to its last good chunk: hash what was kept.
		audioHash = r.s.audioHash(ctx, r.id)
	}
	sealHash := hex.EncodeToString(sum[:])
	upd := &meta.UpdateRecording{
		ID: r.id, Status: status, Size: &size, SealHash: sealHash, AudioHash: audioHash,
		Duration: f.DurationMs, Channels: f.Channels, Codecs: f.Codecs, Quality: f.Quality, DurationFlagged: f.DurationFlagged,
		Audit: append([]meta.AuditEntry{r.s.sealEntry(r.id, r.created.Tenant, status, audioHash, sealHash, size)}, f.Audit...),
	}
	res, err := r.s.Apply(ctx, upd)
	if err == nil && res.Deferred {
		// Known as pending before it is no longer open, so Recover
		// never takes it for a recording a crash left open.
		r.s.pending.add(r.created)
	}
	r.s.forget(r, status != meta.StatusFailed)
	if err != nil {
		return meta.Recording{}, fmt.Errorf("commit sealed recording %s: %w", r.id, err)
	}
	var rec meta.Recording
	if res.Deferred {
		// The seal waits in the cluster's outbox: describe the recording
		// as it will be once committed.
		if rec, err = r.s.recording(r.id); err != nil {
			rec = r.created
		}
		if err := upd.ApplyTo(&rec); err != nil {
			return meta.Recording{}, err
		}
		r.s.pending.add(rec)
	} else if rec, err = r.s.meta.Recording(r.id); err != nil {
		return meta.Recording{}, err
	}
	r.s.checkpointAfter(ctx, res.AuditSeq, len(upd.Audit))
	if werr != nil {
		return rec, fmt.Errorf("recording %s kept up to its last good chunk (%d bytes): %w", r.id, size, werr)
	}
	return rec, nil
}

// Abort discards the recording: file removed, metadata removed without a
// tombstone. For uploads that fail or are cut off and early media of
// unanswered calls, so they leave nothing behind. by is kept for the
// caller's audit entry; the store itself records nothing of it.
func (r *Recorder) Abort(ctx context.Context, by string) error {
	r.mu.Lock()
	if r.waitCreated() != nil {
		r.mu.Unlock()
		return nil // nothing of it is left
	}
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	err := r.w.Abort()
	keyring.Zero(r.dek)
	r.mu.Unlock()
	r.s.forget(r, false)
	if _, cerr := r.s.Apply(ctx, &meta.DiscardRecording{ID: r.id}); cerr != nil {
		err = errors.Join(err, cerr)
	}
	r.s.pending.drop(r.id)
	return err
}

func (s *Store) forget(r *Recorder, sealed bool) {
	s.leaveOpen(r, nil)
	s.stats.RecordingsOpen.Add(-1)
	if sealed {
		s.stats.RecordingsSealed.Add(1)
	} else {
		s.stats.RecordingsFailed.Add(1)
	}
}

// checkSpace refuses new recordings when the hot tier is nearly full, so
// the space left goes to recordings already running.
func (s *Store) checkSpace() error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.hotRoot, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", s.hotRoot, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free < s.cfg.MinFreeBytes {
		s.stats.DiskFull.Store(true)
		s.stats.DiskFullErrors.Add(1)
		s.log.Error("hot tier full: refusing new recordings", "free_bytes", free, "min_free_bytes", s.cfg.MinFreeBytes)
		return fmt.Errorf("%w: %d bytes free in %s, storage.min_free_bytes is %d", ErrDiskFull, free, s.hotRoot, s.cfg.MinFreeBytes)
	}
	s.stats.DiskFull.Store(false)
	return nil
}

// classify counts an I/O error and marks running out of space as ErrDiskFull.
func (s *Store) classify(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		s.stats.DiskFull.Store(true)
		s.stats.DiskFullErrors.Add(1)
		s.log.Error("hot tier full", "err", err)
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	s.stats.WriteErrors.Add(1)
	return err
}

func parseID(id string) (uuid.UUID, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("%w: recording ID %q: %w", meta.ErrInvalid, id, err)
	}
	return u, nil
}

// audioHash reads a recording's decrypted content back and hashes it, for
// recordings whose writer could not (recovered after a crash or a failed
// write). "" if it cannot be read: the seal entry then says so.
func (s *Store) audioHash(ctx context.Context, id string) string {
	a, err := s.OpenAudio(ctx, id)
	if err != nil {
		s.log.Warn("hash recovered recording", "id", id, "err", err)
		return ""
	}
	defer a.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(a, 0, a.Size())); err != nil {
		s.log.Warn("hash recovered recording", "id", id, "err", err)
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// auditSeal writes the seal of a recording into the audit chain: its audio
// hash, its file's hash and size, fixed from now on.
func (s *Store) auditSeal(ctx context.Context, rec meta.Recording) {
	entry := s.sealEntry(rec.ID, rec.Tenant, rec.Status, rec.File.AudioSHA256, rec.File.SHA256, rec.Size)
	if _, err := s.Apply(ctx, &meta.AppendAudit{Entry: entry}); err != nil {
		s.log.Error("audit entry of a seal", "id", rec.ID, "err", err)
	}
}

// sealEntry is the audit entry of a seal.
func (s *Store) sealEntry(id, tenant string, status meta.Status, audioHash, sealHash string, size int64) meta.AuditEntry {
	return meta.AuditEntry{Time: s.cfg.Now().UTC(), Actor: "system:store", Tenant: tenant, Action: meta.AuditSeal,
		Recording: id, Detail: fmt.Sprintf("%s; audio sha256 %s; seal hash %s; %d bytes", status, orUnknown(audioHash), sealHash, size)}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// dirSyncs makes the directory entries of unflushed recordings durable
// with one fsync for many files. Each directory counts the files created
// in it (after the file exists) and remembers the count its last fsync
// began with; a file counted as number n needs an fsync only if no fsync
// began after it was counted. An import creating a thousand calls' files
// in the day's directory then pays a handful of directory fsyncs instead
// of a thousand. The map holds one entry per day's directory this process
// has created unflushed recordings in (a few hundred bytes a day).
type dirSyncs struct {
	mu sync.Mutex
	m  map[string]*dirSync
}

type dirSync struct {
	count  atomic.Uint64 // files created in the directory so far
	mu     sync.Mutex    // held across an fsync: one at a time per directory
	synced uint64        // count when the last successful fsync began
}

func (d *dirSyncs) get(dir string) *dirSync {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = make(map[string]*dirSync)
	}
	ds := d.m[dir]
	if ds == nil {
		ds = &dirSync{}
		d.m[dir] = ds
	}
	return ds
}

// created counts a file just created in dir and returns its number.
func (d *dirSyncs) created(dir string) uint64 { return d.get(dir).count.Add(1) }

// sync makes the entry of file number n of dir durable: at once if an
// fsync that began after it was counted has succeeded, else by one now.
func (d *dirSyncs) sync(dir string, n uint64) error {
	ds := d.get(dir)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.synced >= n {
		return nil
	}
	// Every file counted by now exists: this fsync covers them all.
	upTo := ds.count.Load()
	if err := syncDir(dir); err != nil {
		return err
	}
	ds.synced = upTo
	return nil
}
