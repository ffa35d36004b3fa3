package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/callvault/callvault/capture/synth"
	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/store/recfile"
)

// gatedSink is a real store behind a gate: every store call (Create,
// Apply, and a recorder's Close and Abort) waits until the gate opens, the
// way a bbolt commit with fsync holds up its caller on a busy disk. calls
// counts the store calls that were made while the gate was shut.
type gatedSink struct {
	sink Sink
	gate chan struct{}
	mu   sync.Mutex
	shut int // calls that had to wait
}

func (g *gatedSink) wait() {
	select {
	case <-g.gate:
	default:
		g.mu.Lock()
		g.shut++
		g.mu.Unlock()
		<-g.gate
	}
}

func (g *gatedSink) Create(ctx context.Context, rec meta.Recording, imported bool) (Recorder, error) {
	g.wait()
	r, err := g.sink.Create(ctx, rec, imported)
	if err != nil {
		return nil, err
	}
	return gatedRecorder{r, g}, nil
}

func (g *gatedSink) Apply(ctx context.Context, cmd meta.Command) (meta.Result, error) {
	g.wait()
	return g.sink.Apply(ctx, cmd)
}

func (g *gatedSink) AppendSignalling(id meta.ID, msgs ...store.SignalMessage) error {
	g.wait()
	return g.sink.AppendSignalling(id, msgs...)
}

type gatedRecorder struct {
	Recorder
	g *gatedSink
}

func (r gatedRecorder) Close(ctx context.Context, f store.Final) (meta.Recording, error) {
	r.g.wait()
	return r.Recorder.Close(ctx, f)
}

func (r gatedRecorder) Abort(ctx context.Context, by string) error {
	r.g.wait()
	return r.Recorder.Abort(ctx, by)
}

// TestSlowStoreDoesNotStallFlusher is issue 4's live loss: calls starting
// and ending together made the flush pass wait for store commits, and the
// rings of every other call overflowed. Here the store holds every call
// for 3 s while live capture (its flush passes run by the test on capture
// time) takes 40 calls that start, talk with DTMF and end: no flush pass
// may wait for the store, nothing is dropped, and once the store catches
// up, the recordings are the same, byte for byte, as an import of the
// same traffic makes (which runs its store work inline).
func TestSlowStoreDoesNotStallFlusher(t *testing.T) {
	cfg := synth.Config{Calls: 40, Duration: 2 * time.Second, Stagger: 10 * time.Millisecond, Seed: 11,
		DTMF: []synth.Digit{{Symbol: '7', At: 500 * time.Millisecond}}}

	feed := func(e *Engine, live bool) {
		r := e.NewReader()
		var last int64
		_, err := synth.Generate(cfg, func(ts time.Time, frame []byte) error {
			r.Handle(packet.LinkEthernet, ts, frame)
			if now := ts.UnixNano(); live && now-last >= int64(e.cfg.FlushEvery) {
				// The live flusher's pass, on capture time so the run
				// does not depend on this machine's speed.
				last = now
				e.flush(now)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// The reference: an import, store work inline.
	ist := testStore(t)
	ie := New(Config{}, StoreSink(ist))
	feed(ie, false)
	ie.Close()
	want := map[string]CallSummary{}
	for _, s := range ie.Summaries() {
		want[s.CallID] = s
	}
	if len(want) != cfg.Calls {
		t.Fatalf("import: %d recordings of %d calls", len(want), cfg.Calls)
	}

	st := testStore(t)
	gs := &gatedSink{sink: StoreSink(st), gate: make(chan struct{})}
	e := New(Config{Live: true}, gs)
	opened := time.AfterFunc(3*time.Second, func() { close(gs.gate) })
	defer opened.Stop()
	start := time.Now()
	feed(e, true)
	fed := time.Since(start)
	s := e.Stats()
	if fed >= 3*time.Second {
		t.Fatalf("feeding took %v: the flush passes waited for the shut store", fed)
	}
	if m := time.Duration(s.FlushMaxNanos.Load()); m > time.Second {
		t.Errorf("longest flush pass %v with the store shut; want far under the 3 s it is held", m)
	}
	if q := s.StoreQueue.Load(); q == 0 {
		t.Errorf("no store work queued while the store was shut")
	}
	e.Close() // waits for the gate, then for every queued job
	if gs.shut == 0 {
		t.Fatal("no store call waited at the gate: the test proved nothing")
	}
	if s.RingDrops.Load() != 0 || s.RecordErrors.Load() != 0 || s.StoreQueue.Load() != 0 {
		t.Fatalf("%d ring drops, %d record errors, %d jobs left", s.RingDrops.Load(), s.RecordErrors.Load(), s.StoreQueue.Load())
	}
	got := e.Summaries()
	if len(got) != cfg.Calls || s.Recordings.Load() != int64(cfg.Calls) {
		t.Fatalf("live: %d summaries, %d recordings of %d calls", len(got), s.Recordings.Load(), cfg.Calls)
	}
	for _, g := range got {
		w, ok := want[g.CallID]
		if !ok {
			t.Fatalf("live recorded call %q, import did not", g.CallID)
		}
		if g.Status != string(meta.StatusComplete) || g.Packets != w.Packets || g.DurationMs != w.DurationMs ||
			g.Bookmarks != w.Bookmarks || g.Bookmarks != 1 || g.EndReason != w.EndReason {
			t.Errorf("call %s: live %+v\nimport %+v", g.CallID, g, w)
			continue
		}
		if a, b := recordingAudio(t, st, g.RecordingID), recordingAudio(t, ist, w.RecordingID); !bytes.Equal(a, b) {
			t.Errorf("call %s: live audio (%d bytes) differs from the import's (%d bytes)", g.CallID, len(a), len(b))
		}
		m, err := st.Meta().Recording(g.RecordingID)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Bookmarks) != 1 || m.Bookmarks[0].Type != meta.BookmarkDTMF {
			t.Errorf("call %s: bookmarks %+v, want the one DTMF digit", g.CallID, m.Bookmarks)
		}
	}
}

// recordingAudio is a recording's whole plaintext (the grid container).
func recordingAudio(t *testing.T, st *store.Store, id string) []byte {
	t.Helper()
	a, err := st.OpenAudio(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := io.ReadAll(io.NewSectionReader(a, 0, a.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPendingRecorder: bytes written before the store created the
// recording are kept in order and handed over on the first write after;
// a store that never catches up fails the recording at maxPending
// instead of growing memory.
func TestPendingRecorder(t *testing.T) {
	st := testStore(t)
	sink := StoreSink(st)
	id, err := newRecordingID()
	if err != nil {
		t.Fatal(err)
	}
	p := newPendingRecorder(id)
	var want []byte
	for i := 0; i < 10; i++ {
		b := bytes.Repeat([]byte{byte(i)}, 1000)
		if _, err := p.Write(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b...)
	}
	r, err := sink.Create(context.Background(), meta.Recording{ID: id, Direction: meta.DirUnknown, Source: meta.SourceMirror, File: meta.FileInfo{Format: meta.FormatGrid}, Start: time.Unix(1e9, 0)}, false)
	if err != nil {
		t.Fatal(err)
	}
	p.ready(r)
	tail := []byte("after creation")
	if _, err := p.Write(tail); err != nil {
		t.Fatal(err)
	}
	want = append(want, tail...)
	if p.buf != nil {
		t.Errorf("%d bytes still buffered after the hand-over", len(p.buf))
	}
	if _, err := r.Close(context.Background(), store.Final{}); err != nil {
		t.Fatal(err)
	}
	if got := recordingAudio(t, st, id); !bytes.Equal(got, want) {
		t.Fatalf("stored %d bytes, want the %d written in order", len(got), len(want))
	}

	never := newPendingRecorder("never")
	chunk := make([]byte, 64<<10)
	var werr error
	for i := 0; i < maxPending/len(chunk)+1 && werr == nil; i++ {
		_, werr = never.Write(chunk)
	}
	if !errors.Is(werr, ErrStoreBehind) || len(never.buf) > maxPending {
		t.Fatalf("after %d bytes with no recording: %v, %d buffered", maxPending+len(chunk), werr, len(never.buf))
	}
	never.fail(errors.New("disk on fire"))
	if _, err := never.Write([]byte{1}); err == nil || err.Error() != "disk on fire" {
		t.Fatalf("write after a failed create: %v", err)
	}
}

// forcedSink passes every Create to a Sink with imported set as the test
// says, whatever the engine asked.
type forcedSink struct {
	Sink
	imported bool
}

func (f forcedSink) Create(ctx context.Context, rec meta.Recording, _ bool) (Recorder, error) {
	return f.Sink.Create(ctx, rec, f.imported)
}

// TestImportRecordingsUnflushed: an import's recordings are created
// store.Unflushed, so even with the store flushing every millisecond their
// files hold full chunks only (the first one the file header's 48 bytes
// short, so the chunks after it are page aligned), and one last (possibly
// empty) chunk: no
// held-back tail in capture is needed for that any more. The same import
// with its recordings created as live ones shows the flush cutting chunks
// short (the check can fail).
func TestImportRecordingsUnflushed(t *testing.T) {
	for _, imported := range []bool{true, false} {
		dir := t.TempDir()
		st, err := store.Open(store.Config{DataDir: dir, Keys: store.KeySource{Env: testMasterKey}, FlushInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		e := New(Config{}, forcedSink{StoreSink(st), imported})
		r := e.NewReader()
		if _, err := synth.Generate(synth.Config{Calls: 20, Duration: 20 * time.Second, Seed: 9}, func(ts time.Time, frame []byte) error {
			r.Handle(packet.LinkEthernet, ts, frame)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		e.Close()
		cut := 0
		sums := e.Summaries()
		if len(sums) != 20 {
			t.Fatalf("imported=%v: %d calls, want 20", imported, len(sums))
		}
		for _, s := range sums {
			m, err := st.Meta().Recording(s.RecordingID)
			if err != nil || m.Status != meta.StatusComplete {
				t.Fatalf("imported=%v: %s: %+v, %v", imported, s.RecordingID, m.Status, err)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "recordings", m.File.Path))
			if err != nil {
				t.Fatal(err)
			}
			// Full chunks, then the last one (empty when the size fills
			// the chunks before it). The first chunk is the header's 48
			// bytes short, so every later chunk starts on a page (16 KiB)
			// boundary (recfile's alignedFirstChunk).
			var lens []int64
			for off := recfile.HeaderSize; off < len(raw); {
				if off+4 > len(raw) {
					t.Fatalf("%s: torn length field at %d", s.RecordingID, off)
				}
				if imported && off%(16<<10) != 0 && len(lens) > 0 {
					t.Errorf("imported=%v: %s: chunk %d starts at %d, not on a 16 KiB boundary", imported, s.RecordingID, len(lens), off)
				}
				l := int64(binary.BigEndian.Uint32(raw[off:]))
				lens = append(lens, l)
				off += int(l) + store.ChunkOverhead
			}
			var total int64
			short := 0
			for k, l := range lens {
				total += l
				full := int64(liveChunkSize)
				if k == 0 {
					full -= recfile.HeaderSize
				}
				if k < len(lens)-1 && l != full {
					short++
				}
			}
			if total != m.Size {
				t.Fatalf("imported=%v: %s: chunks hold %d bytes, metadata says %d", imported, s.RecordingID, total, m.Size)
			}
			if short > 0 {
				cut++
				if imported {
					t.Errorf("%s: %d of %d chunks cut short", s.RecordingID, short, len(lens))
				}
			}
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("imported=%v: %d of %d recordings have chunks cut short", imported, cut, len(sums))
		if !imported && cut == 0 {
			t.Error("recordings created as live ones were never cut by a 1 ms flush: the check above proves nothing")
		}
	}
}
