package recfile

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const (
	benchFileSize = 64 << 20
	benchWrite    = 4096
)

// BenchmarkWrite64MiB writes 64 MiB in 4 KiB writes to a new file and fsyncs
// it on close: through a plain buffered os.File (64 KiB buffer, the same
// write pattern), through the encrypting Writer, and through a Pipelined
// one. Each encrypted sub-benchmark reports its throughput as a fraction of
// the plain one measured in the same run (x-plain; goal ≥ 0.8). The plain
// figure is the median of every plain measurement the run has made so far,
// so with -count=5 all three variants run five times and each encrypted
// measurement is compared with the median of the five plain ones, not with
// whichever plain run happened to be last.
func BenchmarkWrite64MiB(b *testing.B) {
	data := pattern(1, benchFileSize)
	dek := testDEK(1)
	var plain []float64 // ns/op of each plain measurement

	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(benchFileSize)
		dir := b.TempDir()
		for i := 0; b.Loop(); i++ {
			path := filepath.Join(dir, fmt.Sprint(i))
			writePlain(b, path, data)
			b.StopTimer()
			os.Remove(path) // keep the page cache and the disk from filling up
			b.StartTimer()
		}
		plain = append(plain, float64(b.Elapsed().Nanoseconds())/float64(b.N))
	})

	encrypted := func(opts ...CreateOption) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(benchFileSize)
			dir := b.TempDir()
			rng := testRand(2)
			for i := 0; b.Loop(); i++ {
				path := filepath.Join(dir, fmt.Sprint(i))
				writeEncrypted(b, path, data, dek, rng, opts...)
				b.StopTimer()
				os.Remove(path)
				b.StartTimer()
			}
			if len(plain) > 0 {
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(median(plain)/ns, "x-plain")
			}
		}
	}
	b.Run("encrypted", encrypted())
	b.Run("pipelined", encrypted(Pipelined()))
}

// BenchmarkWrite64MiBInterleaved measures the same three variants, but
// each iteration writes one file with each of them, in turn, so that all
// three see the same machine: on a shared machine whose load changes from
// second to second, sibling sub-benchmarks run seconds apart can see very
// different conditions. It reports the median time of each variant over the
// run's iterations (ms-plain, ms-encrypted, ms-pipelined) and the ratios of
// those medians (encrypted-x-plain, pipelined-x-plain); ns/op is the time of
// all three together.
func BenchmarkWrite64MiBInterleaved(b *testing.B) {
	data := pattern(1, benchFileSize)
	dek := testDEK(1)
	dir := b.TempDir()
	rng := testRand(2)
	variants := []struct {
		name  string
		write func(path string)
	}{
		{"plain", func(path string) { writePlain(b, path, data) }},
		{"encrypted", func(path string) { writeEncrypted(b, path, data, dek, rng) }},
		{"pipelined", func(path string) { writeEncrypted(b, path, data, dek, rng, Pipelined()) }},
	}
	ms := make([][]float64, len(variants))
	b.ReportAllocs()
	b.SetBytes(int64(len(variants)) * benchFileSize)
	for i := 0; b.Loop(); i++ {
		for k := range variants {
			// Rotate the order so no variant always follows the same one.
			v := (i + k) % len(variants)
			path := filepath.Join(dir, fmt.Sprint(i, variants[v].name))
			start := time.Now()
			variants[v].write(path)
			ms[v] = append(ms[v], float64(time.Since(start).Microseconds())/1000)
			b.StopTimer()
			os.Remove(path)
			b.StartTimer()
		}
	}
	for v := range variants {
		b.ReportMetric(median(ms[v]), "ms-"+variants[v].name)
		if v > 0 {
			b.ReportMetric(median(ms[0])/median(ms[v]), variants[v].name+"-x-plain")
		}
	}
}

// writePlain writes data to a new file at path through a 64 KiB bufio.Writer
// in benchWrite pieces, fsyncs and closes it.
func writePlain(b *testing.B, path string, data []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, DefaultChunkSize)
	for off := 0; off < len(data); off += benchWrite {
		if _, err := bw.Write(data[off : off+benchWrite]); err != nil {
			b.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// writeEncrypted writes data to a new recording at path in benchWrite
// pieces and closes it (which fsyncs).
func writeEncrypted(b *testing.B, path string, data, dek []byte, rng io.Reader, opts ...CreateOption) {
	w, err := Create(path, Header{RecordingID: testID}, dek, rng, opts...)
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(data); off += benchWrite {
		if _, err := w.Write(data[off : off+benchWrite]); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkWriterWrite measures one Write of a 20 ms G.711 frame (160 bytes)
// into a live recording, chunk sealing included: it must not allocate.
func BenchmarkWriterWrite(b *testing.B) {
	frame := pattern(3, 160)
	dek := testDEK(3)
	dir := b.TempDir()
	rng := testRand(3)
	files := 0
	newWriter := func() *Writer {
		files++
		w, err := Create(filepath.Join(dir, fmt.Sprint(files)), Header{RecordingID: testID}, dek, rng)
		if err != nil {
			b.Fatal(err)
		}
		return w
	}
	w := newWriter()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	written := 0
	for b.Loop() {
		if _, err := w.Write(frame); err != nil {
			b.Fatal(err)
		}
		if written += len(frame); written >= benchFileSize {
			b.StopTimer()
			w.Abort()
			w = newWriter()
			written = 0
			b.StartTimer()
		}
	}
	b.StopTimer()
	w.Abort()
}

// oneHourFile writes about 60 MiB (one hour of a stereo 16 kB/s call) the way
// a live call does: a Flush every "second", so 3,600 chunks of 17,476 bytes.
func oneHourFile(b *testing.B, dek []byte) (path string, size int) {
	const seconds, perSecond = 3600, 17476
	path = filepath.Join(b.TempDir(), "hour.cvr")
	w, err := Create(path, Header{RecordingID: testID}, dek, testRand(4))
	if err != nil {
		b.Fatal(err)
	}
	sec := pattern(4, perSecond)
	for range seconds {
		w.Write(sec)
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return path, seconds * perSecond
}

// BenchmarkReadAtRandom4K reads 4 KiB at random offsets of a one-hour file:
// the latency of a seek during playback (page cache warm, so this is the
// decryption and bookkeeping cost, not the disk).
func BenchmarkReadAtRandom4K(b *testing.B) {
	dek := testDEK(4)
	path, size := oneHourFile(b, dek)
	r, err := Open(path, dek)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		off := rng.Int64N(int64(size - len(buf)))
		if _, err := r.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenOneHour measures Open on the one-hour file: header, 3,600
// length-field reads and one decryption of the final chunk.
func BenchmarkOpenOneHour(b *testing.B) {
	dek := testDEK(4)
	path, _ := oneHourFile(b, dek)
	b.ReportAllocs()
	for b.Loop() {
		r, err := Open(path, dek)
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
