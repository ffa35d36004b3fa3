package recfile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// chunkStarts walks a file's length fields and returns where each chunk
// starts and how much plaintext it holds.
func chunkStarts(t *testing.T, raw []byte) (starts []int, lens []int) {
	t.Helper()
	for off := HeaderSize; off < len(raw); {
		if off+lenSize > len(raw) {
			t.Fatalf("torn length field at %d", off)
		}
		l := int(binary.BigEndian.Uint32(raw[off:]))
		starts, lens = append(starts, off), append(lens, l)
		off += lenSize + l + tagSize
	}
	return starts, lens
}

// TestPageAlignedChunks: when a chunk in the file is a whole number of
// pages, the first chunk holds HeaderSize fewer bytes so every later chunk
// starts on a page boundary, whether the bytes come through Write or
// ReadFrom, synchronously or pipelined; the file reads back, verifies and
// recovers like any other. Chunk sizes that are not a whole number of
// pages keep a full first chunk.
func TestPageAlignedChunks(t *testing.T) {
	dek := testDEK(7)
	cases := []struct {
		chunkSize int
		aligned   bool
	}{
		{4096 - Overhead, true},
		{16<<10 - Overhead, true},
		{16 << 10, false},
		{1000, false},
	}
	for _, c := range cases {
		for _, mode := range []string{"write", "readfrom", "pipelined-write", "pipelined-readfrom"} {
			t.Run(fmt.Sprintf("%d/%s", c.chunkSize, mode), func(t *testing.T) {
				size := 3*c.chunkSize + c.chunkSize/2
				data := pattern(uint64(c.chunkSize), size)
				path := filepath.Join(t.TempDir(), "r")
				var opts []CreateOption
				if mode == "pipelined-write" || mode == "pipelined-readfrom" {
					opts = append(opts, Pipelined())
				}
				w, err := Create(path, Header{RecordingID: testID, ChunkSize: c.chunkSize}, dek, testRand(3), opts...)
				if err != nil {
					t.Fatal(err)
				}
				first := c.chunkSize
				if c.aligned {
					first -= HeaderSize
				}
				if w.Available() != first {
					t.Fatalf("Available before any write = %d, want %d", w.Available(), first)
				}
				if mode == "readfrom" || mode == "pipelined-readfrom" {
					if n, err := w.ReadFrom(bytes.NewReader(data)); err != nil || n != int64(size) {
						t.Fatalf("ReadFrom = %d, %v", n, err)
					}
				} else {
					rng := rand.New(rand.NewPCG(uint64(c.chunkSize), 9))
					for p := data; len(p) > 0; {
						n := min(len(p), 1+rng.IntN(3000))
						if _, err := w.Write(p[:n]); err != nil {
							t.Fatal(err)
						}
						p = p[n:]
					}
				}
				if w.Size() != int64(size) {
					t.Fatalf("Size %d, want %d", w.Size(), size)
				}
				sum, err := w.Close()
				if err != nil {
					t.Fatal(err)
				}
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				starts, lens := chunkStarts(t, raw)
				// first, two full chunks, the rest (and the header's 48 bytes
				// more when aligned) in the last.
				wantLens := []int{first, c.chunkSize, c.chunkSize, size - first - 2*c.chunkSize}
				if fmt.Sprint(lens) != fmt.Sprint(wantLens) {
					t.Fatalf("chunk lengths %v, want %v", lens, wantLens)
				}
				whole := c.chunkSize + Overhead
				for k := 1; k < len(starts); k++ {
					aligned := starts[k]%4096 == 0 && starts[k] == k*whole
					if aligned != c.aligned {
						t.Fatalf("chunk %d starts at %d: page aligned %v, want %v", k, starts[k], aligned, c.aligned)
					}
				}
				if documentedSealHash(t, raw) != sum {
					t.Fatal("seal hash is not the documented hash of the file")
				}
				if got, err := verifyBytes(t, raw, dek, 4); err != nil || got != sum {
					t.Fatalf("Verifier: %x, %v", got, err)
				}
				r, err := Open(path, dek)
				if err != nil {
					t.Fatal(err)
				}
				if !r.Complete() || r.Size() != int64(size) || !bytes.Equal(readAll(t, r), data) {
					t.Fatalf("complete %v size %d, or the bytes differ", r.Complete(), r.Size())
				}
				if err := r.Verify(); err != nil {
					t.Fatal(err)
				}
				r.Close()

				// A crash tore chunk 2: the short first chunk and chunk 1
				// are kept.
				torn := filepath.Join(t.TempDir(), "torn")
				if err := os.WriteFile(torn, raw[:starts[2]+100], 0o600); err != nil {
					t.Fatal(err)
				}
				res, err := Recover(torn, dek)
				if err != nil {
					t.Fatal(err)
				}
				if res.KeptChunks != 2 || res.KeptBytes != int64(first+c.chunkSize) {
					t.Fatalf("Recover kept %d chunks, %d bytes; want 2, %d", res.KeptChunks, res.KeptBytes, first+c.chunkSize)
				}
				r, err = Open(torn, dek)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				if !r.Recovered() || !bytes.Equal(readAll(t, r), data[:first+c.chunkSize]) {
					t.Fatal("recovered file does not hold the first two chunks' bytes")
				}
			})
		}
	}
}

// TestAlignedFirstChunkAfterFlush: a Flush before the first chunk is full
// cuts it short as always; the chunks after it are full chunks (live calls
// flush every second, so their files are not aligned, and need not be).
func TestAlignedFirstChunkAfterFlush(t *testing.T) {
	dek := testDEK(8)
	cs := 4096 - Overhead
	path := filepath.Join(t.TempDir(), "r")
	w, err := Create(path, Header{RecordingID: testID, ChunkSize: cs}, dek, testRand(4))
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(5, 3*cs)
	w.Write(data[:10])
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Available() != cs {
		t.Fatalf("Available after the first chunk = %d, want %d", w.Available(), cs)
	}
	w.Write(data[10:])
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	_, lens := chunkStarts(t, raw)
	if want := fmt.Sprint([]int{10, cs, cs, 3*cs - 10 - 2*cs}); fmt.Sprint(lens) != want {
		t.Fatalf("chunk lengths %v, want %v", lens, want)
	}
	r, err := Open(path, dek)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !bytes.Equal(readAll(t, r), data) {
		t.Fatal("bytes differ")
	}
}
