package webui

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
)

// refPeaks is the obvious computation the streaming peakWriter must
// match: the whole PCM in memory, bucket b = frames [b·F/n, (b+1)·F/n).
func refPeaks(pcm []byte, ch, n int) (mins, maxs [][]int16) {
	frames := len(pcm) / (2 * ch)
	if n > frames {
		n = frames
	}
	mins, maxs = make([][]int16, ch), make([][]int16, ch)
	for c := range ch {
		mins[c], maxs[c] = make([]int16, n), make([]int16, n)
		for b := range n {
			lo, hi := int16(32767), int16(-32768)
			for f := b * frames / n; f < (b+1)*frames/n; f++ {
				s := int16(binary.LittleEndian.Uint16(pcm[2*(f*ch+c):]))
				lo, hi = min(lo, s), max(hi, s)
			}
			mins[c][b], maxs[c][b] = lo, hi
		}
	}
	return mins, maxs
}

func equalPeaks(a, b [][]int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				return false
			}
		}
	}
	return true
}

// TestPeaks: the route's peaks are those of the audio playback renders
// (stereo PCM of the stored file), for several n; n larger than the
// number of frames gives one bucket per frame; the access is audited as
// playback; bad n is a 400 naming the parameter; a caller who may not
// play, or not see the recording, gets what the matrix expects.
func TestPeaks(t *testing.T) {
	f := newFixture(t)
	pcm := renderAll(t, f, f.target, audio.RenderOptions{Format: audio.OutputPCM16, Layout: audio.LayoutStereo})
	for _, n := range []int{1, 7, 100, 1000} {
		r := f.send("alice", "GET", "/api/v1/recordings/"+f.target+"/peaks?n="+strconv.Itoa(n), "")
		if r.code != 200 {
			t.Fatalf("n=%d: %d %s", n, r.code, r.body)
		}
		var got peaksJSON
		r.json(t, &got)
		wantMin, wantMax := refPeaks(pcm, 2, n)
		if got.Buckets != n || got.Channels != 2 || got.Frames != int64(len(pcm)/4) || got.Rate != 8000 ||
			!equalPeaks(got.Min, wantMin) || !equalPeaks(got.Max, wantMax) {
			t.Errorf("n=%d: buckets %d channels %d frames %d rate %d; peaks match: min %v max %v",
				n, got.Buckets, got.Channels, got.Frames, got.Rate, equalPeaks(got.Min, wantMin), equalPeaks(got.Max, wantMax))
		}
		// Twice: the second answer comes from the cache and is the same.
		var again peaksJSON
		f.send("alice", "GET", "/api/v1/recordings/"+f.target+"/peaks?n="+strconv.Itoa(n), "").json(t, &again)
		if !equalPeaks(again.Min, got.Min) || !equalPeaks(again.Max, got.Max) {
			t.Errorf("n=%d: second answer differs", n)
		}
		if n == 1000 {
			var loud int16
			for _, v := range got.Max[0] {
				loud = max(loud, v)
			}
			if loud < 1000 {
				t.Errorf("the speech recording has no peak above %d", loud)
			}
		}
	}
	q := meta.AuditQuery{Recording: f.target, Action: meta.AuditPlay, Limit: 100}
	page, err := f.st.Meta().SearchAudit(q)
	if err != nil {
		t.Fatal(err)
	}
	audited := 0
	for _, e := range page.Entries {
		if strings.HasPrefix(e.Detail, "peaks n=") {
			audited++
		}
	}
	if audited != 8 {
		t.Errorf("%d peaks requests audited, want 8", audited)
	}
	for _, bad := range []string{"n=0", "n=-1", "n=8001", "n=x", "n=1&n=2", "m=3"} {
		r := f.send("alice", "GET", "/api/v1/recordings/"+f.target+"/peaks?"+bad, "")
		if r.code != 400 {
			t.Errorf("%s: %d %s", bad, r.code, r.body)
		}
	}
	if r := f.send("alice", "GET", "/api/v1/recordings/"+f.bobRec+"/peaks", ""); r.code != 404 {
		t.Errorf("someone else's recording: %d", r.code)
	}
}

// TestPeakWriterSplits: however the PCM arrives in pieces (odd splits
// inside a sample), the peaks are the reference's.
func TestPeakWriterSplits(t *testing.T) {
	pcm := make([]byte, 2*2*997)
	for i := 0; i < len(pcm)/2; i++ {
		binary.LittleEndian.PutUint16(pcm[2*i:], uint16(int16((i*7919)%65536-32768)))
	}
	wantMin, wantMax := refPeaks(pcm, 2, 50)
	for _, piece := range []int{1, 3, 4, 5, 1000, len(pcm)} {
		w := newPeakWriter(2, int64(len(pcm)/4), 50)
		for i := 0; i < len(pcm); i += piece {
			if _, err := w.Write(pcm[i:min(i+piece, len(pcm))]); err != nil {
				t.Fatal(err)
			}
		}
		if !equalPeaks(w.min, wantMin) || !equalPeaks(w.max, wantMax) {
			t.Errorf("pieces of %d bytes: peaks differ", piece)
		}
	}
}

// TestPeakCacheEvicts: the cache holds at most its size, dropping the
// least recently used.
func TestPeakCacheEvicts(t *testing.T) {
	c := newPeakCache(2)
	a, b, d := &peaksJSON{Buckets: 1}, &peaksJSON{Buckets: 2}, &peaksJSON{Buckets: 3}
	c.put("a", a)
	c.put("b", b)
	if _, ok := c.get("a"); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put("d", d)
	if _, ok := c.get("b"); ok {
		t.Error("b, the least recently used, was kept")
	}
	if v, ok := c.get("a"); !ok || v != a {
		t.Error("a was dropped")
	}
	if v, ok := c.get("d"); !ok || v != d {
		t.Error("d missing")
	}
}

// FuzzPeakWriter: arbitrary PCM in arbitrary pieces, for one or two
// channels and any n, never panics and always matches the reference.
func FuzzPeakWriter(f *testing.F) {
	f.Add([]byte{1, 0, 255, 255, 0, 128, 255, 127}, uint8(2), uint8(2), uint8(3))
	f.Add([]byte{}, uint8(1), uint8(10), uint8(1))
	f.Add([]byte{0, 0, 0}, uint8(1), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, pcm []byte, chans, n, piece uint8) {
		ch := int(chans%2) + 1
		frames := len(pcm) / (2 * ch)
		pcm = pcm[:frames*2*ch]
		w := newPeakWriter(ch, int64(frames), int(n)+1)
		step := int(piece) + 1
		for i := 0; i < len(pcm); i += step {
			if _, err := w.Write(pcm[i:min(i+step, len(pcm))]); err != nil {
				t.Fatal(err)
			}
		}
		wantMin, wantMax := refPeaks(pcm, ch, int(n)+1)
		if !equalPeaks(w.min, wantMin) || !equalPeaks(w.max, wantMax) {
			t.Fatalf("peaks differ: %v %v, want %v %v", w.min, w.max, wantMin, wantMax)
		}
	})
}

// FuzzPeaksQuery: the query parser never panics and accepts only n in
// range.
func FuzzPeaksQuery(f *testing.F) {
	for _, s := range []string{"", "n=1000", "n=0", "n=8001", "n=%zz", "n=1&n=2", "x=1", "n=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n, err := parsePeaksQuery(raw)
		if err == nil && (n < 1 || n > maxPeaks) {
			t.Fatalf("%q accepted as n=%d", raw, n)
		}
	})
}
