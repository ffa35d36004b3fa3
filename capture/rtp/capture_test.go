package rtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/callvault/callvault/store/audio"
)

// TestRealCallToGrid runs both directions of a real call
// (wireshark-samples SIP_DTMF2.pcap: PCMA, 30 ms packets, two lost packets
// in one direction, seven RFC 2833 digits in the other) through the real
// path: parse → Ring → Playout → grid file in a temp dir → store/audio
// renders it. It checks against tshark's payloads (golden file) that
//   - our parser sees the same audio payload bytes as tshark,
//   - each payload sits in the grid at anchor + (ts - ts0), i.e. for the
//     lossless stretches the tick bytes are the payloads concatenated, and
//     everything else is A-law silence,
//   - the rendered stereo PCM equals the A-law decoding of the payloads,
//   - the digits come out once each at the event's position.
func TestRealCallToGrid(t *testing.T) {
	const local, remote = 0x9A7B5382, 0x5711BF84
	ds := readUDP(t, "testdata/SIP_DTMF2.pcap")
	type pkt struct {
		arrival int64
		p       Packet
	}
	streams := map[uint32][]pkt{}
	var order []pkt
	for _, d := range ds {
		if !LooksLikeRTP(d.Payload) {
			continue
		}
		var p Packet
		if err := p.Unmarshal(d.Payload); err != nil {
			t.Fatal(err)
		}
		streams[p.SSRC] = append(streams[p.SSRC], pkt{d.Arrival, p})
		order = append(order, pkt{d.Arrival, p})
	}
	start := min(streams[local][0].arrival, streams[remote][0].arrival)

	// 1. our payloads agree with tshark's
	checkGoldenPayloads(t, streams[local], streams[remote], func(x pkt) (uint32, uint16, uint8, []byte) {
		return x.p.SSRC, x.p.SequenceNumber, x.p.PayloadType, x.p.Payload
	})

	// 2. the path: one ring and one playout per direction, a flusher loop
	ssrcs := []uint32{local, remote}
	rings := map[uint32]*Ring{}
	plays := map[uint32]*Playout{}
	for _, s := range ssrcs {
		rings[s], _ = NewRing(64, 0)
		var err error
		plays[s], err = NewPlayout(PlayoutConfig{Codec: audio.CodecPCMA, PayloadType: 8, EventPT: 96, Start: start})
		if err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "call.grid")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := audio.NewGridWriter(f, audio.GridConfig{Channels: []audio.GridChannel{
		{Codec: audio.CodecPCMA, Role: audio.RoleLocal, SampleRate: 8000, Label: "local"},
		{Codec: audio.CodecPCMA, Role: audio.RoleRemote, SampleRate: 8000, Label: "remote"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	flags := make([]audio.TickFlag, 2)
	bufs := [][]byte{make([]byte, 160), make([]byte, 160)}
	pullAll := func(now int64) {
		for plays[local].Ready(now) && plays[remote].Ready(now) {
			if plays[local].Drained() && plays[remote].Drained() {
				return
			}
			for i, s := range ssrcs {
				var ok bool
				if flags[i], ok = plays[s].NextTick(bufs[i], now); !ok {
					t.Fatal("ready tick not returned")
				}
			}
			if err := gw.WriteTick(flags, bufs); err != nil {
				t.Fatal(err)
			}
		}
	}
	var digits []Digit
	for _, x := range order {
		if !rings[x.p.SSRC].Push(&x.p.Header, x.p.Payload, x.arrival) {
			t.Fatal("ring full")
		}
		pullAll(x.arrival)
		rings[x.p.SSRC].Drain(func(s *Slot, payload []byte) {
			digits = append(digits, plays[x.p.SSRC].Write(s, payload)...)
		})
	}
	for _, s := range ssrcs {
		digits = append(digits, plays[s].Close()...)
	}
	pullAll(0)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range ssrcs {
		st := plays[s].Stats()
		if st.Late != 0 || st.Overrun != 0 || st.Reanchors != 0 || st.Duplicates != 0 {
			t.Errorf("%#x: %+v", s, st)
		}
		t.Logf("%#x: %+v", s, st)
	}

	// 3. read the grid back and check every payload's place
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := audio.NewGridReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	tickBuf := make([]byte, int(gr.NumTicks())*gr.TickSize())
	if _, err := gr.ReadTicks(0, tickBuf); err != nil {
		t.Fatal(err)
	}
	positions := map[uint32][]int{}
	for ch, s := range ssrcs {
		var tl []byte
		for k := 0; k < int(gr.NumTicks()); k++ {
			_, b := gr.Channel(tickBuf[k*gr.TickSize():(k+1)*gr.TickSize()], ch)
			tl = append(tl, b...)
		}
		covered := make([]bool, len(tl))
		anchor := int(nsToUnits(streams[s][0].arrival-start, 8000))
		ts0 := streams[s][0].p.Timestamp
		var run []byte
		runStart, lastTS := anchor, ts0
		for i, x := range streams[s] {
			if x.p.PayloadType != 8 {
				continue
			}
			pos := anchor + int(x.p.Timestamp-ts0)
			positions[s] = append(positions[s], pos)
			if !bytes.Equal(tl[pos:pos+len(x.p.Payload)], x.p.Payload) {
				t.Fatalf("%#x packet %d (seq %d) not at %d", s, i, x.p.SequenceNumber, pos)
			}
			for j := range x.p.Payload {
				covered[pos+j] = true
			}
			// lossless stretches: the timeline is the concatenation
			if x.p.Timestamp != lastTS+240 && i > 0 {
				if !bytes.Equal(tl[runStart:runStart+len(run)], run) {
					t.Fatalf("%#x: run at %d is not the concatenated payloads", s, runStart)
				}
				run, runStart = nil, pos
			}
			run = append(run, x.p.Payload...)
			lastTS = x.p.Timestamp
		}
		for i, c := range covered {
			if !c && tl[i] != audio.AlawSilence {
				t.Fatalf("%#x: byte %d is %#x, not silence", s, i, tl[i])
			}
		}
	}
	counts, err := gr.Counts()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grid: %d ticks, local %+v, remote %+v", gr.NumTicks(), counts[0], counts[1])
	if counts[0].Filled == 0 || counts[1].Filled == 0 || counts[0].Present < 900 || counts[1].Present < 800 {
		t.Errorf("tick counts %+v", counts)
	}

	// 4. render with store/audio and compare with the A-law decoding
	src, err := audio.Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var pcm bytes.Buffer
	if err := src.Render(context.Background(), &pcm, audio.RenderOptions{Format: audio.OutputPCM16, Layout: audio.LayoutStereo, Rate: 8000}); err != nil {
		t.Fatal(err)
	}
	samples := pcm.Bytes()
	for ch, s := range ssrcs {
		i := 0
		for _, x := range streams[s] {
			if x.p.PayloadType != 8 {
				continue
			}
			pos := positions[s][i]
			i++
			for j, a := range x.p.Payload {
				off := ((pos+j)*2 + ch) * 2
				if got := int16(binary.LittleEndian.Uint16(samples[off:])); got != audio.AlawToLinear(a) {
					t.Fatalf("%#x sample %d: %d, want %d", s, pos+j, got, audio.AlawToLinear(a))
				}
			}
		}
	}

	// 5. digits: 6 7 8 9 1 2 3, once each, at their event's position
	var syms []byte
	for i, d := range digits {
		syms = append(syms, d.Symbol)
		anchor := nsToUnits(streams[remote][0].arrival-start, 8000)
		want := (anchor + int64(d.StartTS-streams[remote][0].p.Timestamp)) * 1e9 / 8000
		if int64(d.Offset) != want || !d.EndSeen || d.Duration != 960 {
			t.Errorf("digit %d: %+v, want offset %d", i, d, want)
		}
	}
	if string(syms) != "6789123" {
		t.Errorf("digits %q", syms)
	}
}

// checkGoldenPayloads compares the audio payloads (sorted by sequence
// number) with testdata/golden/SIP_DTMF2.payloads from tshark.
func checkGoldenPayloads[T any](t *testing.T, a, b []T, get func(T) (uint32, uint16, uint8, []byte)) {
	t.Helper()
	f, err := os.Open("testdata/golden/SIP_DTMF2.payloads")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[uint32]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ssrc uint32
		fmt.Sscanf(sc.Text(), "%v", &ssrc)
		want[ssrc] = sc.Text()
	}
	for _, pk := range [][]T{a, b} {
		type one struct {
			seq uint16
			p   []byte
		}
		var all []one
		var ssrc uint32
		for _, x := range pk {
			s, seq, pt, p := get(x)
			if pt == 8 {
				ssrc = s
				all = append(all, one{seq, p})
			}
		}
		sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
		h := sha256.New()
		n := 0
		for _, o := range all {
			h.Write(o.p)
			n += len(o.p)
		}
		got := fmt.Sprintf("%#x 8 %d %d %s", ssrc, len(all), n, hex.EncodeToString(h.Sum(nil)))
		if got != want[ssrc] {
			t.Errorf("payloads differ from tshark:\ngot  %s\nwant %s", got, want[ssrc])
		}
	}
	if len(want) != 2 || !strings.HasPrefix(want[0x9A7B5382], "0x9a7b5382") {
		t.Fatalf("golden file has %d streams", len(want))
	}
}
