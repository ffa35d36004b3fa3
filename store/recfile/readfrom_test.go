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
	"testing/iotest"
)

// irregularReader hands data out in reads of varying sizes, at most len(p).
type irregularReader struct {
	data []byte
	i    int
}

func (r *irregularReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	r.i++
	n := min(len(p), len(r.data), []int{1, 4093, 65536, 17, 70000}[r.i%5])
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// TestReadFromMatchesWrite: ReadFrom makes the file Write makes, byte for
// byte, with the same seal hash and plaintext hash, synchronous or
// pipelined, whatever the read sizes and however the data ends against the
// chunks.
func TestReadFromMatchesWrite(t *testing.T) {
	checkGoroutines(t)
	modes := map[string][]CreateOption{"sync": nil}
	for name, opts := range pipelineModes {
		modes[name] = opts
	}
	dek := testDEK(71)
	for name, opts := range modes {
		for _, size := range []int{0, 1, MinChunkSize, 3*DefaultChunkSize + 5, 5<<20 + 3} {
			t.Run(fmt.Sprintf("%s/%d", name, size), func(t *testing.T) {
				data := pattern(uint64(size)+71, size)
				dir := t.TempDir()
				write := func(name string, fill func(w *Writer) error) ([]byte, [32]byte, []byte) {
					path := filepath.Join(dir, name)
					plain := sha256.New()
					w, err := Create(path, Header{RecordingID: testID}, dek, testRand(7), append([]CreateOption{PlainHash(plain)}, opts...)...)
					if err != nil {
						t.Fatal(err)
					}
					if err := fill(w); err != nil {
						t.Fatal(err)
					}
					sum, err := w.Close()
					if err != nil {
						t.Fatal(err)
					}
					raw, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					return raw, sum, plain.Sum(nil)
				}
				wantRaw, wantSum, wantPlain := write("write", func(w *Writer) error {
					_, err := w.Write(data)
					return err
				})
				gotRaw, gotSum, gotPlain := write("readfrom", func(w *Writer) error {
					if _, err := w.Write(data[:min(len(data), 3)]); err != nil { // starts inside a chunk
						return err
					}
					n, err := w.ReadFrom(&irregularReader{data: data[min(len(data), 3):]})
					if n != int64(len(data)-min(len(data), 3)) {
						return fmt.Errorf("ReadFrom read %d bytes", n)
					}
					return err
				})
				if !bytes.Equal(gotRaw, wantRaw) || gotSum != wantSum || !bytes.Equal(gotPlain, wantPlain) {
					t.Fatalf("ReadFrom's file differs from Write's: %d vs %d bytes, seal hash equal %v, plaintext hash equal %v",
						len(gotRaw), len(wantRaw), gotSum == wantSum, bytes.Equal(gotPlain, wantPlain))
				}
			})
		}
	}
}

// brokenReader claims more bytes than it was given room for.
type brokenReader struct{}

func (brokenReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

// TestReadFromErrors: a reader's error comes back as the reader returned
// it and leaves the Writer usable (the bytes before it are kept); a reader
// claiming more bytes than its buffer fails the Writer for good, sealing
// nothing it claims.
func TestReadFromErrors(t *testing.T) {
	checkGoroutines(t)
	dek := testDEK(72)
	data := pattern(72, 3*DefaultChunkSize+9)
	for name, opts := range map[string][]CreateOption{"sync": nil, "pipelined": {Pipelined()}} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r")
			w, err := Create(path, Header{RecordingID: testID}, dek, testRand(8), opts...)
			if err != nil {
				t.Fatal(err)
			}
			gone := errors.New("client went away")
			n, err := w.ReadFrom(io.MultiReader(bytes.NewReader(data[:100000]), iotest.ErrReader(gone)))
			if err != gone || n != 100000 {
				t.Fatalf("ReadFrom over a failing reader: %d, %v; want 100000, the reader's error", n, err)
			}
			if _, err := w.Write(data[100000:]); err != nil {
				t.Fatalf("Write after a reader's error: %v", err)
			}
			if _, err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := Open(path, dek)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got := readAll(t, r); !bytes.Equal(got, data) {
				t.Fatalf("file holds %d bytes, not the %d written", len(got), len(data))
			}

			w2, err := Create(filepath.Join(t.TempDir(), "b"), Header{RecordingID: testID}, dek, testRand(9), opts...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w2.ReadFrom(brokenReader{}); err == nil {
				t.Fatal("ReadFrom accepted a reader claiming more than its buffer")
			}
			if _, err := w2.Write([]byte{1}); err == nil {
				t.Fatal("the Writer stayed usable after a broken reader")
			}
			if err := w2.Abort(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
