package recfile

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// pipelineModes are the Create options under test besides the default
// synchronous Writer. With one or two buffers the caller waits for the
// goroutines at nearly every chunk, which exercises the hand-over.
var pipelineModes = map[string][]CreateOption{
	"pipelined":          {Pipelined()},
	"pipelined-2buffers": {Pipelined(), withBuffers(2)},
	"pipelined-1buffer":  {Pipelined(), withBuffers(1)},
	// An upload's: the header and directory fsynced by Close only.
	"pipelined-latesync": {Pipelined(), DeferHeaderSync()},
}

func withBuffers(n int) CreateOption {
	return func(c *createConfig) { c.buffers = n }
}

// pipelineGoroutines counts the goroutines that pipelines have started and
// that have not returned, from a dump of every goroutine's stack.
func pipelineGoroutines() int {
	buf := make([]byte, 1<<20)
	dump := string(buf[:runtime.Stack(buf, true)])
	return strings.Count(dump, "created by github.com/callvault/callvault/store/recfile.startPipeline")
}

// checkGoroutines fails the test if, at cleanup, a pipeline goroutine is
// still running: every pipelined Writer must have stopped its own.
func checkGoroutines(t *testing.T) {
	t.Helper()
	if n := pipelineGoroutines(); n != 0 {
		t.Fatalf("%d pipeline goroutines running before the test", n)
	}
	t.Cleanup(func() {
		// A goroutine that has signalled it is done may still be on its way
		// out; give it a moment.
		deadline := time.Now().Add(5 * time.Second)
		for pipelineGoroutines() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := pipelineGoroutines(); n > 0 {
			buf := make([]byte, 1<<20)
			t.Errorf("%d pipeline goroutines still running:\n%s", n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// writeSteps writes data through a new Writer made with opts, following
// steps, and closes it. Randomness comes from seed, so two calls with the
// same seed must produce the same file whatever the options.
func writeSteps(t *testing.T, path string, chunkSize int, seed uint64, data []byte, steps []step, opts ...CreateOption) [32]byte {
	t.Helper()
	w, err := Create(path, Header{RecordingID: testID, ChunkSize: chunkSize}, testDEK(seed), testRand(seed), opts...)
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
		if k, err := w.Write(data[:n]); err != nil || k != n {
			t.Fatalf("Write(%d bytes) = %d, %v", n, k, err)
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
	return sum
}

// TestPipelinedSameFile: a Pipelined Writer writes exactly the bytes the
// synchronous one does and returns the same seal hash, the SHA-256 of the
// file, for any mix of write sizes, flushes and chunk sizes; both feed
// PlainHash exactly the data written.
func TestPipelinedSameFile(t *testing.T) {
	checkGoroutines(t)
	for _, chunkSize := range []int{MinChunkSize, 1000, DefaultChunkSize} {
		for _, size := range []int{0, 1, chunkSize, 3*chunkSize + 7, 2<<20 + 11} {
			seed := uint64(chunkSize*31 + size)
			data := pattern(seed, size)
			rng := rand.New(rand.NewPCG(seed, 9))
			var steps []step
			for left := size; left > 0; {
				if rng.IntN(20) == 0 {
					steps = append(steps, step{flush: true})
				}
				n := 1 + rng.IntN(3*chunkSize)
				steps = append(steps, step{write: n})
				left -= n
			}
			dir := t.TempDir()
			wantPlain := sha256.Sum256(data)
			plain := sha256.New()
			wantSum := writeSteps(t, filepath.Join(dir, "sync"), chunkSize, seed, data, steps, PlainHash(plain))
			if got := plain.Sum(nil); !bytes.Equal(got, wantPlain[:]) {
				t.Fatalf("synchronous, chunk size %d, %d bytes: PlainHash %x, want the SHA-256 of the data %x", chunkSize, size, got, wantPlain)
			}
			want, err := os.ReadFile(filepath.Join(dir, "sync"))
			if err != nil {
				t.Fatal(err)
			}
			if documentedSealHash(t, want) != wantSum {
				t.Fatal("synchronous seal hash is not the documented hash of the file")
			}
			for name, opts := range pipelineModes {
				path := filepath.Join(dir, name)
				plain.Reset()
				sum := writeSteps(t, path, chunkSize, seed, data, steps, append([]CreateOption{PlainHash(plain)}, opts...)...)
				if got := plain.Sum(nil); !bytes.Equal(got, wantPlain[:]) {
					t.Fatalf("%s, chunk size %d, %d bytes: PlainHash %x, want the SHA-256 of the data %x", name, chunkSize, size, got, wantPlain)
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s, chunk size %d, %d bytes in %d steps: file differs from the synchronous Writer's", name, chunkSize, size, len(steps))
				}
				if sum != wantSum {
					t.Fatalf("%s, chunk size %d, %d bytes: seal hash %x, want %x", name, chunkSize, size, sum, wantSum)
				}
			}
		}
	}
}

// TestPipelinedFlushWaits: when Flush returns, every chunk handed to the
// goroutine is in the file (read back through a second descriptor, as a
// live listener or Recover after a crash would).
func TestPipelinedFlushWaits(t *testing.T) {
	checkGoroutines(t)
	const chunkSize = 1000
	dek := testDEK(50)
	for name, opts := range pipelineModes {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r")
			w, err := Create(path, Header{RecordingID: testID, ChunkSize: chunkSize}, dek, testRand(50), opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			data := pattern(50, 400_000)
			written, chunks, cur := 0, 0, 0
			for _, n := range []int{1, 999, 1000, 1001, 25_000, 123_457, 3, 200_000} {
				if _, err := w.Write(data[written : written+n]); err != nil {
					t.Fatal(err)
				}
				written += n
				chunks += (cur + n) / chunkSize
				cur = (cur + n) % chunkSize
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				if cur > 0 {
					chunks++
					cur = 0
				}
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if want := int64(HeaderSize + written + chunks*Overhead); fi.Size() != want {
					t.Fatalf("after %d bytes and Flush the file is %d bytes, want %d", written, fi.Size(), want)
				}
				r, err := Open(path, dek, AllowTruncated())
				if err != nil {
					t.Fatal(err)
				}
				got := readAll(t, r)
				r.Close()
				if !bytes.Equal(got, data[:written]) {
					t.Fatalf("after %d bytes and Flush the file holds %d bytes, or different ones", written, len(got))
				}
			}
		})
	}
}

// TestPipelinedGoroutinesStop: Create starts the goroutine and each way of
// ending a Writer stops it, including after a failure.
func TestPipelinedGoroutinesStop(t *testing.T) {
	checkGoroutines(t)
	dek := testDEK(51)
	data := pattern(51, 10*MinChunkSize)
	ends := map[string]func(t *testing.T, w *Writer){
		"Close": func(t *testing.T, w *Writer) {
			if _, err := w.Close(); err != nil {
				t.Fatal(err)
			}
		},
		"Abort": func(t *testing.T, w *Writer) {
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
		},
		"Abandon": func(t *testing.T, w *Writer) {
			if err := w.Abandon(); err != nil {
				t.Fatal(err)
			}
		},
		"failed Flush": func(t *testing.T, w *Writer) {
			w.f.Close() // the disk goes away under the goroutine
			w.Write(data)
			if err := w.Flush(); err == nil {
				t.Fatal("Flush after losing the file succeeded")
			}
			// The goroutines are already stopped (a goroutine that has
			// returned may take a moment to leave the scheduler); Abort
			// still closes the file and removes it.
			for deadline := time.Now().Add(5 * time.Second); pipelineGoroutines() > 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if n := pipelineGoroutines(); n != 0 {
				t.Fatalf("%d goroutines still running after a failure", n)
			}
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
		},
		"failed Close": func(t *testing.T, w *Writer) {
			w.f.Close()
			if _, err := w.Close(); err == nil {
				t.Fatal("Close after losing the file succeeded")
			}
			if err := w.Abandon(); err != nil && !errors.Is(err, os.ErrClosed) {
				t.Fatal(err)
			}
		},
	}
	modes := map[string][]CreateOption{}
	for name, opts := range pipelineModes {
		modes[name] = opts
		modes[name+"+PlainHash"] = append([]CreateOption{PlainHash(sha256.New())}, opts...)
	}
	for name, opts := range modes {
		for end, fn := range ends {
			t.Run(name+"/"+end, func(t *testing.T) {
				w, err := Create(filepath.Join(t.TempDir(), "r"), Header{ChunkSize: MinChunkSize}, dek, testRand(51), opts...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { w.Abort() })
				want := 2 // sealer, writer
				if strings.HasSuffix(name, "+PlainHash") {
					want = 3 // and the plaintext hasher
				}
				if n := pipelineGoroutines(); n != want {
					t.Fatalf("Create started %d goroutines, want %d", n, want)
				}
				if _, err := w.Write(data); err != nil {
					t.Fatal(err)
				}
				fn(t, w)
				// stop waits for both goroutines, but one that has finished
				// may not have left the scheduler yet.
				for deadline := time.Now().Add(5 * time.Second); pipelineGoroutines() > 0 && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
				if n := pipelineGoroutines(); n != 0 {
					t.Fatalf("%s returned with %d goroutines still running", end, n)
				}
				// Ending twice is harmless and starts nothing.
				w.Abort()
				w.Abandon()
			})
		}
	}
}

// TestPipelinedWriteError: a write that fails in the goroutine is reported
// by the next Write, and then by every call, as the same error.
func TestPipelinedWriteError(t *testing.T) {
	checkGoroutines(t)
	dek := testDEK(52)
	data := pattern(52, MinChunkSize)
	for name, opts := range pipelineModes {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r")
			w, err := Create(path, Header{ChunkSize: MinChunkSize}, dek, testRand(52), opts...)
			if err != nil {
				t.Fatal(err)
			}
			w.f.Close()
			// Each Write fills a chunk and hands it over; the writer goroutine
			// writes once it has gathered a write's worth (up to half the
			// buffers), so keep writing until it fails. A Write may return
			// before the goroutine fails, so its result is not checked.
			deadline := time.Now().Add(10 * time.Second)
			for w.pipe.failure() == nil {
				if time.Now().After(deadline) {
					t.Fatal("the goroutine never reported the failed write")
				}
				w.Write(data)
				time.Sleep(time.Millisecond)
			}
			n, err := w.Write(data[:1]) // fills no chunk: only the sticky error can fail it
			if err == nil || n != 0 || !errors.Is(err, os.ErrClosed) {
				t.Fatalf("Write after a failed background write: %d, %v", n, err)
			}
			if err2 := w.Flush(); err2 != err {
				t.Fatalf("error is not sticky: %v then %v", err, err2)
			}
			if _, err2 := w.Write(data); err2 != err {
				t.Fatalf("error is not sticky: %v then %v", err, err2)
			}
			if _, err2 := w.Close(); err2 != err {
				t.Fatalf("Close after failure: %v", err2)
			}
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatal("Abort left the failed file")
			}
		})
	}
}

// TestPipelinedWriteDoesNotAllocate: neither Write nor the goroutine
// allocates per chunk (AllocsPerRun counts every goroutine's allocations).
func TestPipelinedWriteDoesNotAllocate(t *testing.T) {
	checkGoroutines(t)
	for name, opts := range pipelineModes {
		t.Run(name, func(t *testing.T) {
			w, err := Create(filepath.Join(t.TempDir(), "r"), Header{}, testDEK(53), testRand(1), opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			frame := pattern(1, 1000) // crosses a chunk boundary every 66 writes
			allocs := testing.AllocsPerRun(5000, func() {
				if _, err := w.Write(frame); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("Write allocates %v times per call", allocs)
			}
		})
	}
}

// TestPipelinedAbandonThenRecover: Abandon lets the goroutine write the
// chunks already handed to it, so Recover keeps exactly what it keeps after
// a synchronous Writer is abandoned.
func TestPipelinedAbandonThenRecover(t *testing.T) {
	checkGoroutines(t)
	dek := testDEK(54)
	data := pattern(54, 100_000)
	write := func(path string, opts ...CreateOption) RecoverResult {
		w, err := Create(path, Header{RecordingID: testID, ChunkSize: 1000}, dek, testRand(54), opts...)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data[:30_500])
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		w.Write(data[30_500:]) // 69 full chunks handed over, 500 bytes buffered
		if err := w.Abandon(); err != nil {
			t.Fatal(err)
		}
		res, err := Recover(path, dek)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	dir := t.TempDir()
	want := write(filepath.Join(dir, "sync"))
	if want.KeptBytes != 99_500 {
		t.Fatalf("synchronous Writer: %+v", want)
	}
	wantRaw, _ := os.ReadFile(filepath.Join(dir, "sync"))
	for name, opts := range pipelineModes {
		path := filepath.Join(dir, name)
		if got := write(path, opts...); got != want {
			t.Fatalf("%s: Recover %+v, want %+v", name, got, want)
		}
		if raw, _ := os.ReadFile(path); !bytes.Equal(raw, wantRaw) {
			t.Fatalf("%s: recovered file differs from the synchronous one", name)
		}
	}
}

func TestPipelinedLifecycle(t *testing.T) {
	checkGoroutines(t)
	for name, opts := range pipelineModes {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r")
			w, err := Create(path, Header{}, testDEK(55), testRand(1), opts...)
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
		})
	}
}
