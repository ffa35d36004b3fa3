package audio

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestMP3Ranges: MP3 output is seekable. RenderedSize is the length of the
// full render; any byte range (across segment boundaries, inside the last
// segment, one byte, to the end) equals the same bytes of the full render;
// every frame has the same length; and the decoded audio of a steady tone
// has no glitch at the segment seams (each 20 ms window holds the tone at
// the same level).
func TestMP3Ranges(t *testing.T) {
	chans := []GridChannel{
		{Codec: CodecPCMU, Role: RoleLocal, SampleRate: 8000},
		{Codec: CodecPCMU, Role: RoleRemote, SampleRate: 8000},
	}
	// 25 s: three segments of 9.2 s at the MP3's 16 kHz, the last short.
	path, _ := writeTestGrid(t, t.TempDir(), chans, 1250, []float64{440, 1000}, nil)
	s := openSource(t, path)
	o := RenderOptions{Format: OutputMP3}
	var full bytes.Buffer
	err := s.Render(context.Background(), &full, o)
	if errors.Is(err, ErrMP3Unavailable) {
		t.Skip("built without LAME (no cgo, or -tags nolame): no MP3 encoder")
	}
	if err != nil {
		t.Fatal(err)
	}
	size, err := s.RenderedSize(o)
	if err != nil || size != int64(full.Len()) {
		t.Fatalf("RenderedSize %d, %v; rendered %d", size, err, full.Len())
	}
	fb, _, ok := mp3FrameLayout(8000, 2, 0)
	if !ok || fb != 288 {
		t.Fatalf("frame layout at 8 kHz stereo: %d bytes, %v", fb, ok)
	}
	raw := full.Bytes()
	for off := 0; off < len(raw); off += int(fb) {
		if raw[off] != 0xFF || raw[off+1]&0xE0 != 0xE0 {
			t.Fatalf("no frame header at %d (frame %d)", off, off/int(fb))
		}
	}
	if len(raw)%int(fb) != 0 {
		t.Fatalf("%d bytes is not a whole number of %d-byte frames", len(raw), fb)
	}

	seg := int64(mp3SegmentFrames) * fb
	ranges := [][2]int64{{0, 1}, {seg - 10, 20}, {seg, seg}, {2*seg - 1, 2}, {2 * seg, 0}, {size - 1, 1}, {5, size - 5}, {seg + 7, 2*seg + 3}}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 6 {
		off := rng.Int64N(size)
		ranges = append(ranges, [2]int64{off, 1 + rng.Int64N(size-off)})
	}
	for _, r := range ranges {
		ro := o
		ro.Offset, ro.Length = r[0], r[1]
		var b bytes.Buffer
		if err := s.Render(context.Background(), &b, ro); err != nil {
			t.Fatalf("range %v: %v", r, err)
		}
		end := size
		if r[1] > 0 {
			end = min(size, r[0]+r[1])
		}
		if !bytes.Equal(b.Bytes(), raw[r[0]:end]) {
			t.Fatalf("range %d+%d: %d bytes differ from the full render's %d", r[0], r[1], b.Len(), end-r[0])
		}
	}

	// Decode and look at the left channel's 440 Hz tone in 20 ms windows
	// (320 samples at 16 kHz): the seams at 9.2 s and 18.4 s must not show.
	m, err := NewMP3Reader(bytes.NewReader(raw), size)
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Duration(); d < 25*time.Second || d > 25*time.Second+200*time.Millisecond {
		t.Fatalf("duration %v", d)
	}
	pcm := make([]int16, 2*m.NumFrames())
	n := 0
	for n < len(pcm) {
		k, err := m.ReadPCM16(pcm[n:])
		n += k
		if err != nil || k == 0 {
			break
		}
	}
	if n < len(pcm)*9/10 {
		t.Fatalf("decoded %d of %d samples", n, len(pcm))
	}
	left := make([]int16, n/2)
	for i := range left {
		left[i] = pcm[2*i]
	}
	const win = 320
	var levels []float64
	for i := 16000; i+win <= len(left)-16000; i += win { // skip the first and last second
		levels = append(levels, math.Sqrt(tonePower(left[i:i+win], 16000, 440)))
	}
	lo, hi := levels[0], levels[0]
	for _, l := range levels {
		lo, hi = min(lo, l), max(hi, l)
	}
	if lo < 0.8*hi {
		t.Fatalf("the tone's level varies from %.0f to %.0f over 20 ms windows: a seam shows", lo, hi)
	}
}

// TestMP3VaryingFramesNotSeekable: at 44.1 kHz MP3 frames alternate in
// length, so the size is unknown and ranges are refused, while the whole
// file still renders.
func TestMP3VaryingFramesNotSeekable(t *testing.T) {
	if _, _, ok := mp3FrameLayout(44100, 2, 0); ok {
		t.Fatal("44.1 kHz reported as fixed-length frames")
	}
	for _, rate := range []int{8000, 12000, 16000, 24000, 32000, 48000} {
		for ch := 1; ch <= 2; ch++ {
			if _, _, ok := mp3FrameLayout(rate, ch, 0); !ok {
				t.Errorf("%d Hz, %d channels: not seekable at the default bit rate", rate, ch)
			}
		}
	}
}

// BenchmarkMP3RangeEnd renders the last 64 KiB of a one-hour recording's
// MP3 and, in the same run, the whole MP3, and reports how much cheaper the
// range is (range-vs-full-ratio): a player seeking near the end waits for a
// segment, not for an hour.
func BenchmarkMP3RangeEnd(b *testing.B) {
	chans := []GridChannel{
		{Codec: CodecPCMU, Role: RoleLocal, SampleRate: 8000},
		{Codec: CodecPCMU, Role: RoleRemote, SampleRate: 8000},
	}
	path, _ := writeTestGrid(b, b.TempDir(), chans, 180_000, []float64{440, 1000}, nil)
	s := openSource(b, path)
	o := RenderOptions{Format: OutputMP3}
	size, err := s.RenderedSize(o)
	if errors.Is(err, ErrMP3Unavailable) {
		b.Skip("built without LAME: no MP3 encoder")
	}
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := s.Render(context.Background(), discard{}, o); err != nil {
		b.Fatal(err)
	}
	whole := time.Since(t0)
	o.Offset, o.Length = size-64<<10, 64<<10
	b.ReportAllocs()
	b.ResetTimer()
	var ranged time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := s.Render(context.Background(), discard{}, o); err != nil {
			b.Fatal(err)
		}
		ranged += time.Since(t0)
	}
	b.ReportMetric(whole.Seconds()*1000, "full-ms")
	b.ReportMetric(ranged.Seconds()/float64(b.N)/whole.Seconds(), "range-vs-full-ratio")
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
