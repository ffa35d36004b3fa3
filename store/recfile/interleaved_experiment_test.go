package recfile

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestZZInterleaved(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip("manual")
	}
	data := pattern(1, benchFileSize)
	dek := testDEK(1)
	dir := t.TempDir()
	variants := []struct {
		name string
		opts []CreateOption
	}{
		{"plain", nil},
		{"sync", []CreateOption{}},
		{"pipe-wb-8", []CreateOption{Pipelined(), func(c *createConfig) { c.writeback = true; c.nbuf = 8 }}},
		{"pipe-wb-16", []CreateOption{Pipelined(), func(c *createConfig) { c.writeback = true; c.nbuf = 16 }}},
		{"3stage-wb-6", []CreateOption{Pipelined(), func(c *createConfig) { c.writeback = true; c.hashStage = true; c.nbuf = 6 }}},
		{"3stage-wb-8", []CreateOption{Pipelined(), func(c *createConfig) { c.writeback = true; c.hashStage = true; c.nbuf = 8 }}},
		{"3stage-wb-12", []CreateOption{Pipelined(), func(c *createConfig) { c.writeback = true; c.hashStage = true; c.nbuf = 12 }}},
		{"3stage-wb-16", []CreateOption{Pipelined(), func(c *createConfig) { c.writeback = true; c.hashStage = true; c.nbuf = 16 }}},
		{"3stage-wb-24", []CreateOption{Pipelined(), func(c *createConfig) { c.writeback = true; c.hashStage = true; c.nbuf = 24 }}},
		{"3stage-16", []CreateOption{Pipelined(), func(c *createConfig) { c.hashStage = true; c.nbuf = 16 }}},
	}
	wall := make([][]float64, len(variants))
	cpu := make([][]float64, len(variants))
	rounds := 21
	for r := 0; r < rounds; r++ {
		for k := range variants {
			v := variants[(k+r)%len(variants)]
			vi := (k + r) % len(variants)
			path := filepath.Join(dir, fmt.Sprint(v.name, r))
			c0, t0 := cpuNow(), time.Now()
			if v.opts == nil {
				f, _ := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				bw := bufio.NewWriterSize(f, DefaultChunkSize)
				for off := 0; off < len(data); off += benchWrite {
					bw.Write(data[off : off+benchWrite])
				}
				bw.Flush()
				f.Sync()
				f.Close()
			} else {
				w, err := Create(path, Header{RecordingID: testID}, dek, testRand(1), v.opts...)
				if err != nil {
					t.Fatal(err)
				}
				for off := 0; off < len(data); off += benchWrite {
					w.Write(data[off : off+benchWrite])
				}
				if _, err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			wall[vi] = append(wall[vi], float64(time.Since(t0).Microseconds())/1000)
			cpu[vi] = append(cpu[vi], float64((cpuNow()-c0).Microseconds())/1000)
			os.Remove(path)
		}
	}
	pm := median(wall[0])
	for i, v := range variants {
		w := slices.Clone(wall[i])
		slices.Sort(w)
		t.Logf("%-14s wall median %6.1f ms (p25 %6.1f p75 %6.1f) cpu median %6.1f ms  ratio %.3f", v.name, median(wall[i]), w[len(w)/4], w[3*len(w)/4], median(cpu[i]), pm/median(wall[i]))
	}
}
