package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/meta"
)

const (
	testKey  = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	otherKey = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
)

// openStore opens a store in dir with the test master key and checks the
// metadata's invariants when the test ends.
func openStore(t testing.TB, dir string, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{DataDir: dir, Keys: KeySource{Env: testKey}, FlushInterval: 100 * time.Millisecond}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return
		}
		if err := s.Meta().Check(); err != nil {
			t.Errorf("metadata invariants: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func newRecording(start time.Time, format meta.Format) meta.Recording {
	return meta.Recording{
		Start: start.UTC().Truncate(time.Millisecond), Direction: meta.DirIncoming, Source: meta.SourceMirror,
		Technology: "test", LocalParty: meta.LocalParty{Username: "alice", Number: "+4930123"},
		RemoteParty: meta.RemoteParty{Number: "+4940999", Name: "Bob"}, Tenant: "t1", Group: "g1",
		File: meta.FileInfo{Format: format},
	}
}

// signal returns n bytes of a deterministic signal that never repeats a
// 32-byte window, so finding any window of it in a file proves a leak.
func signal(n int) []byte {
	b := make([]byte, n)
	var x uint64 = 0x9E3779B97F4A7C15
	for i := 0; i+8 <= n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	return b
}

func record(t *testing.T, s *Store, rec meta.Recording, data []byte, opts ...CreateOption) meta.Recording {
	t.Helper()
	ctx := context.Background()
	r, err := s.Create(ctx, rec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 3001 { // odd pieces cross chunk edges
		end := min(off+3001, len(data))
		if _, err := r.Write(data[off:end]); err != nil {
			t.Fatal(err)
		}
	}
	d := int64(len(data) / 16)
	out, err := r.Close(ctx, Final{DurationMs: &d})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readAll(t *testing.T, s *Store, id string) []byte {
	t.Helper()
	a, err := s.OpenAudio(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := io.ReadAll(io.NewSectionReader(a, 0, a.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecordAndRead(t *testing.T) {
	s := openStore(t, t.TempDir())
	data := signal(300_000)
	rec := record(t, s, newRecording(time.Now(), meta.FormatWAV), data)
	if rec.Status != meta.StatusComplete || rec.Size != int64(len(data)) || rec.Reference == "" {
		t.Fatalf("sealed recording: %+v", rec)
	}
	file := filepath.Join(s.hotRoot, rec.File.Path)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	checkSealed(t, s, rec, raw)
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("recording file mode %v", fi.Mode().Perm())
	}
	if got := readAll(t, s, rec.ID); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	// Random access: a window in the middle.
	a, _ := s.OpenAudio(context.Background(), rec.ID)
	defer a.Close()
	buf := make([]byte, 1000)
	if _, err := a.ReadAt(buf, 200_123); err != nil || !bytes.Equal(buf, data[200_123:201_123]) {
		t.Fatalf("ReadAt: %v", err)
	}
	if st := s.Stats(); st.RecordingsSealed.Load() != 1 || st.RecordingsOpen.Load() != 0 || st.BytesWritten.Load() != int64(len(data)) {
		t.Errorf("stats: sealed %d open %d bytes %d", st.RecordingsSealed.Load(), st.RecordingsOpen.Load(), st.BytesWritten.Load())
	}
}

// TestNoClearAudioOnDisk writes a known signal as a live recording, a
// sealed one and one read back, then searches every byte of every file
// under the data directory for any 32-byte window of it.
func TestBulkRecording(t *testing.T) {
	s := openStore(t, t.TempDir())
	data := signal(3 << 20)
	rec := record(t, s, newRecording(time.Now(), meta.FormatWAV), data, Bulk())
	raw, _ := os.ReadFile(filepath.Join(s.hotRoot, rec.File.Path))
	checkSealed(t, s, rec, raw)
	if rec.Size != int64(len(data)) {
		t.Fatal("bulk recording: size wrong")
	}
	if !bytes.Equal(readAll(t, s, rec.ID), data) {
		t.Fatal("bulk recording reads back different")
	}
}

func TestNoClearAudioOnDisk(t *testing.T) {
	dir, archive := t.TempDir(), t.TempDir()
	s := openStore(t, dir, func(c *Config) {
		c.Archive = ArchiveConfig{Dir: archive, AfterDays: 1, Interval: time.Hour}
	})
	data := signal(1 << 20)
	rec := record(t, s, newRecording(time.Now(), meta.FormatWAV), data)
	_ = readAll(t, s, rec.ID)
	old := record(t, s, newRecording(time.Now().Add(-10*24*time.Hour), meta.FormatWAV), data[len(data)/2:])
	if n, err := s.tier.runOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("move to archive: %d moved, %v", n, err)
	}
	if got, _ := s.Meta().Recording(old.ID); got.Tier != meta.TierArchive {
		t.Fatalf("old recording not archived: %s", got.Tier)
	}
	_ = readAll(t, s, old.ID)
	live, err := s.Create(context.Background(), newRecording(time.Now(), meta.FormatGrid))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := live.Write(data[:200_000]); err != nil {
		t.Fatal(err)
	}
	if err := live.Flush(); err != nil {
		t.Fatal(err)
	}
	assertNoClearAudio(t, data, dir, archive)
}

// assertNoClearAudio fails if any 32-byte window of data (sampled every 4
// KiB) appears in any file under the roots. It first proves it can see:
// a planted clear copy must be found.
func assertNoClearAudio(t *testing.T, data []byte, roots ...string) {
	t.Helper()
	planted := t.TempDir()
	if err := os.WriteFile(filepath.Join(planted, "clear.raw"), append([]byte("RIFF"), data[8192:20000]...), 0o600); err != nil {
		t.Fatal(err)
	}
	if found, _ := findClearAudio(t, data, planted); len(found) != 1 {
		t.Fatalf("the search missed a planted clear file: %v", found)
	}
	found, files := findClearAudio(t, data, roots...)
	if len(found) > 0 {
		t.Errorf("clear audio found in %v", found)
	}
	if files < 3 {
		t.Fatalf("searched only %d files: the test would pass on nothing", files)
	}
}

func findClearAudio(t *testing.T, data []byte, roots ...string) (found []string, files int) {
	t.Helper()
	var probes [][]byte
	for off := 0; off+32 <= len(data); off += 4096 {
		probes = append(probes, data[off:off+32])
	}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			for _, pr := range probes {
				if bytes.Contains(b, pr) {
					found = append(found, p)
					return nil
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return found, files
}

func TestMasterKeySources(t *testing.T) {
	t.Run("key file created beside the data directory", func(t *testing.T) {
		base := t.TempDir()
		dir := filepath.Join(base, "data")
		kf := filepath.Join(base, "data.key")
		s := openStore(t, dir, func(c *Config) { c.Keys = KeySource{KeyFile: kf} })
		if len(s.Created) != 1 || s.Created[0] != kf {
			t.Fatalf("Created = %v, want the new key file", s.Created)
		}
		rec := record(t, s, newRecording(time.Now(), meta.FormatWAV), signal(10_000))
		s.Close()
		s2 := openStore(t, dir, func(c *Config) { c.Keys = KeySource{KeyFile: kf} })
		if len(s2.Created) != 0 {
			t.Fatal("existing key file reported as created")
		}
		if !bytes.Equal(readAll(t, s2, rec.ID), signal(10_000)) {
			t.Fatal("not readable after reopen")
		}
	})
	t.Run("key file inside the data directory is refused", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Open(Config{DataDir: dir, Keys: KeySource{KeyFile: filepath.Join(dir, "sub", "master.key")}})
		if !errors.Is(err, ErrKeyPlacement) {
			t.Fatalf("err = %v, want ErrKeyPlacement", err)
		}
	})
	t.Run("wrong master key", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir)
		s.Close()
		_, err := Open(Config{DataDir: dir, Keys: KeySource{Env: otherKey}})
		if !errors.Is(err, keyring.ErrWrongMasterKey) || !strings.Contains(err.Error(), keyring.EnvMasterKey) {
			t.Fatalf("err = %v, want ErrWrongMasterKey naming the source", err)
		}
	})
	t.Run("passphrase", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir, func(c *Config) { c.Keys = KeySource{Passphrase: "a good long passphrase"} })
		rec := record(t, s, newRecording(time.Now(), meta.FormatWAV), signal(5000))
		s.Close()
		if _, err := Open(Config{DataDir: dir, Keys: KeySource{Passphrase: "a good long passphrasf"}}); !errors.Is(err, keyring.ErrWrongMasterKey) {
			t.Fatalf("wrong passphrase: %v", err)
		}
		s2 := openStore(t, dir, func(c *Config) { c.Keys = KeySource{Passphrase: "a good long passphrase"} })
		if !bytes.Equal(readAll(t, s2, rec.ID), signal(5000)) {
			t.Fatal("not readable with the passphrase")
		}
	})
	t.Run("systemd credential wins over the key file", func(t *testing.T) {
		base := t.TempDir()
		creds := filepath.Join(base, "creds")
		os.MkdirAll(creds, 0o700)
		os.WriteFile(filepath.Join(creds, "master-key"), []byte(testKey+"\n"), 0o400)
		s := openStore(t, filepath.Join(base, "d"), func(c *Config) {
			c.Keys = KeySource{CredentialsDir: creds, Credential: "master-key", KeyFile: filepath.Join(base, "unused.key")}
		})
		if !strings.Contains(s.KeySource, "credential") || len(s.Created) != 0 {
			t.Fatalf("source %q, created %v", s.KeySource, s.Created)
		}
	})
	t.Run("none", func(t *testing.T) {
		if _, err := Open(Config{DataDir: t.TempDir()}); !errors.Is(err, ErrNoMasterKey) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir)
	start := time.Now()
	_, err := Open(Config{DataDir: dir, Keys: KeySource{Env: testKey}})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) {
		t.Fatalf("err = %v, want ErrInUse naming this process", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
}

func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	var recs []meta.Recording
	var hashes []string
	for i := range 5 {
		rec := record(t, s, newRecording(time.Now().Add(time.Duration(i)*time.Minute), meta.FormatWAV), signal(20_000+i))
		recs = append(recs, rec)
		raw, _ := os.ReadFile(filepath.Join(s.hotRoot, rec.File.Path))
		sum := sha256.Sum256(raw)
		hashes = append(hashes, hex.EncodeToString(sum[:]))
	}
	if err := s.Delete(context.Background(), recs[4].ID, "admin"); err != nil {
		t.Fatal(err)
	}
	res, err := s.RotateKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Term != 2 || res.Rewrapped != 4 {
		t.Fatalf("rotation: %+v, want term 2 and 4 rewrapped", res)
	}
	s.Close()
	s = openStore(t, dir)
	for i, rec := range recs[:4] {
		got, _ := s.Meta().Recording(rec.ID)
		if got.File.KeyTerm != 2 || bytes.Equal(got.File.WrappedDEK, rec.File.WrappedDEK) {
			t.Errorf("%s not rewrapped: term %d", rec.ID, got.File.KeyTerm)
		}
		raw, _ := os.ReadFile(filepath.Join(s.hotRoot, rec.File.Path))
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != hashes[i] {
			t.Errorf("%s: audio file rewritten by rotation", rec.ID)
		}
		if !bytes.Equal(readAll(t, s, rec.ID), signal(20_000+i)) {
			t.Errorf("%s unreadable after rotation", rec.ID)
		}
	}
	// New recordings use the new term.
	if rec := record(t, s, newRecording(time.Now(), meta.FormatWAV), signal(100)); rec.File.KeyTerm != 2 {
		t.Errorf("new recording under term %d", rec.File.KeyTerm)
	}
}

// TestDeleteCryptoShreds keeps a copy of the file (as a backup or the
// archive would) and checks that after the delete no key in the store can
// open it.
func TestDeleteCryptoShreds(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	rec := record(t, s, newRecording(time.Now(), meta.FormatWAV), signal(50_000))
	path := filepath.Join(s.hotRoot, rec.File.Path)
	backup := filepath.Join(t.TempDir(), "backup.cvr")
	raw, _ := os.ReadFile(path)
	os.WriteFile(backup, raw, 0o600)

	if err := s.Delete(context.Background(), rec.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file still there: %v", err)
	}
	got, err := s.Meta().Recording(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != meta.StatusDeleted || len(got.File.WrappedDEK) != 0 {
		t.Fatalf("tombstone keeps the key: status %s, %d key bytes", got.Status, len(got.File.WrappedDEK))
	}
	if _, err := s.OpenAudio(context.Background(), rec.ID); !errors.Is(err, ErrNoFile) {
		t.Fatalf("open deleted: %v", err)
	}
	var dump bytes.Buffer
	if err := s.Meta().Dump(&dump); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(dump.Bytes(), rec.File.WrappedDEK) || strings.Contains(dump.String(), hex.EncodeToString(rec.File.WrappedDEK)) {
		t.Fatal("the wrapped key survives somewhere in the metadata")
	}
	if s.Stats().Deleted.Load() != 1 {
		t.Error("deletion not counted")
	}
}

func TestCloseSealsOpenRecordings(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	r, err := s.Create(context.Background(), newRecording(time.Now(), meta.FormatWAV))
	if err != nil {
		t.Fatal(err)
	}
	data := signal(70_000)
	r.Write(data)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	got, _ := s.Meta().Recording(r.ID())
	if got.Status != meta.StatusComplete || got.Size != int64(len(data)) {
		t.Fatalf("after Close: status %s size %d", got.Status, got.Size)
	}
	if !bytes.Equal(readAll(t, s, r.ID()), data) {
		t.Fatal("content differs")
	}
}

func TestDiskFullRefusesNewRecordings(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	old := record(t, s, newRecording(time.Now(), meta.FormatWAV), signal(10_000))
	s.cfg.MinFreeBytes = 1 << 62 // more than any disk has
	if _, err := s.Create(context.Background(), newRecording(time.Now(), meta.FormatWAV)); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("err = %v, want ErrDiskFull", err)
	}
	if !s.Stats().DiskFull.Load() || s.Stats().DiskFullErrors.Load() != 1 {
		t.Error("disk full not reported in stats")
	}
	if !bytes.Equal(readAll(t, s, old.ID), signal(10_000)) {
		t.Fatal("stored recording damaged")
	}
}

// TestDiskFullMidWrite runs the store on a real 4 MiB tmpfs and writes
// until it is full: the write fails with ErrDiskFull, the recording keeps
// every chunk that was written whole and is marked recovered, and the
// recordings stored before are untouched.
func TestDiskFullMidWrite(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root; CI runs as root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	s := openStore(t, dir, func(c *Config) { c.MinFreeBytes = 0 })
	first := record(t, s, newRecording(time.Now(), meta.FormatWAV), signal(500_000))

	r, err := s.Create(context.Background(), newRecording(time.Now(), meta.FormatWAV))
	if err != nil {
		t.Fatal(err)
	}
	data := signal(8 << 20)
	var written int
	var werr error
	for written < len(data) {
		n, err := r.Write(data[written : written+4096])
		written += n
		if err != nil {
			werr = err
			break
		}
		if written%(256<<10) == 0 {
			if err := r.Flush(); err != nil {
				werr = err
				break
			}
		}
	}
	if !errors.Is(werr, ErrDiskFull) {
		t.Fatalf("writing past the disk: %v after %d bytes, want ErrDiskFull", werr, written)
	}
	got, err := r.Close(context.Background(), Final{})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Close after a full disk: %v", err)
	}
	if got.Status != meta.StatusRecovered || got.Size == 0 || got.Size > int64(written) {
		t.Fatalf("cut-off recording: status %s size %d (wrote %d)", got.Status, got.Size, written)
	}
	if b := readAll(t, s, got.ID); !bytes.Equal(b, data[:len(b)]) {
		t.Fatal("kept part is not a prefix of what was written")
	}
	if !bytes.Equal(readAll(t, s, first.ID), signal(500_000)) {
		t.Fatal("a recording stored before the disk filled was damaged")
	}
	if s.Stats().DiskFullErrors.Load() == 0 {
		t.Error("no disk-full count")
	}
	t.Logf("disk full after %d bytes; kept %d", written, got.Size)
}

// The crash test runs a writer in a child process (this test binary,
// re-executed) and kills it with SIGKILL while it records.
const crashChildEnv = "CALLVAULT_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild records: one call sealed, one upload and two calls left open;
// after each flush it prints the size flushed, then keeps writing until killed.
func crashChild(dir string) {
	s, err := Open(Config{DataDir: dir, Keys: KeySource{Env: testKey}, FlushInterval: 50 * time.Millisecond})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ctx := context.Background()
	data := signal(4 << 20)
	sealed, _ := s.Create(ctx, newRecording(time.Now(), meta.FormatWAV))
	sealed.Write(data[:100_000])
	sealed.Close(ctx, Final{})
	fmt.Println("sealed", sealed.ID())
	up := newRecording(time.Now(), meta.FormatWAV)
	up.Source = meta.SourceUpload
	upload, _ := s.Create(ctx, up)
	upload.Write(data[:30_000])
	upload.Flush()
	fmt.Println("upload", upload.ID())
	a, _ := s.Create(ctx, newRecording(time.Now(), meta.FormatWAV))
	b, _ := s.Create(ctx, newRecording(time.Now(), meta.FormatWAV))
	fmt.Println("open", a.ID(), b.ID())
	off := 0
	for i := 0; ; i++ {
		n := 1000 + i%777
		if off+n > len(data) {
			off = 0
		}
		a.Write(data[off : off+n])
		b.Write(data[off : off+n])
		off += n
		if i%40 == 0 {
			a.Flush()
			fmt.Println("flushed", off)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCrashRecoveryAfterKill9(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var sealedID, uploadID string
	var openIDs []string
	var flushed int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch f[0] {
		case "error":
			t.Fatal(sc.Text())
		case "sealed":
			sealedID = f[1]
		case "upload":
			uploadID = f[1]
		case "open":
			openIDs = f[1:]
		case "flushed":
			flushed, _ = strconv.Atoi(f[1])
		}
		if flushed > 300_000 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	go io.Copy(io.Discard, out)
	if len(openIDs) != 2 || sealedID == "" || uploadID == "" {
		t.Fatalf("child output incomplete: %v %q %q", openIDs, sealedID, uploadID)
	}

	s := openStore(t, dir)
	data := signal(4 << 20)
	if got := readAll(t, s, sealedID); !bytes.Equal(got, data[:100_000]) {
		t.Fatal("the recording sealed before the crash changed")
	}
	if rec, _ := s.Meta().Recording(sealedID); rec.Status != meta.StatusComplete {
		t.Fatalf("sealed recording status %s", rec.Status)
	}
	for _, id := range openIDs {
		rec, err := s.Meta().Recording(id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status != meta.StatusRecovered {
			t.Fatalf("%s: status %s, want recovered", id, rec.Status)
		}
		got := readAll(t, s, id)
		if int64(len(got)) != rec.Size {
			t.Errorf("%s: size %d in metadata, %d readable", id, rec.Size, len(got))
		}
		// The writes cycle through data in pieces; rebuild what was written.
		var want []byte
		off := 0
		for i := 0; len(want) < len(got); i++ {
			n := 1000 + i%777
			if off+n > len(data) {
				off = 0
			}
			want = append(want, data[off:off+n]...)
			off += n
		}
		if !bytes.Equal(got, want[:len(got)]) {
			t.Fatalf("%s: recovered audio is not what was written", id)
		}
		if id == openIDs[0] && len(got) < flushed {
			t.Fatalf("%s: recovered %d bytes, but %d were flushed before the kill", id, len(got), flushed)
		}
		t.Logf("%s recovered with %d bytes (%d flushed before kill -9)", id, len(got), flushed)
	}
	if rec, err := s.Meta().Recording(uploadID); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("cut-off upload: %v %v, want it gone without a trace", rec.Status, err)
	}
	if s.Stats().Recovered.Load() != 2 {
		t.Errorf("recovered count %d", s.Stats().Recovered.Load())
	}
}

// TestFlushBatchesSyncs: the flusher seals every open recording's chunk and
// makes them durable with one syncfs, not one fsync per recording; a
// flush with nothing new written syncs nothing.
func TestFlushBatchesSyncs(t *testing.T) {
	s := openStore(t, t.TempDir(), func(c *Config) { c.FlushInterval = time.Hour })
	var recs []*Recorder
	sizes := map[string]int64{}
	for i := range 5 {
		r, err := s.Create(context.Background(), newRecording(time.Now().Add(time.Duration(i)*time.Millisecond), meta.FormatWAV), ChunkSize(16<<10))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Write(signal(1000)); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(r.path)
		if err != nil {
			t.Fatal(err)
		}
		sizes[r.ID()] = fi.Size()
		recs = append(recs, r)
	}
	before := s.stats.Syncs.Load()
	s.flushAll()
	if got := s.stats.Syncs.Load() - before; got != 1 {
		t.Errorf("flush of 5 recordings made %d sync calls, want 1 syncfs", got)
	}
	for _, r := range recs {
		fi, err := os.Stat(r.path)
		if err != nil {
			t.Fatal(err)
		}
		// 1,000 bytes of audio in a sealed chunk: length, ciphertext, tag.
		if grew := fi.Size() - sizes[r.ID()]; grew != 4+1000+16 {
			t.Errorf("%s grew by %d bytes on flush, want one sealed chunk of 1,020", r.ID(), grew)
		}
	}
	before = s.stats.Syncs.Load()
	s.flushAll()
	if got := s.stats.Syncs.Load() - before; got != 0 {
		t.Errorf("flush with nothing new made %d sync calls", got)
	}
	if _, err := recs[0].Write(signal(10)); err != nil {
		t.Fatal(err)
	}
	s.flushAll()
	if got := s.stats.Syncs.Load() - before; got != 1 {
		t.Errorf("flush of one recording made %d sync calls, want 1 fsync", got)
	}
}

// TestSealFixesAudioHash: Close records the SHA-256 of the content as
// written (what an export will carry) in the metadata and in the audit
// chain.
func TestSealFixesAudioHash(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	r, err := s.Create(ctx, newRecording(time.Now(), meta.FormatWAV))
	if err != nil {
		t.Fatal(err)
	}
	data := signal(150_000)
	r.Write(data)
	rec, err := r.Close(ctx, Final{})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	if rec.File.AudioSHA256 != want {
		t.Fatalf("audio hash %q, want %q", rec.File.AudioSHA256, want)
	}
	page, err := s.Meta().SearchAudit(meta.AuditQuery{Recording: r.ID(), Action: meta.AuditSeal})
	if err != nil || len(page.Entries) != 1 || !strings.Contains(page.Entries[0].Detail, want) || !strings.Contains(page.Entries[0].Detail, rec.File.SHA256) {
		t.Fatalf("seal audit entry: %+v %v", page.Entries, err)
	}
}

// TestSealCommitsCallersAudit: the entries a caller gives Close (an
// upload's) are committed with the seal, right after the store's own seal
// entry, in one transaction; and a seal that crosses a multiple of
// CheckpointEvery gets its signed checkpoint, as separate appends did.
func TestSealCommitsCallersAudit(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	for i := range CheckpointEvery + 1 {
		r, err := s.Create(ctx, newRecording(time.Now(), meta.FormatWAV))
		if err != nil {
			t.Fatal(err)
		}
		r.Write(signal(1000))
		up := meta.AuditEntry{Time: time.Now(), Actor: "uploader", Action: meta.AuditUpload, Recording: r.ID(), Detail: fmt.Sprintf("upload %d", i)}
		if _, err := r.Close(ctx, Final{Audit: []meta.AuditEntry{up}}); err != nil {
			t.Fatal(err)
		}
		page, err := s.Meta().SearchAudit(meta.AuditQuery{Recording: r.ID()})
		if err != nil || len(page.Entries) != 2 {
			t.Fatalf("audit entries of %s: %+v %v", r.ID(), page.Entries, err)
		}
		seal, upload := page.Entries[0], page.Entries[1]
		if seal.Seq > upload.Seq {
			seal, upload = upload, seal
		}
		if seal.Action != meta.AuditSeal || upload.Action != meta.AuditUpload || upload.Actor != "uploader" || upload.Seq != seal.Seq+1 {
			t.Fatalf("want the seal entry then the upload's, consecutive: %+v, %+v", seal, upload)
		}
	}
	if _, _, last, err := s.Meta().AuditHead(); err != nil || last == 0 {
		t.Fatalf("no checkpoint after %d entries from seals (last checkpoint %d, %v)", 2*(CheckpointEvery+1), last, err)
	}
}

// slowCommitter holds every CreateRecording until release is closed and
// refuses it when refuse is set; other commands pass straight through.
type slowCommitter struct {
	inner   Committer
	release chan struct{}
	refuse  bool
}

func (c *slowCommitter) Commit(ctx context.Context, cmd []byte) (meta.Result, error) {
	if meta.CommandType(cmd[0]) == meta.TypeCreateRecording {
		<-c.release
		if c.refuse {
			return meta.Result{}, fmt.Errorf("%w: refused by the test", meta.ErrInvalid)
		}
	}
	return c.inner.Commit(ctx, cmd)
}
