package audio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"testing"
)

func readAllMP3(t testing.TB, m *MP3Reader) []int16 {
	t.Helper()
	var out []int16
	buf := make([]int16, 3000)
	for {
		n, err := m.ReadPCM16(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestMP3Corpus(t *testing.T) {
	raw, err := os.ReadFile("testdata/jfk.mp3")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMP3Reader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if f := m.Format(); f != (Format{CodecMP3, 16000, 1, 16}) {
		t.Fatalf("format %+v", f)
	}
	// soxi reports 00:00:11.09; go-mp3 keeps the encoder delay/padding, so
	// allow one MPEG-2 frame (576 samples = 36 ms) either way.
	if d := m.Duration().Seconds(); math.Abs(d-11.09) > 0.04 {
		t.Fatalf("duration %.3f s", d)
	}
	all := readAllMP3(t, m)
	if int64(len(all)) != m.NumFrames() {
		t.Fatalf("decoded %d samples, NumFrames %d", len(all), m.NumFrames())
	}
	if rms(all) < 300 {
		t.Fatalf("rms %.0f: decoded speech is near silent", rms(all))
	}
	// Seeking decodes from the frame before the target, so the samples must
	// match a straight decode exactly.
	for _, frame := range []int64{0, 575, 576, 80000, m.NumFrames() - 10, m.NumFrames()} {
		if err := m.SeekFrame(frame); err != nil {
			t.Fatal(err)
		}
		got := readAllMP3(t, m)
		if !equalInt16(got, all[frame:]) {
			t.Fatalf("after seek to %d: %d samples (want %d) or values differ", frame, len(got), len(all)-int(frame))
		}
	}
}

func rms(s []int16) float64 {
	var e float64
	for _, v := range s {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(max(1, len(s))))
}

func TestMP3Rejects(t *testing.T) {
	wav := mustWAV(t, 8000, 1, make([]int16, 4000))
	layer2 := bytes.Repeat([]byte{0xFF, 0xFD, 0x90, 0x00}, 2000) // MPEG-1 Layer II headers
	id3only := append([]byte("ID3\x04\x00\x00\x00\x00\x00\x10"), make([]byte, 16)...)
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrNotMP3},
		{"wav", wav, ErrNotMP3},
		{"id3 tag only", id3only, ErrNotMP3},
		{"layer II", layer2, ErrUnsupportedFormat},
	} {
		if _, err := NewMP3Reader(bytes.NewReader(c.in), int64(len(c.in))); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestMP3PanicBecomesError: a corrupted copy of jfk.mp3 whose frame headers
// are valid makes go-mp3 panic (index out of range) while decoding; the
// boundary must turn that into ErrCorrupt after returning the good audio
// before it. See testdata/MANIFEST.md for how the file was made.
func TestMP3PanicBecomesError(t *testing.T) {
	raw, err := os.ReadFile("testdata/mp3-go-mp3-panic.mp3")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMP3Reader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	buf := make([]int16, 1000)
	for i := 0; ; i++ {
		_, err := m.ReadPCM16(buf)
		if errors.Is(err, ErrCorrupt) {
			t.Logf("after %d reads: %v", i, err)
			break
		}
		if err != nil {
			t.Fatalf("read %d: %v, want the go-mp3 panic as ErrCorrupt", i, err)
		}
	}
	if _, err := m.ReadPCM16(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("after the failure: %v, want io.EOF", err)
	}
	// Through Render the failure surfaces as an error, not a crash.
	s, err := Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Render(context.Background(), io.Discard, RenderOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("render: %v", err)
	}
}

// dominantFreq returns the frequency (Hz, 10 Hz steps) with the most energy.
func dominantFreq(s []int16, rate int) int {
	best, bestF := 0.0, 0
	for f := 100; f < rate/2; f += 10 {
		w := 2 * math.Pi * float64(f) / float64(rate)
		var re, im float64
		for i, v := range s {
			re += float64(v) * math.Cos(w*float64(i))
			im += float64(v) * math.Sin(w*float64(i))
		}
		if p := re*re + im*im; p > best {
			best, bestF = p, f
		}
	}
	return bestF
}

func TestMP3EncodeTone(t *testing.T) {
	for _, c := range []struct{ rate, ch, freq int }{{8000, 1, 1000}, {8000, 2, 440}, {16000, 1, 3000}, {16000, 2, 700}} {
		const secs = 2
		pcm := make([]int16, c.rate*secs*c.ch)
		for i := 0; i < c.rate*secs; i++ {
			v := int16(10000 * math.Sin(2*math.Pi*float64(c.freq)*float64(i)/float64(c.rate)))
			for k := 0; k < c.ch; k++ {
				pcm[i*c.ch+k] = v
			}
		}
		var out bytes.Buffer
		e, err := NewMP3Encoder(&out, c.rate, c.ch, 0)
		if errors.Is(err, ErrMP3Unavailable) {
			t.Skip("built without LAME (no cgo, or -tags nolame): no MP3 encoder")
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(pcm); off += 160 * c.ch { // 20 ms pieces, as Render feeds it
			if err := e.Write(pcm[off:min(off+160*c.ch, len(pcm))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		kbps := float64(out.Len()*8) / secs / 1000
		m, err := NewMP3Reader(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("%d Hz %d ch: our MP3 does not decode: %v", c.rate, c.ch, err)
		}
		f := m.Format()
		outRate := MP3OutputRate(c.rate)
		if f.SampleRate != outRate || f.Channels != c.ch {
			t.Fatalf("decoded format %+v", f)
		}
		dec := readAllMP3(t, m)
		frames := len(dec) / c.ch
		// LAME adds its encoder delay and pads the last frame: at most
		// 3 frames of 576 samples (MPEG-2) more, never fewer than we fed.
		if frames < outRate*secs || frames > outRate*secs+3*576 {
			t.Errorf("%d Hz %d ch: %d frames decoded from %d", c.rate, c.ch, frames, outRate*secs)
		}
		left := make([]int16, 0, frames)
		for i := 0; i < frames; i++ {
			left = append(left, dec[i*c.ch])
		}
		if got := dominantFreq(left[outRate/4:outRate], outRate); abs(got-c.freq) > 10 {
			t.Errorf("%d Hz %d ch: dominant frequency %d Hz, fed %d Hz", c.rate, c.ch, got, c.freq)
		}
		t.Logf("%d Hz %d ch: %d bytes, %.1f kbit/s, %d frames", c.rate, c.ch, out.Len(), kbps, frames)
		if want := float64(DefaultMP3Kbps(c.rate, c.ch)); math.Abs(kbps-want) > want*0.15 {
			t.Errorf("bit rate %.1f kbit/s, want about %.0f", kbps, want)
		}
	}
}

func TestMP3EncoderArgs(t *testing.T) {
	for _, a := range [][3]int{{7000, 1, 0}, {8000, 3, 0}, {8000, 1, 999}} {
		_, err := NewMP3Encoder(io.Discard, a[0], a[1], a[2])
		if !errors.Is(err, ErrBadArgument) && !errors.Is(err, ErrMP3Unavailable) {
			t.Errorf("%v: %v", a, err)
		}
	}
}

// FuzzMP3: whatever the bytes, opening, seeking and decoding returns data
// or a sentinel error and never panics (go-mp3 panics are converted).
func FuzzMP3(f *testing.F) {
	raw, err := os.ReadFile("testdata/jfk.mp3")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw[:4096])
	f.Add(raw[len(raw)-3000:])
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := NewMP3Reader(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			if !errors.Is(err, ErrNotMP3) && !errors.Is(err, ErrUnsupportedFormat) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		buf := make([]int16, 2000)
		for i := 0; i < 200; i++ {
			if _, err := m.ReadPCM16(buf); err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read: %v", err)
				}
				break
			}
		}
		if err := m.SeekFrame(m.NumFrames() / 2); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("seek: %v", err)
		}
		_, _ = m.ReadPCM16(buf)
	})
}
