package rtp

import (
	"errors"
	"os"
	"testing"

	"github.com/pion/rtcp"
)

func mustMarshal(t testing.TB, pkts ...rtcp.Packet) []byte {
	t.Helper()
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRTCPCompound builds SR + RR + SDES + BYE + APP with pion/rtcp and
// checks every field we keep.
func TestRTCPCompound(t *testing.T) {
	sr := &rtcp.SenderReport{SSRC: 0x1111, NTPTime: 0xE8C5_1234_8000_0000, RTPTime: 160000, PacketCount: 1000, OctetCount: 160000,
		Reports: []rtcp.ReceptionReport{{SSRC: 0x2222, FractionLost: 25, TotalLost: 7, LastSequenceNumber: 0x1_0005, Jitter: 33, LastSenderReport: 0xABCD, Delay: 0x10000}}}
	rr := &rtcp.ReceiverReport{SSRC: 0x3333, Reports: []rtcp.ReceptionReport{
		{SSRC: 0x1111, FractionLost: 0, TotalLost: 0x7FFFFF, LastSequenceNumber: 9, Jitter: 1},
		{SSRC: 0x4444, FractionLost: 255, TotalLost: 1, LastSequenceNumber: 10, Jitter: 2},
	}}
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 0x1111, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "alice@example"}}}}}
	bye := &rtcp.Goodbye{Sources: []uint32{0x1111}, Reason: "hangup"}
	app := &rtcp.ApplicationDefined{SSRC: 0x1111, Name: "TEST", Data: []byte{1, 2, 3, 4}}
	buf := mustMarshal(t, sr, rr, sdes, bye, app)

	var c Compound
	if err := ParseRTCP(buf, &c); err != nil {
		t.Fatal(err)
	}
	if c.Packets != 5 || c.Skipped != 3 || c.NSenders != 1 || c.NReports != 3 || c.Dropped != 0 {
		t.Fatalf("counts %+v", c)
	}
	s := c.Senders[0]
	if s.SSRC != 0x1111 || s.NTPTime != sr.NTPTime || s.RTPTime != 160000 || s.PacketCount != 1000 || s.OctetCount != 160000 {
		t.Errorf("sender %+v", s)
	}
	want := []ReportBlock{
		{Reporter: 0x1111, SSRC: 0x2222, FractionLost: 25, CumulativeLost: 7, HighestSeq: 0x1_0005, Jitter: 33, LSR: 0xABCD, DLSR: 0x10000},
		{Reporter: 0x3333, SSRC: 0x1111, CumulativeLost: 0x7FFFFF, HighestSeq: 9, Jitter: 1},
		{Reporter: 0x3333, SSRC: 0x4444, FractionLost: 255, CumulativeLost: 1, HighestSeq: 10, Jitter: 2},
	}
	for i, w := range want {
		if c.Reports[i] != w {
			t.Errorf("block %d = %+v, want %+v", i, c.Reports[i], w)
		}
	}
}

func TestRTCPNegativeLost(t *testing.T) {
	// cumulative lost is 24-bit two's complement: 0xFFFFFF is -1
	buf := mustMarshal(t, &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}})
	buf[8+5], buf[8+6], buf[8+7] = 0xFF, 0xFF, 0xFE
	var c Compound
	if err := ParseRTCP(buf, &c); err != nil {
		t.Fatal(err)
	}
	if c.Reports[0].CumulativeLost != -2 {
		t.Fatalf("lost = %d", c.Reports[0].CumulativeLost)
	}
}

func TestRTCPBounded(t *testing.T) {
	// more blocks than the fixed array: stored up to the bound, the rest counted
	var pkts []rtcp.Packet
	for i := 0; i < 3; i++ {
		rr := &rtcp.ReceiverReport{SSRC: uint32(i)}
		for j := 0; j < 20; j++ {
			rr.Reports = append(rr.Reports, rtcp.ReceptionReport{SSRC: uint32(j)})
		}
		pkts = append(pkts, rr)
	}
	var c Compound
	if err := ParseRTCP(mustMarshal(t, pkts...), &c); err != nil {
		t.Fatal(err)
	}
	if c.NReports != MaxReportBlocks || c.Dropped != 60-MaxReportBlocks {
		t.Fatalf("stored %d dropped %d", c.NReports, c.Dropped)
	}
}

func TestRTCPErrors(t *testing.T) {
	good := mustMarshal(t, &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}})
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"version 1", mod(func(b []byte) []byte { b[0] = 0x41; return b }), ErrVersion},
		{"RTP payload type", mod(func(b []byte) []byte { b[1] = 8; return b }), ErrRTCPType},
		{"length past end", mod(func(b []byte) []byte { b[3] = 20; return b }), ErrRTCPLength},
		{"trailing bytes", append(append([]byte(nil), good...), 0x80, 0xC9), ErrRTCPLength},
		{"RC larger than packet", mod(func(b []byte) []byte { b[0] = 0x85; return b }), ErrRTCPLength},
		{"padding not last", append(mod(func(b []byte) []byte { b[0] |= 0x20; b[len(b)-1] = 4; return b }), good...), ErrPadding},
		{"padding too large", mod(func(b []byte) []byte { b[0] |= 0x20; b[len(b)-1] = 200; return b }), ErrPadding},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cp Compound
			if err := ParseRTCP(c.in, &cp); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// TestRTCPRealCapture parses the RTCP of a real call (heplify, AGPL:
// read from the shared corpus, never copied) and the nDPI compound-packet
// edge case (LGPL, same). It is a development check: skipped when the
// corpus is not there.
func TestRTCPRealCapture(t *testing.T) {
	const corpus = "/work/shared/corpus/pcaps/"
	for _, name := range []string{"ndpi/rtcp_multiple_pkts_in_the_same_datagram.pcap", "heplify/sip_ipv4_tcp.pcap"} {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(corpus + name); err != nil {
				t.Skipf("corpus file not present (dev check only, copyleft licence): %v", err)
			}
			n := 0
			for _, d := range readUDP(t, corpus+name) {
				if !IsRTCP(d.Payload) {
					continue
				}
				var c Compound
				if err := ParseRTCP(d.Payload, &c); err != nil {
					t.Errorf("%s:%d: %v", d.Src, d.SrcPort, err)
				}
				var p []rtcp.Packet
				p, err := rtcp.Unmarshal(d.Payload)
				if err == nil && len(p) != c.Packets {
					t.Errorf("pion sees %d packets, we %d", len(p), c.Packets)
				}
				n++
				t.Logf("%s:%d -> %s:%d: %d packets, %d SR, %d report blocks, %d skipped", d.Src, d.SrcPort, d.Dst, d.DstPort, c.Packets, c.NSenders, c.NReports, c.Skipped)
			}
			if n == 0 {
				t.Fatal("no RTCP found")
			}
		})
	}
}

func TestRTCPNoAllocs(t *testing.T) {
	buf := mustMarshal(t, &rtcp.SenderReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "x"}}}}})
	var c Compound
	if n := testing.AllocsPerRun(1000, func() {
		if ParseRTCP(buf, &c) != nil {
			t.Fatal("parse")
		}
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// FuzzRTCP: no panic, counts inside their bounds, and whatever we accept
// has lengths that add up (pion must accept the same datagram unless it
// holds a packet type pion does not know).
func FuzzRTCP(f *testing.F) {
	f.Add(mustMarshal(f, &rtcp.SenderReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2, TotalLost: 3}}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "a@b"}}}}}))
	f.Add(mustMarshal(f, &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}, {SSRC: 3}}}, &rtcp.Goodbye{Sources: []uint32{1}}))
	f.Add(mustMarshal(f, &rtcp.ExtendedReport{SenderSSRC: 5, Reports: []rtcp.ReportBlock{&rtcp.DLRRReportBlock{Reports: []rtcp.DLRRReport{{SSRC: 1}}}}}))
	f.Add(mustMarshal(f, &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}, &rtcp.ApplicationDefined{SSRC: 1, Name: "ABCD", Data: []byte{1, 2, 3, 4}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Compound
		err := ParseRTCP(b, &c)
		if c.NReports > MaxReportBlocks || c.NSenders > MaxSenderReports {
			t.Fatalf("bounds %+v", c)
		}
		if err != nil {
			return
		}
		if c.Packets == 0 || c.Packets < c.Skipped {
			t.Fatalf("accepted %d bytes with %d packets", len(b), c.Packets)
		}
	})
}
