package capture

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/callvault/callvault/capture/synth"
	"github.com/callvault/callvault/store/meta"
)

// batchFeed gives an engine its traffic through one reader.
type batchFeed func(t *testing.T, r *Reader)

// recordingsOf imports feed into a fresh store with passes batched (the
// default) or every pass in full (batch 1), and describes every recording
// by everything but its random ID and reference: summary, metadata that
// capture decided, bookmarks, a hash of the whole stored container, and
// its SIP messages as stored.
func recordingsOf(t *testing.T, cfg Config, batch int, feed batchFeed) ([]string, *Stats) {
	t.Helper()
	st := testStore(t)
	e := New(cfg, StoreSink(st))
	if batch > 0 {
		e.batch = batch
	}
	feed(t, e.NewReader())
	e.Close()
	var out []string
	for _, s := range e.Summaries() {
		id := s.RecordingID
		s.RecordingID, s.Reference = "", ""
		m, err := st.Meta().Recording(id)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := st.Signalling(meta.ID(id))
		if err != nil {
			t.Fatal(err)
		}
		desc, err := json.Marshal(struct {
			Sum       CallSummary
			Start     time.Time
			Dur       int64
			Bookmarks any
			Quality   any
			Audio     string
			SIP       any // when, from where to where, and the bytes
		}{s, m.Start, m.Duration, m.Bookmarks, m.Quality, fmt.Sprintf("%x", sha256.Sum256(recordingAudio(t, st, id))), sig})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(desc))
	}
	slices.Sort(out)
	return out, e.Stats()
}

// TestBatchedImportIsExact: an import that runs its 20 ms passes in
// batches (batch.go) stores the same recordings, byte for byte, as one
// that runs every pass over every call. The captures are the corpus (SIP
// over UDP and TCP, DTMF, G.722, L16, G.729 kept as packets, RTP without
// SIP) and synthetic trunks with loss, reordering past the playout delay,
// jitter, DTMF, and a two-second outage that times every call out (the
// RTP that resumes becomes calls without signalling, their BYEs arrive
// for ended calls).
func TestBatchedImportIsExact(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/*.pcap")
	shared, _ := filepath.Glob(sharedCorpus + "/*/*")
	if len(shared) == 0 {
		t.Logf("shared corpus not found at %s: checking testdata/corpus only", sharedCorpus)
	}
	files = append(files, shared...)
	type tc struct {
		name string
		cfg  Config
		feed batchFeed
	}
	var cases []tc
	for _, f := range files {
		cases = append(cases, tc{name: filepath.Base(f), feed: func(t *testing.T, r *Reader) {
			if _, err := ImportFile(context.Background(), r, f); err != nil {
				t.Fatal(err)
			}
		}})
	}
	synthFeed := func(cfg synth.Config, drop func(ts time.Time) bool) batchFeed {
		return func(t *testing.T, r *Reader) {
			_, err := synth.Generate(cfg, func(ts time.Time, frame []byte) error {
				if drop == nil || !drop(ts) {
					r.Handle(packet.LinkEthernet, ts, frame)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	cases = append(cases,
		tc{name: "synth-reorder-loss-dtmf", feed: synthFeed(synth.Config{Calls: 30, Duration: 8 * time.Second, Stagger: 150 * time.Millisecond,
			Seed: 21, LossPct: 3, ReorderPct: 4, ReorderDelay: 200 * time.Millisecond, Jitter: 30 * time.Millisecond,
			DTMF: []synth.Digit{{Symbol: '5', At: time.Second}, {Symbol: '#', At: 3 * time.Second}}}, nil)},
		tc{name: "synth-late-reorder", feed: synthFeed(synth.Config{Calls: 10, Duration: 6 * time.Second, Seed: 22,
			ReorderPct: 10, ReorderDelay: 400 * time.Millisecond}, nil)},
		tc{name: "synth-outage-timeouts", cfg: Config{RTPTimeout: time.Second}, feed: synthFeed(
			synth.Config{Calls: 20, Duration: 10 * time.Second, Stagger: 100 * time.Millisecond, Seed: 23},
			func(ts time.Time) bool {
				d := ts.Sub(start)
				return d > 5*time.Second && d < 7*time.Second
			})},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			full, fs := recordingsOf(t, c.cfg, 1, c.feed)
			batched, bs := recordingsOf(t, c.cfg, 0, c.feed)
			if len(full) == 0 && fs.RTPPackets.Load() > 0 {
				t.Fatalf("no recordings of %d RTP packets: the comparison proves nothing", fs.RTPPackets.Load())
			}
			if !slices.Equal(full, batched) {
				t.Errorf("batched passes changed the recordings:\nevery pass in full:\n%s\nbatched:\n%s", lines(full), lines(batched))
			}
			if fs.RingDrops.Load() != bs.RingDrops.Load() || fs.AfterEnd.Load() != bs.AfterEnd.Load() || fs.RecordErrors.Load() != bs.RecordErrors.Load() {
				t.Errorf("ring drops %d/%d, after end %d/%d, record errors %d/%d (full/batched)",
					fs.RingDrops.Load(), bs.RingDrops.Load(), fs.AfterEnd.Load(), bs.AfterEnd.Load(), fs.RecordErrors.Load(), bs.RecordErrors.Load())
			}
			t.Logf("%d recordings, %d RTP packets", len(full), fs.RTPPackets.Load())
		})
	}
}

func lines(s []string) string {
	out := ""
	for _, l := range s {
		out += l + "\n"
	}
	return out
}

// TestBatchedImportDefers checks that batching is really in use on a
// trunk, so TestBatchedImportIsExact compares two different things: with
// every call talking, passes skip almost all of them.
func TestBatchedImportDefers(t *testing.T) {
	st := testStore(t)
	e := New(Config{}, StoreSink(st))
	defer e.Close()
	r := e.NewReader()
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	cfg := synth.Config{Calls: 50, Duration: 10 * time.Second, Start: start, Seed: 24}
	_, err := synth.Generate(cfg, func(ts time.Time, frame []byte) error {
		if ts.Sub(start) > 8*time.Second {
			return errBenchEnough
		}
		r.Handle(packet.LinkEthernet, ts, frame)
		return nil
	})
	if !errors.Is(err, errBenchEnough) {
		t.Fatal(err)
	}
	var deferred, open int
	e.mu.Lock()
	for c := range e.calls {
		open++
		if c.deferred {
			deferred++
		}
	}
	e.mu.Unlock()
	if open != cfg.Calls || deferred < open*9/10 {
		t.Fatalf("%d of %d open calls deferred (%d calls); want nearly all", deferred, open, cfg.Calls)
	}
	t.Logf("%d of %d open calls deferred", deferred, open)
}
