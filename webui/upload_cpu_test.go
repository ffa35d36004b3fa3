package webui

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU (user + system) this process has used so far, every
// goroutine and the garbage collector included.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUploadCPU100MB measures what BenchmarkUpload100MB's throughput
// ratio cannot on a machine others keep busy: the CPU time a 100 MB upload
// through the handler costs, against writing the same bytes to a plain
// file, in the same loop (alternating). On two cores a variant cannot run
// faster than its CPU time over two, so the CPU ratio bounds the
// throughput ratio whatever the load; wall time under load measures the
// scheduler as much as the code.
func BenchmarkUploadCPU100MB(b *testing.B) {
	e, wav, upload, plain := upload100MB(b)
	// One upload first, so the password check's cache is warm and argon2id
	// (about 0.1 s of CPU) is not counted, as for an integrator that
	// uploads all day.
	if err := e.st.Delete(context.Background(), upload(), "bench"); err != nil {
		b.Fatal(err)
	}

	var uploadCPU, plainCPU time.Duration
	b.SetBytes(uploadBenchSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for k := range 2 {
			c0 := cpuTime(b)
			if (i+k)%2 == 0 {
				id := upload()
				uploadCPU += cpuTime(b) - c0
				b.StopTimer()
				if err := e.st.Delete(context.Background(), id, "bench"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			} else {
				if err := writePlain(plain, wav); err != nil {
					b.Fatal(err)
				}
				plainCPU += cpuTime(b) - c0
				b.StopTimer()
				_ = os.Remove(plain)
				b.StartTimer()
			}
		}
	}
	n := float64(b.N)
	b.ReportMetric(uploadCPU.Seconds()*1000/n, "upload-cpu-ms/100MB")
	b.ReportMetric(plainCPU.Seconds()*1000/n, "plain-cpu-ms/100MB")
	b.ReportMetric(plainCPU.Seconds()/uploadCPU.Seconds(), "plain-vs-upload-cpu-ratio")
}
