package webui

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

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

// toneWAV8k is d of a 440 Hz tone as 8 kHz 16-bit mono WAV.
func toneWAV8k(d time.Duration) []byte {
	n := int(d.Seconds() * 8000)
	b := pcmWAV(8000, 1, n)
	for i := range n {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(int16(8000*math.Sin(2*math.Pi*440*float64(i)/8000))))
	}
	return b
}

// BenchmarkPeaks: the server's work for the detail page's waveform of a
// one-hour call (uploaded 8 kHz mono WAV, stored encrypted): computing
// 1,000 stereo buckets from the stored audio (what the peaks route does on
// a cache miss), against the baseline of the page before, rendering the
// whole stereo WAV for the browser to fold (the transfer and the
// browser's own work come on top of that). Each iteration does both, one
// after the other, so the ratio is measured under the same load even on
// a noisy machine: ratio = peaks time / WAV time.
func BenchmarkPeaks(b *testing.B) {
	e := newEnv(b, nil)
	e.addUser("admin", meta.RoleAdmin)
	r := e.do(basic(uploadRequest(b, imagicle, metaJSON("admin", e.clock.Now().Add(-2*time.Hour), "PT1H", ""), "a.wav", "audio/wave", toneWAV8k(time.Hour)), "admin"))
	var up struct{ ID string }
	if r.code != http.StatusCreated {
		b.Fatalf("upload: %d %s", r.code, r.body)
	}
	r.json(b, &up)
	src, c, err := e.srv.data.Library.OpenSource(context.Background(), up.ID)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	var wavT, peaksT time.Duration
	var cw countWriter
	var out *peaksJSON
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		cw = 0
		if err := src.Render(context.Background(), &cw, audio.RenderOptions{Format: audio.OutputWAV}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if out, err = computePeaks(req, src, 1000, true); err != nil {
			b.Fatal(err)
		}
		wavT, peaksT = wavT+t1.Sub(t0), peaksT+time.Since(t1)
	}
	js, _ := json.Marshal(out)
	b.ReportMetric(float64(wavT.Milliseconds())/float64(b.N), "wav-ms")
	b.ReportMetric(float64(peaksT.Milliseconds())/float64(b.N), "peaks-ms")
	b.ReportMetric(float64(peaksT)/float64(wavT), "ratio-to-wav")
	b.ReportMetric(float64(cw), "wav-bytes")
	b.ReportMetric(float64(len(js)), "peaks-bytes")
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// TestPeaksStereo: a two-channel upload keeps its channels apart (local
// left, remote right), each with its own peaks.
func TestPeaksStereo(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	const frames = 8000
	wav := pcmWAV(8000, 2, frames)
	for i := range frames {
		s := math.Sin(2 * math.Pi * 300 * float64(i) / 8000)
		binary.LittleEndian.PutUint16(wav[44+4*i:], uint16(int16(2000*s)))   // left: quiet
		binary.LittleEndian.PutUint16(wav[46+4*i:], uint16(int16(-20000*s))) // right: loud
	}
	r := e.do(basic(uploadRequest(t, imagicle, metaJSON("admin", e.clock.Now().Add(-time.Hour), "PT1S", ""), "s.wav", "audio/wave", wav), "admin"))
	var up struct{ ID string }
	if r.code != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.code, r.body)
	}
	r.json(t, &up)
	var got peaksJSON
	res := e.page(e.signIn("admin"), "/api/v1/recordings/"+up.ID+"/peaks?n=10")
	if res.code != 200 {
		t.Fatalf("%d %s", res.code, res.body)
	}
	res.json(t, &got)
	wantMin, wantMax := refPeaks(wav[44:], 2, 10)
	if !equalPeaks(got.Min, wantMin) || !equalPeaks(got.Max, wantMax) {
		t.Fatalf("stereo peaks differ: %v %v", got.Max, wantMax)
	}
	if got.Max[0][5] > 2100 || got.Max[1][5] < 19000 {
		t.Errorf("channels mixed up: left max %d, right max %d", got.Max[0][5], got.Max[1][5])
	}
}

// pcmWAV is a 16-bit PCM WAV of frames frames, silent: the header from
// store/audio, the samples for the caller to fill in after it.
func pcmWAV(rate, channels, frames int) []byte {
	h, err := audio.WAVHeader(rate, channels, int64(frames))
	if err != nil {
		panic(err)
	}
	return append(h, make([]byte, 2*channels*frames)...)
}
