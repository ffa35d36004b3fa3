package rtp

import (
	"bytes"
	"errors"
	"testing"

	pionrtp "github.com/pion/rtp"
)

func TestUnmarshalFields(t *testing.T) {
	in := Packet{
		Header: Header{Marker: true, PayloadType: 8, SequenceNumber: 0xFFFE, Timestamp: 0xDEADBEEF,
			SSRC: 0x01020304, CSRCCount: 2, CSRC: [MaxCSRC]uint32{7, 9},
			Extension: true, ExtensionProfile: 0xBEDE, ExtensionData: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		Payload: bytes.Repeat([]byte{0xD5}, 160),
	}
	buf := make([]byte, in.MarshalSize())
	n, err := in.MarshalTo(buf)
	if err != nil || n != len(buf) {
		t.Fatalf("MarshalTo = %d, %v", n, err)
	}
	var p Packet
	if err := p.Unmarshal(buf); err != nil {
		t.Fatal(err)
	}
	if p.Version != 2 || !p.Marker || p.PayloadType != 8 || p.SequenceNumber != 0xFFFE ||
		p.Timestamp != 0xDEADBEEF || p.SSRC != 0x01020304 || p.CSRCCount != 2 || p.CSRC[0] != 7 || p.CSRC[1] != 9 ||
		p.ExtensionProfile != 0xBEDE || !bytes.Equal(p.ExtensionData, in.ExtensionData) || !bytes.Equal(p.Payload, in.Payload) {
		t.Fatalf("round trip mismatch: %+v", p)
	}
	// the payload points into the input, as documented
	if &p.Payload[0] != &buf[len(buf)-160] {
		t.Error("payload was copied")
	}
	// and it agrees with pion's parser
	var q pionrtp.Packet
	if err := q.Unmarshal(buf); err != nil {
		t.Fatal(err)
	}
	if q.SSRC != p.SSRC || q.Timestamp != p.Timestamp || len(q.CSRC) != 2 || !bytes.Equal(q.Payload, p.Payload) {
		t.Errorf("pion disagrees: %+v", q.Header)
	}
}

func TestUnmarshalPadding(t *testing.T) {
	raw := []byte{0xA0, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xAA, 0xBB, 0, 0, 3}
	var p Packet
	if err := p.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Payload, []byte{0xAA, 0xBB}) || p.PaddingSize != 3 {
		t.Fatalf("payload %x padding %d", p.Payload, p.PaddingSize)
	}
}

// https://www.rfc-editor.org/rfc/rfc3550#section-5.1 for each rule.
func TestUnmarshalErrors(t *testing.T) {
	hdr := []byte{0x80, 0x08, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"11 bytes", hdr[:11], ErrShort},
		{"version 1", append([]byte{0x40}, hdr[1:]...), ErrVersion},
		{"version 3", append([]byte{0xC0}, hdr[1:]...), ErrVersion},
		{"CSRC count past end", append([]byte{0x83}, hdr[1:]...), ErrShort},
		{"extension header missing", append([]byte{0x90}, hdr[1:]...), ErrShort},
		{"extension longer than packet", append(append([]byte{0x90}, hdr[1:]...), 0xBE, 0xDE, 0, 2, 1, 2, 3, 4), ErrShort},
		{"padding without payload", append([]byte{0xA0}, hdr[1:]...), ErrPadding},
		{"padding zero", append(append([]byte{0xA0}, hdr[1:]...), 1, 0), ErrPadding},
		{"padding past header", append(append([]byte{0xA0}, hdr[1:]...), 1, 9), ErrPadding},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			err := p.Unmarshal(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestDemux(t *testing.T) {
	rtp := []byte{0x80, 0x08, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xD5}
	rtpMarker := []byte{0x80, 0x88, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xD5}
	sr := []byte{0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	rr := []byte{0x80, 201, 0, 1, 0, 0, 0, 1}
	for _, c := range []struct {
		name        string
		in          []byte
		rtcp, isRTP bool
	}{
		{"PCMA", rtp, false, true},
		{"PCMA marker", rtpMarker, false, true},
		{"SR", sr, true, false},
		{"RR", rr, true, false},
		{"PT 72 collides with RTCP", []byte{0x80, 72, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xD5}, false, false},
		{"PT 50 unassigned", []byte{0x80, 50, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xD5}, false, false},
		{"dynamic 101", []byte{0x80, 101, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4}, false, true},
		{"no payload", rtp[:12], false, false},
		{"STUN", []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, false, false},
		{"DTLS", []byte{22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 1}, false, false},
		{"SIP", []byte("INVITE sip:bob@example.com SIP/2.0\r\n"), false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := IsRTCP(c.in); got != c.rtcp {
				t.Errorf("IsRTCP = %v", got)
			}
			if got := LooksLikeRTP(c.in); got != c.isRTP {
				t.Errorf("LooksLikeRTP = %v", got)
			}
		})
	}
}

// TestRealCaptureParse parses every datagram of a real capture and checks
// the streams against the tshark summary in testdata/MANIFEST.md.
func TestRealCaptureParse(t *testing.T) {
	ds := readUDP(t, "testdata/SIP_DTMF2.pcap")
	count := map[uint32]int{}
	for _, d := range ds {
		if !LooksLikeRTP(d.Payload) {
			continue
		}
		var p Packet
		if err := p.Unmarshal(d.Payload); err != nil {
			t.Fatal(err)
		}
		count[p.SSRC]++
	}
	// tshark: ssrc=0x5711BF84 666 packets, ssrc=0x9A7B5382 665 packets
	if count[0x5711BF84] != 666 || count[0x9A7B5382] != 665 || len(count) != 2 {
		t.Fatalf("streams %v", count)
	}
}

func TestParseNoAllocs(t *testing.T) {
	ds := readUDP(t, "testdata/SIP_DTMF2.pcap")
	buf := rtpOf(t, ds, 0x9A7B5382)[0].Payload
	var p Packet
	if n := testing.AllocsPerRun(1000, func() {
		if p.Unmarshal(buf) != nil || !LooksLikeRTP(buf) || IsRTCP(buf) {
			t.Fatal("parse failed")
		}
	}); n != 0 {
		t.Fatalf("%v allocs per parse", n)
	}
}

func BenchmarkParseRTP(b *testing.B) {
	ds := readUDP(b, "testdata/SIP_DTMF2.pcap")
	buf := rtpOf(b, ds, 0x9A7B5382)[0].Payload
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		var p Packet
		for b.Loop() {
			if p.Unmarshal(buf) != nil {
				b.Fatal("parse")
			}
		}
	})
	b.Run("pion", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		var p pionrtp.Packet
		for b.Loop() {
			if p.Unmarshal(buf) != nil {
				b.Fatal("parse")
			}
		}
	})
	b.Run("LooksLikeRTP", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !LooksLikeRTP(buf) {
				b.Fatal("heuristic")
			}
		}
	})
}

// FuzzRTP checks that no input panics, that accepted packets stay inside
// the input, re-marshal to a packet that parses the same, and that pion's
// parser accepts what we accept (without header extension) with the same
// header fields.
func FuzzRTP(f *testing.F) {
	for _, d := range readUDP(f, "testdata/SIP_DTMF2.pcap")[:40] {
		f.Add(d.Payload)
	}
	for _, d := range readUDP(f, "testdata/dtmf.pcap")[:5] {
		f.Add(d.Payload)
	}
	f.Add([]byte{0xB3, 0x08, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xBE, 0xDE, 0, 1, 1, 2, 3, 4, 0xD5, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = LooksLikeRTP(b)
		_ = IsRTCP(b)
		var p Packet
		if err := p.Unmarshal(b); err != nil {
			return
		}
		if len(p.Payload)+int(p.PaddingSize) > len(b) || int(p.CSRCCount) > MaxCSRC {
			t.Fatalf("payload %d + padding %d > %d", len(p.Payload), p.PaddingSize, len(b))
		}
		out := make([]byte, p.MarshalSize())
		if _, err := p.MarshalTo(out); err != nil {
			t.Fatal(err)
		}
		var q Packet
		if err := q.Unmarshal(out); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if q.Header.SSRC != p.SSRC || q.Timestamp != p.Timestamp || q.SequenceNumber != p.SequenceNumber ||
			q.PayloadType != p.PayloadType || q.Marker != p.Marker || q.CSRC != p.CSRC || !bytes.Equal(q.Payload, p.Payload) {
			t.Fatalf("re-parse differs")
		}
		if p.Extension {
			// pion also parses RFC 8285 extension elements and rejects
			// malformed ones (testdata/fuzz/FuzzRTP/ea1438601c7cc478);
			// we keep the extension raw, so only compare without one
			return
		}
		var pp pionrtp.Packet
		if err := pp.Unmarshal(b); err != nil {
			t.Fatalf("pion rejects what we accept: %v", err)
		}
		if pp.SSRC != p.SSRC || pp.SequenceNumber != p.SequenceNumber || pp.Timestamp != p.Timestamp ||
			len(pp.CSRC) != int(p.CSRCCount) || !bytes.Equal(pp.Payload, p.Payload) {
			t.Fatalf("pion disagrees: %+v vs %+v", pp.Header, p.Header)
		}
	})
}
