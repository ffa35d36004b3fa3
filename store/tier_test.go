package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// tierTestKey is a fixed master key (64 hex digits) for the tier tests.
const tierTestKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// tierClock is the injectable clock of the tier tests.
type tierClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *tierClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *tierClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// tierLog keeps the store's log records, so tests can check what was
// logged and how often.
type tierLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *tierLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *tierLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *tierLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *tierLog) WithGroup(string) slog.Handler      { return l }

// errors counts error-level records.
func (l *tierLog) errors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level >= slog.LevelError {
			n++
		}
	}
	return n
}

// tierEnv is an open store with an archive tier.
type tierEnv struct {
	s       *Store
	data    string
	archive string
	clock   *tierClock
	log     *tierLog
	cfg     Config
}

// tierNow is the injected "now" of the tier tests.
var tierNow = time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)

// openTierEnv opens a store whose archive is archiveDir (created unless
// mkArchive is false), with the given policy.
func openTierEnv(t testing.TB, ac ArchiveConfig, mkArchive bool) *tierEnv {
	t.Helper()
	root := t.TempDir()
	e := &tierEnv{data: filepath.Join(root, "data"), archive: filepath.Join(root, "nas"), clock: &tierClock{now: tierNow}, log: &tierLog{}}
	if mkArchive {
		if err := os.Mkdir(e.archive, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ac.Dir = e.archive
	if ac.Interval == 0 {
		ac.Interval = time.Hour
	}
	e.cfg = Config{DataDir: e.data, Keys: KeySource{Env: tierTestKey}, Archive: ac, Node: "node-a", Now: e.clock.Now, Log: slog.New(e.log)}
	e.reopen(t)
	return e
}

// reopen opens the store (again) on the same directories.
func (e *tierEnv) reopen(t testing.TB) {
	t.Helper()
	s, err := Open(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if s.tier == nil {
		t.Fatal("Open made no tier mover although Archive.Dir is set")
	}
	e.s = s
	tierWaitStarted(t, s)
}

// tierWaitStarted waits for the first background pass if Open started the
// mover, so a test's own runOnce calls are not raced by it.
func tierWaitStarted(t testing.TB, s *Store) {
	t.Helper()
	s.tier.life.Lock()
	started := s.tier.started
	s.tier.life.Unlock()
	if !started {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.tier.passes.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the mover's first pass did not finish within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// record creates a sealed recording that started at start, holding size
// random bytes (several 64 KiB chunks for the default size).
func (e *tierEnv) record(t testing.TB, start time.Time, size int) (meta.Recording, []byte) {
	t.Helper()
	ctx := context.Background()
	r, err := e.s.Create(ctx, meta.Recording{
		Start: start, Direction: meta.DirIncoming, Source: meta.SourceMirror,
		File:        meta.FileInfo{Format: meta.FormatGrid},
		LocalParty:  meta.LocalParty{Number: "201", Name: "Agent"},
		RemoteParty: meta.RemoteParty{Number: "+41445550100"},
		Tenant:      "t1",
	})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write(data); err != nil {
		t.Fatal(err)
	}
	rec, err := r.Close(ctx, Final{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Tier != meta.TierHot || rec.Status != meta.StatusComplete || len(rec.File.SHA256) != 64 {
		t.Fatalf("new recording: tier %q status %q seal %q", rec.Tier, rec.Status, rec.File.SHA256)
	}
	return rec, data
}

func (e *tierEnv) hotPath(rec meta.Recording) string {
	return filepath.Join(e.data, "recordings", rec.File.Path)
}

func (e *tierEnv) archivePath(rec meta.Recording) string {
	return filepath.Join(e.archive, "recordings", rec.File.Path)
}

func (e *tierEnv) meta(t *testing.T, id string) meta.Recording {
	t.Helper()
	rec, err := e.s.Meta().Recording(id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// read reads a recording's plaintext through OpenAudio.
func (e *tierEnv) read(id string) ([]byte, error) {
	a, err := e.s.OpenAudio(context.Background(), id)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	buf := make([]byte, a.Size())
	if _, err := a.ReadAt(buf, 0); err != nil {
		return nil, err
	}
	return buf, nil
}

func (e *tierEnv) mustRead(t *testing.T, id string, want []byte) {
	t.Helper()
	got, err := e.read(id)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %s: %d bytes differ from the %d written", id, len(got), len(want))
	}
}

// onHot asserts the recording is hot by metadata and on disk, and not on
// the archive.
func (e *tierEnv) onHot(t *testing.T, rec meta.Recording) {
	t.Helper()
	if m := e.meta(t, rec.ID); m.Tier != meta.TierHot {
		t.Errorf("%s: tier %q, want hot", rec.ID, m.Tier)
	}
	if _, err := os.Stat(e.hotPath(rec)); err != nil {
		t.Errorf("%s: hot file: %v", rec.ID, err)
	}
	for _, p := range []string{e.archivePath(rec), e.archivePath(rec) + ".partial"} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %s exists (err %v)", rec.ID, p, err)
		}
	}
}

// onArchive asserts the recording is archived by metadata and on disk,
// and gone from the hot tier.
func (e *tierEnv) onArchive(t *testing.T, rec meta.Recording) {
	t.Helper()
	if m := e.meta(t, rec.ID); m.Tier != meta.TierArchive || m.File.Path != rec.File.Path {
		t.Errorf("%s: tier %q path %q, want archive %q", rec.ID, m.Tier, m.File.Path, rec.File.Path)
	}
	if _, err := os.Stat(e.hotPath(rec)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: hot file still there (err %v)", rec.ID, err)
	}
	if _, err := os.Stat(e.archivePath(rec)); err != nil {
		t.Errorf("%s: archive file: %v", rec.ID, err)
	}
	if _, err := os.Stat(e.archivePath(rec) + ".partial"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: partial file left (err %v)", rec.ID, err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

const tierRecSize = 150 << 10 // three chunks

func TestTierAgeMove(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
	ctx := context.Background()
	old1, d1 := e.record(t, tierNow.Add(-90*24*time.Hour), tierRecSize)
	old2, d2 := e.record(t, tierNow.Add(-31*24*time.Hour), tierRecSize)
	new1, d3 := e.record(t, tierNow.Add(-29*24*time.Hour), tierRecSize)
	new2, d4 := e.record(t, tierNow.Add(-time.Hour), tierRecSize)
	// Legal hold is no reason to stay on the hot tier.
	if _, err := e.s.Apply(ctx, &meta.Preserve{ID: old2.ID, By: "auditor", At: tierNow}); err != nil {
		t.Fatal(err)
	}
	wantBytes := fileSize(t, e.hotPath(old1)) + fileSize(t, e.hotPath(old2))

	moved, err := e.s.tier.runOnce(ctx)
	if err != nil || moved != 2 {
		t.Fatalf("runOnce = %d, %v; want 2, nil", moved, err)
	}
	e.onArchive(t, old1)
	e.onArchive(t, old2)
	e.onHot(t, new1)
	e.onHot(t, new2)
	if got := e.s.stats.TierMoved.Load(); got != 2 {
		t.Errorf("TierMoved = %d, want 2", got)
	}
	if got := e.s.stats.TierMovedBytes.Load(); got != wantBytes {
		t.Errorf("TierMovedBytes = %d, want %d", got, wantBytes)
	}
	if got := fileSize(t, e.archivePath(old1)) + fileSize(t, e.archivePath(old2)); got != wantBytes {
		t.Errorf("archive files hold %d bytes, the hot ones held %d", got, wantBytes)
	}
	if e.s.stats.TierErrors.Load() != 0 || e.s.stats.ArchiveDown.Load() {
		t.Errorf("TierErrors %d, ArchiveDown %v after a clean pass", e.s.stats.TierErrors.Load(), e.s.stats.ArchiveDown.Load())
	}
	marker, err := os.ReadFile(filepath.Join(e.archive, archiveMarker))
	if err != nil || !strings.Contains(string(marker), "Callvault archive") {
		t.Errorf("marker: %q, %v", marker, err)
	}
	if m := e.meta(t, old2.ID); m.Preserved == nil {
		t.Error("preservation lost by the move")
	}
	e.mustRead(t, old1.ID, d1)
	e.mustRead(t, old2.ID, d2)
	e.mustRead(t, new1.ID, d3)
	e.mustRead(t, new2.ID, d4)

	// Nothing more is due.
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 0 {
		t.Fatalf("second runOnce = %d, %v; want 0, nil", moved, err)
	}
	// Two days later new1 is 31 days old. This pass starts at scanFrom, not
	// at the beginning.
	e.clock.Add(2 * 24 * time.Hour)
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 1 {
		t.Fatalf("runOnce two days later = %d, %v; want 1, nil", moved, err)
	}
	e.onArchive(t, new1)
	e.onHot(t, new2)

	// A restart finds everything where the metadata says.
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	e.reopen(t)
	e.mustRead(t, old1.ID, d1)
	e.mustRead(t, new1.ID, d3)
	e.mustRead(t, new2.ID, d4)
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 0 {
		t.Fatalf("runOnce after reopen = %d, %v; want 0, nil", moved, err)
	}
}

// An upload of an old call arrives after a pass has moved scanFrom past its
// start time; the daily full walk still finds it.
func TestTierLateOldUpload(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
	ctx := context.Background()
	a, _ := e.record(t, tierNow.Add(-40*24*time.Hour), 1000)
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 1 {
		t.Fatalf("runOnce = %d, %v", moved, err)
	}
	e.onArchive(t, a)
	late, data := e.record(t, tierNow.Add(-60*24*time.Hour), 1000)
	e.clock.Add(fullScanEvery)
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 1 {
		t.Fatalf("runOnce a day later = %d, %v; want the late upload moved", moved, err)
	}
	e.onArchive(t, late)
	e.mustRead(t, late.ID, data)
}

func TestTierWatermark(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{HighWatermarkPct: 75}, true)
	ctx := context.Background()
	var recs []meta.Recording
	var datas [][]byte
	// Five recent recordings, created out of order: the oldest move first.
	for _, age := range []time.Duration{3, 5, 1, 4, 2} {
		r, d := e.record(t, tierNow.Add(-age*time.Hour), 4000)
		recs = append(recs, r)
		datas = append(datas, d)
	}
	// The hot file system is 50 % full plus 10 % per recording file on it,
	// counted for real: five files make 100 %, two make 70 %.
	hot := filepath.Join(e.data, "recordings")
	calls := 0
	e.s.tier.usedPct = func() (float64, error) {
		calls++
		n := 0
		err := filepath.WalkDir(hot, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".cvr") {
				n++
			}
			return err
		})
		return 50 + 10*float64(n), err
	}
	moved, err := e.s.tier.runOnce(ctx)
	if err != nil || moved != 3 {
		t.Fatalf("runOnce = %d, %v; want 3, nil", moved, err)
	}
	// Ages 5, 4, 3 hours moved; 2 and 1 stayed.
	e.onArchive(t, recs[1])
	e.onArchive(t, recs[3])
	e.onArchive(t, recs[0])
	e.onHot(t, recs[4])
	e.onHot(t, recs[2])
	if calls != 4 {
		t.Errorf("usedPct called %d times, want 4 (three moves and the check that stopped)", calls)
	}
	for i, r := range recs {
		e.mustRead(t, r.ID, datas[i])
	}
	// Below the watermark, nothing moves.
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 0 {
		t.Fatalf("second runOnce = %d, %v; want 0, nil", moved, err)
	}
}

func TestTierStatfsUsedPct(t *testing.T) {
	pct, err := statfsUsedPct(t.TempDir())()
	if err != nil {
		t.Fatal(err)
	}
	if pct <= 0 || pct > 100 {
		t.Fatalf("used %.2f %% of the temp dir's file system, want in (0, 100]", pct)
	}
	if _, err := statfsUsedPct(filepath.Join(t.TempDir(), "missing"))(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("statfs of a missing dir: %v, want ErrNotExist", err)
	}
}

func TestTierUnmountedDirMissing(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, false)
	ctx := context.Background()
	rec, data := e.record(t, tierNow.Add(-40*24*time.Hour), tierRecSize)
	// Open may have run a first pass in the background, which failed too.
	errs0 := e.s.stats.TierErrors.Load()
	moved, err := e.s.tier.runOnce(ctx)
	if moved != 0 || !errors.Is(err, ErrArchiveUnavailable) {
		t.Fatalf("runOnce = %d, %v; want 0, ErrArchiveUnavailable", moved, err)
	}
	if _, err := os.Stat(e.archive); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the missing mount point was created (stat err %v)", err)
	}
	if !e.s.stats.ArchiveDown.Load() || e.s.stats.TierErrors.Load() != errs0+1 {
		t.Fatalf("ArchiveDown %v TierErrors +%d, want true +1", e.s.stats.ArchiveDown.Load(), e.s.stats.TierErrors.Load()-errs0)
	}
	e.onHot(t, rec)
	e.mustRead(t, rec.ID, data)
	// The hot tier keeps working.
	fresh, fdata := e.record(t, tierNow, 1000)
	e.mustRead(t, fresh.ID, fdata)

	// Mounted: the archive is initialised and used.
	if err := os.Mkdir(e.archive, 0o700); err != nil {
		t.Fatal(err)
	}
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 1 {
		t.Fatalf("runOnce after mount = %d, %v; want 1, nil", moved, err)
	}
	if e.s.stats.ArchiveDown.Load() {
		t.Error("ArchiveDown still set after a successful pass")
	}
	e.onArchive(t, rec)
	e.onHot(t, fresh)
	e.mustRead(t, rec.ID, data)
}

func TestTierMarkerRemoved(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
	ctx := context.Background()
	archived, adata := e.record(t, tierNow.Add(-40*24*time.Hour), tierRecSize)
	hot, hdata := e.record(t, tierNow.Add(-29*24*time.Hour), tierRecSize)
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 1 {
		t.Fatalf("runOnce = %d, %v", moved, err)
	}
	marker := filepath.Join(e.archive, archiveMarker)
	saved, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	// The NAS goes away: the mount point is empty but exists.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * 24 * time.Hour) // hot is due now
	errsBefore := e.log.errors()
	moved, err := e.s.tier.runOnce(ctx)
	if moved != 0 || !errors.Is(err, ErrArchiveUnavailable) {
		t.Fatalf("runOnce without marker = %d, %v; want 0, ErrArchiveUnavailable", moved, err)
	}
	if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("the marker was re-created on what may be an empty mount point")
	}
	if !e.s.stats.ArchiveDown.Load() || e.s.stats.TierErrors.Load() != 1 {
		t.Fatalf("ArchiveDown %v TierErrors %d, want true 1", e.s.stats.ArchiveDown.Load(), e.s.stats.TierErrors.Load())
	}
	if n := e.log.errors() - errsBefore; n != 1 {
		t.Errorf("%d error lines for one failed pass, want 1", n)
	}
	e.onHot(t, hot)
	e.mustRead(t, hot.ID, hdata)
	readErrs := e.s.stats.ReadErrors.Load()
	if _, err := e.read(archived.ID); !errors.Is(err, ErrArchiveUnavailable) {
		t.Fatalf("read of an archived recording while unmounted: %v, want ErrArchiveUnavailable", err)
	}
	if e.s.stats.ReadErrors.Load() != readErrs+1 {
		t.Error("the failed read was not counted")
	}

	// Remounted.
	if err := os.WriteFile(marker, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRead(t, archived.ID, adata)
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 1 {
		t.Fatalf("runOnce after remount = %d, %v; want 1, nil", moved, err)
	}
	if e.s.stats.ArchiveDown.Load() {
		t.Error("ArchiveDown still set after a successful pass")
	}
	e.onArchive(t, hot)
	e.mustRead(t, hot.ID, hdata)
}

// tierReadOnly makes dir's recordings tree unwritable and returns how, and
// a function that undoes it. As root, chmod does not stop writes, so it
// uses a read-only bind mount where it can, and otherwise puts a regular
// file where the recordings directory must be, which fails the same
// archive-side code path.
func tierReadOnly(t *testing.T, archive string) (string, func()) {
	t.Helper()
	if out, err := exec.Command("mount", "--bind", archive, archive).CombinedOutput(); err == nil {
		if out2, err := exec.Command("mount", "-o", "remount,ro,bind", archive).CombinedOutput(); err == nil {
			return "read-only bind mount", func() {
				if out, err := exec.Command("umount", archive).CombinedOutput(); err != nil {
					t.Fatalf("umount %s: %v: %s", archive, err, out)
				}
			}
		} else {
			t.Logf("remount,ro,bind failed (%v: %s)", err, out2)
			_ = exec.Command("umount", archive).Run()
		}
	} else {
		t.Logf("mount --bind failed (%v: %s)", err, out)
	}
	rdir := filepath.Join(archive, "recordings")
	if err := os.RemoveAll(rdir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rdir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "a regular file at " + rdir, func() {
		if err := os.Remove(rdir); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTierReadOnly(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
	ctx := context.Background()
	a, adata := e.record(t, tierNow.Add(-29*24*time.Hour), tierRecSize)
	b, bdata := e.record(t, tierNow.Add(-28*24*time.Hour), tierRecSize)
	// Initialise the archive (marker) with nothing due yet.
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 0 {
		t.Fatalf("first runOnce = %d, %v", moved, err)
	}
	e.clock.Add(5 * 24 * time.Hour) // a and b are due now
	how, undo := tierReadOnly(t, e.archive)
	t.Logf("archive made unwritable with %s", how)
	undone := false
	defer func() {
		if !undone {
			undo()
		}
	}()
	moved, err := e.s.tier.runOnce(ctx)
	if moved != 0 || !errors.Is(err, ErrArchiveUnavailable) {
		t.Fatalf("runOnce on a read-only archive = %d, %v; want 0, ErrArchiveUnavailable", moved, err)
	}
	if strings.HasPrefix(how, "read-only") && !errors.Is(err, syscall.EROFS) {
		t.Errorf("error %v does not wrap EROFS", err)
	}
	// The pass stops at the first archive-side failure instead of trying
	// every recording against a dead archive.
	if got := e.s.stats.TierErrors.Load(); got != 1 {
		t.Errorf("TierErrors = %d, want 1", got)
	}
	if !e.s.stats.ArchiveDown.Load() {
		t.Error("ArchiveDown not set")
	}
	undo()
	undone = true
	e.onHot(t, a)
	e.onHot(t, b)
	e.mustRead(t, a.ID, adata)
	e.mustRead(t, b.ID, bdata)

	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 2 {
		t.Fatalf("runOnce once writable = %d, %v; want 2, nil", moved, err)
	}
	if e.s.stats.ArchiveDown.Load() {
		t.Error("ArchiveDown still set after a successful pass")
	}
	e.onArchive(t, a)
	e.onArchive(t, b)
	e.mustRead(t, a.ID, adata)
	e.mustRead(t, b.ID, bdata)
}

func TestTierHashMismatch(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
	ctx := context.Background()
	bad, _ := e.record(t, tierNow.Add(-50*24*time.Hour), tierRecSize)
	good, gdata := e.record(t, tierNow.Add(-40*24*time.Hour), tierRecSize)
	// Damage the sealed file: flip one byte in its middle.
	raw, err := os.ReadFile(e.hotPath(bad))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x01
	if err := os.WriteFile(e.hotPath(bad), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	errsBefore := e.log.errors()
	moved, err := e.s.tier.runOnce(ctx)
	if moved != 1 || !errors.Is(err, errSealMismatch) {
		t.Fatalf("runOnce = %d, %v; want 1, errSealMismatch", moved, err)
	}
	e.onHot(t, bad)
	if after, err := os.ReadFile(e.hotPath(bad)); err != nil || !bytes.Equal(after, raw) {
		t.Errorf("the refused hot file was changed (err %v)", err)
	}
	// The damaged recording does not stop the others.
	e.onArchive(t, good)
	e.mustRead(t, good.ID, gdata)
	if got := e.s.stats.TierErrors.Load(); got != 1 {
		t.Errorf("TierErrors = %d, want 1", got)
	}
	if e.s.stats.ArchiveDown.Load() {
		t.Error("a damaged recording marked the archive down")
	}
	if n := e.log.errors() - errsBefore; n != 1 {
		t.Errorf("%d error lines for one pass, want 1", n)
	}
	// Every pass tries again and refuses again.
	if moved, err := e.s.tier.runOnce(ctx); moved != 0 || !errors.Is(err, errSealMismatch) {
		t.Fatalf("second runOnce = %d, %v; want 0, errSealMismatch", moved, err)
	}
	e.onHot(t, bad)
}

// The states a crash can leave behind.
func TestTierCrashLeftovers(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
	ctx := context.Background()
	a, adata := e.record(t, tierNow.Add(-50*24*time.Hour), tierRecSize)
	b, bdata := e.record(t, tierNow.Add(-45*24*time.Hour), tierRecSize)
	c, cdata := e.record(t, tierNow.Add(-40*24*time.Hour), tierRecSize)

	// Crash before the commit: the metadata says hot, and the archive holds
	// a stray final file and a partial one. Both are overwritten.
	if _, err := e.s.tier.runOnce(ctx); err != nil { // initialise
		t.Fatal(err)
	}
	if moved, _ := e.s.tier.runOnce(ctx); moved != 0 {
		t.Fatal("nothing should be left to move")
	}
	d, ddata := e.record(t, tierNow.Add(-42*24*time.Hour), tierRecSize)
	if err := os.MkdirAll(filepath.Dir(e.archivePath(d)), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{e.archivePath(d), e.archivePath(d) + ".partial"} {
		if err := os.WriteFile(p, []byte("torn"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Add(fullScanEvery) // d is older than c, where the last walk ended
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 1 {
		t.Fatalf("runOnce over stray archive files = %d, %v; want 1, nil", moved, err)
	}
	e.onArchive(t, d)
	e.mustRead(t, d.ID, ddata)

	// Crash between the commit and the hot removal: both copies, the
	// metadata says archive. The next full walk removes the hot leftover of
	// a (archive copy good) and keeps that of b (archive copy damaged).
	for _, r := range []meta.Recording{a, b} {
		raw, err := os.ReadFile(e.archivePath(r))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.hotPath(r), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	braw, err := os.ReadFile(e.archivePath(b))
	if err != nil {
		t.Fatal(err)
	}
	braw[100] ^= 0x80
	if err := os.WriteFile(e.archivePath(b), braw, 0o600); err != nil {
		t.Fatal(err)
	}
	// Within the day the walk starts at scanFrom, past a and b.
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 0 {
		t.Fatalf("runOnce = %d, %v; want 0, nil", moved, err)
	}
	if _, err := os.Stat(e.hotPath(a)); err != nil {
		t.Fatalf("hot leftover removed by a pass that should not walk it: %v", err)
	}
	e.clock.Add(fullScanEvery)
	errs := e.s.stats.TierErrors.Load()
	moved, err := e.s.tier.runOnce(ctx)
	if moved != 0 || !errors.Is(err, errSealMismatch) {
		t.Fatalf("full runOnce = %d, %v; want 0 and b's damaged archive copy reported", moved, err)
	}
	if e.s.stats.TierErrors.Load() != errs+1 {
		t.Error("the damaged archive copy was not counted")
	}
	e.onArchive(t, a)
	e.mustRead(t, a.ID, adata)
	if _, err := os.Stat(e.hotPath(b)); err != nil {
		t.Fatalf("hot leftover of b removed although its archive copy is damaged: %v", err)
	}
	if _, err := e.read(b.ID); err == nil {
		t.Fatal("reading b's damaged archive copy succeeded")
	}
	// c was never disturbed.
	e.onArchive(t, c)
	e.mustRead(t, c.ID, cdata)
	_ = bdata
}

func TestTierCanceled(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
	rec, data := e.record(t, tierNow.Add(-40*24*time.Hour), tierRecSize)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	moved, err := e.s.tier.runOnce(ctx)
	if moved != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("runOnce with a canceled context = %d, %v; want 0, context.Canceled", moved, err)
	}
	if got := e.s.stats.TierErrors.Load(); got != 0 {
		t.Errorf("stopping counted as %d tier errors", got)
	}
	e.onHot(t, rec)
	e.mustRead(t, rec.ID, data)
}

func TestTierDisabledPolicies(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{}, true)
	rec, _ := e.record(t, tierNow.Add(-400*24*time.Hour), 1000)
	if moved, err := e.s.tier.runOnce(context.Background()); err != nil || moved != 0 {
		t.Fatalf("runOnce with AfterDays and HighWatermarkPct 0 = %d, %v; want 0, nil", moved, err)
	}
	e.onHot(t, rec)
}

// tierLoopRunning reports whether a mover goroutine is alive.
func tierLoopRunning() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Contains(buf, []byte("(*tierMover).loop"))
}

func TestTierStartStop(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30, Interval: 5 * time.Millisecond}, true)
	rec, data := e.record(t, tierNow.Add(-40*24*time.Hour), tierRecSize)

	// A mover that was never started stops at once.
	idle := newTierMover(e.s, e.cfg.Archive)
	stopped := make(chan struct{})
	go func() { idle.Stop(); idle.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop of a never-started mover blocked")
	}

	m := e.s.tier
	before := m.passes.Load()
	m.start()
	m.start() // idempotent: still one goroutine
	deadline := time.Now().Add(10 * time.Second)
	for m.passes.Load() < before+3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d passes in 10 s at a 5 ms interval", m.passes.Load()-before)
		}
		time.Sleep(time.Millisecond)
	}
	// A pass after the recording was created moved it (the first one runs
	// right after start, which Open may have called already).
	e.onArchive(t, rec)
	e.mustRead(t, rec.ID, data)

	begin := time.Now()
	m.Stop()
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Stop took %v", d)
	}
	select {
	case <-m.done:
	default:
		t.Fatal("Stop returned before the goroutine ended")
	}
	if tierLoopRunning() {
		t.Fatal("a tier mover goroutine is still running after Stop")
	}
	n := m.passes.Load()
	time.Sleep(30 * time.Millisecond)
	if m.passes.Load() != n {
		t.Fatal("passes ran after Stop")
	}
	m.start() // after Stop: no new goroutine
	if tierLoopRunning() {
		t.Fatal("start after Stop started a goroutine")
	}
	m.Stop() // again, and Close will call it once more
}

// tierHookCommitter passes commands to next, except SetLocation, which it
// hands to onSetLocation: a commit that fails, or a delete that races it.
type tierHookCommitter struct {
	next          Committer
	onSetLocation func(ctx context.Context, loc meta.SetLocation, cmd []byte) (meta.Result, error)
}

func (c tierHookCommitter) Commit(ctx context.Context, cmd []byte) (meta.Result, error) {
	if len(cmd) > 0 && meta.CommandType(cmd[0]) == meta.TypeSetLocation {
		var loc meta.SetLocation
		if err := json.Unmarshal(cmd[1:], &loc); err != nil {
			return meta.Result{}, err
		}
		return c.onSetLocation(ctx, loc, cmd)
	}
	return c.next.Commit(ctx, cmd)
}

// A commit that fails leaves the hot copy authoritative; the verified
// archive copy is a stray that the next try overwrites.
func TestTierCommitFails(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
	ctx := context.Background()
	rec, data := e.record(t, tierNow.Add(-40*24*time.Hour), tierRecSize)
	local := LocalCommitter{DB: e.s.Meta()}
	errNoQuorum := errors.New("no quorum")
	e.s.SetCommitter(tierHookCommitter{next: local, onSetLocation: func(context.Context, meta.SetLocation, []byte) (meta.Result, error) {
		return meta.Result{}, errNoQuorum
	}})
	moved, err := e.s.tier.runOnce(ctx)
	if moved != 0 || !errors.Is(err, errNoQuorum) {
		t.Fatalf("runOnce = %d, %v; want 0, the commit error", moved, err)
	}
	if m := e.meta(t, rec.ID); m.Tier != meta.TierHot {
		t.Fatalf("tier %q after a failed commit", m.Tier)
	}
	if _, err := os.Stat(e.hotPath(rec)); err != nil {
		t.Fatalf("hot copy removed although the commit failed: %v", err)
	}
	if e.s.stats.TierErrors.Load() != 1 || e.s.stats.ArchiveDown.Load() {
		t.Errorf("TierErrors %d ArchiveDown %v, want 1 false", e.s.stats.TierErrors.Load(), e.s.stats.ArchiveDown.Load())
	}
	e.mustRead(t, rec.ID, data)

	e.s.SetCommitter(local)
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 1 {
		t.Fatalf("runOnce with a working committer = %d, %v; want 1, nil", moved, err)
	}
	e.onArchive(t, rec)
	e.mustRead(t, rec.ID, data)
}

// A recording deleted while it is copied: its archive copy is removed
// (the key is gone anyway), and that is no tier error.
func TestTierDeletedDuringMove(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
	ctx := context.Background()
	gone, _ := e.record(t, tierNow.Add(-50*24*time.Hour), tierRecSize)
	kept, kdata := e.record(t, tierNow.Add(-40*24*time.Hour), tierRecSize)
	local := LocalCommitter{DB: e.s.Meta()}
	e.s.SetCommitter(tierHookCommitter{next: local, onSetLocation: func(ctx context.Context, loc meta.SetLocation, cmd []byte) (meta.Result, error) {
		if loc.ID == gone.ID {
			if err := e.s.Delete(ctx, loc.ID, "admin"); err != nil {
				return meta.Result{}, err
			}
		}
		return local.Commit(ctx, cmd)
	}})
	moved, err := e.s.tier.runOnce(ctx)
	if moved != 1 || err != nil {
		t.Fatalf("runOnce = %d, %v; want 1, nil", moved, err)
	}
	for _, p := range []string{e.hotPath(gone), e.archivePath(gone), e.archivePath(gone) + ".partial"} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s of the deleted recording exists (err %v)", p, err)
		}
	}
	if got := e.s.stats.TierErrors.Load(); got != 0 {
		t.Errorf("TierErrors = %d, want 0", got)
	}
	e.onArchive(t, kept)
	e.mustRead(t, kept.ID, kdata)
}

// BenchmarkTierMove measures moving one sealed 4 MiB recording to the
// archive (copy with SHA-256, fsyncs, rename, commit, hot removal) against
// the floor of any safe move: a plain copy of the same file with one
// fsync. Both use the same file system (the temp dir), so the ratio is the
// mover's overhead, not the NAS's speed.
func BenchmarkTierMove(b *testing.B) {
	const size = 4 << 20
	b.Run("move", func(b *testing.B) {
		e := openTierEnv(b, ArchiveConfig{AfterDays: 1}, true)
		ctx := context.Background()
		if _, err := e.s.tier.runOnce(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			rec, _ := e.record(b, tierNow.Add(-48*time.Hour-time.Duration(i)*time.Second), size)
			b.StartTimer()
			if _, err := e.s.tier.move(ctx, rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("copy+fsync", func(b *testing.B) {
		dir := b.TempDir()
		src := filepath.Join(dir, "src")
		data := make([]byte, size)
		_, _ = rand.Read(data)
		b.ReportAllocs()
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if err := os.WriteFile(src, data, 0o600); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			in, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			out, err := os.Create(filepath.Join(dir, "dst"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(out, in); err != nil {
				b.Fatal(err)
			}
			if err := out.Sync(); err != nil {
				b.Fatal(err)
			}
			_ = out.Close()
			_ = in.Close()
		}
	})
}
