package capture

// Benchmarks of the capture path on synthetic trunk traffic
// (capture/synth): whole-file import against tcpdump, the reader's RTP hot
// path, and heap per active call. Every name here starts with "bench" so
// it cannot collide with the package's other test files.
//
//	go test -run '^$' -bench BenchmarkImport -benchtime 1x -count 5 ./capture/
//	CALLVAULT_BENCH_CALLS=1000 go test -run '^$' -bench BenchmarkImport -benchtime 1x -count 3 -timeout 1h ./capture/
//	go test -run '^$' -bench BenchmarkPacketPath -count 5 ./capture/
//	go test -run '^$' -bench BenchmarkMemoryPerCall -benchtime 1x -count 3 ./capture/

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/callvault/callvault/capture/rtp"
	"github.com/callvault/callvault/capture/synth"
	"github.com/callvault/callvault/store"
)

const benchMasterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// benchStore opens a store in a fresh directory under dir.
func benchStore(tb testing.TB, dir string) *store.Store {
	tb.Helper()
	st, err := store.Open(store.Config{DataDir: dir, Keys: store.KeySource{Env: benchMasterKey}})
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// benchCPUSplit is the user and system CPU time of this process so far,
// all threads (readers, store goroutines, GC): packets per CPU second is a
// per-core figure however many cores the run spread over.
func benchCPUSplit(tb testing.TB) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// benchDataDir is a new directory for one run's store: under
// $CALLVAULT_BENCH_DATA_DIR if set, else in the test's temporary
// directory. The choice matters on ext4 without a journal (this build
// VM's root file system): there, the kernel will not reuse an inode freed
// in the last minute or more, and every create scans past all such inodes
// of its block group (recently_deleted in fs/ext4/ialloc.c). A run's
// 2,000 creates then pay for the files the previous run, or any go build
// in $TMPDIR, just deleted: up to a millisecond each, 1.3 s of CPU in one
// profiled run against 0.1 s in another. A new directory directly under
// "/" starts in a block group of its own (ext4's Orlov allocator spreads
// top-level directories), as an appliance's data directory would, so
// CALLVAULT_BENCH_DATA_DIR=/ measures the import without its neighbours'
// deletions. docs/PERFORMANCE.md gives both.
func benchDataDir(tb testing.TB) string {
	tb.Helper()
	parent := os.Getenv("CALLVAULT_BENCH_DATA_DIR")
	if parent == "" {
		return filepath.Join(tb.TempDir(), "data")
	}
	dir, err := os.MkdirTemp(parent, "callvault-bench-data-")
	if err != nil {
		tb.Fatalf("CALLVAULT_BENCH_DATA_DIR: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// benchCapture returns a synthetic capture of calls × dur, generated once
// and kept in $TMPDIR/callvault-bench (1,000 × 60 s is 1.3 GB and takes a
// few seconds to write; later runs reuse it).
func benchCapture(tb testing.TB, calls int, dur time.Duration) string {
	tb.Helper()
	dir := filepath.Join(os.TempDir(), "callvault-bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	// The name carries everything the content depends on; bump v1 when
	// synth's output changes.
	path := filepath.Join(dir, fmt.Sprintf("synth-v1-%dcalls-%s-seed1.pcap", calls, dur))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	f, err := os.Create(tmp)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	sum, err := synth.Write(f, synth.Config{Calls: calls, Duration: dur, Seed: 1})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		tb.Fatal(err)
	}
	tb.Logf("generated %s: %d frames, %.0f MB in %v", path, sum.Frames, float64(sum.Bytes)/1e6, time.Since(start).Round(time.Millisecond))
	return path
}

// BenchmarkImport imports a synthetic trunk capture (CALLVAULT_BENCH_CALLS
// concurrent 60-second G.711 calls, default 100; 1000 is the target load)
// through the engine into a real store, and in the same run has tcpdump
// read and rewrite the same file. Reported:
//
//	pkts/s/core       packets per second of CPU time (user+sys, all threads)
//	pkts/s            packets per wall-clock second
//	tcpdump-pkts/s/core  the same for `tcpdump -r FILE -w /dev/null`
//	x-tcpdump-cpu     our CPU time / tcpdump's on the same file
//	allocs/pkt        heap allocations per packet (runtime.MemStats.Mallocs)
func BenchmarkImport(b *testing.B) {
	calls := 100
	if v := os.Getenv("CALLVAULT_BENCH_CALLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("CALLVAULT_BENCH_CALLS=%q: want a positive number", v)
		}
		calls = n
	}
	b.Logf("%d concurrent calls × 60 s (CALLVAULT_BENCH_CALLS=1000 for the full trunk)", calls)
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		b.Skip("tcpdump not installed (apt-get install -y tcpdump): no baseline to compare against")
	}
	path := benchCapture(b, calls, 60*time.Second)
	runTcpdump := func() time.Duration {
		cmd := exec.Command(tcpdump, "-r", path, "-w", "/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("tcpdump: %v: %s", err, out)
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	runTcpdump() // the file is in the page cache for both from here on

	var cpu, sys, wall, tdCPU time.Duration
	var packets, mallocs int64
	var ms runtime.MemStats
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := benchDataDir(b)
		st := benchStore(b, dir)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		m0 := ms.Mallocs
		u0, s0 := benchCPUSplit(b)
		w0 := time.Now()
		b.StartTimer()

		e := New(Config{}, StoreSink(st))
		n, err := ImportFile(context.Background(), e.NewReader(), path)
		e.Close()
		if cerr := st.Close(); err == nil {
			err = cerr
		}

		b.StopTimer()
		wall += time.Since(w0)
		u1, s1 := benchCPUSplit(b)
		cpu += u1 - u0 + s1 - s0
		sys += s1 - s0
		runtime.ReadMemStats(&ms)
		mallocs += int64(ms.Mallocs - m0)
		packets += n
		if err != nil {
			b.Fatal(err)
		}
		s := e.Stats()
		if got := s.Recordings.Load(); got != int64(calls) || s.RingDrops.Load() != 0 || s.DecodeErrors.Load() != 0 || s.RecordErrors.Load() != 0 {
			b.Fatalf("%d recordings of %d calls, %d ring drops, %d decode errors, %d record errors",
				got, calls, s.RingDrops.Load(), s.DecodeErrors.Load(), s.RecordErrors.Load())
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		tdCPU += runTcpdump()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(packets)/cpu.Seconds(), "pkts/s/core")
	b.ReportMetric(float64(packets)/wall.Seconds(), "pkts/s")
	b.ReportMetric(float64(packets)/tdCPU.Seconds(), "tcpdump-pkts/s/core")
	b.ReportMetric(cpu.Seconds()/tdCPU.Seconds(), "x-tcpdump-cpu")
	b.ReportMetric(float64(mallocs)/float64(packets), "allocs/pkt")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
	b.ReportMetric(sys.Seconds()/cpu.Seconds(), "sys-share")
}

// benchPath is an engine with one established call (SIP seen up to the
// ACK, media flowing) and one of its RTP frames (trunk → phone).
type benchPath struct {
	e     *Engine
	r     *Reader
	frame []byte
	ts    time.Time
	ring  *rtp.Ring
}

var errBenchEnough = errors.New("enough frames")

func newBenchPath(tb testing.TB) *benchPath {
	tb.Helper()
	st := benchStore(tb, filepath.Join(tb.TempDir(), "data"))
	tb.Cleanup(func() { st.Close() })
	// Live: rings drop when full and nothing flushes inline, so the loop
	// measures the reader alone; the benchmark drains the ring itself.
	e := New(Config{Live: true}, StoreSink(st))
	r := e.NewReader()
	bp := &benchPath{e: e, r: r}
	sum, err := synth.Generate(synth.Config{Calls: 1, Duration: 10 * time.Second, Seed: 4}, func(ts time.Time, frame []byte) error {
		r.Handle(packet.LinkEthernet, ts, frame)
		if len(frame) == 14+20+8+12+synth.FrameBytes && e.stats.RTPPackets.Load() >= 10 {
			// An audio frame of an established call: keep it.
			bp.frame, bp.ts = append([]byte(nil), frame...), ts
			return errBenchEnough
		}
		return nil
	})
	if !errors.Is(err, errBenchEnough) {
		tb.Fatalf("no RTP frame after the call was set up: %v", err)
	}
	// The stream the frame belongs to: sent to a party's endpoint, it is
	// the other party's voice (reader.go udp).
	var p packet.Packet
	var d packet.Decoder
	if err := d.Decode(packet.LinkEthernet, bp.ts, bp.frame, &p); err != nil {
		tb.Fatal(err)
	}
	ep := e.table.get(netip.AddrPortFrom(p.Dst, p.DstPort))
	if ep == nil || sum.Calls[0].CallID != ep.c.callID || !ep.c.answered {
		tb.Fatalf("frame's endpoint is not the established call's: %+v", ep)
	}
	bp.ring = ep.c.streams[1-ep.party].lanes[r.id].Load()
	if bp.ring == nil {
		tb.Fatal("the stream has no ring yet")
	}
	bp.ring.Drain(benchDiscard) // the set-up's packets: start empty
	return bp
}

// step handles the frame once more as the next packet of its stream
// (sequence number, timestamp and capture time advance by one 20 ms
// packet), draining the ring every 16 packets (half the default ring) as
// a flusher would.
func (bp *benchPath) step(i int) {
	f := bp.frame[14+20+8:]
	binary.BigEndian.PutUint16(f[2:], binary.BigEndian.Uint16(f[2:])+1)
	binary.BigEndian.PutUint32(f[4:], binary.BigEndian.Uint32(f[4:])+synth.FrameBytes)
	bp.ts = bp.ts.Add(synth.Ptime)
	bp.r.Handle(packet.LinkEthernet, bp.ts, bp.frame)
	if i%16 == 15 {
		bp.ring.Drain(benchDiscard)
	}
}

func benchDiscard(*rtp.Slot, []byte) {}

// BenchmarkPacketPath is the reader's RTP hot path for an established call
// on a 214-byte Ethernet/IPv4/UDP/RTP G.711 frame: decode → stream table
// lookup → ring push (Reader.Handle), with the ring drained every 16
// packets. "decode" is the decoder alone on the same frame, for the
// breakdown.
func BenchmarkPacketPath(b *testing.B) {
	bp := newBenchPath(b)
	b.Run("decode", func(b *testing.B) {
		var d packet.Decoder
		var p packet.Packet
		b.ReportAllocs()
		b.SetBytes(int64(len(bp.frame)))
		for i := 0; i < b.N; i++ {
			if err := d.Decode(packet.LinkEthernet, bp.ts, bp.frame, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("handle", func(b *testing.B) {
		drops, rtpN := bp.e.stats.RingDrops.Load(), bp.e.stats.RTPPackets.Load()
		b.ReportAllocs()
		b.SetBytes(int64(len(bp.frame)))
		for i := 0; i < b.N; i++ {
			bp.step(i)
		}
		b.StopTimer()
		if d := bp.e.stats.RingDrops.Load() - drops; d != 0 {
			b.Fatalf("%d ring drops", d)
		}
		if n := bp.e.stats.RTPPackets.Load() - rtpN; n != int64(b.N) {
			b.Fatalf("%d of %d packets reached the ring", n, b.N)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	})
}

// TestPacketPathNoAllocs asserts ARCHITECTURE rule 3 on the real reader:
// decode → lookup → ring push of an established call's RTP allocates
// nothing.
func TestPacketPathNoAllocs(t *testing.T) {
	bp := newBenchPath(t)
	rtpN := bp.e.stats.RTPPackets.Load()
	i := 0
	if n := testing.AllocsPerRun(5000, func() { bp.step(i); i++ }); n != 0 {
		t.Fatalf("%.2f allocations per packet on the RTP path", n)
	}
	if got := bp.e.stats.RTPPackets.Load() - rtpN; got != int64(i) || bp.e.stats.RingDrops.Load() != 0 {
		t.Fatalf("%d of %d packets pushed, %d drops", got, i, bp.e.stats.RingDrops.Load())
	}
}

// BenchmarkMemoryPerCall sets up 10,000 concurrent calls (SIP up to the
// ACK, a few RTP packets each way, recordings created in a real store) and
// reports the heap in use per active call: HeapInuse after GC, minus the
// engine and store before the first call, minus what the traffic generator
// itself holds at the same point (measured by a run without the engine),
// divided by the calls. Goal: ≤ 64 KiB. CALLVAULT_HEAP_PROFILE=FILE writes
// a heap profile at the measuring point (go tool pprof -top -sample_index=inuse_space).
func BenchmarkMemoryPerCall(b *testing.B) {
	const calls = 10_000
	cfg := synth.Config{Calls: calls, Duration: time.Minute, Stagger: 50 * time.Microsecond, Seed: 5}
	plan, err := synth.Plan(cfg)
	if err != nil {
		b.Fatal(err)
	}
	// Every call answered and sending for at least 100 ms.
	stopAt := plan[calls-1].Answer.Add(140 * time.Millisecond)
	heapInuse := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	// upTo feeds frames to handle until stopAt and measures the heap there.
	upTo := func(handle func(time.Time, []byte)) (at uint64) {
		_, err := synth.Generate(cfg, func(ts time.Time, frame []byte) error {
			if ts.After(stopAt) {
				at = heapInuse()
				return errBenchEnough
			}
			handle(ts, frame)
			return nil
		})
		if !errors.Is(err, errBenchEnough) {
			b.Fatal(err)
		}
		return at
	}
	var perCall float64
	for i := 0; i < b.N; i++ {
		g0 := heapInuse()
		gen := int64(upTo(func(time.Time, []byte) {})) - int64(g0)

		st := benchStore(b, filepath.Join(b.TempDir(), "data"))
		e := New(Config{}, StoreSink(st))
		r := e.NewReader()
		m0 := heapInuse()
		var prof error
		m1 := upTo(func(ts time.Time, frame []byte) { r.Handle(packet.LinkEthernet, ts, frame) })
		if path := os.Getenv("CALLVAULT_HEAP_PROFILE"); path != "" && i == 0 {
			f, err := os.Create(path)
			if err == nil {
				prof = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
		s := e.Stats()
		active, recs, rtpN := s.CallsActive.Load(), s.Recordings.Load(), s.RTPPackets.Load()
		perCall = float64(int64(m1)-int64(m0)-gen) / calls
		e.Close()
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		if prof != nil {
			b.Fatal(prof)
		}
		if active != calls || recs != calls || rtpN < calls*2*4 {
			b.Fatalf("%d active calls, %d recordings, %d RTP packets: not every call is up", active, recs, rtpN)
		}
		b.Logf("%d calls: heap %d → %d bytes (generator %d): %.0f bytes per call; %d RTP packets",
			calls, m0, m1, gen, perCall, rtpN)
	}
	b.ReportMetric(perCall, "B/call")
	b.ReportMetric(perCall/1024, "KiB/call")
}
