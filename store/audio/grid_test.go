package audio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func stereoG711(t testing.TB) GridConfig {
	t.Helper()
	return GridConfig{
		Start: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Channels: []GridChannel{
			{Codec: CodecPCMA, Role: RoleLocal, SampleRate: 8000, Label: "agent 100"},
			{Codec: CodecPCMU, Role: RoleRemote, SampleRate: 8000, Label: "+4930123456"},
		},
	}
}

// TestGridRoundTrip writes a grid to a real file with present, filled and
// absent ticks and reads every byte back at its arithmetic offset.
func TestGridRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "call.grid")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stereoG711(t)
	cfg.Channels = append(cfg.Channels,
		GridChannel{Codec: CodecG722, Role: RoleMixed, SampleRate: 16000, ClockRate: 8000, Label: "wideband"},
		GridChannel{Codec: CodecL16, Role: RoleUnknown, SampleRate: 8000})
	w, err := NewGridWriter(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := w.Header()
	wantBPT := []int{160, 160, 160, 320}
	for i, c := range h.Channels {
		if c.BytesPerTick != wantBPT[i] {
			t.Fatalf("channel %d: %d bytes per tick, want %d", i, c.BytesPerTick, wantBPT[i])
		}
	}
	const ticks = 50
	payload := make([][]byte, 4)
	flags := make([]TickFlag, 4)
	for tk := 0; tk < ticks; tk++ {
		for ch := range payload {
			payload[ch] = bytes.Repeat([]byte{byte(tk*4 + ch)}, wantBPT[ch])
			switch {
			case ch == 1 && tk < 10:
				flags[ch] = TickAbsent // remote answered late
			case tk%7 == 3:
				flags[ch] = TickFilled // a lost packet
			default:
				flags[ch] = TickPresent
			}
		}
		if err := w.WriteTick(flags, payload); err != nil {
			t.Fatal(err)
		}
	}
	wc := w.Counts()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	r, err := NewGridReader(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	rh := r.Header()
	if rh.TickMs != 20 || !rh.Start.Equal(cfg.Start) || len(rh.Channels) != 4 {
		t.Fatalf("header %+v", rh)
	}
	for i, c := range rh.Channels {
		want := h.Channels[i]
		if c != want {
			t.Errorf("channel %d: read %+v, wrote %+v", i, c, want)
		}
	}
	if rh.Channels[2].ClockRate != 8000 || rh.Channels[3].ClockRate != 8000 {
		t.Errorf("clock rates %d %d", rh.Channels[2].ClockRate, rh.Channels[3].ClockRate)
	}
	if r.NumTicks() != ticks || r.Duration() != time.Second {
		t.Fatalf("%d ticks, %v", r.NumTicks(), r.Duration())
	}
	if r.TickSize() != 4+160*3+320 {
		t.Fatalf("tick size %d", r.TickSize())
	}
	silence := []byte{AlawSilence, UlawSilence, G722Silence, 0}
	buf := make([]byte, 3*r.TickSize()+5)
	for from := int64(0); from < ticks; {
		n, err := r.ReadTicks(from, buf)
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < n; k++ {
			tk := int(from) + k
			tick := buf[k*r.TickSize() : (k+1)*r.TickSize()]
			for ch := 0; ch < 4; ch++ {
				flag, data := r.Channel(tick, ch)
				want := byte(tk*4 + ch)
				switch {
				case ch == 1 && tk < 10:
					if flag != TickAbsent {
						t.Fatalf("tick %d ch %d flag %d", tk, ch, flag)
					}
					want = silence[ch]
				case tk%7 == 3:
					if flag != TickFilled {
						t.Fatalf("tick %d ch %d flag %d", tk, ch, flag)
					}
					want = silence[ch]
				default:
					if flag != TickPresent {
						t.Fatalf("tick %d ch %d flag %d", tk, ch, flag)
					}
				}
				if !bytes.Equal(data, bytes.Repeat([]byte{want}, wantBPT[ch])) {
					t.Fatalf("tick %d ch %d: bytes % x...", tk, ch, data[:4])
				}
			}
		}
		from += int64(n)
	}
	if _, err := r.ReadTicks(ticks, buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read past end: %v", err)
	}
	rc, err := r.Counts()
	if err != nil {
		t.Fatal(err)
	}
	for ch := range rc {
		if rc[ch] != wc[ch] {
			t.Errorf("channel %d: reader counts %+v, writer %+v", ch, rc[ch], wc[ch])
		}
	}
	if rc[1].Absent != 10 || rc[0].Filled != 7 || rc[0].Present != 43 {
		t.Errorf("counts %+v", rc)
	}
}

// TestGridTruncatedTick: a crash can cut the file inside a tick; the cut
// tick is ignored and everything before it still reads.
func TestGridTruncatedTick(t *testing.T) {
	var b bytes.Buffer
	w, err := NewGridWriter(&b, stereoG711(t))
	if err != nil {
		t.Fatal(err)
	}
	p := [][]byte{make([]byte, 160), make([]byte, 160)}
	for i := 0; i < 3; i++ {
		if err := w.WriteTick([]TickFlag{TickPresent, TickPresent}, p); err != nil {
			t.Fatal(err)
		}
	}
	full := b.Bytes()
	for cut := 0; cut < 322; cut += 37 {
		data := full[:len(full)-cut]
		r, err := NewGridReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		want := int64(3)
		if cut > 0 {
			want = 2
		}
		if r.NumTicks() != want {
			t.Fatalf("cut %d: %d ticks", cut, r.NumTicks())
		}
	}
}

func TestGridErrors(t *testing.T) {
	var b bytes.Buffer
	if _, err := NewGridWriter(&b, GridConfig{}); !errors.Is(err, ErrUnsupportedFormat) {
		t.Errorf("no channels: %v", err)
	}
	bad := []GridChannel{
		{Codec: CodecPCMU, SampleRate: 16000},
		{Codec: CodecG722, SampleRate: 8000},
		{Codec: CodecMP3, SampleRate: 8000},
		{Codec: CodecL16, SampleRate: 11025}, // 220.5 samples per 20 ms
		{Codec: CodecPCMU, SampleRate: 8000, Role: 9},
	}
	for _, c := range bad {
		if _, err := NewGridWriter(&b, GridConfig{Channels: []GridChannel{c}}); !errors.Is(err, ErrUnsupportedFormat) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if _, err := NewGridWriter(&b, GridConfig{Channels: []GridChannel{{Codec: CodecPCMU, SampleRate: 8000, Label: string(make([]byte, 28))}}}); !errors.Is(err, ErrBadArgument) {
		t.Errorf("long label: %v", err)
	}
	b.Reset()
	w, err := NewGridWriter(&b, stereoG711(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTick([]TickFlag{TickPresent}, [][]byte{nil}); !errors.Is(err, ErrBadArgument) {
		t.Errorf("one channel of two: %v", err)
	}
	if err := w.WriteTick([]TickFlag{TickPresent, TickPresent}, [][]byte{make([]byte, 159), make([]byte, 160)}); !errors.Is(err, ErrBadArgument) {
		t.Errorf("short payload: %v", err)
	}
	if err := w.WriteTick([]TickFlag{7, TickPresent}, [][]byte{nil, make([]byte, 160)}); !errors.Is(err, ErrBadArgument) {
		t.Errorf("bad flag: %v", err)
	}
	if w.NumTicks() != 0 || b.Len() != 24+80 {
		t.Fatalf("a rejected tick was written: %d ticks, %d bytes", w.NumTicks(), b.Len())
	}
	good := append([]byte(nil), b.Bytes()...)
	mod := func(f func([]byte)) []byte { c := append([]byte(nil), good...); f(c); return c }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrNotGrid},
		{"wrong magic", mod(func(c []byte) { c[0] = 'X' }), ErrNotGrid},
		{"version 2", mod(func(c []byte) { c[6] = 2 }), ErrUnsupportedFormat},
		{"zero channels", mod(func(c []byte) { c[7] = 0 }), ErrCorrupt},
		{"header too short", mod(func(c []byte) { c[9] = 30 }), ErrCorrupt},
		{"header past EOF", mod(func(c []byte) { c[8] = 1 }), ErrCorrupt},
		{"tick 0 ms", mod(func(c []byte) { c[11] = 0 }), ErrUnsupportedFormat},
		{"bytes per tick lie", mod(func(c []byte) { c[24+3] = 100 }), ErrCorrupt},
		{"unknown codec", mod(func(c []byte) { c[24] = 42 }), ErrUnsupportedFormat},
		{"label too long", mod(func(c []byte) { c[24+12] = 200 }), ErrCorrupt},
	}
	for _, c := range cases {
		if _, err := NewGridReader(bytes.NewReader(c.in), int64(len(c.in))); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// A flag byte outside the defined values is reported by Counts.
	p := [][]byte{make([]byte, 160), make([]byte, 160)}
	if err := w.WriteTick([]TickFlag{TickPresent, TickPresent}, p); err != nil {
		t.Fatal(err)
	}
	data := append([]byte(nil), b.Bytes()...)
	data[104+161] = 9
	r, err := NewGridReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Counts(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad flag in file: %v", err)
	}
}

// TestGridHeaderExtension: a longer header (fields a later version may add)
// is skipped using the header length.
func TestGridHeaderExtension(t *testing.T) {
	var b bytes.Buffer
	w, _ := NewGridWriter(&b, stereoG711(t))
	_ = w.WriteTick([]TickFlag{TickFilled, TickFilled}, [][]byte{nil, nil})
	raw := b.Bytes()
	ext := append(append(append([]byte(nil), raw[:104]...), make([]byte, 16)...), raw[104:]...)
	ext[9] = 104 + 16
	r, err := NewGridReader(bytes.NewReader(ext), int64(len(ext)))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, r.TickSize())
	if n, err := r.ReadTicks(0, buf); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if f, d := r.Channel(buf, 1); f != TickFilled || d[0] != UlawSilence {
		t.Fatalf("flag %d byte %#x", f, d[0])
	}
}

func TestNoAllocs(t *testing.T) {
	w, err := NewGridWriter(io.Discard, stereoG711(t))
	if err != nil {
		t.Fatal(err)
	}
	flags := []TickFlag{TickPresent, TickFilled}
	p := [][]byte{make([]byte, 160), nil}
	if n := testing.AllocsPerRun(100, func() { _ = w.WriteTick(flags, p) }); n != 0 {
		t.Errorf("WriteTick: %v allocs/op", n)
	}
	src := make([]byte, 160)
	dst := make([]int16, 320)
	if n := testing.AllocsPerRun(100, func() { DecodeUlaw(dst, src); DecodeAlaw(dst, src) }); n != 0 {
		t.Errorf("G.711 decode: %v allocs/op", n)
	}
	enc := make([]byte, 160)
	if n := testing.AllocsPerRun(100, func() { EncodeUlaw(enc, dst); EncodeAlaw(enc, dst) }); n != 0 {
		t.Errorf("G.711 encode: %v allocs/op", n)
	}
	gd, ge := NewG722Decoder(), NewG722Encoder()
	if n := testing.AllocsPerRun(100, func() { gd.Decode(dst, src); ge.Encode(enc, dst) }); n != 0 {
		t.Errorf("G.722: %v allocs/op", n)
	}
}

// FuzzGrid: arbitrary bytes either fail with a sentinel or parse into a
// reader whose every tick can be read and counted without panics, and whose
// header survives a write/read round trip.
func FuzzGrid(f *testing.F) {
	var b bytes.Buffer
	w, _ := NewGridWriter(&b, stereoG711(f))
	_ = w.WriteTick([]TickFlag{TickPresent, TickFilled}, [][]byte{make([]byte, 160), nil})
	_ = w.WriteTick([]TickFlag{TickAbsent, TickPresent}, [][]byte{nil, make([]byte, 160)})
	f.Add(b.Bytes())
	b.Reset()
	w, _ = NewGridWriter(&b, GridConfig{TickMs: 10, Channels: []GridChannel{{Codec: CodecG722, SampleRate: 16000}, {Codec: CodecL16, SampleRate: 16000, Role: RoleMixed}}})
	_ = w.WriteTick([]TickFlag{TickFilled, TickFilled}, [][]byte{nil, nil})
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewGridReader(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			if !errors.Is(err, ErrNotGrid) && !errors.Is(err, ErrUnsupportedFormat) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		h := r.Header()
		if int64(len(in)) < int64(r.TickSize())*r.NumTicks() {
			t.Fatalf("%d ticks of %d bytes in %d bytes", r.NumTicks(), r.TickSize(), len(in))
		}
		buf := make([]byte, 2*r.TickSize())
		for from := int64(0); from < r.NumTicks(); {
			n, err := r.ReadTicks(from, buf)
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k < n; k++ {
				for ch := range h.Channels {
					r.Channel(buf[k*r.TickSize():], ch)
				}
			}
			from += int64(n)
		}
		_, _ = r.Counts()
		var out bytes.Buffer
		if _, err := NewGridWriter(&out, GridConfig(h)); err != nil {
			t.Fatalf("a header we accept cannot be written again: %v", err)
		}
	})
}
