package meta

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkApplyBatch measures bulk insert: 1,000 CreateRecording commands
// per ApplyBatch transaction (fsync on), against one command per Apply as
// the baseline in the same run.
func BenchmarkApplyBatch(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch int
	}{{"batch1000", 1000}, {"single", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			db, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			w := newWorld(1, 2000, 50, 3, 365*24*time.Hour)
			applyLog(b, db, w.setup(), 1000)
			const per = 1000
			b.ResetTimer()
			total := 0
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				enc := make([][]byte, per)
				for j := range enc {
					r := w.recording(i*per+j, 1<<30)
					enc[j], _ = Encode(&CreateRecording{Recording: r})
				}
				b.StartTimer()
				if bc.batch > 0 {
					res, err := db.ApplyBatch(enc)
					if err != nil || res[0].Err != nil {
						b.Fatal(err, res[0].Err)
					}
				} else {
					for _, e := range enc[:100] { // 100 per iteration: fsync per command is slow
						if _, err := db.Apply(e); err != nil {
							b.Fatal(err)
						}
					}
				}
				total += per
				if bc.batch == 0 {
					total -= per - 100
				}
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "recordings/s")
		})
	}
}

// TestSearch1M builds 1,000,000 recordings (≈2,000 users in 50 groups in 3
// tenants over 12 months) and times ~200 queries per filter, each asking for
// the first 50 rows newest first, printing p50/p99. It takes minutes and
// gigabytes, so it runs only with CALLVAULT_BENCH_1M=1.
func TestSearch1M(t *testing.T) {
	if os.Getenv("CALLVAULT_BENCH_1M") == "" {
		t.Skip("set CALLVAULT_BENCH_1M=1 to build 1,000,000 recordings and time every search filter (takes minutes)")
	}
	n := 1_000_000
	if s := os.Getenv("CALLVAULT_BENCH_N"); s != "" {
		fmt.Sscan(s, &n)
	}
	// CALLVAULT_BENCH_1M_DB keeps the database at that path and reuses it
	// on the next run (the build takes minutes; the queries seconds).
	path := os.Getenv("CALLVAULT_BENCH_1M_DB")
	if path == "" {
		path = filepath.Join(t.TempDir(), "1m.db")
	}
	_, statErr := os.Stat(path)
	reuse := statErr == nil
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := newWorld(42, 2000, 50, 3, 365*24*time.Hour)
	if !reuse {
		applyLog(t, db, w.setup(), 1000)
	}
	start := time.Now()
	var sample []Recording
	for i := 0; i < n && reuse; i++ {
		r := w.recording(i, n)
		if i%997 == 0 {
			got, err := db.Recording(r.ID)
			if err != nil {
				t.Fatal(err)
			}
			sample = append(sample, got)
		}
	}
	for i := 0; i < n && !reuse; i += 1000 {
		enc := make([][]byte, 0, 1000)
		for j := i; j < min(i+1000, n); j++ {
			r := w.recording(j, n)
			if j%997 == 0 {
				sample = append(sample, r)
			}
			b, _ := Encode(&CreateRecording{Recording: r})
			enc = append(enc, b)
		}
		res, err := db.ApplyBatch(enc)
		if err != nil {
			t.Fatal(err)
		}
		for k, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if (i+k)%997 == 0 {
				sample[(i+k)/997].Reference = r.Reference
			}
		}
	}
	build := time.Since(start)
	var size int64
	if fi, err := os.Stat(db.bolt.Path()); err == nil {
		size = fi.Size()
	}
	t.Logf("built %d recordings in %v (%.0f recordings/s), file %d MiB", n, build.Round(time.Second), float64(n)/build.Seconds(), size>>20)

	rng := rand.New(rand.NewPCG(9, 9))
	pick := func() Recording { return sample[rng.IntN(len(sample))] }
	all := Scope{All: true}
	filters := []struct {
		name string
		q    func() Query
	}{
		{"time range (1 day)", func() Query {
			s := pick().Start.Truncate(24 * time.Hour)
			return Query{Scope: all, Start: s, End: s.Add(24 * time.Hour)}
		}},
		{"no filter (12 months)", func() Query { return Query{Scope: all} }},
		{"duration > 20 min", func() Query { return Query{Scope: all, MinDurationMs: 20 * 60_000} }},
		{"duration 60-90 s", func() Query { return Query{Scope: all, MinDurationMs: 60_000, MaxDurationMs: 90_000} }},
		{"call id", func() Query { return Query{Scope: all, CallID: pick().SIPCallIDIngress} }},
		{"recording id", func() Query { return Query{Scope: all, RecordingID: pick().ID} }},
		{"reference", func() Query { return Query{Scope: all, Reference: pick().Reference} }},
		{"note word", func() Query { return Query{Scope: all, NoteWords: noteWords[rng.IntN(len(noteWords))]} }},
		{"note 2 words", func() Query {
			return Query{Scope: all, NoteWords: noteWords[rng.IntN(len(noteWords))] + " " + noteWords[rng.IntN(len(noteWords))]}
		}},
		{"direction", func() Query { return Query{Scope: all, Direction: directionCodes[rng.IntN(3)]} }},
		{"local user", func() Query { return Query{Scope: all, LocalUser: pick().LocalParty.User} }},
		{"local number prefix", func() Query {
			n := pick().LocalParty.Number
			return Query{Scope: all, LocalNumber: n[:len(n)-1-rng.IntN(3)]}
		}},
		{"remote number prefix", func() Query {
			n := pick().RemoteParty.Number
			return Query{Scope: all, RemoteNumber: n[:4+rng.IntN(len(n)-4)]}
		}},
		{"remote name", func() Query {
			f := strings.Fields(pick().RemoteParty.Name)
			return Query{Scope: all, RemoteName: f[rng.IntN(len(f))]}
		}},
		{"remote name prefix 2 words", func() Query {
			f := strings.Fields(pick().RemoteParty.Name)
			a, b := []rune(f[0]), []rune(f[1])
			return Query{Scope: all, RemoteName: string(a[:2]) + " " + string(b[:3])}
		}},
		{"group", func() Query { return Query{Scope: all, Group: pick().Group} }},
		{"rating >= 4", func() Query { return Query{Scope: all, MinRating: 4} }},
		{"rating = 5 and group", func() Query { return Query{Scope: all, MinRating: 5, Group: pick().Group} }},
		{"category", func() Query { return Query{Scope: all, Category: categories[rng.IntN(len(categories))]} }},
		{"preserved", func() Query { return Query{Scope: all, Preserved: true} }},
		{"bookmark type", func() Query { return Query{Scope: all, BookmarkType: bookmarkCodes[rng.IntN(len(bookmarkCodes))]} }},
		{"status failed", func() Query { return Query{Scope: all, Status: StatusFailed} }},
		{"scope tenant", func() Query { return Query{Scope: Scope{Tenant: pick().Tenant}} }},
		{"scope supervisor (3 groups + own)", func() Query {
			r := pick()
			return Query{Scope: Scope{Tenant: r.Tenant, User: r.LocalParty.User, Groups: []string{r.Group, w.groups[rng.IntN(50)].ID, w.groups[rng.IntN(50)].ID}}}
		}},
		{"scope user", func() Query { return Query{Scope: Scope{User: pick().LocalParty.User}} }},
		{"user + preserved (rare combo)", func() Query { return Query{Scope: all, LocalUser: pick().LocalParty.User, Preserved: true} }},
		{"page 2 via cursor, group", func() Query {
			q := Query{Scope: all, Group: pick().Group}
			p, err := db.Search(q)
			if err != nil {
				t.Fatal(err)
			}
			q.Cursor = p.Next
			return q
		}},
	}
	const perFilter = 200
	fmt.Printf("%-36s %9s %9s %9s %6s  %s\n", "filter", "p50", "p99", "max", "rows", "winning plans")
	only := os.Getenv("CALLVAULT_BENCH_FILTER") // a substring of the filter names to time
	for _, f := range filters {
		if only != "" && !strings.Contains(f.name, only) {
			continue
		}
		lat := make([]time.Duration, 0, perFilter)
		rows := 0
		winners := map[string]int{}
		for range perFilter {
			q := f.q()
			var winner string
			f0 := majorFaults()
			t0 := time.Now()
			p, err := db.search(&q, &winner)
			d := time.Since(t0)
			faults := majorFaults() - f0
			lat = append(lat, d)
			if err != nil {
				t.Fatalf("%s: %v", f.name, err)
			}
			if d > 50*time.Millisecond {
				t.Logf("slow: %v %s plan=%s major faults %d rows %d", d, f.name, winner, faults, len(p.Recordings))
			}
			rows += len(p.Recordings)
			winners[winner]++
		}
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		fmt.Printf("%-36s %9v %9v %9v %6.1f  %v\n", f.name, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond),
			lat[len(lat)-1].Round(10*time.Microsecond), float64(rows)/perFilter, winners)
		if p99 > 50*time.Millisecond {
			t.Errorf("%s: p99 %v > 50ms", f.name, p99)
		}
	}
}

// majorFaults is the process's count of page faults that read from disk:
// the slow searches are the ones that fault in cold pages of the mmap.
func majorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Majflt
}

// BenchmarkAuditAppend: 50 goroutines append audit entries (fsync on), one
// transaction each (Apply, the baseline) against group commit
// (ApplyConcurrent).
func BenchmarkAuditAppend(b *testing.B) {
	for _, bc := range []struct {
		name  string
		apply func(*DB, []byte) (Result, error)
	}{{"Apply", (*DB).Apply}, {"ApplyConcurrent", (*DB).ApplyConcurrent}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			db, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			cmd, _ := Encode(&AppendAudit{Entry: AuditEntry{Time: time.Now(), Actor: "u1", Action: AuditPlay, Recording: "r1", Address: "192.0.2.1"}})
			b.SetParallelism(25) // 50 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := bc.apply(db, cmd); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
