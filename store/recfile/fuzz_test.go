package recfile

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzDEK is the key every fuzz input is opened with; the seeds are written
// with it, so mutations start from files that authenticate.
func fuzzDEK() []byte { return testDEK(77) }

func fuzzSeeds(f *testing.F) {
	dek := fuzzDEK()
	dir := f.TempDir()
	add := func(data []byte, chunkSize int, steps ...step) {
		path, _ := writeFile(f, dir, chunkSize, dek, data, steps...)
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)-7])              // torn last chunk
		f.Add(raw[:HeaderSize+MinChunkSize]) // torn first chunk
	}
	add(nil, MinChunkSize)
	add([]byte("hello"), MinChunkSize)
	add(pattern(1, 300), MinChunkSize, step{write: 100}, step{flush: true})
	add(pattern(2, 1000), 100, step{write: 10}, step{flush: true}, step{write: 500}, step{flush: true})
	f.Add([]byte{})
	f.Add([]byte("CVREC"))
	f.Add([]byte("RIFF....WAVEfmt "))
}

// FuzzReader opens arbitrary bytes as a recording: only errors, no panics,
// and whatever opens reads back consistently.
func FuzzReader(f *testing.F) {
	fuzzSeeds(f)
	dek := fuzzDEK()
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, strictErr := NewReader(bytes.NewReader(raw), int64(len(raw)), dek)
		r, err := NewReader(bytes.NewReader(raw), int64(len(raw)), dek, AllowTruncated())
		if err != nil {
			if strictErr == nil {
				t.Fatalf("AllowTruncated refused what strict Open accepted: %v", err)
			}
			return
		}
		if strictErr == nil && !r.Complete() {
			t.Fatal("strict Open accepted an incomplete file")
		}
		if strictErr != nil && !errors.Is(strictErr, ErrTruncated) {
			t.Fatalf("strict Open failed with %v where AllowTruncated succeeded", strictErr)
		}
		if r.Size() < 0 || r.Size() > int64(len(raw)) {
			t.Fatalf("size %d for %d file bytes", r.Size(), len(raw))
		}
		all, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read failed with %v, want ErrCorrupt", err)
			}
			return
		}
		if int64(len(all)) != r.Size() {
			t.Fatalf("read %d bytes of %d", len(all), r.Size())
		}
		if err := r.Verify(); err != nil {
			t.Fatalf("Verify after a clean read: %v", err)
		}
		// Random access agrees with the sequential read.
		for _, off := range []int64{0, r.Size() / 3, r.Size() - 1} {
			if off < 0 {
				continue
			}
			b := make([]byte, 70)
			n, _ := r.ReadAt(b, off)
			if !bytes.Equal(b[:n], all[off:min(off+70, int64(len(all)))]) {
				t.Fatalf("ReadAt at %d disagrees", off)
			}
		}
	})
}

// FuzzRecover runs Recover on arbitrary file bytes: it either refuses (and
// leaves the file alone) or leaves a complete file that verifies.
func FuzzRecover(f *testing.F) {
	fuzzSeeds(f)
	dek := fuzzDEK()
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(dir, "fuzz.cvr")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		res, err := Recover(path, dek)
		after, rerr := os.ReadFile(path)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err != nil {
			if !bytes.Equal(after, raw) {
				t.Fatalf("Recover failed (%v) but changed the file", err)
			}
			return
		}
		if res.AlreadyComplete != bytes.Equal(after, raw) {
			t.Fatalf("AlreadyComplete %v but file changed %v", res.AlreadyComplete, !bytes.Equal(after, raw))
		}
		r, err := NewReader(bytes.NewReader(after), int64(len(after)), dek)
		if err != nil {
			t.Fatalf("recovered file does not open: %v", err)
		}
		if !r.Complete() || r.Size() != res.KeptBytes {
			t.Fatalf("recovered file: complete %v size %d, result %+v", r.Complete(), r.Size(), res)
		}
		if err := r.Verify(); err != nil {
			t.Fatalf("recovered file does not verify: %v", err)
		}
		if sum, err := verifyBytes(t, after, dek, uint64(len(raw))); err != nil || sum != res.SealHash {
			t.Fatalf("recovered file: Verifier %x, %v; Recover's seal hash %x", sum, err, res.SealHash)
		}
	})
}

// FuzzVerifier streams arbitrary bytes, split at arbitrary points, through
// a Verifier: only errors, no panics; the split does not change the answer;
// and what it accepts is a complete file that opens and decrypts whole,
// whose seal hash is the documented one (and, for version 1, the whole
// file's SHA-256 whether or not it parses).
func FuzzVerifier(f *testing.F) {
	fuzzSeeds(f)
	dek := fuzzDEK()
	dir := f.TempDir()
	for i, data := range [][]byte{nil, pattern(3, 300)} {
		path := filepath.Join(dir, fmt.Sprintf("v1-%d", i))
		w, err := Create(path, Header{ChunkSize: MinChunkSize}, dek, testRand(uint64(i)), FormatVersion(1))
		if err != nil {
			f.Fatal(err)
		}
		w.Write(data)
		if _, err := w.Close(); err != nil {
			f.Fatal(err)
		}
		raw, _ := os.ReadFile(path)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		whole, werr := verifyBytes(t, raw, dek, 0)
		split, serr := verifyBytes(t, raw, dek, uint64(len(raw))*7919)
		if whole != split || (werr == nil) != (serr == nil) {
			t.Fatalf("one piece: %x, %v; random pieces: %x, %v", whole, werr, split, serr)
		}
		if werr != nil {
			for _, want := range []error{ErrCorrupt, ErrTruncated, ErrNotRecording, ErrVersion, ErrWrongKey} {
				if errors.Is(werr, want) {
					return
				}
			}
			t.Fatalf("Verifier failed with an unexpected error: %v", werr)
		}
		if raw[6] == 1 {
			if whole != sha256.Sum256(raw) {
				t.Fatal("version 1: seal hash is not the SHA-256 of the bytes")
			}
			return
		}
		r, err := NewReader(bytes.NewReader(raw), int64(len(raw)), dek)
		if err != nil {
			t.Fatalf("Verifier accepted a file Open refuses: %v", err)
		}
		if err := r.Verify(); err != nil || !r.Complete() {
			t.Fatalf("Verifier accepted a file that does not decrypt whole: %v", err)
		}
		if whole != documentedSealHash(t, raw) {
			t.Fatal("seal hash is not the documented one")
		}
	})
}
