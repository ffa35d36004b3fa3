package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
)

func readAllPCM(t testing.TB, w *WAVReader) []int16 {
	t.Helper()
	var out []int16
	buf := make([]int16, 1000*w.Format().Channels)
	for {
		n, err := w.ReadPCM16(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func openWAVFile(t *testing.T, name string) (*WAVReader, []byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWAVReaderAt(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return w, raw
}

// TestWAVCorpus opens every WAV of the corpus copy, checks format and
// duration against soxi's report (testdata/MANIFEST.md), and checks that
// streaming and random-access readers agree sample for sample.
func TestWAVCorpus(t *testing.T) {
	cases := []struct {
		file     string
		codec    Codec
		rate, ch int
		bits     int
		dur      time.Duration
	}{
		{"jfk_8k_ulaw.wav", CodecPCMU, 8000, 1, 8, 11 * time.Second},
		{"jfk_8k_alaw.wav", CodecPCMA, 8000, 1, 8, 11 * time.Second},
		{"jfk_8k_pcm16.wav", CodecLinear, 8000, 1, 16, 11 * time.Second},
		{"jfk_8k_pcm8.wav", CodecLinear, 8000, 1, 8, 11 * time.Second},
		{"speak-to-customer-support.wav", CodecPCMU, 8000, 1, 8, 7136 * time.Millisecond},
		{"8bit.wav", CodecLinear, 44100, 1, 8, 2 * time.Second},
		{"listinfo.wav", CodecLinear, 44100, 1, 16, 2 * time.Second},
		{"kick-16b441k.wav", CodecLinear, 44100, 2, 16, 176462585 * time.Nanosecond},
		{"bwf.wav", CodecLinear, 44100, 1, 24, 165238095 * time.Nanosecond},
		{"misaligned-chunk.wav", CodecLinear, 44100, 2, 24, 12800000 * time.Microsecond},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			w, raw := openWAVFile(t, c.file)
			f := w.Format()
			if f.Codec != c.codec || f.SampleRate != c.rate || f.Channels != c.ch || f.BitsPerSample != c.bits {
				t.Fatalf("format %+v", f)
			}
			if d := w.Duration(); d != c.dur {
				t.Errorf("duration %v, want %v", d, c.dur)
			}
			ra := readAllPCM(t, w)
			if int64(len(ra)) != w.NumFrames()*int64(c.ch) {
				t.Fatalf("read %d samples, NumFrames %d", len(ra), w.NumFrames())
			}
			s, err := NewWAVReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			st := readAllPCM(t, s)
			if !equalInt16(ra, st) {
				t.Fatalf("streaming reader gives %d samples, ReaderAt %d, or values differ", len(st), len(ra))
			}
		})
	}
}

func equalInt16(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWAVMatchesSox compares our samples with `sox -D FILE -t s16 -` for
// one file of each coding, including 24-bit (rounding) and 8-bit unsigned.
func TestWAVMatchesSox(t *testing.T) {
	if _, err := exec.LookPath("sox"); err != nil {
		t.Skip("sox not installed: cannot compare with it")
	}
	for _, name := range []string{
		"jfk_8k_ulaw.wav", "jfk_8k_alaw.wav", "jfk_8k_pcm16.wav", "jfk_8k_pcm8.wav",
		"speak-to-customer-support.wav", "kick-16b441k.wav", "bwf.wav", "misaligned-chunk.wav", "listinfo.wav",
	} {
		t.Run(name, func(t *testing.T) {
			w, _ := openWAVFile(t, name)
			got := readAllPCM(t, w)
			want := soxS16(t, "testdata/"+name)
			if len(got) != len(want) {
				t.Fatalf("%d samples, sox %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("sample %d: %d, sox %d", i, got[i], want[i])
				}
			}
		})
	}
}

func TestWAVSeek(t *testing.T) {
	w, _ := openWAVFile(t, "kick-16b441k.wav")
	all := readAllPCM(t, w)
	for _, frame := range []int64{0, 1, 4000, w.NumFrames() - 1, w.NumFrames(), w.NumFrames() + 10} {
		if err := w.SeekFrame(frame); err != nil {
			t.Fatal(err)
		}
		got := readAllPCM(t, w)
		from := min(int(frame)*2, len(all))
		if !equalInt16(got, all[from:]) {
			t.Fatalf("after seek to %d: %d samples, want %d", frame, len(got), len(all)-from)
		}
	}
	if err := w.SeekFrame(-1); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("seek -1: %v", err)
	}
	s, _ := NewWAVReader(bytes.NewReader(mustWAV(t, 8000, 1, []int16{1, 2})))
	if err := s.SeekFrame(0); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("seek on streaming reader: %v", err)
	}
}

func mustWAV(t testing.TB, rate, ch int, samples []int16) []byte {
	t.Helper()
	h, err := WAVHeader(rate, ch, int64(len(samples)/ch))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range samples {
		h = binary.LittleEndian.AppendUint16(h, uint16(v))
	}
	return h
}

// TestWAVHeaderRoundTrip: what WAVHeader writes, our reader and sox read.
func TestWAVHeaderRoundTrip(t *testing.T) {
	samples := []int16{0, 1000, -1000, 32767, -32768, 5, 6, 7}
	raw := mustWAV(t, 16000, 2, samples)
	if len(raw) != WAVHeaderSize+2*len(samples) {
		t.Fatalf("size %d", len(raw))
	}
	w, err := NewWAVReaderAt(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if f := w.Format(); f != (Format{CodecLinear, 16000, 2, 16}) || w.NumFrames() != 4 {
		t.Fatalf("format %+v frames %d", f, w.NumFrames())
	}
	if got := readAllPCM(t, w); !equalInt16(got, samples) {
		t.Fatalf("samples %v", got)
	}
	if _, err := exec.LookPath("sox"); err == nil {
		p := t.TempDir() + "/h.wav"
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if got := soxS16(t, p); !equalInt16(got, samples) {
			t.Fatalf("sox reads %v", got)
		}
	}
	for _, bad := range [][3]int64{{0, 1, 1}, {8000, 3, 1}, {8000, 1, -1}, {8000, 2, 1 << 31}} {
		if _, err := WAVHeader(int(bad[0]), int(bad[1]), bad[2]); !errors.Is(err, ErrBadArgument) {
			t.Errorf("WAVHeader%v: %v", bad, err)
		}
	}
}

// TestWAVStreamedSize: data size 0 or 0xFFFFFFFF means "until EOF".
func TestWAVStreamedSize(t *testing.T) {
	samples := []int16{1, 2, 3, 4, 5}
	for _, size := range []uint32{0, 0xFFFFFFFF} {
		raw := mustWAV(t, 8000, 1, samples)
		binary.LittleEndian.PutUint32(raw[40:], size)
		raw = append(raw, 0x99) // a dangling half sample is dropped
		w, err := NewWAVReaderAt(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if w.NumFrames() != 5 || !equalInt16(readAllPCM(t, w), samples) {
			t.Fatalf("size %#x: frames %d", size, w.NumFrames())
		}
		s, err := NewWAVReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if s.NumFrames() != -1 || s.Duration() != 0 || !equalInt16(readAllPCM(t, s), samples) {
			t.Fatalf("streaming, size %#x: frames %d", size, s.NumFrames())
		}
	}
}

// TestWAVUnpaddedChunk: an odd-sized chunk written without its pad byte is
// still parsed (the next chunk ID is found one byte early).
func TestWAVUnpaddedChunk(t *testing.T) {
	ok := mustWAV(t, 8000, 1, []int16{7, 8, 9})
	for _, pad := range []bool{true, false} {
		var b []byte
		b = append(b, ok[:36]...) // RIFF + fmt
		b = append(b, "LIST"...)
		b = binary.LittleEndian.AppendUint32(b, 3)
		b = append(b, "abc"...)
		if pad {
			b = append(b, 0)
		}
		b = append(b, ok[36:]...)
		w, err := NewWAVReaderAt(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("pad=%v: %v", pad, err)
		}
		if got := readAllPCM(t, w); !equalInt16(got, []int16{7, 8, 9}) {
			t.Fatalf("pad=%v: %v", pad, got)
		}
	}
}

func TestWAVExtensible(t *testing.T) {
	var b []byte
	b = append(b, "RIFF\x00\x00\x00\x00WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 40)
	b = binary.LittleEndian.AppendUint16(b, wavFormatExtensible)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 8000)
	b = binary.LittleEndian.AppendUint32(b, 8000)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 8)
	b = binary.LittleEndian.AppendUint16(b, 22)
	b = binary.LittleEndian.AppendUint16(b, 8)
	b = binary.LittleEndian.AppendUint32(b, 4)
	b = binary.LittleEndian.AppendUint16(b, wavFormatALaw)
	b = append(b, wavSubtypeTail[:]...)
	b = append(b, "data\x02\x00\x00\x00\xD5\xAA"...)
	w, err := NewWAVReaderAt(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Format().Codec != CodecPCMA {
		t.Fatalf("%+v", w.Format())
	}
	if got := readAllPCM(t, w); !equalInt16(got, []int16{8, 32256}) {
		t.Fatalf("%v", got)
	}
}

// TestWAVErrors: named bad inputs and the sentinel each must produce.
func TestWAVErrors(t *testing.T) {
	good := mustWAV(t, 8000, 1, []int16{1, 2, 3})
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrNotWAV},
		{"short", good[:8], ErrNotWAV},
		{"not RIFF", mod(func(b []byte) []byte { b[0] = 'X'; return b }), ErrNotWAV},
		{"RF64", mod(func(b []byte) []byte { copy(b, "RF64"); return b }), ErrUnsupportedFormat},
		{"float", mod(func(b []byte) []byte { b[20] = 3; return b }), ErrUnsupportedFormat},
		{"gsm", mod(func(b []byte) []byte { b[20] = 0x31; return b }), ErrUnsupportedFormat},
		{"12-bit", mod(func(b []byte) []byte { b[34] = 12; return b }), ErrUnsupportedFormat},
		{"no channels", mod(func(b []byte) []byte { b[22] = 0; return b }), ErrUnsupportedFormat},
		{"zero rate", mod(func(b []byte) []byte { copy(b[24:28], []byte{0, 0, 0, 0}); return b }), ErrUnsupportedFormat},
		{"bad block align", mod(func(b []byte) []byte { b[32] = 3; return b }), ErrCorrupt},
		{"tiny fmt", mod(func(b []byte) []byte { b[16] = 8; return b }), ErrCorrupt},
		{"no data chunk", good[:36], ErrCorrupt},
		{"data before fmt", append([]byte("RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00"), good[12:]...), ErrCorrupt},
		{"chunk past EOF", mod(func(b []byte) []byte { copy(b[36:], "JUNK\xff\xff\x00\x00"); return b }), ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewWAVReaderAt(bytes.NewReader(c.in), int64(len(c.in))); !errors.Is(err, c.want) {
				t.Errorf("ReaderAt: %v, want %v", err, c.want)
			}
			if _, err := NewWAVReader(bytes.NewReader(c.in)); !errors.Is(err, c.want) {
				t.Errorf("Reader: %v, want %v", err, c.want)
			}
		})
	}
}

// FuzzWAV: any input either fails with one of our sentinels or decodes, and
// then the two readers agree and the frame count is honest.
func FuzzWAV(f *testing.F) {
	for _, name := range []string{"jfk_8k_ulaw.wav", "bwf.wav", "speak-to-customer-support.wav", "kick-16b441k.wav"} {
		raw, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw[:min(len(raw), 2048)])
	}
	f.Add(mustWAV(f, 8000, 2, []int16{1, 2, 3, 4}))
	f.Fuzz(func(t *testing.T, in []byte) {
		w, err := NewWAVReaderAt(bytes.NewReader(in), int64(len(in)))
		s, serr := NewWAVReader(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrNotWAV) && !errors.Is(err, ErrUnsupportedFormat) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without sentinel: %v", err)
			}
			if serr == nil {
				t.Fatalf("streaming reader accepts what ReaderAt rejects (%v)", err)
			}
			return
		}
		if serr != nil {
			t.Fatalf("ReaderAt accepts, streaming rejects: %v", serr)
		}
		a := readAllPCM(t, w)
		if int64(len(a)) != w.NumFrames()*int64(w.Format().Channels) {
			t.Fatalf("%d samples for %d frames", len(a), w.NumFrames())
		}
		b := readAllPCM(t, s)
		if len(b) < len(a) && s.NumFrames() != -1 {
			// The streaming reader trusts the data size; ReaderAt clamps it
			// to the file. With an honest size they must agree.
			t.Fatalf("streaming %d samples, ReaderAt %d", len(b), len(a))
		}
		if !equalInt16(a, b[:min(len(a), len(b))]) {
			t.Fatal("readers disagree on sample values")
		}
	})
}
