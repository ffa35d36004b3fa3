package recfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// smallFile writes 300 bytes with 64-byte chunks and a Flush after 100, so the
// file has full chunks, a partial flushed chunk and a partial last chunk:
// lengths 64, 36, 64, 64, 64, 8 (last).
func smallFile(t testing.TB, dek []byte) (raw, data []byte) {
	t.Helper()
	data = pattern(99, 300)
	path, _ := writeFile(t, t.TempDir(), MinChunkSize, dek, data, step{write: 100}, step{flush: true})
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw, data
}

// chunkOffsets returns the file offset of every chunk of a valid file.
func chunkOffsets(t testing.TB, raw, dek []byte) []int64 {
	t.Helper()
	r, err := NewReader(bytes.NewReader(raw), int64(len(raw)), dek)
	if err != nil {
		t.Fatal(err)
	}
	offs := make([]int64, len(r.chunks))
	for i, c := range r.chunks {
		offs[i] = c.off
	}
	return append(offs, int64(len(raw)))
}

// openAndVerify opens raw and decrypts every chunk, returning the first error.
func openAndVerify(raw, dek []byte, opts ...OpenOption) (*Reader, error) {
	r, err := NewReader(bytes.NewReader(raw), int64(len(raw)), dek, opts...)
	if err != nil {
		return nil, err
	}
	return r, r.Verify()
}

func TestSmallFileShape(t *testing.T) {
	dek := testDEK(30)
	raw, data := smallFile(t, dek)
	r, err := openAndVerify(raw, dek)
	if err != nil {
		t.Fatal(err)
	}
	var lens []uint32
	for _, c := range r.chunks {
		lens = append(lens, c.n)
	}
	if fmt.Sprint(lens) != "[64 36 64 64 64 8]" || !bytes.Equal(readAll(t, r), data) {
		t.Fatalf("chunk lengths %v", lens)
	}
}

func TestFlipAnyByte(t *testing.T) {
	dek := testDEK(31)
	raw, _ := smallFile(t, dek)
	for i := range raw {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(raw)
			b[i] ^= mask
			_, err := openAndVerify(b, dek)
			want := ErrCorrupt
			switch {
			case i < 6:
				want = ErrNotRecording
			case i == 6:
				want = ErrVersion
			}
			if !errors.Is(err, want) {
				t.Fatalf("byte %d ^ %#x: got %v, want %v", i, mask, err, want)
			}
		}
	}
}

// TestFlipBytesOfLargeFile flips the header, every length field and a spread
// of ciphertext bytes of a file with default-size chunks.
func TestFlipBytesOfLargeFile(t *testing.T) {
	dek := testDEK(32)
	data := pattern(32, 3*DefaultChunkSize+500)
	path, _ := writeFile(t, t.TempDir(), 0, dek, data)
	raw, _ := os.ReadFile(path)
	var positions []int
	for i := range HeaderSize {
		positions = append(positions, i)
	}
	for _, off := range chunkOffsets(t, raw, dek) {
		for i := range 4 + 3 {
			if p := int(off) + i; p < len(raw) {
				positions = append(positions, p)
			}
		}
	}
	for p := HeaderSize; p < len(raw); p += 997 {
		positions = append(positions, p)
	}
	positions = append(positions, len(raw)-1, len(raw)-17)
	for _, i := range positions {
		b := bytes.Clone(raw)
		b[i] ^= 0x04
		_, err := openAndVerify(b, dek)
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotRecording) && !(i == 6 && errors.Is(err, ErrVersion)) {
			t.Fatalf("byte %d: got %v, want ErrCorrupt", i, err)
		}
	}
}

func TestReorderMoveDropChunks(t *testing.T) {
	dek := testDEK(33)
	raw, data := smallFile(t, dek)
	offs := chunkOffsets(t, raw, dek) // 7 entries: 6 chunks and the end
	chunkBytes := func(b []byte, offs []int64, i int) []byte { return b[offs[i]:offs[i+1]] }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	// Chunks 2 and 3 have the same length; swapping them keeps every length
	// field valid.
	swapped := join(raw[:offs[2]], chunkBytes(raw, offs, 3), chunkBytes(raw, offs, 2), raw[offs[4]:])
	if _, err := openAndVerify(swapped, dek); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk 2") {
		t.Errorf("swapped chunks: %v", err)
	}

	// The same recording written twice with the same DEK (which never
	// happens) still differs in the random nonce prefix, so chunks do not move.
	other, _ := smallFile(t, dek)
	oOffs := chunkOffsets(t, other, dek)
	moved := join(raw[:offs[2]], chunkBytes(other, oOffs, 2), raw[offs[3]:])
	if _, err := openAndVerify(moved, dek); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk 2") {
		t.Errorf("chunk from another file: %v", err)
	}
	movedLast := join(raw[:offs[5]], chunkBytes(other, oOffs, 5))
	if _, err := openAndVerify(movedLast, dek); !errors.Is(err, ErrCorrupt) {
		t.Errorf("last chunk from another file: %v", err)
	}

	droppedMiddle := join(raw[:offs[2]], raw[offs[3]:])
	if _, err := openAndVerify(droppedMiddle, dek); !errors.Is(err, ErrCorrupt) {
		t.Errorf("dropped middle chunk: %v", err)
	}
	duplicated := join(raw[:offs[3]], chunkBytes(raw, offs, 2), raw[offs[3]:])
	if _, err := openAndVerify(duplicated, dek); !errors.Is(err, ErrCorrupt) {
		t.Errorf("duplicated chunk: %v", err)
	}
	lastTwice := join(raw, chunkBytes(raw, offs, 5))
	if _, err := openAndVerify(lastTwice, dek); !errors.Is(err, ErrCorrupt) {
		t.Errorf("last chunk appended twice: %v", err)
	}
	trailing := join(raw, []byte{0, 0})
	if _, err := openAndVerify(trailing, dek); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "after the last chunk") {
		t.Errorf("bytes after the last chunk: %v", err)
	}

	// Dropping the last chunk is a cut-off, not an accident to ignore.
	droppedLast := raw[:offs[5]]
	if _, err := openAndVerify(droppedLast, dek); !errors.Is(err, ErrTruncated) {
		t.Errorf("dropped last chunk: %v", err)
	}
	r, err := openAndVerify(droppedLast, dek, AllowTruncated())
	if err != nil || r.Complete() || r.Size() != 292 || !bytes.Equal(readAll(t, r), data[:292]) {
		t.Errorf("dropped last chunk with AllowTruncated: %v complete %v size %d", err, r != nil && r.Complete(), r.Size())
	}
}

// TestTruncateAtEveryOffset cuts the small file at every length: Open says
// ErrTruncated, AllowTruncated gives the complete chunks before the cut, and
// Recover turns it into a complete file holding exactly that prefix.
func TestTruncateAtEveryOffset(t *testing.T) {
	dek := testDEK(34)
	raw, data := smallFile(t, dek)
	offs := chunkOffsets(t, raw, dek)
	dir := t.TempDir()
	for cut := 0; cut < len(raw); cut++ {
		b := raw[:cut]
		if _, err := openAndVerify(b, dek); !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d: got %v, want ErrTruncated", cut, err)
		}
		// The plaintext that survives: whole chunks before the cut.
		keptChunks, kept := 0, 0
		for i := 0; i+1 < len(offs) && offs[i+1] <= int64(cut); i++ {
			keptChunks++
			kept += int(offs[i+1]-offs[i]) - Overhead
		}
		path := filepath.Join(dir, fmt.Sprintf("cut-%d", cut))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := Recover(path, dek)
		if cut < HeaderSize {
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("Recover at %d: got %v, want ErrTruncated", cut, err)
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, b) {
				t.Fatalf("Recover at %d changed a file it refused", cut)
			}
			continue
		}
		r, err := openAndVerify(b, dek, AllowTruncated())
		if err != nil || r.Complete() || r.Size() != int64(kept) || !bytes.Equal(readAll(t, r), data[:kept]) {
			t.Fatalf("cut at %d with AllowTruncated: %v, size %d want %d", cut, err, r.Size(), kept)
		}
		if err != nil {
			t.Fatalf("Recover at %d: %v", cut, err)
		}
		if res.AlreadyComplete || res.KeptChunks != keptChunks || res.KeptBytes != int64(kept) ||
			res.DroppedBytes != int64(cut)-offs[keptChunks] || (res.DroppedBytes > 0) != (res.DroppedChunks > 0) {
			t.Fatalf("Recover at %d: %+v, want %d chunks %d bytes kept", cut, res, keptChunks, kept)
		}
		rec, _ := os.ReadFile(path)
		if documentedSealHash(t, rec) != res.SealHash {
			t.Fatalf("Recover at %d: seal hash is not the file's", cut)
		}
		r, err = openAndVerify(rec, dek)
		if err != nil || !r.Complete() || !r.Recovered() || !bytes.Equal(readAll(t, r), data[:kept]) {
			t.Fatalf("recovered file at %d: %v", cut, err)
		}
		// A second Recover leaves the file as it is.
		res2, err := Recover(path, dek)
		again, _ := os.ReadFile(path)
		if err != nil || !res2.AlreadyComplete || !bytes.Equal(again, rec) || res2.SealHash != res.SealHash || res2.KeptBytes != int64(kept) {
			t.Fatalf("second Recover at %d: %+v, %v", cut, res2, err)
		}
	}
}

func TestRecoverCompleteFileUnchanged(t *testing.T) {
	dek := testDEK(35)
	data := pattern(35, 2*DefaultChunkSize+9)
	path, sum := writeFile(t, t.TempDir(), 0, dek, data)
	before, _ := os.ReadFile(path)
	res, err := Recover(path, dek)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if !res.AlreadyComplete || res.SealHash != sum || !bytes.Equal(before, after) || res.KeptBytes != int64(len(data)) || res.KeptChunks != 3 {
		t.Fatalf("%+v", res)
	}
}

func TestRecoverRefuses(t *testing.T) {
	dek := testDEK(36)
	raw, _ := smallFile(t, dek)
	dir := t.TempDir()
	path := filepath.Join(dir, "r")
	os.WriteFile(path, raw[:200], 0o600)
	if _, err := Recover(path, testDEK(37)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	hdr := bytes.Clone(raw[:200])
	hdr[10] ^= 1
	os.WriteFile(path, hdr, 0o600)
	if _, err := Recover(path, dek); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged header: %v", err)
	}
	os.WriteFile(path, []byte("definitely not a recording, but long enough to hold a header......"), 0o600)
	if _, err := Recover(path, dek); !errors.Is(err, ErrNotRecording) {
		t.Fatalf("not a recording: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.HasPrefix(now, []byte("definitely")) {
		t.Fatal("Recover changed a file it refused")
	}
	if _, err := Recover(filepath.Join(dir, "missing"), dek); err == nil {
		t.Fatal("Recover of a missing file succeeded")
	}
}

// TestRecoverZeroTail: after a power cut some file systems show the file's
// new length with zeros where the data never arrived. Open calls it corrupt;
// Recover cuts the zeros.
func TestRecoverZeroTail(t *testing.T) {
	dek := testDEK(38)
	raw, data := smallFile(t, dek)
	offs := chunkOffsets(t, raw, dek)
	b := append(bytes.Clone(raw[:offs[3]]), make([]byte, 100)...)
	if _, err := openAndVerify(b, dek); err == nil {
		t.Fatal("zero tail accepted")
	}
	path := filepath.Join(t.TempDir(), "r")
	os.WriteFile(path, b, 0o600)
	res, err := Recover(path, dek)
	if err != nil || res.KeptBytes != 164 || res.DroppedBytes != 100 {
		t.Fatalf("%+v, %v", res, err)
	}
	r, err := Open(path, dek)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !bytes.Equal(readAll(t, r), data[:164]) {
		t.Fatal("recovered content differs")
	}
}

const crashEnv = "RECFILE_CRASH_HELPER_PATH"

// TestCrashHelper is the child process of TestCrashKill9. It writes and
// flushes, writes more without flushing, reports, and waits to be killed.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestCrashKill9; runs only when " + crashEnv + " is set")
	}
	data := pattern(40, 250000)
	w, err := Create(path, Header{RecordingID: testID}, testDEK(40), testRand(40))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	write := func(b []byte) {
		for len(b) > 0 {
			n := min(len(b), 160) // 20 ms of G.711
			if _, err := w.Write(b[:n]); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			b = b[n:]
		}
	}
	write(data[:150000])
	if err := w.Flush(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	// One more full chunk reaches the kernel, the rest stays in the buffer.
	write(data[150000:250000])
	fmt.Println("ready")
	select {} // wait for SIGKILL
}

// TestCrashKill9 kills a writing process with SIGKILL, as a crash would, and
// recovers its file.
func TestCrashKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.cvr")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q, %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	dek := testDEK(40)
	if _, err := Open(path, dek); !errors.Is(err, ErrTruncated) {
		t.Fatalf("crashed file: got %v, want ErrTruncated", err)
	}
	res, err := Recover(path, dek)
	if err != nil {
		t.Fatal(err)
	}
	// Flushed: 150000 bytes (the flush sealed a partial chunk, so a new chunk
	// starts there). Written to the kernel after that: one full chunk, which
	// SIGKILL does not lose (a power cut could). Buffered: lost.
	const flushed, kernel = 150000, 150000 + DefaultChunkSize
	if res.KeptBytes != kernel || res.DroppedBytes != 0 {
		t.Fatalf("%+v, want %d bytes kept (%d flushed)", res, kernel, flushed)
	}
	r, err := Open(path, dek)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Complete() || !r.Recovered() || !bytes.Equal(readAll(t, r), pattern(40, 250000)[:kernel]) {
		t.Fatal("recovered content differs from what was written")
	}
}

// TestAbandonThenRecover: after a failed write the store abandons the
// Writer and recovers the file, keeping every chunk that was written whole.
func TestAbandonThenRecover(t *testing.T) {
	dek := testDEK(41)
	data := pattern(41, 300)
	path := filepath.Join(t.TempDir(), "r")
	w, err := Create(path, Header{RecordingID: testID, ChunkSize: MinChunkSize}, dek, testRand(41))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:100]) // one chunk written, 36 bytes buffered
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	w.Write(data[100:250]) // two more chunks written, 22 buffered
	if err := w.Abandon(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abandon(); err != nil {
		t.Fatalf("second Abandon: %v", err)
	}
	if _, err := w.Write(data); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Abandon: %v", err)
	}
	if _, err := Open(path, dek); !errors.Is(err, ErrTruncated) {
		t.Fatalf("abandoned file: %v", err)
	}
	res, err := Recover(path, dek)
	if err != nil || res.KeptBytes != 228 || res.KeptChunks != 4 || res.DroppedBytes != 0 {
		t.Fatalf("%+v, %v", res, err)
	}
	r, err := Open(path, dek)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !bytes.Equal(readAll(t, r), data[:228]) || !r.Recovered() {
		t.Fatal("recovered content differs")
	}
}
