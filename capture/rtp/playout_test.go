package rtp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/callvault/callvault/store/audio"
)

const ms = int64(time.Millisecond)

type tick struct {
	flag audio.TickFlag
	b    []byte
}

// player drives a Playout the way a flusher does: before each packet it
// pulls every tick that is ready at the packet's arrival, then writes it;
// at the end it closes the stream and pulls up to `until` ticks.
type player struct {
	t      *testing.T
	p      *Playout
	ticks  []tick
	digits []Digit
}

func newPlayer(t *testing.T, cfg PlayoutConfig) *player {
	t.Helper()
	if cfg.Codec == 0 {
		cfg.Codec = audio.CodecPCMA
	}
	if cfg.PayloadType == 0 && cfg.Codec == audio.CodecPCMA {
		cfg.PayloadType = 8
	}
	p, err := NewPlayout(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &player{t: t, p: p}
}

func (pl *player) pull(now int64, limit int) {
	for len(pl.ticks) < limit {
		dst := make([]byte, pl.p.TickBytes())
		want := pl.p.NextIndex()
		f, ok := pl.p.NextTick(dst, now)
		if !ok {
			return
		}
		if int64(len(pl.ticks)) != want {
			pl.t.Fatalf("tick %d returned as index %d", len(pl.ticks), want)
		}
		pl.ticks = append(pl.ticks, tick{f, dst})
	}
}

func (pl *player) write(s Slot, payload []byte) {
	pl.pull(s.Arrival, 1<<30)
	s.Len = uint16(len(payload))
	pl.digits = append(pl.digits, pl.p.Write(&s, payload)...)
}

func (pl *player) finish(until int) {
	pl.digits = append(pl.digits, pl.p.Close()...)
	pl.pull(0, until)
}

func (pl *player) flags() string {
	var b []byte
	for _, t := range pl.ticks {
		b = append(b, ".PF"[t.flag])
	}
	return string(b)
}

// frame returns a recognisable 20 ms PCMA payload for packet i.
func frame(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*7 + j%5 + 1)
		if b[j] == audio.AlawSilence {
			b[j]++
		}
	}
	return b
}

func TestPlayoutConfig(t *testing.T) {
	for _, cfg := range []PlayoutConfig{
		{},
		{Codec: audio.CodecMP3},
		{Codec: audio.CodecPCMU, ClockRate: 16000},
		{Codec: audio.CodecL16, ClockRate: 4000},
		{Codec: audio.CodecL16, ClockRate: 11025}, // 20 ms is not whole samples
		{Codec: audio.CodecPCMU, Delay: -1},
		{Codec: audio.CodecPCMU, BufferTicks: 1 << 20},
	} {
		if _, err := NewPlayout(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err = %v", cfg, err)
		}
	}
}

// stream builds packets i = from..to-1 of a 20 ms stream whose packet 0
// has seq0/ts0 and arrives at start0.
func stream(from, to int, seq0 uint16, ts0 uint32, start0 int64) []Slot {
	var out []Slot
	for i := from; i < to; i++ {
		out = append(out, Slot{Seq: seq0 + uint16(i), TS: ts0 + uint32(i*160), SSRC: 0x1234, PT: 8, Arrival: start0 + int64(i)*20*ms})
	}
	return out
}

func TestPlayoutBasic(t *testing.T) {
	cases := []struct {
		name   string
		mutate func([]Slot) []Slot
		flags  string
		check  func(t *testing.T, pl *player)
	}{
		{"lossless", nil, "PPPPPPPPPP", nil},
		{"loss", func(s []Slot) []Slot { return append(s[:4:4], s[5:]...) }, "PPPPFPPPPP", nil},
		{"reorder within delay", func(s []Slot) []Slot {
			s[3].Arrival = s[4].Arrival + 5*ms // 3 arrives just after 4
			s[3], s[4] = s[4], s[3]
			return s
		}, "PPPPPPPPPP", nil},
		{"reorder beyond delay is dropped", func(s []Slot) []Slot {
			late := s[3]
			late.Arrival += 400 * ms
			return append(append(s[:3:3], s[4:]...), late)
		}, "PPPFPPPPPPFFFFFFFF", func(t *testing.T, pl *player) {
			// ticks 10..17 were pulled while waiting for the late packet,
			// before Close: the stream was still on, so they are filled
			if st := pl.p.Stats(); st.Late != 1 || st.Reanchors != 0 {
				t.Errorf("stats %+v", st)
			}
		}},
		{"duplicates", func(s []Slot) []Slot {
			d := s[2]
			d.Arrival += 30 * ms
			return append(append(s[:4:4], d), s[4:]...)
		}, "PPPPPPPPPP", func(t *testing.T, pl *player) {
			if st := pl.p.Stats(); st.Duplicates != 1 {
				t.Errorf("stats %+v", st)
			}
		}},
		{"other payload type ignored", func(s []Slot) []Slot { s[6].PT = 0; return s }, "PPPPPPFPPP", nil},
		{"comfort noise", func(s []Slot) []Slot {
			for i := 5; i < 8; i++ {
				s[i].PT = ptComfortNoise
			}
			return s
		}, "PPPPPFFFPP", func(t *testing.T, pl *player) {
			if st := pl.p.Stats(); st.ComfortNoise != 3 {
				t.Errorf("stats %+v", st)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pl := newPlayer(t, PlayoutConfig{Start: 1000 * ms})
			pkts := stream(0, 10, 100, 5000, 1000*ms)
			if c.mutate != nil {
				pkts = c.mutate(pkts)
			}
			for _, s := range pkts {
				pl.write(s, frame(int(s.Seq-100), 160))
			}
			pl.finish(len(c.flags))
			if f := pl.flags(); f != c.flags {
				t.Fatalf("flags %s, want %s (stats %+v)", f, c.flags, pl.p.Stats())
			}
			for i, tk := range pl.ticks[:10] {
				want := frame(i, 160)
				if tk.flag != audio.TickPresent {
					want = bytes.Repeat([]byte{audio.AlawSilence}, 160)
				}
				if !bytes.Equal(tk.b, want) {
					t.Fatalf("tick %d bytes differ", i)
				}
			}
			if c.check != nil {
				c.check(t, pl)
			}
		})
	}
}

// TestPlayoutPtime: 10, 30 and 60 ms packets give the same timeline as
// the payloads concatenated.
func TestPlayoutPtime(t *testing.T) {
	for _, ptime := range []int{10, 20, 30, 60} {
		t.Run(fmt.Sprint(ptime), func(t *testing.T) {
			pl := newPlayer(t, PlayoutConfig{Start: 0})
			n := ptime * 8
			var all []byte
			for i := 0; i < 600/ptime; i++ {
				f := frame(i, n)
				all = append(all, f...)
				pl.write(Slot{Seq: uint16(i), TS: uint32(i * n), SSRC: 1, PT: 8, Arrival: int64(i*ptime) * ms}, f)
			}
			pl.finish(30)
			var got []byte
			for _, tk := range pl.ticks {
				if tk.flag != audio.TickPresent {
					t.Fatalf("flags %s", pl.flags())
				}
				got = append(got, tk.b...)
			}
			if !bytes.Equal(got, all) {
				t.Fatal("timeline differs from concatenated payloads")
			}
		})
	}
}

func TestPlayoutWrap(t *testing.T) {
	pl := newPlayer(t, PlayoutConfig{Start: 0})
	pkts := stream(0, 40, 65520, 0xFFFFFFFF-160*10+1, 0) // both wrap after 10..16 packets
	for i, s := range pkts {
		pl.write(s, frame(i, 160))
	}
	pl.finish(40)
	if f := pl.flags(); f != string(bytes.Repeat([]byte("P"), 40)) {
		t.Fatalf("flags %s", f)
	}
	for i, tk := range pl.ticks {
		if !bytes.Equal(tk.b, frame(i, 160)) {
			t.Fatalf("tick %d differs", i)
		}
	}
}

func TestPlayoutLateStartAndAlignment(t *testing.T) {
	// The recording starts at 0; this direction's first packet arrives at
	// 370 ms. Ticks before are absent; its audio starts 370 ms in, so its
	// first tick (18) is partly covered.
	pl := newPlayer(t, PlayoutConfig{Start: 0})
	for i, s := range stream(0, 20, 1, 99, 370*ms) {
		pl.write(s, frame(i, 160))
	}
	pl.finish(40)
	want := string(bytes.Repeat([]byte("."), 18)) + string(bytes.Repeat([]byte("P"), 21)) + "."
	if f := pl.flags(); f != want {
		t.Fatalf("flags %s\nwant  %s", f, want)
	}
	// byte 370 ms * 8 = 2960 of the timeline is the first payload byte
	var tl []byte
	for _, tk := range pl.ticks {
		tl = append(tl, tk.b...)
	}
	if !bytes.Equal(tl[2960:2960+160], frame(0, 160)) || tl[2959] != audio.AlawSilence {
		t.Fatal("first packet not at its arrival position")
	}
	// the first and last ticks are only partly the stream's, but all of
	// their part was received: not partial
	if st := pl.p.Stats(); st.PartialTicks != 0 {
		t.Fatalf("partial ticks %d", st.PartialTicks)
	}
}

func TestPlayoutTalkspurts(t *testing.T) {
	t.Run("timestamps advance across silence", func(t *testing.T) {
		pl := newPlayer(t, PlayoutConfig{Start: 0})
		a := stream(0, 5, 1, 0, 0)
		b := stream(5, 10, 1, 0, 0)
		for i := range b { // 1 s of silence suppressed: ts and arrival jump
			b[i].TS += 8000
			b[i].Arrival += 1000 * ms
		}
		b[0].Marker = true
		for i, s := range append(a, b...) {
			pl.write(s, frame(i, 160))
		}
		pl.finish(60)
		want := "PPPPP" + string(bytes.Repeat([]byte("F"), 50)) + "PPPPP"
		if f := pl.flags(); f != want {
			t.Fatalf("flags %s", f)
		}
		if st := pl.p.Stats(); st.Reanchors != 0 {
			t.Fatalf("re-anchored: %+v", st)
		}
	})
	t.Run("timestamps frozen across silence", func(t *testing.T) {
		// some senders keep counting from where they stopped: the
		// arrival time says 1 s passed, the timestamp says nothing did
		pl := newPlayer(t, PlayoutConfig{Start: 0})
		a := stream(0, 5, 1, 0, 0)
		b := stream(5, 10, 1, 0, 0)
		for i := range b {
			b[i].Arrival += 1000 * ms
		}
		b[0].Marker = true
		for i, s := range append(a, b...) {
			pl.write(s, frame(i, 160))
		}
		pl.finish(60)
		want := "PPPPP" + string(bytes.Repeat([]byte("F"), 50)) + "PPPPP"
		if f := pl.flags(); f != want {
			t.Fatalf("flags %s", f)
		}
		if st := pl.p.Stats(); st.Reanchors != 1 || st.Late != 0 {
			t.Fatalf("stats %+v", st)
		}
		if !bytes.Equal(pl.ticks[55].b, frame(5, 160)) {
			t.Fatal("talkspurt not at its arrival position")
		}
	})
	t.Run("huge timestamp jump", func(t *testing.T) {
		pl := newPlayer(t, PlayoutConfig{Start: 0})
		a := stream(0, 5, 1, 0, 0)
		b := stream(5, 10, 1, 0, 0)
		for i := range b {
			b[i].TS += 8000 * 3600 * 3 // three hours of timestamps, in 20 ms
		}
		for i, s := range append(a, b...) {
			pl.write(s, frame(i, 160))
		}
		pl.finish(12)
		if f := pl.flags(); f != "PPPPPPPPPP.." {
			t.Fatalf("flags %s", f)
		}
		if st := pl.p.Stats(); st.Reanchors != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("timestamp jump ahead, past the buffer but inside the re-anchor window", func(t *testing.T) {
		// 1 s of timestamps in 20 ms: under Reanchor (2 s), so it would be
		// kept as a gap, but the 23-tick timeline cannot hold a packet 1 s
		// ahead. It re-anchors at its arrival instead of being dropped.
		pl := newPlayer(t, PlayoutConfig{Start: 0})
		if n := pl.p.nticks; n != 23 {
			t.Fatalf("default timeline of %d ticks, want 23 (120 ms delay + 300 ms, 2 to spare)", n)
		}
		a := stream(0, 5, 1, 0, 0)
		b := stream(5, 10, 1, 0, 0)
		for i := range b {
			b[i].TS += 8000
		}
		for i, s := range append(a, b...) {
			pl.write(s, frame(i, 160))
		}
		pl.finish(12)
		if f := pl.flags(); f != "PPPPPPPPPP.." {
			t.Fatalf("flags %s", f)
		}
		if st := pl.p.Stats(); st.Reanchors != 1 || st.Overrun != 0 {
			t.Fatalf("stats %+v", st)
		}
		if !bytes.Equal(pl.ticks[5].b, frame(5, 160)) {
			t.Fatal("the packet after the jump is not at its arrival position")
		}
	})
	t.Run("SSRC change", func(t *testing.T) {
		pl := newPlayer(t, PlayoutConfig{Start: 0})
		a := stream(0, 5, 1, 0, 0)
		b := stream(5, 10, 40000, 0x77777777, 0) // new source, other seq/ts space
		for i := range b {
			b[i].SSRC = 0x9999
			b[i].Arrival += 200 * ms // after a 200 ms switch-over gap
		}
		for i, s := range append(a, b...) {
			pl.write(s, frame(i, 160))
		}
		pl.finish(20)
		if f := pl.flags(); f != "PPPPPFFFFFFFFFFPPPPP" {
			t.Fatalf("flags %s", f)
		}
		if st := pl.p.Stats(); st.SSRCChanges != 1 || st.Reanchors != 0 {
			t.Fatalf("stats %+v", st)
		}
		if !bytes.Equal(pl.ticks[15].b, frame(5, 160)) {
			t.Fatal("new source not at its arrival position")
		}
	})
	t.Run("stall longer than the delay shifts the stream", func(t *testing.T) {
		pl := newPlayer(t, PlayoutConfig{Start: 0})
		pkts := stream(0, 20, 1, 0, 0)
		for i := 10; i < 20; i++ {
			pkts[i].Arrival += 300 * ms // the network held everything for 300 ms
		}
		for i, s := range pkts {
			pl.write(s, frame(i, 160))
		}
		pl.finish(40)
		st := pl.p.Stats()
		if st.Reanchors != 1 || st.Late != 0 || st.TicksPresent != 20 {
			t.Fatalf("flags %s stats %+v", pl.flags(), st)
		}
	})
}

// TestPlayoutDrift: a sender clock 0.1% slow over ten minutes puts its
// timestamps 600 ms behind the capture clock. Extrapolating from the last
// packet, not from the anchor, means nothing is ever late.
func TestPlayoutDrift(t *testing.T) {
	pl := newPlayer(t, PlayoutConfig{Start: 0})
	n := 30000
	for i := 0; i < n; i++ {
		pl.write(Slot{Seq: uint16(i), TS: uint32(i * 160), SSRC: 1, PT: 8, Arrival: int64(i) * 20 * ms * 1001 / 1000}, frame(i, 160))
	}
	pl.finish(n)
	st := pl.p.Stats()
	if st.Late != 0 || st.Reanchors != 0 || st.Overrun != 0 || st.TicksPresent != uint64(n) {
		t.Fatalf("stats %+v", st)
	}
}

func TestPlayoutEvents(t *testing.T) {
	pl := newPlayer(t, PlayoutConfig{Start: 0, EventPT: 101})
	pkts := stream(0, 30, 1, 1000, 0)
	// a digit pressed at packet 10 for 5 packets: audio replaced by events
	for i := 10; i < 15; i++ {
		pkts[i].PT = 101
		pkts[i].TS = 1000 + 10*160
	}
	for i, s := range pkts {
		p := frame(i, 160)
		if s.PT == 101 {
			end := byte(0)
			if i == 14 {
				end = 0x80
			}
			d := uint16((i - 9) * 160)
			p = []byte{7, end | 10, byte(d >> 8), byte(d)}
		}
		pl.write(s, p)
	}
	pl.finish(30)
	if f := pl.flags(); f != "PPPPPPPPPPFFFFFPPPPPPPPPPPPPPP" {
		t.Fatalf("flags %s", f)
	}
	if len(pl.digits) != 1 || pl.digits[0].Symbol != '7' || pl.digits[0].Duration != 800 || pl.digits[0].Offset != 200*time.Millisecond {
		t.Fatalf("digits %+v", pl.digits)
	}
}

func TestPlayoutL16(t *testing.T) {
	pl := newPlayer(t, PlayoutConfig{Codec: audio.CodecL16, PayloadType: 99, ClockRate: 16000, Start: 0})
	if pl.p.TickBytes() != 640 {
		t.Fatalf("tick bytes %d", pl.p.TickBytes())
	}
	var all []byte
	for i := 0; i < 10; i++ {
		f := frame(i, 640)
		all = append(all, f...)
		pl.write(Slot{Seq: uint16(i), TS: uint32(i * 320), PT: 99, Arrival: int64(i) * 20 * ms}, f)
	}
	pl.write(Slot{Seq: 10, TS: 3200, PT: 99, Arrival: 200 * ms}, make([]byte, 641)) // odd byte
	pl.finish(11)
	var got []byte
	for _, tk := range pl.ticks[:10] {
		got = append(got, tk.b...)
	}
	if !bytes.Equal(got, all) || pl.p.Stats().Misaligned != 1 {
		t.Fatalf("L16 timeline differs, stats %+v", pl.p.Stats())
	}
}

func TestPlayoutBeforeStartAndClose(t *testing.T) {
	pl := newPlayer(t, PlayoutConfig{Start: 1000 * ms})
	for i, s := range stream(0, 60, 1, 0, 0) { // 0..1.2 s, recording from 1 s
		pl.write(s, frame(i, 160))
	}
	pl.finish(12)
	if !pl.p.Drained() {
		t.Fatal("not drained after Close and 12 ticks")
	}
	pl.p.Write(&Slot{Seq: 61, TS: 61 * 160, PT: 8, SSRC: 0x1234, Arrival: 1220 * ms, Len: 160}, frame(61, 160))
	st := pl.p.Stats()
	if f := pl.flags(); f != "PPPPPPPPPP.." || st.BeforeStart != 50 || st.AfterClose != 1 {
		t.Fatalf("flags %s stats %+v", f, st)
	}
}

func TestPlayoutNoAllocs(t *testing.T) {
	p, err := NewPlayout(PlayoutConfig{Codec: audio.CodecPCMA, PayloadType: 8, EventPT: 101})
	if err != nil {
		t.Fatal(err)
	}
	payload := frame(1, 160)
	ev := []byte{1, 0x8A, 0, 160}
	dst := make([]byte, p.TickBytes())
	i := 0
	if n := testing.AllocsPerRun(2000, func() {
		s := Slot{Seq: uint16(i), TS: uint32(i * 160), PT: 8, Arrival: int64(i) * 20 * ms}
		p.Write(&s, payload)
		s.PT = 101
		p.Write(&s, ev)
		for {
			if _, ok := p.NextTick(dst, s.Arrival); !ok {
				break
			}
		}
		i++
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// BenchmarkPlayout: one 20 ms G.711 packet written and its tick pulled.
func BenchmarkPlayout(b *testing.B) {
	p, _ := NewPlayout(PlayoutConfig{Codec: audio.CodecPCMA, PayloadType: 8})
	payload := frame(1, 160)
	dst := make([]byte, p.TickBytes())
	b.ReportAllocs()
	b.SetBytes(160)
	i := 0
	for b.Loop() {
		s := Slot{Seq: uint16(i), TS: uint32(i * 160), PT: 8, Arrival: int64(i) * 20 * ms, Len: 160}
		p.Write(&s, payload)
		p.NextTick(dst, s.Arrival)
		i++
	}
}

// FuzzPlayout feeds arbitrary packet sequences (8 bytes of input per
// packet: sequence, timestamp and arrival steps, payload type, length,
// SSRC and marker) and pulls ticks in between: no panic, ticks come out
// strictly one index after another, memory stays what NewPlayout
// allocated, and the flags are consistent with the bytes.
func FuzzPlayout(f *testing.F) {
	f.Add([]byte{1, 160, 20, 0, 20, 0, 1, 160, 20, 0, 20, 0, 1, 160, 20, 0, 20, 0, 1, 160, 20, 0, 20, 0})
	f.Add([]byte{1, 160, 20, 0, 20, 0, 0xFF, 0, 0xF0, 0x80, 0, 0x40, 2, 240, 30, 1, 30, 0})
	f.Add([]byte{5, 0xFF, 0xFF, 3, 0, 0x81, 0xF0, 0x10, 0x40, 0, 0xFF, 0xC1, 3, 0x7F, 200, 2, 60, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := NewPlayout(PlayoutConfig{Codec: audio.CodecPCMU, PayloadType: 0, EventPT: 101, Start: 1000 * ms, BufferTicks: 32})
		if err != nil {
			t.Fatal(err)
		}
		bufLen, coverLen := len(p.buf), len(p.cover)
		var seq uint16
		var ts uint32
		arrival := int64(900 * ms)
		payload := make([]byte, 1000)
		dst := make([]byte, p.TickBytes())
		var ticks int64
		pull := func(now int64, limit int64) {
			for ticks < limit {
				idx := p.NextIndex()
				fl, ok := p.NextTick(dst, now)
				if !ok {
					return
				}
				if idx != ticks || p.NextIndex() != idx+1 {
					t.Fatalf("tick %d came as index %d", ticks, idx)
				}
				if fl != audio.TickPresent && !bytes.Equal(dst, bytes.Repeat([]byte{audio.UlawSilence}, len(dst))) {
					t.Fatalf("tick %d flagged %d holds audio", idx, fl)
				}
				ticks++
			}
		}
		for i := 0; i+8 <= len(in); i += 8 {
			b := in[i : i+8]
			seq += uint16(int8(b[0]))
			ts += uint32(int32(int16(binary.BigEndian.Uint16(b[1:]))) * 8)
			arrival += int64(b[3]) * ms * 4
			pt := [4]uint8{0, 0, 13, 101}[b[4]&3]
			n := int(b[5]) * 4 % 1000
			for j := 0; j < n; j++ {
				payload[j] = byte(i + j)
			}
			ssrc := uint32(b[6] >> 7)
			s := Slot{Seq: seq, TS: ts, SSRC: ssrc, PT: pt, Marker: b[6]&1 != 0, Arrival: arrival, Len: uint16(n)}
			pull(arrival, ticks+5000)
			for _, d := range p.Write(&s, payload[:n]) {
				if d.Symbol == 0 {
					t.Fatal("digit without symbol")
				}
			}
			_ = b[7]
		}
		p.Close()
		pull(0, ticks+200)
		if len(p.buf) != bufLen || len(p.cover) != coverLen {
			t.Fatal("timeline grew")
		}
	})
}
