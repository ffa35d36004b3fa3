package recfile

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// chunks returns n buffers of random sizes and contents, and their
// concatenation.
func chunks(seed uint64, n, maxSize int) ([][]byte, []byte) {
	rng := rand.New(rand.NewPCG(seed, 9))
	var bufs [][]byte
	var all []byte
	for range n {
		b := make([]byte, rng.IntN(maxSize+1)) // some empty
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		bufs = append(bufs, b)
		all = append(all, b...)
	}
	return bufs, all
}

// TestChunkWriterResumesShortWrites: into a non-blocking pipe, which takes
// at most its 64 KiB buffer per writev, every byte of every buffer arrives
// once and in order, however the short writes cut the chunks, and the
// caller's slices are left as they were.
func TestChunkWriterResumesShortWrites(t *testing.T) {
	for seed := range uint64(5) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		bufs, want := chunks(seed, 40, 30000)
		before := make([][]byte, len(bufs))
		copy(before, bufs)
		got := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(r)
			got <- b
		}()
		cw, err := newChunkWriter(w, 7) // fewer iovecs than buffers: several windows
		if err != nil {
			t.Fatal(err)
		}
		n, err := cw.write(bufs)
		if err != nil || n != int64(len(want)) {
			t.Fatalf("seed %d: wrote %d of %d bytes, %v", seed, n, len(want), err)
		}
		w.Close()
		if b := <-got; !bytes.Equal(b, want) {
			t.Fatalf("seed %d: the pipe got %d bytes, not the %d written in order", seed, len(b), len(want))
		}
		r.Close()
		for i := range bufs {
			if len(bufs[i]) != len(before[i]) || (len(bufs[i]) > 0 && &bufs[i][0] != &before[i][0]) {
				t.Fatalf("seed %d: write changed the caller's buffer %d", seed, i)
			}
		}
	}
}

// TestChunkWriterReportsShortFile: when the file can take only part of the
// chunks (RLIMIT_FSIZE here; a full disk behaves alike), write reports how
// many bytes reached the file and the kernel's error, and the file holds
// exactly those bytes.
func TestChunkWriterReportsShortFile(t *testing.T) {
	bufs, all := chunks(11, 9, 40000)
	limit := uint64(len(all) / 2)
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cw, err := newChunkWriter(f, 16)
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	// Process-wide, so only for this call; no test in this package runs in
	// parallel. Go ignores SIGXFSZ, so the write fails with EFBIG.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	n, werr := cw.write(bufs)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(werr, syscall.EFBIG) || n != int64(limit) {
		t.Fatalf("write into a file limited to %d bytes: %d, %v", limit, n, werr)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, all[:limit]) {
		t.Fatalf("the file holds %d bytes, not the first %d written", len(got), limit)
	}
	// A closed file is reported as os.File.Write reports it.
	f.Close()
	if _, err := cw.write(bufs); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write to a closed file: %v", err)
	}
}
