package audio

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// hourGrid writes a one-hour stereo G.711 grid (local A-law, remote µ-law,
// 180000 ticks, 58 MB) to a temp file and opens it as a Source.
func hourGrid(b *testing.B) *Source {
	b.Helper()
	path := filepath.Join(b.TempDir(), "hour.grid")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := NewGridWriter(bw, GridConfig{Channels: []GridChannel{
		{Codec: CodecPCMA, Role: RoleLocal, SampleRate: 8000},
		{Codec: CodecPCMU, Role: RoleRemote, SampleRate: 8000},
	}})
	if err != nil {
		b.Fatal(err)
	}
	// A few seconds of tones, repeated: content does not change the cost.
	const distinct = 250
	var pay [distinct][2][]byte
	for i := range pay {
		pay[i][0] = make([]byte, 160)
		pay[i][1] = make([]byte, 160)
		EncodeAlaw(pay[i][0], sine(160, 8000, 440, 8000, 160*i))
		EncodeUlaw(pay[i][1], sine(160, 8000, 1000, 8000, 160*i))
	}
	flags := []TickFlag{TickPresent, TickPresent}
	p := make([][]byte, 2)
	for tk := 0; tk < 3600*50; tk++ {
		p[0], p[1] = pay[tk%distinct][0], pay[tk%distinct][1]
		if err := w.WriteTick(flags, p); err != nil {
			b.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return openSource(b, path)
}

// BenchmarkRenderHour: time-to-first-byte and throughput on a one-hour
// stereo G.711 recording, WAV output.
//   - first-second / seek-59min: render 1 s of audio from 0:00 / 59:00;
//     ttfb-µs is the time from calling Render to the first Write (the WAV
//     header is written first, so the metric includes the first 20 ms of
//     PCM as the second write: see ttfb-pcm-µs).
//   - 60s-from-30min: render one minute; x-realtime is audio seconds per
//     wall-clock second.
func BenchmarkRenderHour(b *testing.B) {
	s := hourGrid(b)
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		start time.Duration
		secs  int64
	}{
		{"first-second", 0, 1},
		{"seek-59min", 59 * time.Minute, 1},
		{"60s-from-30min", 30 * time.Minute, 60},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			o := RenderOptions{Format: OutputWAV, Start: c.start, Length: WAVHeaderSize + c.secs*8000*4}
			var ttfb, ttfbPCM time.Duration
			for i := 0; i < b.N; i++ {
				w := &pcmTTFB{}
				w.start = time.Now()
				if err := s.Render(ctx, w, o); err != nil {
					b.Fatal(err)
				}
				ttfb += w.first.Sub(w.start)
				ttfbPCM += w.firstPCM.Sub(w.start)
			}
			el := b.Elapsed().Seconds()
			b.ReportMetric(float64(ttfb.Microseconds())/float64(b.N), "ttfb-µs")
			b.ReportMetric(float64(ttfbPCM.Microseconds())/float64(b.N), "ttfb-pcm-µs")
			b.ReportMetric(float64(c.secs)*float64(b.N)/el, "x-realtime")
		})
	}
}

type pcmTTFB struct {
	start, first, firstPCM time.Time
	n                      int
}

func (w *pcmTTFB) Write(p []byte) (int, error) {
	now := time.Now()
	if w.n == 0 {
		w.first = now
	}
	w.n += len(p)
	if w.firstPCM.IsZero() && w.n > WAVHeaderSize {
		w.firstPCM = now
	}
	return len(p), nil
}

// BenchmarkG711Decode: one 20 ms packet per op, into a caller buffer.
func BenchmarkG711Decode(b *testing.B) {
	src := make([]byte, 160)
	EncodeUlaw(src, sine(160, 8000, 440, 8000, 0))
	dst := make([]int16, 160)
	for _, c := range []struct {
		name string
		f    func([]int16, []byte) int
	}{{"ulaw", DecodeUlaw}, {"alaw", DecodeAlaw}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(160)
			for i := 0; i < b.N; i++ {
				c.f(dst, src)
			}
		})
	}
}

// BenchmarkG722Decode: one 20 ms packet (160 octets → 320 samples) per op.
func BenchmarkG722Decode(b *testing.B) {
	src, err := os.ReadFile("testdata/g722-sip-rtp.g722")
	if err != nil {
		b.Fatal(err)
	}
	d := NewG722Decoder()
	dst := make([]int16, 320)
	b.ReportAllocs()
	b.SetBytes(160)
	for i := 0; i < b.N; i++ {
		off := (i * 160) % (len(src) - 160)
		d.Decode(dst, src[off:off+160])
	}
}

// BenchmarkGridWriteTick: one stereo G.711 tick per op.
func BenchmarkGridWriteTick(b *testing.B) {
	w, err := NewGridWriter(io.Discard, GridConfig{Channels: []GridChannel{
		{Codec: CodecPCMA, Role: RoleLocal, SampleRate: 8000},
		{Codec: CodecPCMU, Role: RoleRemote, SampleRate: 8000},
	}})
	if err != nil {
		b.Fatal(err)
	}
	flags := []TickFlag{TickPresent, TickFilled}
	p := [][]byte{make([]byte, 160), nil}
	b.ReportAllocs()
	b.SetBytes(322)
	for i := 0; i < b.N; i++ {
		if err := w.WriteTick(flags, p); err != nil {
			b.Fatal(err)
		}
	}
}
