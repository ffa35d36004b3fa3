package recfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// testRand is deterministic so that failures reproduce.
func testRand(seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

func testDEK(seed uint64) []byte {
	dek := make([]byte, KeySize)
	io.ReadFull(testRand(seed+1000), dek)
	return dek
}

var testID = [16]byte{0x01, 0x90, 0xf0, 0xa1, 0x7c, 0x3e, 0x7d, 0x2a, 0x9b, 0x1e, 0x4f, 0x5a, 0x6b, 0x7c, 0x8d, 0x9e}

// pattern returns n deterministic pseudo-random bytes.
func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(testRand(seed), b)
	return b
}

// step is one writer action: write some bytes, or flush.
type step struct {
	write int
	flush bool
}

// writeFile writes data through a Writer following steps (remaining data is
// written at the end) and closes it. It returns the path and the seal hash.
func writeFile(t testing.TB, dir string, chunkSize int, dek, data []byte, steps ...step) (string, [32]byte) {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("rec-%d.cvr", rand.Int64()))
	// A fresh nonce prefix per file, as production has: two files written
	// with the same DEK and data must still differ.
	w, err := Create(path, Header{RecordingID: testID, ChunkSize: chunkSize}, dek, testRand(rand.Uint64()))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.flush {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		n := min(s.write, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return path, sum
}

func readAll(t testing.TB, r *Reader) []byte {
	t.Helper()
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRoundTripSizes(t *testing.T) {
	dek := testDEK(1)
	sizes := []int{0, 1, DefaultChunkSize - 1, DefaultChunkSize, DefaultChunkSize + 1, 2*DefaultChunkSize + 17, 5<<20 + 3}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := pattern(uint64(size), size)
			// Write in irregular pieces, as frames arrive.
			var steps []step
			rng := rand.New(rand.NewPCG(uint64(size), 1))
			for left := size; left > 0; {
				n := 1 + rng.IntN(9000)
				steps = append(steps, step{write: n})
				left -= n
			}
			path, sum := writeFile(t, t.TempDir(), 0, dek, data, steps...)

			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if documentedSealHash(t, raw) != sum {
				t.Fatal("seal hash is not the documented hash of the file")
			}
			fullChunks := size / DefaultChunkSize
			wantLen := HeaderSize + size + (fullChunks+1)*Overhead
			if len(raw) != wantLen {
				t.Fatalf("file is %d bytes, want %d", len(raw), wantLen)
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("file mode %04o, want 0600", fi.Mode().Perm())
			}

			r, err := Open(path, dek)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			h := r.Header()
			if !r.Complete() || r.Recovered() || r.Size() != int64(size) || h.RecordingID != testID ||
				h.ChunkSize != DefaultChunkSize || h.Version != Version || h.KeyID != KeyID(dek) {
				t.Fatalf("complete %v recovered %v size %d header %+v", r.Complete(), r.Recovered(), r.Size(), h)
			}
			if got := readAll(t, r); !bytes.Equal(got, data) {
				t.Fatal("sequential read differs")
			}
			if err := r.Verify(); err != nil {
				t.Fatal(err)
			}
			// Random access, including reads that span chunks and run past the end.
			for range 300 {
				off := rng.Int64N(int64(size) + 2)
				buf := make([]byte, rng.IntN(3*DefaultChunkSize))
				n, err := r.ReadAt(buf, off)
				want := data[min(off, int64(size)):]
				want = want[:min(len(want), len(buf))]
				if n != len(want) || !bytes.Equal(buf[:n], want) {
					t.Fatalf("ReadAt(%d bytes, %d) = %d bytes, want %d equal bytes", len(buf), off, n, len(want))
				}
				if n < len(buf) && err != io.EOF {
					t.Fatalf("short ReadAt returned %v, want io.EOF", err)
				}
				if n == len(buf) && err != nil {
					t.Fatalf("full ReadAt returned %v", err)
				}
			}
			if _, err := r.ReadAt(make([]byte, 1), -1); !errors.Is(err, ErrOffset) {
				t.Fatalf("negative offset: %v", err)
			}
		})
	}
}

func TestFlushAvailableSize(t *testing.T) {
	dek := testDEK(2)
	path := filepath.Join(t.TempDir(), "r")
	w, err := Create(path, Header{RecordingID: testID, ChunkSize: 100}, dek, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(3, 1000)
	check := func(avail int, size int64, fileLen int64) {
		t.Helper()
		if w.Available() != avail || w.Size() != size {
			t.Fatalf("Available %d Size %d, want %d %d", w.Available(), w.Size(), avail, size)
		}
		fi, _ := os.Stat(path)
		if fi.Size() != fileLen {
			t.Fatalf("file is %d bytes, want %d", fi.Size(), fileLen)
		}
	}
	check(100, 0, HeaderSize)
	w.Write(data[:30])
	check(70, 30, HeaderSize) // buffered, nothing written
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	check(100, 30, HeaderSize+30+Overhead) // partial chunk sealed
	if err := w.Flush(); err != nil {      // nothing buffered: no empty chunk
		t.Fatal(err)
	}
	check(100, 30, HeaderSize+30+Overhead)
	w.Write(data[30:250])
	check(80, 250, HeaderSize+30+200+3*Overhead) // two full chunks written, 20 bytes buffered
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, dek)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Chunks() != 4 || r.Size() != 250 || !bytes.Equal(readAll(t, r), data[:250]) {
		t.Fatalf("chunks %d size %d", r.Chunks(), r.Size())
	}
}

func TestHeaderLayout(t *testing.T) {
	dek := testDEK(3)
	path := filepath.Join(t.TempDir(), "r")
	w, err := Create(path, Header{RecordingID: testID}, dek, testRand(7))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var prefix [4]byte
	io.ReadFull(testRand(7), prefix[:])
	id := KeyID(dek)
	switch {
	case string(raw[0:6]) != "CVREC\x00", raw[6] != 2, raw[7] != 0:
		t.Fatalf("magic/version: % x", raw[0:8])
	case !bytes.Equal(raw[8:24], testID[:]):
		t.Fatal("recording ID not at 8")
	case !bytes.Equal(raw[24:32], id[:]):
		t.Fatal("key ID not at 24")
	case !bytes.Equal(raw[32:36], prefix[:]):
		t.Fatal("nonce prefix not at 32")
	case binary.BigEndian.Uint32(raw[36:40]) != DefaultChunkSize:
		t.Fatal("chunk size not at 36")
	case binary.BigEndian.Uint32(raw[44:48]) != crc32.Checksum(raw[:44], crc32.MakeTable(crc32.Castagnoli)):
		t.Fatal("CRC-32C not at 44")
	case binary.BigEndian.Uint32(raw[48:52]) != 1 || len(raw) != HeaderSize+1+Overhead:
		t.Fatal("single chunk of length 1 not at 48")
	}
	sum := sha256.Sum256(append([]byte("callvault/recfile/key-id/v1"), dek...))
	if !bytes.Equal(id[:], sum[:8]) {
		t.Fatal("key ID is not the documented hash")
	}
}

func TestPlaintextNotInFile(t *testing.T) {
	secret := []byte("4111-1111-1111-1111 card number spoken by the caller ")
	data := bytes.Repeat(secret, 20000) // ~1 MiB of a known pattern
	path, _ := writeFile(t, t.TempDir(), 0, testDEK(4), data)
	raw, _ := os.ReadFile(path)
	for _, probe := range [][]byte{secret[:16], secret[20:36], []byte("card number")} {
		if bytes.Contains(raw, probe) {
			t.Fatalf("file contains plaintext %q", probe)
		}
	}
	// A repeating plaintext must not give repeating ciphertext either.
	body := raw[HeaderSize+lenSize:]
	if bytes.Contains(body[len(secret):], body[:16]) {
		t.Fatal("ciphertext repeats with the plaintext period")
	}
}

func TestOpenErrors(t *testing.T) {
	dek := testDEK(5)
	dir := t.TempDir()
	path, _ := writeFile(t, dir, 0, dek, pattern(5, 1000))
	if _, err := Open(path, testDEK(6)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := Open(path, dek[:16]); !errors.Is(err, ErrKeySize) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing"), dek); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	notRec := filepath.Join(dir, "wav")
	os.WriteFile(notRec, []byte("RIFF\x00\x00\x00\x00WAVEfmt and some more bytes to pass the header length"), 0o600)
	if _, err := Open(notRec, dek); !errors.Is(err, ErrNotRecording) {
		t.Fatalf("WAV file: %v", err)
	}
	raw, _ := os.ReadFile(path)
	v3 := bytes.Clone(raw)
	v3[6] = 3
	if _, err := NewReader(bytes.NewReader(v3), int64(len(v3)), dek); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 3: %v", err)
	}
	if _, err := NewReader(bytes.NewReader(raw), -1, dek); err == nil {
		t.Fatal("negative size accepted")
	}
	// A header with a valid checksum but bad fields (as a buggy writer or a
	// forger would make) is refused too.
	for name, mutate := range map[string]func(b []byte){
		"reserved byte":    func(b []byte) { b[7] = 1 },
		"reserved word":    func(b []byte) { b[41] = 1 },
		"tiny chunk size":  func(b []byte) { binary.BigEndian.PutUint32(b[36:40], 8) },
		"huge chunk size":  func(b []byte) { binary.BigEndian.PutUint32(b[36:40], 1<<20) },
		"other recording":  func(b []byte) { b[8] ^= 1 },
		"other nonce pref": func(b []byte) { b[33] ^= 1 },
	} {
		b := bytes.Clone(raw)
		mutate(b)
		binary.BigEndian.PutUint32(b[44:48], crc32.Checksum(b[:44], crc32.MakeTable(crc32.Castagnoli)))
		r, err := NewReader(bytes.NewReader(b), int64(len(b)), dek)
		if err == nil {
			err = r.Verify()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

func TestCreateErrors(t *testing.T) {
	dek := testDEK(7)
	dir := t.TempDir()
	path := filepath.Join(dir, "r")
	if _, err := Create(path, Header{}, dek[:31], testRand(1)); !errors.Is(err, ErrKeySize) {
		t.Fatalf("short DEK: %v", err)
	}
	for _, cs := range []int{-1, MinChunkSize - 1, DefaultChunkSize + 1} {
		if _, err := Create(path, Header{ChunkSize: cs}, dek, testRand(1)); !errors.Is(err, ErrChunkSize) {
			t.Fatalf("chunk size %d: %v", cs, err)
		}
	}
	if _, err := Create(path, Header{}, dek, io.LimitReader(testRand(1), 2)); err == nil {
		t.Fatal("Create without randomness succeeded")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("failed Create left a file")
	}
	w, err := Create(path, Header{}, dek, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(path, Header{}, dek, testRand(1)); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("existing file: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("Abort left the file")
	}
	if _, err := Create(filepath.Join(dir, "no", "such", "dir"), Header{}, dek, testRand(1)); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
}

func TestWriterLifecycle(t *testing.T) {
	dek := testDEK(8)
	path := filepath.Join(t.TempDir(), "r")
	w, err := Create(path, Header{}, dek, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("hello"))
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err := w.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if _, err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Close after Close: %v", err)
	}
	if err := w.Abort(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Abort after Close: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal("Abort after Close removed the sealed file")
	}

	// A failed write makes the Writer unusable until Abort.
	path2 := filepath.Join(t.TempDir(), "r2")
	w2, err := Create(path2, Header{ChunkSize: MinChunkSize}, dek, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	w2.f.Close() // the disk goes away under the writer
	n, err := w2.Write(make([]byte, 3*MinChunkSize))
	if err == nil || n != 0 {
		t.Fatalf("Write to a closed file: %d, %v", n, err)
	}
	if err2 := w2.Flush(); err2 != err {
		t.Fatalf("error is not sticky: %v then %v", err, err2)
	}
	if _, err2 := w2.Close(); err2 != err {
		t.Fatalf("Close after failure: %v", err2)
	}
	if err := w2.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path2); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("Abort left the failed file")
	}
}

func TestWriteDoesNotAllocate(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "r"), Header{}, testDEK(9), testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	frame := pattern(1, 1000) // crosses a chunk boundary every 66 writes
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := w.Write(frame); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Write allocates %v times per call", allocs)
	}
}

func TestReadAtCachedDoesNotAllocate(t *testing.T) {
	dek := testDEK(10)
	path, _ := writeFile(t, t.TempDir(), 0, dek, pattern(2, 3*DefaultChunkSize))
	r, err := Open(path, dek)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 4096)
	var off int64
	allocs := testing.AllocsPerRun(1000, func() {
		// Walks through every chunk: decrypting a new chunk allocates nothing either.
		off = (off + 4096*7) % (r.Size() - 4096)
		if _, err := r.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadAt allocates %v times per call", allocs)
	}
}

func TestConcurrentReadAt(t *testing.T) {
	dek := testDEK(11)
	data := pattern(11, 4*DefaultChunkSize+5)
	path, _ := writeFile(t, t.TempDir(), 0, dek, data)
	r, err := Open(path, dek)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			buf := make([]byte, 5000)
			for range 200 {
				off := rng.Int64N(int64(len(data) - len(buf)))
				if _, err := r.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
					errs <- fmt.Errorf("goroutine %d at %d: %v", g, off, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestSealThenSyncFile: Seal writes the chunk without fsyncing and reports
// once that a sync is owed; SyncFile after Close says the file is closed.
func TestSealThenSyncFile(t *testing.T) {
	dek := testDEK(2)
	path := filepath.Join(t.TempDir(), "r")
	w, err := Create(path, Header{RecordingID: testID, ChunkSize: 100}, dek, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	if need, err := w.Seal(); err != nil || need {
		t.Fatalf("Seal of a fresh file: need %v err %v, want false (Create fsynced the header)", need, err)
	}
	w.Write(pattern(3, 30))
	need, err := w.Seal()
	if err != nil || !need {
		t.Fatalf("Seal after a write: need %v err %v", need, err)
	}
	if fi, _ := os.Stat(path); fi.Size() != HeaderSize+30+Overhead {
		t.Fatalf("after Seal the file is %d bytes, want the chunk written", fi.Size())
	}
	if need, _ := w.Seal(); need {
		t.Fatal("second Seal with nothing new still owes a sync")
	}
	if err := w.SyncFile(); err != nil {
		t.Fatal(err)
	}
	w.Write(pattern(3, 250)) // fills and writes two chunks by itself
	if need, _ := w.Seal(); !need {
		t.Fatal("chunks written by Write do not count as owing a sync")
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.SyncFile(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("SyncFile after Close: %v, want os.ErrClosed", err)
	}
}
