package store

// The archive tier.
//
// Old recordings move from the hot tier (<data>/recordings/<rel>) to a NAS
// or SAN mount (<archive>/recordings/<rel>, the same relative path). The
// move is ordered so that a crash at any point leaves one authoritative,
// verified copy:
//
//  1. copy the hot file to <rel>.partial on the archive, verifying it on
//     the way (every chunk authenticated with the recording's key, the
//     seal hash computed: recfile.Verifier), fsync the file and its
//     directory;
//  2. compare the hash with the seal hash in the metadata (mismatch, or a
//     chunk that fails authentication: the partial is removed and the hot
//     copy stays authoritative);
//  3. rename .partial to <rel> and fsync the directory;
//  4. commit SetLocation{Tier: archive} through the Committer;
//  5. only then remove the hot copy.
//
// A crash before 4 leaves the metadata saying "hot": the hot copy is used,
// and the stray archive file is overwritten on the next try. A crash
// between 4 and 5 leaves both copies: the archive is authoritative, and
// the first full walk after the restart removes the hot leftover once the
// archive copy has been checked against the seal hash.
//
// Candidates come from the metadata's time index (meta.Search, oldest
// first), never from walking the file tree. Tier is not in the index
// summary, so a walk decodes every recording it passes, archived ones
// included; to keep that from growing with the archive, a pass starts at
// the oldest recording that the previous pass left on the hot tier, or
// else the newest it walked past (scanFrom), and only once a day walks
// from the beginning. That daily walk removes hot leftovers of a crash and
// finds recordings inserted with a start older than scanFrom (uploads of
// old calls), which therefore reach the archive up to a day late.
//
// An empty mount point must never be mistaken for the archive, or
// recordings would pile up on the root file system under it and vanish
// behind the NAS when it is mounted again. The marker file tells them
// apart, and the metadata remembers that this node has initialised its
// archive, so a marker that later goes missing means "not mounted" and is
// never silently re-created.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/store/recfile"
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
	// Interval is how often the mover runs; 0 means DefaultTierInterval.
	Interval time.Duration
}

// DefaultTierInterval is how often the mover runs when ArchiveConfig.Interval
// is not set.
const DefaultTierInterval = 15 * time.Minute

const (
	archiveMarker = ".callvault-archive"
	// fullScanEvery is how often a pass walks from the oldest recording
	// instead of from scanFrom.
	fullScanEvery = 24 * time.Hour
	// copyBufSize: large enough that a NAS sees big writes.
	copyBufSize = 256 << 10
	// settingArchivePrefix + node name: the archive directory this node
	// initialised (a setting, so it is replicated, hence one per node).
	settingArchivePrefix = "archive-initialised/"
)

// Errors of the tier mover. Unavailable, read-only and unmounted archives
// wrap ErrArchiveUnavailable.
var (
	// errArchiveFull: the archive file system ran out of space during a move.
	errArchiveFull = errors.New("archive tier is full")
	// errSealMismatch: the bytes copied are not the sealed file (a chunk
	// fails authentication, the file is cut off, or its seal hash differs),
	// so the source was damaged after it was sealed; it is not installed.
	errSealMismatch = errors.New("recording file does not match its seal hash")
	// errNoSealHash: the recording has no usable seal hash to verify a copy.
	errNoSealHash = errors.New("recording has no seal hash")
)

// tierMover moves sealed recordings from the hot tier to the archive.
// Its goroutine is started by start and stopped by Stop; passes are
// serialised by passMu, so a test (or an admin "run now") calling runOnce
// cannot race the background pass.
type tierMover struct {
	s    *Store
	cfg  ArchiveConfig
	root string
	stop chan struct{}
	done chan struct{}

	// usedPct reports how full the hot tier's file system is (percent);
	// Statfs in production, replaced by tests.
	usedPct func() (float64, error)

	life     sync.Mutex // guards started, stopped, cancel
	started  bool
	stopped  bool
	cancel   context.CancelFunc
	passes   atomic.Int64 // passes finished, for tests waiting on the first one
	passMu   sync.Mutex   // one pass at a time; guards the fields below
	marked   bool         // the marker and the setting are known to exist
	scanFrom time.Time    // no hot candidate starts before this (see package comment)
	lastFull time.Time    // when a walk from the beginning last completed
}

func newTierMover(s *Store, cfg ArchiveConfig) *tierMover {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultTierInterval
	}
	return &tierMover{
		s: s, cfg: cfg, root: filepath.Join(cfg.Dir, "recordings"),
		stop: make(chan struct{}), done: make(chan struct{}),
		usedPct: statfsUsedPct(s.hotRoot),
	}
}

// start runs a pass now and then every Interval, until Stop.
func (t *tierMover) start() {
	t.life.Lock()
	defer t.life.Unlock()
	if t.started || t.stopped {
		return
	}
	t.started = true
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	go t.loop(ctx)
}

func (t *tierMover) loop(ctx context.Context) {
	defer close(t.done)
	// runOnce logs and counts its own failures; the loop just keeps going.
	_, _ = t.runOnce(ctx)
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			_, _ = t.runOnce(ctx)
		}
	}
}

// Stop stops the mover and waits for it. A move in progress is cut short
// (its partial file removed; the hot copy stays authoritative). Safe to
// call more than once, and when start was never called.
func (t *tierMover) Stop() {
	t.life.Lock()
	if !t.stopped {
		t.stopped = true
		close(t.stop)
		if t.cancel != nil {
			t.cancel()
		}
	}
	started := t.started
	t.life.Unlock()
	if started {
		<-t.done
	}
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

// settingKey names the setting that remembers this node's archive.
func (t *tierMover) settingKey() string {
	k := settingArchivePrefix + t.s.cfg.Node
	if len(k) > 128 { // meta's limit on setting keys
		sum := sha256.Sum256([]byte(t.s.cfg.Node))
		k = settingArchivePrefix + hex.EncodeToString(sum[:16])
	}
	return k
}

// prepare makes sure the archive is there: the marker exists, or the
// directory exists and was never initialised by this node, in which case
// it is initialised now. A missing directory is an unmounted archive and
// is not created.
func (t *tierMover) prepare(ctx context.Context) error {
	key := t.settingKey()
	marker := filepath.Join(t.cfg.Dir, archiveMarker)
	_, err := os.Stat(marker)
	switch {
	case err == nil && t.marked:
		return nil
	case err == nil:
		// Marked by an earlier run, perhaps one that crashed before it
		// stored the setting: make sure the setting exists.
		if v, err := t.s.meta.Setting(key); err == nil && string(v) == t.cfg.Dir {
			t.marked = true
			return nil
		} else if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return fmt.Errorf("read setting %s: %w", key, err)
		}
		if _, err := t.s.Apply(ctx, &meta.PutSetting{Key: key, Value: []byte(t.cfg.Dir)}); err != nil {
			return fmt.Errorf("remember archive %s: %w", t.cfg.Dir, err)
		}
		t.marked = true
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return archiveErr("stat marker", err)
	}
	fi, err := os.Stat(t.cfg.Dir)
	if err != nil {
		return fmt.Errorf("%w: %s is not mounted: %w", ErrArchiveUnavailable, t.cfg.Dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrArchiveUnavailable, t.cfg.Dir)
	}
	v, err := t.s.meta.Setting(key)
	switch {
	case err == nil && string(v) == t.cfg.Dir:
		// Initialised before, marker gone: the NAS is not mounted and this
		// is the empty mount point (or someone removed the marker).
		return t.checkMounted()
	case err != nil && !errors.Is(err, meta.ErrNotFound):
		return fmt.Errorf("read setting %s: %w", key, err)
	}
	if err := writeMarker(marker, t.s.cfg.Node, t.s.cfg.Now()); err != nil {
		return err
	}
	if _, err := t.s.Apply(ctx, &meta.PutSetting{Key: key, Value: []byte(t.cfg.Dir)}); err != nil {
		return fmt.Errorf("remember archive %s: %w", t.cfg.Dir, err)
	}
	t.s.log.Info("initialised archive tier", "dir", t.cfg.Dir)
	t.marked = true
	return nil
}

func writeMarker(path, node string, now time.Time) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return archiveErr("create marker", err)
	}
	text := fmt.Sprintf("This directory is a Callvault archive tier (initialised %s by node %q).\n"+
		"Callvault looks for this file to tell a mounted archive from an empty mount point: do not remove it.\n",
		now.UTC().Format(time.RFC3339), node)
	_, err = f.WriteString(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(path)
		return archiveErr("write marker", err)
	}
	return nil
}

// passResult is what one pass saw.
type passResult struct {
	moved, failed int
	first         error // first failure
	downErr       error // archive-level failure that ended the pass
}

func (p *passResult) fail(err error) {
	p.failed++
	if p.first == nil {
		p.first = err
	}
}

// runOnce runs one pass: recordings due by age, then (while the hot tier
// is above its watermark) the oldest others, move to the archive. Failures
// are counted and logged once per pass; an archive that is unmounted,
// read-only or full ends the pass, a bad recording is skipped.
func (t *tierMover) runOnce(ctx context.Context) (moved int, err error) {
	t.passMu.Lock()
	defer t.passMu.Unlock()
	defer t.passes.Add(1)
	st := &t.s.stats

	if err := t.prepare(ctx); err != nil {
		st.TierErrors.Add(1)
		if errors.Is(err, ErrArchiveUnavailable) {
			st.ArchiveDown.Store(true)
		}
		t.s.log.Error("archive tier not ready: recordings stay on the hot tier", "dir", t.cfg.Dir, "err", err)
		return 0, err
	}
	if t.cfg.AfterDays <= 0 && t.cfg.HighWatermarkPct <= 0 {
		st.ArchiveDown.Store(false)
		return 0, nil
	}
	now := t.s.cfg.Now()
	var cutoff time.Time
	if t.cfg.AfterDays > 0 {
		cutoff = now.Add(-time.Duration(t.cfg.AfterDays) * 24 * time.Hour)
	}
	full := t.lastFull.IsZero() || now.Sub(t.lastFull) >= fullScanEvery
	q := meta.Query{Scope: meta.Scope{All: true}, Ascending: true, Limit: meta.MaxLimit}
	if t.cfg.HighWatermarkPct <= 0 {
		q.End = cutoff // only age matters: nothing after the cutoff is due
	}
	if !q.End.IsZero() && q.End.Before(t.scanFrom) {
		full = true // the clock went back: scanFrom proves nothing
	}
	if !full {
		q.Start = t.scanFrom
	}

	var (
		res      passResult
		lowWater time.Time // Start of the first hot recording left behind
		last     time.Time // Start of the last recording walked
		complete bool      // the walk was not cut short
		moving   = true    // false: a full walk past the last due recording, only looking for leftovers
	)
	leave := func(rec meta.Recording) {
		if lowWater.IsZero() {
			lowWater = rec.Start
		}
	}
walk:
	for {
		page, err := t.s.meta.Search(q)
		if err != nil {
			res.fail(fmt.Errorf("search recordings: %w", err))
			break
		}
		for _, rec := range page.Recordings {
			if ctx.Err() != nil {
				break walk
			}
			last = rec.Start
			if rec.Tier == meta.TierArchive {
				if err := t.dropHotLeftover(rec); err != nil {
					st.TierErrors.Add(1)
					res.fail(err)
				}
				continue
			}
			if !moving {
				continue
			}
			switch rec.Status {
			case meta.StatusComplete, meta.StatusRecovered:
			case meta.StatusRecording:
				leave(rec) // will be sealed, then due: keep scanFrom before it
				continue
			default: // failed: never moved, so it must not hold scanFrom back
				continue
			}
			due := !cutoff.IsZero() && rec.Start.Before(cutoff)
			if !due && t.cfg.HighWatermarkPct > 0 {
				used, err := t.usedPct()
				if err != nil {
					res.fail(fmt.Errorf("hot tier usage: %w", err))
				}
				due = err == nil && used > float64(t.cfg.HighWatermarkPct)
			}
			if !due {
				// Ascending order: nothing later is due by age, and the hot
				// tier is below its watermark. A full walk goes on, only to
				// find hot leftovers of archived recordings.
				leave(rec)
				if full {
					moving = false
					continue
				}
				complete = true
				break walk
			}
			n, err := t.move(ctx, rec)
			if err != nil {
				if ctx.Err() != nil {
					break walk // stopping: not a failure of the archive
				}
				if errors.Is(err, meta.ErrDeleted) {
					continue // deleted while it was copied: nothing left to move
				}
				st.TierErrors.Add(1)
				res.fail(err)
				leave(rec)
				if errors.Is(err, ErrArchiveUnavailable) {
					res.downErr = err
					break walk
				}
				if errors.Is(err, errArchiveFull) {
					break walk
				}
				continue
			}
			res.moved++
			st.TierMoved.Add(1)
			st.TierMovedBytes.Add(n)
		}
		if page.Next == "" {
			complete = true
			break
		}
		q.Cursor = page.Next
	}

	// Every hot recording before lowWater was moved, so the next pass can
	// start there even after a cut-short walk.
	switch {
	case !lowWater.IsZero():
		t.scanFrom = lowWater
	case complete && !last.IsZero():
		// Not the cutoff, though everything before it was handled: a
		// recording inserted later with an older start (an upload of an
		// old call) is then still found unless it is older than the
		// newest one already walked past.
		t.scanFrom = last
	}
	if complete && full {
		t.lastFull = now
	}
	st.ArchiveDown.Store(res.downErr != nil)
	if res.failed > 0 {
		t.s.log.Error("archive tier: moves failed; those recordings stay on the hot tier",
			"failed", res.failed, "moved", res.moved, "first_err", res.first)
		return res.moved, fmt.Errorf("archive tier: %d failed, %d moved: %w", res.failed, res.moved, res.first)
	}
	if res.moved > 0 {
		t.s.log.Info("moved recordings to the archive tier", "moved", res.moved)
	}
	return res.moved, ctx.Err()
}

// move copies one recording to the archive, verifies it, commits the new
// location and removes the hot copy (see the package comment for the
// order). It returns the bytes moved. Errors on the archive side wrap
// ErrArchiveUnavailable or errArchiveFull; others concern this recording.
func (t *tierMover) move(ctx context.Context, rec meta.Recording) (int64, error) {
	rel := rec.File.Path
	if !filepath.IsLocal(rel) {
		return 0, fmt.Errorf("recording %s: path %q is not relative to the tier root", rec.ID, rel)
	}
	check, err := t.s.newSealCheck(rec)
	if err != nil {
		return 0, err
	}
	src := filepath.Join(t.s.hotRoot, rel)
	dst := filepath.Join(t.root, rel)
	partial := dst + ".partial"

	in, err := os.Open(src)
	if err != nil {
		if cur, merr := t.s.meta.Recording(rec.ID); merr == nil && cur.Status == meta.StatusDeleted {
			return 0, fmt.Errorf("recording %s: %w since the pass began", rec.ID, meta.ErrDeleted)
		}
		return 0, fmt.Errorf("recording %s: open hot file: %w", rec.ID, err)
	}
	defer in.Close()
	if err := mkdirAllSync(filepath.Dir(dst), t.cfg.Dir); err != nil {
		return 0, archiveErr("create directory for "+rec.ID, err)
	}
	// O_TRUNC: a partial left by a crash is simply overwritten.
	out, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, archiveErr("create "+partial, err)
	}
	n, err := check.copy(ctx, out, in)
	if err == nil {
		err = out.Sync()
		if err != nil {
			err = archiveErr("fsync "+partial, err)
		}
	}
	if cerr := out.Close(); err == nil && cerr != nil {
		err = archiveErr("close "+partial, cerr)
	}
	if err == nil {
		if err = os.Rename(partial, dst); err != nil {
			err = archiveErr("rename "+partial, err)
		}
	}
	if err != nil {
		_ = os.Remove(partial)
		return 0, err
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return 0, archiveErr("fsync directory of "+dst, err)
	}
	if _, err := t.s.Apply(ctx, &meta.SetLocation{ID: rec.ID, Tier: meta.TierArchive, Path: rel}); err != nil {
		if errors.Is(err, meta.ErrDeleted) {
			// Deleted while we copied: its key is gone, the copy is noise.
			_ = os.Remove(dst)
		}
		// Otherwise the metadata still says hot (or the commit's fate is
		// unknown): keep both copies, the next pass sorts it out.
		return 0, fmt.Errorf("recording %s: commit archive location: %w", rec.ID, err)
	}
	// The hot copy is a leftover from here on; if removing it fails, a
	// later full walk removes it (dropHotLeftover).
	if err := os.Remove(src); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.s.log.Warn("remove hot copy of archived recording", "id", rec.ID, "err", err)
	}
	return n, nil
}

// dropHotLeftover removes the hot copy of an archived recording, left by
// a crash between the commit and the removal. It costs one stat when
// there is none. The hot copy is only removed once the archive copy is
// proven good against the seal hash, so a damaged or missing archive file
// never costs the last good copy.
func (t *tierMover) dropHotLeftover(rec meta.Recording) error {
	rel := rec.File.Path
	if !filepath.IsLocal(rel) {
		return nil // move never archives such a path
	}
	src := filepath.Join(t.s.hotRoot, rel)
	if _, err := os.Lstat(src); err != nil {
		return nil // the usual case: no leftover
	}
	check, err := t.s.newSealCheck(rec)
	if err != nil {
		return fmt.Errorf("archived recording %s has a hot leftover, kept: %w", rec.ID, err)
	}
	f, err := os.Open(filepath.Join(t.root, rel))
	if err != nil {
		return fmt.Errorf("archived recording %s has a hot leftover, kept: archive copy: %w", rec.ID, err)
	}
	defer f.Close()
	if _, err := check.copy(context.Background(), io.Discard, f); err != nil {
		return fmt.Errorf("archived recording %s has a hot leftover, kept: archive copy: %w", rec.ID, err)
	}
	if err := os.Remove(src); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archived recording %s: remove hot leftover: %w", rec.ID, err)
	}
	t.s.log.Info("removed hot leftover of archived recording", "id", rec.ID)
	return nil
}

// ctxReader stops a long copy when the mover is stopped.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// sealCheck verifies a copy of a sealed recording's file as it streams:
// a recfile.Verifier with the recording's data key (every node has the
// keyring; the key travels wrapped in the metadata) and the seal hash to
// compare with at the end.
type sealCheck struct {
	rec  meta.Recording
	want []byte
	v    *recfile.Verifier
}

// newSealCheck prepares the check of a copy of rec's file. A recording
// without a usable seal hash wraps errNoSealHash.
func (s *Store) newSealCheck(rec meta.Recording) (*sealCheck, error) {
	want, err := hex.DecodeString(rec.File.SHA256)
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("%w: recording %s: %q", errNoSealHash, rec.ID, rec.File.SHA256)
	}
	uid, err := parseID(rec.ID)
	if err != nil {
		return nil, err
	}
	dek, err := s.keys.Load().UnwrapDEK(rec.File.WrappedDEK, uid[:])
	if err != nil {
		return nil, fmt.Errorf("recording %s: unwrap its key to verify the file: %w", rec.ID, err)
	}
	defer keyring.Zero(dek)
	v, err := recfile.NewVerifier(dek)
	if err != nil {
		return nil, err
	}
	return &sealCheck{rec: rec, want: want, v: v}, nil
}

// copy copies src to dst through the check and returns the bytes copied.
// A copy that is not the sealed file wraps errSealMismatch: a damaged
// chunk stops it at once, a cut or otherwise different file is found at
// the end. Write errors are archive errors; read errors concern the
// source.
func (c *sealCheck) copy(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, copyBufSize)
	r := ctxReader{ctx, src}
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := c.v.Write(buf[:m]); err != nil {
				return n, fmt.Errorf("%w: recording %s, within the %d bytes after offset %d: %w", errSealMismatch, c.rec.ID, m, n, err)
			}
			if _, err := dst.Write(buf[:m]); err != nil {
				return n, archiveErr("write", err)
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, fmt.Errorf("read: %w", rerr)
		}
	}
	sum, err := c.v.Sum()
	if err != nil {
		return n, fmt.Errorf("%w: recording %s, %d bytes: %w", errSealMismatch, c.rec.ID, n, err)
	}
	if string(sum[:]) != string(c.want) {
		return n, fmt.Errorf("%w: recording %s: %d bytes with seal hash %x, sealed as %s", errSealMismatch, c.rec.ID, n, sum, c.rec.File.SHA256)
	}
	return n, nil
}

// archiveErr classifies an error on the archive side: out of space is
// errArchiveFull (the archive is up, just full); anything else, read-only
// (EROFS, EACCES, EPERM) or not a directory included, makes the archive
// unavailable.
func archiveErr(op string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %s: %w", errArchiveFull, op, err)
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: read-only: %s: %w", ErrArchiveUnavailable, op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrArchiveUnavailable, op, err)
}

// mkdirAllSync is os.MkdirAll (mode 0700) that also fsyncs the parent of
// every directory it creates, so a renamed file's path survives a power
// loss. It creates nothing above top, which must exist (the mount point).
func mkdirAllSync(dir, top string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if filepath.Clean(dir) == filepath.Clean(top) {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrNotExist}
	}
	if err := mkdirAllSync(filepath.Dir(dir), top); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir fsyncs a directory, making the entries created, renamed or
// removed in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) {
		// Some network and FUSE file systems cannot fsync a directory;
		// their metadata is committed by the server instead.
		err = nil
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// statfsUsedPct reports how full dir's file system is, as df does: used
// over used plus available, so blocks reserved for root count as full.
func statfsUsedPct(dir string) func() (float64, error) {
	return func() (float64, error) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return 0, fmt.Errorf("statfs %s: %w", dir, err)
		}
		used := float64(st.Blocks - st.Bfree)
		total := used + float64(st.Bavail)
		if total == 0 {
			return 0, nil
		}
		return 100 * used / total, nil
	}
}
