package synth

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/capture"
	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
)

// testKey is a master key for throwaway stores (64 hex digits).
const testKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// TestImportRecordings imports a generated capture (5 calls × 3 s with
// DTMF) through the real engine into a real store and checks each
// recording against what was generated:
//   - one sealed stereo recording per call, found by its Call-ID;
//   - the left channel holds the caller's audio and the right the callee's
//     (no local networks configured: the caller is local), byte for byte,
//     each starting where its first packet arrived after the answer, with
//     µ-law silence before it, after it and where DTMF replaced audio;
//   - a DTMF bookmark per digit within ±40 ms of where it was sent;
//   - the duration is the talk time within ±60 ms.
func TestImportRecordings(t *testing.T) {
	cfg := Config{Calls: 5, Duration: 3 * time.Second, Seed: 2026, DTMF: testDTMF}
	path, sum := writeFile(t, t.TempDir(), cfg)
	st, recs := importFile(t, path)
	if len(recs) != cfg.Calls {
		t.Fatalf("%d recordings, want %d", len(recs), cfg.Calls)
	}
	for _, c := range sum.Calls {
		id, ok := recs[c.CallID]
		if !ok {
			t.Fatalf("call %s: no recording", c.CallID)
		}
		checkRecording(t, st, id, &c, cfg.Duration)
	}
}

// TestImportImpaired: with loss, reordering within the playout delay and
// jitter, each packet that was sent still lands on its own place, lost
// slots are silence, and the recordings' quality reports the loss.
func TestImportImpaired(t *testing.T) {
	cfg := Config{Calls: 3, Duration: 3 * time.Second, Seed: 5, LossPct: 4, ReorderPct: 4, ReorderDelay: 30 * time.Millisecond,
		Jitter: 4 * time.Millisecond, DTMF: testDTMF[:1]}
	path, sum := writeFile(t, t.TempDir(), cfg)
	st, recs := importFile(t, path)
	if len(recs) != cfg.Calls {
		t.Fatalf("%d recordings, want %d", len(recs), cfg.Calls)
	}
	for _, c := range sum.Calls {
		m := checkRecording(t, st, recs[c.CallID], &c, cfg.Duration)
		for ch, d := range []int{CallerToCallee, CalleeToCaller} {
			q := m.Quality[ch]
			s := c.Streams[d]
			// RFC 3550 A.3: expected runs to the highest sequence number
			// received, so trailing lost slots do not count.
			last := s.Slots - 1
			for c.Kind(d, last) == SlotLost {
				last--
			}
			if q.PacketsReceived != int64(s.Packets) || q.PacketsExpected != int64(last+1) || (q.LossPct > 0) != (last+1 > s.Packets) {
				t.Errorf("call %d ch %d: quality %+v, sent %d of %d", c.Index, ch, q, s.Packets, last+1)
			}
		}
	}
}

// importFile runs path through capture.New and capture.ImportFile into a
// store in a temp dir and returns the store and Call-ID → recording ID.
func importFile(t *testing.T, path string) (*store.Store, map[string]string) {
	t.Helper()
	st, err := store.Open(store.Config{DataDir: filepath.Join(t.TempDir(), "data"), Keys: store.KeySource{Env: testKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	eng := capture.New(capture.Config{}, capture.StoreSink(st))
	frames, err := capture.ImportFile(context.Background(), eng.NewReader(), path)
	eng.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := eng.Stats()
	if s.DecodeErrors.Load() != 0 || s.SIPErrors.Load() != 0 || s.RTPUnmatched.Load() != 0 || s.RingDrops.Load() != 0 || s.RecordErrors.Load() != 0 {
		t.Errorf("engine stats after %d frames: decode errors %d, SIP errors %d, unmatched RTP %d, ring drops %d, record errors %d",
			frames, s.DecodeErrors.Load(), s.SIPErrors.Load(), s.RTPUnmatched.Load(), s.RingDrops.Load(), s.RecordErrors.Load())
	}
	recs := map[string]string{}
	for _, cs := range eng.Summaries() {
		if !cs.Answered || !cs.Signalling || cs.Streams != 2 {
			t.Errorf("summary %+v", cs)
		}
		recs[cs.CallID] = cs.RecordingID
	}
	return st, recs
}

// checkRecording compares recording id with generated call c.
func checkRecording(t *testing.T, st *store.Store, id string, c *Call, talk time.Duration) meta.Recording {
	t.Helper()
	ctx := context.Background()
	m, err := st.Meta().Recording(id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != meta.StatusComplete || m.Channels != 2 || m.SIPCallIDIngress != c.CallID ||
		m.LocalParty.Number != c.Caller.Number || m.RemoteParty.Number != c.Callee.Number {
		t.Errorf("call %d: recording %+v", c.Index, m)
	}
	if !m.Start.Equal(c.Answer) {
		t.Errorf("call %d: recording starts %v, answer was %v", c.Index, m.Start, c.Answer)
	}
	if d := time.Duration(m.Duration) * time.Millisecond; d < talk-60*time.Millisecond || d > talk+60*time.Millisecond {
		t.Errorf("call %d: duration %v, want %v ±60ms", c.Index, d, talk)
	}
	a, err := st.OpenAudio(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	src, err := a.Source()
	if err != nil {
		t.Fatal(err)
	}
	g := src.Grid()
	if g == nil {
		t.Fatalf("call %d: recording is not a grid", c.Index)
	}
	h := g.Header()
	if len(h.Channels) != 2 || h.Channels[0].Codec != audio.CodecPCMU || h.Channels[1].Codec != audio.CodecPCMU ||
		h.Channels[0].Role != audio.RoleLocal || h.Channels[1].Role != audio.RoleRemote {
		t.Fatalf("call %d: grid header %+v", c.Index, h)
	}
	ticks := make([]byte, int(g.NumTicks())*g.TickSize())
	if _, err := g.ReadTicks(0, ticks); err != nil {
		t.Fatal(err)
	}
	// Left: the caller's voice; right: the callee's.
	for ch, d := range []int{CallerToCallee, CalleeToCaller} {
		var got []byte
		for k := 0; k < int(g.NumTicks()); k++ {
			_, b := g.Channel(ticks[k*g.TickSize():(k+1)*g.TickSize()], ch)
			got = append(got, b...)
		}
		want := c.Timeline(d)
		at := int(c.Streams[d].First.Sub(c.Answer) / (time.Second / 8000))
		if at+len(want) > len(got) {
			t.Fatalf("call %d ch %d: %d bytes recorded, the stream needs %d from %d", c.Index, ch, len(got), len(want), at)
		}
		if !bytes.Equal(got[at:at+len(want)], want) {
			i := 0
			for i < len(want) && got[at+i] == want[i] {
				i++
			}
			other := c.Timeline(1 - d)
			t.Fatalf("call %d ch %d: audio differs from the %s's at byte %d (slot %d, kind %d); is it the other party's? %v",
				c.Index, ch, []string{"caller", "callee"}[d], i, i/FrameBytes, c.Kind(d, i/FrameBytes), bytes.Contains(got, other[:FrameBytes]))
		}
		for i, b := range got {
			if (i < at || i >= at+len(want)) && b != audio.UlawSilence {
				t.Fatalf("call %d ch %d: byte %d outside the stream is %#x, not silence", c.Index, ch, i, b)
			}
		}
	}
	// DTMF bookmarks, in order, at the digits' offsets.
	var marks []meta.Bookmark
	for _, b := range m.Bookmarks {
		if b.Type == meta.BookmarkDTMF {
			marks = append(marks, b)
		}
	}
	if len(marks) != len(c.DTMF) {
		t.Fatalf("call %d: %d DTMF bookmarks %+v, want %d", c.Index, len(marks), marks, len(c.DTMF))
	}
	for i, dg := range c.DTMF {
		b := marks[i]
		off := time.Duration(b.OffsetMs) * time.Millisecond
		if !strings.HasPrefix(b.Label, string(dg.Symbol)) || off < dg.Offset-40*time.Millisecond || off > dg.Offset+40*time.Millisecond {
			t.Errorf("call %d digit %q: bookmark %q at %v, sent at %v", c.Index, dg.Symbol, b.Label, off, dg.Offset)
		}
	}
	return m
}
