package recfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// documentedSealHash computes a file's seal hash the way the package doc
// (seal.go) defines it, from the bytes alone and without the package's
// code: SHA-256 of the whole file for version 1; for version 2 SHA-256 of
// the header and, per chunk, index (u64) || length (u32) || tag (16).
func documentedSealHash(t testing.TB, raw []byte) [32]byte {
	t.Helper()
	if raw[6] == 1 {
		return sha256.Sum256(raw)
	}
	h := sha256.New()
	h.Write(raw[:48])
	for off, i := 48, uint64(0); off < len(raw); i++ {
		n := int(binary.BigEndian.Uint32(raw[off:]))
		end := off + 4 + n + 16
		if end > len(raw) {
			t.Fatalf("documentedSealHash: chunk %d runs past the end of the file", i)
		}
		h.Write(binary.BigEndian.AppendUint64(nil, i))
		h.Write(raw[off : off+4])
		h.Write(raw[end-16 : end])
		off = end
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// verifyBytes feeds raw to a new Verifier in pieces of random sizes (one
// byte to a few chunks), as a copy over a network would, and returns Sum.
func verifyBytes(t testing.TB, raw, dek []byte, seed uint64) ([32]byte, error) {
	t.Helper()
	v, err := NewVerifier(dek)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	for p := raw; len(p) > 0; {
		n := min(len(p), 1+rng.IntN(3*(MinChunkSize+Overhead)))
		if rng.IntN(4) == 0 {
			n = min(len(p), 1+rng.IntN(2*DefaultChunkSize))
		}
		w, err := v.Write(p[:n])
		if err != nil {
			if w != 0 {
				t.Fatalf("Write failed with %v after taking %d bytes", err, w)
			}
			// Sticky: the same error from Sum.
			if _, serr := v.Sum(); serr != err {
				t.Fatalf("Write failed with %v, Sum with %v", err, serr)
			}
			return [32]byte{}, err
		}
		p = p[n:]
	}
	if v.Size() != int64(len(raw)) {
		t.Fatalf("Verifier counted %d bytes of %d", v.Size(), len(raw))
	}
	return v.Sum()
}

// TestVerifierAcceptsWhatWriterWrites: for both format versions, each
// chunk size, flushes and both writers, the Verifier accepts the file in
// any piece sizes and computes the seal hash Close returned, which is the
// documented one.
func TestVerifierAcceptsWhatWriterWrites(t *testing.T) {
	checkGoroutines(t)
	modes := map[string][]CreateOption{"sync": nil}
	for name, opts := range pipelineModes {
		modes[name] = opts
	}
	for _, version := range []uint8{1, 2} {
		for name, opts := range modes {
			for _, size := range []int{0, 1, MinChunkSize, 5000, 3*DefaultChunkSize + 17} {
				for _, chunkSize := range []int{MinChunkSize, 1000, DefaultChunkSize} {
					seed := uint64(size*7 + chunkSize + int(version))
					data := pattern(seed, size)
					var steps []step
					rng := rand.New(rand.NewPCG(seed, 5))
					for left := size; left > 0; {
						if rng.IntN(8) == 0 {
							steps = append(steps, step{flush: true})
						}
						n := 1 + rng.IntN(2*chunkSize)
						steps = append(steps, step{write: n})
						left -= n
					}
					path := filepath.Join(t.TempDir(), "r")
					sum := writeSteps(t, path, chunkSize, seed, data, steps, append([]CreateOption{FormatVersion(version)}, opts...)...)
					raw, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					if raw[6] != version {
						t.Fatalf("version %d asked, file has %d", version, raw[6])
					}
					if want := documentedSealHash(t, raw); sum != want {
						t.Fatalf("v%d %s size %d chunk %d: Close returned %x, the documented seal hash is %x", version, name, size, chunkSize, sum, want)
					}
					dek := testDEK(seed) // writeSteps's
					got, err := verifyBytes(t, raw, dek, seed)
					if err != nil || got != sum {
						t.Fatalf("v%d %s size %d chunk %d: Verifier %x, %v; want %x", version, name, size, chunkSize, got, err, sum)
					}
					// Both versions stay readable.
					r, err := NewReader(bytes.NewReader(raw), int64(len(raw)), dek)
					if err != nil {
						t.Fatalf("v%d: %v", version, err)
					}
					if err := r.Verify(); err != nil || !bytes.Equal(readAll(t, r), data) {
						t.Fatalf("v%d %s size %d: read back: %v", version, name, size, err)
					}
				}
			}
		}
	}
}

// multiChunkFile is a file (version 2 unless opts say) of six chunks: four full 64-byte
// ones (two sealed by a Flush), a short one and the last.
// written with testDEK(62).
func multiChunkFile(t *testing.T, opts ...CreateOption) (raw []byte, sum [32]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r")
	data := pattern(62, 4*MinChunkSize+10)
	sum = writeSteps(t, path, MinChunkSize, 62, data, []step{{write: 2 * MinChunkSize}, {flush: true}}, opts...)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw, sum
}

// TestVerifierRefusesDamage: a copy with any one byte changed, cut off at
// any length, with two chunks swapped, with a chunk from another file of
// the same recording and key, or with bytes appended is refused: either
// Write/Sum fail or the seal hash differs. For a version 2 file damage in
// a chunk is found by authentication, without the seal hash.
func TestVerifierRefusesDamage(t *testing.T) {
	dek := testDEK(62)
	raw, sum := multiChunkFile(t)
	refused := func(name string, b []byte, wantErr ...error) {
		t.Helper()
		got, err := verifyBytes(t, b, dek, uint64(len(b)))
		if err == nil && got == sum {
			t.Fatalf("%s: accepted with the sealed hash", name)
		}
		if len(wantErr) > 0 && !slices.ContainsFunc(wantErr, func(w error) bool { return errors.Is(err, w) }) {
			t.Fatalf("%s: got %v, want one of %v", name, err, wantErr)
		}
	}
	for i := range raw {
		for _, mask := range []byte{0x01, 0x03, 0x80, 0xff} {
			b := bytes.Clone(raw)
			b[i] ^= mask
			if i < HeaderSize {
				refused("header byte "+strconv.Itoa(i), b)
				continue
			}
			// A changed length field makes the chunk end elsewhere, so
			// the file may look cut off instead.
			refused("byte "+strconv.Itoa(i), b, ErrCorrupt, ErrTruncated)
		}
	}
	for cut := range len(raw) {
		refused("cut at "+strconv.Itoa(cut), raw[:cut], ErrTruncated)
	}

	// Chunks 0 and 1 are both full: same length, so only their position
	// tells them apart.
	c := int64(lenSize + MinChunkSize + tagSize)
	swapped := bytes.Clone(raw)
	copy(swapped[HeaderSize:HeaderSize+c], raw[HeaderSize+c:HeaderSize+2*c])
	copy(swapped[HeaderSize+c:HeaderSize+2*c], raw[HeaderSize:HeaderSize+c])
	refused("chunks 0 and 1 swapped", swapped, ErrCorrupt)

	// Another file of the same recording and key (another nonce prefix,
	// as a second Create makes): its chunk 1 does not open in this file.
	otherPath := filepath.Join(t.TempDir(), "other")
	w, err := Create(otherPath, Header{RecordingID: testID, ChunkSize: MinChunkSize}, dek, testRand(999))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(pattern(62, 4*MinChunkSize+10))
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	other, _ := os.ReadFile(otherPath)
	if bytes.Equal(other[32:36], raw[32:36]) || len(other) < HeaderSize+2*int(c) {
		t.Fatal("two files share a nonce prefix")
	}
	mixed := bytes.Clone(raw)
	copy(mixed[HeaderSize+c:HeaderSize+2*c], other[HeaderSize+c:HeaderSize+2*c])
	refused("chunk 1 from another file", mixed, ErrCorrupt)

	refused("a byte appended", append(bytes.Clone(raw), 0), ErrCorrupt)
	refused("a chunk appended", append(bytes.Clone(raw), raw[HeaderSize:HeaderSize+c]...), ErrCorrupt)

	if _, err := verifyBytes(t, raw, testDEK(63), 1); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := NewVerifier(dek[:16]); !errors.Is(err, ErrKeySize) {
		t.Fatalf("short key: %v", err)
	}
	if got, err := verifyBytes(t, raw, dek, 2); err != nil || got != sum {
		t.Fatalf("the undamaged file: %x, %v", got, err)
	}
}

// TestVerifierOldKind: a version 1 file (seal hash over every byte) still
// verifies, Recover still gives it its whole-file hash, and any changed
// byte or cut is refused by the hash comparison.
func TestVerifierOldKind(t *testing.T) {
	dek := testDEK(62) // multiChunkFile's
	raw, sum := multiChunkFile(t, FormatVersion(1))
	if raw[6] != 1 || sum != sha256.Sum256(raw) {
		t.Fatalf("version %d, seal hash %x, want the whole file's SHA-256", raw[6], sum)
	}
	if got, err := verifyBytes(t, raw, dek, 1); err != nil || got != sum {
		t.Fatalf("old kind: %x, %v", got, err)
	}
	for i := range raw {
		b := bytes.Clone(raw)
		b[i] ^= 0x10
		if got, err := verifyBytes(t, b, dek, uint64(i)); err == nil && got == sum {
			t.Fatalf("byte %d changed: accepted", i)
		}
	}
	for cut := range len(raw) {
		if got, err := verifyBytes(t, raw[:cut], dek, uint64(cut)); err == nil && got == sum {
			t.Fatalf("cut at %d: accepted", cut)
		}
	}
	path := filepath.Join(t.TempDir(), "old")
	if err := os.WriteFile(path, raw[:len(raw)-5], 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Recover(path, dek)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := os.ReadFile(path)
	if res.SealHash != sha256.Sum256(rec) {
		t.Fatal("Recover of a version 1 file: seal hash is not the whole file's SHA-256")
	}
	if got, err := verifyBytes(t, rec, dek, 3); err != nil || got != res.SealHash {
		t.Fatalf("recovered version 1 file: %x, %v", got, err)
	}
	if _, err := Create(filepath.Join(t.TempDir(), "v3"), Header{}, dek, testRand(1), FormatVersion(3)); !errors.Is(err, ErrVersion) {
		t.Fatalf("FormatVersion(3): %v", err)
	}
}
