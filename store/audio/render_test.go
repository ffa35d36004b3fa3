package audio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// sine returns n samples of a tone.
func sine(n, rate int, freq, amp float64, phase int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(amp * math.Sin(2*math.Pi*freq*float64(i+phase)/float64(rate)))
	}
	return s
}

// writeTestGrid writes a grid file in dir with the given channels; each
// channel i carries a tone gen(i, tick) encoded with its codec. Ticks where
// gap(i, tick) is true are written as TickFilled.
func writeTestGrid(t testing.TB, dir string, chans []GridChannel, ticks int, freqs []float64, gap func(ch, tick int) bool) (string, [][]int16) {
	t.Helper()
	path := filepath.Join(dir, "rec.grid")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewGridWriter(f, GridConfig{Channels: chans})
	if err != nil {
		t.Fatal(err)
	}
	h := w.Header()
	payload := make([][]byte, len(chans))
	flags := make([]TickFlag, len(chans))
	encs := make([]*G722Encoder, len(chans))
	truth := make([][]int16, len(chans)) // what each channel should decode to, per sample (G.711/L16 exact)
	for tk := 0; tk < ticks; tk++ {
		for i, c := range h.Channels {
			n := c.SampleRate * 20 / 1000
			pcm := sine(n, c.SampleRate, freqs[i], 8000, tk*n)
			payload[i] = make([]byte, c.BytesPerTick)
			flags[i] = TickPresent
			if gap != nil && gap(i, tk) {
				flags[i] = TickFilled
			}
			switch c.Codec {
			case CodecPCMU:
				EncodeUlaw(payload[i], pcm)
			case CodecPCMA:
				EncodeAlaw(payload[i], pcm)
			case CodecL16:
				EncodeL16(payload[i], pcm)
			case CodecG722:
				if encs[i] == nil {
					encs[i] = NewG722Encoder()
				}
				encs[i].Encode(payload[i], pcm)
			}
			dec := make([]int16, n)
			switch {
			case flags[i] == TickFilled && c.Codec == CodecPCMU:
				DecodeUlaw(dec, bytes.Repeat([]byte{UlawSilence}, n))
			case flags[i] == TickFilled && c.Codec == CodecPCMA:
				DecodeAlaw(dec, bytes.Repeat([]byte{AlawSilence}, n))
			case c.Codec == CodecPCMU:
				DecodeUlaw(dec, payload[i])
			case c.Codec == CodecPCMA:
				DecodeAlaw(dec, payload[i])
			case c.Codec == CodecL16 && flags[i] != TickFilled:
				DecodeL16(dec, payload[i])
			}
			truth[i] = append(truth[i], dec...)
		}
		if err := w.WriteTick(flags, payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, truth
}

func openSource(t testing.TB, path string) *Source {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func render(t testing.TB, s *Source, o RenderOptions) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.Render(context.Background(), &b, o); err != nil {
		t.Fatal(err)
	}
	if o.Format != OutputMP3 && o.Offset == 0 && o.Length == 0 {
		size, err := s.RenderedSize(o)
		if err != nil {
			t.Fatal(err)
		}
		if size != int64(b.Len()) {
			t.Fatalf("RenderedSize %d, rendered %d bytes", size, b.Len())
		}
	}
	return b.Bytes()
}

func le16(b []byte) []int16 {
	s := make([]int16, len(b)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return s
}

// TestRenderGridStereo: local party left, remote right, bit-exact with the
// G.711 decoding of what was stored; gaps are codec silence.
func TestRenderGridStereo(t *testing.T) {
	chans := []GridChannel{
		{Codec: CodecPCMU, Role: RoleRemote, SampleRate: 8000},
		{Codec: CodecPCMA, Role: RoleLocal, SampleRate: 8000},
	}
	gap := func(ch, tk int) bool { return ch == 0 && tk >= 20 && tk < 25 }
	path, truth := writeTestGrid(t, t.TempDir(), chans, 100, []float64{1000, 440}, gap)
	s := openSource(t, path)
	if s.Kind() != SourceGrid || s.Duration() != 2*time.Second {
		t.Fatalf("kind %d duration %v", s.Kind(), s.Duration())
	}
	pcm := le16(render(t, s, RenderOptions{Format: OutputPCM16}))
	if len(pcm) != 2*16000 {
		t.Fatalf("%d samples", len(pcm))
	}
	for i := 0; i < 16000; i++ {
		if pcm[2*i] != truth[1][i] || pcm[2*i+1] != truth[0][i] {
			t.Fatalf("frame %d: L=%d R=%d, want local %d remote %d", i, pcm[2*i], pcm[2*i+1], truth[1][i], truth[0][i])
		}
	}
	if v := pcm[2*(22*160)+1]; v != 0 {
		t.Fatalf("remote gap renders %d, want µ-law silence 0", v)
	}
	// Mono: saturating sum.
	mono := le16(render(t, s, RenderOptions{Format: OutputPCM16, Layout: LayoutMono}))
	for i := range mono {
		want := int16(min(32767, max(-32768, int32(truth[0][i])+int32(truth[1][i]))))
		if mono[i] != want {
			t.Fatalf("mono %d: %d want %d", i, mono[i], want)
		}
	}
	// WAV: a valid file with the same samples.
	wav := render(t, s, RenderOptions{Format: OutputWAV})
	w, err := NewWAVReaderAt(bytes.NewReader(wav), int64(len(wav)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Format() != (Format{CodecLinear, 8000, 2, 16}) || !equalInt16(readAllPCM(t, w), pcm) {
		t.Fatalf("WAV output differs: %+v", w.Format())
	}
}

// TestRenderSaturation: two full-scale channels mixed to mono clip rather
// than wrap around.
func TestRenderSaturation(t *testing.T) {
	var b bytes.Buffer
	w, _ := NewGridWriter(&b, GridConfig{Channels: []GridChannel{
		{Codec: CodecL16, SampleRate: 8000, Role: RoleLocal}, {Codec: CodecL16, SampleRate: 8000, Role: RoleRemote}}})
	p := make([]byte, 320)
	EncodeL16(p, bytes16(160, 30000))
	q := make([]byte, 320)
	EncodeL16(q, bytes16(160, -30000))
	_ = w.WriteTick([]TickFlag{TickPresent, TickPresent}, [][]byte{p, p})
	_ = w.WriteTick([]TickFlag{TickPresent, TickPresent}, [][]byte{q, q})
	s, err := Open(bytes.NewReader(b.Bytes()), int64(b.Len()))
	if err != nil {
		t.Fatal(err)
	}
	mono := le16(render(t, s, RenderOptions{Layout: LayoutMono}))
	if mono[0] != 32767 || mono[200] != -32768 {
		t.Fatalf("mono %d %d", mono[0], mono[200])
	}
}

func bytes16(n int, v int16) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// TestRenderWideband: one G.722 channel makes the output 16 kHz; the
// G.711 channel is upsampled and both tones survive on their sides.
func TestRenderWideband(t *testing.T) {
	chans := []GridChannel{
		{Codec: CodecG722, Role: RoleLocal, SampleRate: 16000, ClockRate: 8000},
		{Codec: CodecPCMU, Role: RoleRemote, SampleRate: 8000},
	}
	path, _ := writeTestGrid(t, t.TempDir(), chans, 50, []float64{5000, 1000}, nil)
	s := openSource(t, path)
	if r, _ := s.OutputRate(RenderOptions{}); r != 16000 {
		t.Fatalf("rate %d", r)
	}
	pcm := le16(render(t, s, RenderOptions{Format: OutputWAV})[WAVHeaderSize:])
	if len(pcm) != 2*16000 {
		t.Fatalf("%d samples", len(pcm))
	}
	l, r := make([]int16, 16000), make([]int16, 16000)
	for i := range l {
		l[i], r[i] = pcm[2*i], pcm[2*i+1]
	}
	if f := dominantFreq(l[4000:8000], 16000); abs(f-5000) > 10 {
		t.Errorf("left (G.722) dominant %d Hz", f)
	}
	if f := dominantFreq(r[4000:8000], 16000); abs(f-1000) > 10 {
		t.Errorf("right (upsampled G.711) dominant %d Hz", f)
	}
	// Upsampling must not leave an image at 8000-1000 = 7 kHz.
	if img, sig := tonePower(r[4000:8000], 16000, 7000), tonePower(r[4000:8000], 16000, 1000); img > sig*1e-5 {
		t.Errorf("image at 7 kHz is %.1f dB below the tone, want > 50 dB", 10*math.Log10(sig/img))
	}
	// Forcing 8 kHz halves a G.722 channel.
	n8 := len(render(t, s, RenderOptions{Rate: 8000}))
	if n8 != 8000*2*2 {
		t.Fatalf("8 kHz render: %d bytes", n8)
	}
	if _, err := s.RenderedSize(RenderOptions{Rate: 44100}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("44.1 kHz: %v", err)
	}
}

func tonePower(s []int16, rate int, f float64) float64 {
	w := 2 * math.Pi * f / float64(rate)
	var re, im float64
	for i, v := range s {
		re += float64(v) * math.Cos(w*float64(i))
		im += float64(v) * math.Sin(w*float64(i))
	}
	return re*re + im*im
}

// TestRenderSeekMatchesFull: rendering from time T, and any byte range of
// the WAV, equals the same part of a full render (G.711 and resampling are
// exact; G.722 is measured).
func TestRenderSeekMatchesFull(t *testing.T) {
	chans := []GridChannel{
		{Codec: CodecPCMA, Role: RoleLocal, SampleRate: 8000},
		{Codec: CodecPCMU, Role: RoleRemote, SampleRate: 8000},
	}
	path, _ := writeTestGrid(t, t.TempDir(), chans, 150, []float64{300, 2500}, nil)
	wide, _ := writeTestGrid(t, t.TempDir(), append(chans[:1:1], GridChannel{Codec: CodecG722, Role: RoleRemote, SampleRate: 16000}), 150, []float64{300, 2500}, nil)
	jfk, err := os.ReadFile("testdata/jfk_8k_pcm16.wav")
	if err != nil {
		t.Fatal(err)
	}
	upload, err := Open(bytes.NewReader(jfk), int64(len(jfk)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		s     *Source
		o     RenderOptions
		exact bool
	}{
		{"g711 8k", openSource(t, path), RenderOptions{Format: OutputWAV}, true},
		{"g711 up to 16k", openSource(t, path), RenderOptions{Format: OutputWAV, Rate: 16000}, true},
		{"g711 mono", openSource(t, path), RenderOptions{Format: OutputWAV, Layout: LayoutMono}, true},
		{"g722+g711 16k", openSource(t, wide), RenderOptions{Format: OutputWAV}, false},
		{"upload 8k", upload, RenderOptions{Format: OutputWAV}, true},
		{"upload up to 16k", upload, RenderOptions{Format: OutputWAV, Rate: 16000}, true},
		{"upload down to 4k", upload, RenderOptions{Format: OutputWAV, Rate: 4000, Layout: LayoutMono}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			full := render(t, c.s, c.o)
			rate, _ := c.s.OutputRate(c.o)
			ch := 2
			if c.o.Layout == LayoutMono {
				ch = 1
			}
			for _, start := range []time.Duration{0, 20 * time.Millisecond, 1234567 * time.Microsecond, 2500 * time.Millisecond} {
				o := c.o
				o.Start = start
				part := render(t, c.s, o)
				from := WAVHeaderSize + int(int64(start)*int64(rate)/int64(time.Second))*2*ch
				from = min(from, len(full))
				compareRender(t, c.exact, "start "+start.String(), part[WAVHeaderSize:], full[from:])
			}
			for _, rg := range [][2]int64{{0, 10}, {3, 100}, {44, 4}, {1001, 999}, {7777, 0}, {int64(len(full)) - 5, 100}} {
				o := c.o
				o.Offset, o.Length = rg[0], rg[1]
				part := render(t, c.s, o)
				end := len(full)
				if rg[1] > 0 {
					end = min(end, int(rg[0]+rg[1]))
				}
				compareRender(t, c.exact, "range", part, full[rg[0]:end])
			}
		})
	}
}

func compareRender(t *testing.T, exact bool, what string, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d bytes, want %d", what, len(got), len(want))
	}
	if exact {
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: bytes differ from the full render", what)
		}
		return
	}
	g, w := le16(got[len(got)%2:]), le16(want[len(want)%2:])
	maxd := 0
	for i := range g {
		maxd = max(maxd, abs(int(g[i])-int(w[i])))
	}
	t.Logf("%s: max difference from the full render %d LSB", what, maxd)
	if maxd > 64 {
		t.Fatalf("%s: G.722 warm-up leaves a difference of %d LSB", what, maxd)
	}
}

func TestRenderUploads(t *testing.T) {
	raw, err := os.ReadFile("testdata/jfk_8k_ulaw.wav")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := NewWAVReaderAt(bytes.NewReader(raw), int64(len(raw)))
	want := readAllPCM(t, w)
	st := le16(render(t, s, RenderOptions{}))
	for i, v := range want {
		if st[2*i] != v || st[2*i+1] != v {
			t.Fatalf("mono upload frame %d: %d/%d, want %d on both sides", i, st[2*i], st[2*i+1], v)
		}
	}
	mp3raw, err := os.ReadFile("testdata/jfk.mp3")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Open(bytes.NewReader(mp3raw), int64(len(mp3raw)))
	if err != nil {
		t.Fatal(err)
	}
	if ms.Kind() != SourceMP3 {
		t.Fatalf("kind %d", ms.Kind())
	}
	out := render(t, ms, RenderOptions{Format: OutputWAV, Layout: LayoutMono})
	wr, err := NewWAVReaderAt(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	if wr.Format().SampleRate != 16000 || wr.Duration() != ms.Duration() {
		t.Fatalf("mp3 → wav %+v %v (source %v)", wr.Format(), wr.Duration(), ms.Duration())
	}
	if _, err := Open(bytes.NewReader([]byte("hello world, not audio")), 22); !errors.Is(err, ErrUnknownSource) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestRenderMP3(t *testing.T) {
	chans := []GridChannel{
		{Codec: CodecPCMA, Role: RoleLocal, SampleRate: 8000},
		{Codec: CodecPCMU, Role: RoleRemote, SampleRate: 8000},
	}
	path, _ := writeTestGrid(t, t.TempDir(), chans, 100, []float64{440, 1000}, nil)
	s := openSource(t, path)
	var b bytes.Buffer
	err := s.Render(context.Background(), &b, RenderOptions{Format: OutputMP3})
	if errors.Is(err, ErrMP3Unavailable) {
		t.Skip("built without LAME (no cgo, or -tags nolame): no MP3 encoder")
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMP3Reader(bytes.NewReader(b.Bytes()), int64(b.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if m.Format().Channels != 2 || m.Format().SampleRate != 16000 {
		t.Fatalf("%+v", m.Format())
	}
	if d := m.Duration(); d < 2*time.Second || d > 2*time.Second+150*time.Millisecond {
		t.Fatalf("duration %v", d)
	}
	if size, err := s.RenderedSize(RenderOptions{Format: OutputMP3}); err != nil || size != int64(b.Len()) {
		t.Fatalf("MP3 size %d, %v; rendered %d bytes", size, err, b.Len())
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n--; f.n < 0 {
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

func TestRenderStops(t *testing.T) {
	path, _ := writeTestGrid(t, t.TempDir(), []GridChannel{{Codec: CodecPCMU, SampleRate: 8000}}, 100, []float64{440}, nil)
	s := openSource(t, path)
	if err := s.Render(context.Background(), &failWriter{n: 2}, RenderOptions{}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("writer error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Render(ctx, io.Discard, RenderOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if err := s.Render(context.Background(), io.Discard, RenderOptions{Start: -time.Second}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("negative start: %v", err)
	}
	// Past the end: an empty body (and a header saying so).
	out := render(t, s, RenderOptions{Format: OutputWAV, Start: time.Hour})
	if len(out) != WAVHeaderSize {
		t.Fatalf("start past end: %d bytes", len(out))
	}
}
