package sip

import (
	"os"
	"testing"
)

// realInvite is SIPp's INVITE with SDP from the sip-rtp-g722 capture.
func realInvite(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/corpus/udp/sip-rtp-g722-f1.sip")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// trackerView is what the dialog tracker reads from each message.
func trackerView(m *Message) int {
	n := len(m.CallID())
	if from, err := m.From(); err == nil {
		n += len(from.Tag()) + len(from.URI.Number())
	}
	if to, err := m.To(); err == nil {
		n += len(to.Tag()) + len(to.URI.Number())
	}
	if cs, err := m.CSeq(); err == nil {
		n += int(cs.Seq)
	}
	if v, err := m.TopVia(); err == nil {
		n += len(v.Branch())
	}
	if sdp, ok := m.SDPBody(); ok {
		n += len(sdp)
	}
	return n
}

func BenchmarkParseInvite(b *testing.B) {
	for _, c := range []struct {
		name string
		msg  []byte
	}{{"sipp", realInvite(b)}, {"trunk", crlf(inviteText)}} {
		b.Run(c.name+"/parse", func(b *testing.B) {
			var m Message
			b.ReportAllocs()
			b.SetBytes(int64(len(c.msg)))
			for b.Loop() {
				if _, err := Parse(c.msg, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/parse+accessors", func(b *testing.B) {
			var m Message
			b.ReportAllocs()
			b.SetBytes(int64(len(c.msg)))
			for b.Loop() {
				if _, err := Parse(c.msg, &m); err != nil {
					b.Fatal(err)
				}
				trackerView(&m)
			}
		})
	}
}

func BenchmarkParseSDP(b *testing.B) {
	var m Message
	if _, err := Parse(realInvite(b), &m); err != nil {
		b.Fatal(err)
	}
	sipp, _ := m.SDPBody()
	for _, c := range []struct {
		name string
		sdp  []byte
	}{{"sipp", sipp}, {"srtp-4media", crlf(sdpText)}} {
		b.Run(c.name, func(b *testing.B) {
			var s SDP
			b.ReportAllocs()
			b.SetBytes(int64(len(c.sdp)))
			for b.Loop() {
				if err := ParseSDP(c.sdp, &s); err != nil {
					b.Fatal(err)
				}
				for i := range s.Media {
					s.Endpoint(i)
				}
			}
		})
	}
}

func BenchmarkLooksLikeSIP(b *testing.B) {
	rtp := []byte{0x80, 0x08, 0x12, 0x34, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef, 0xd5, 0xd5, 0xd5, 0xd5}
	for _, c := range []struct {
		name string
		in   []byte
	}{{"request", realInvite(b)}, {"response", []byte("SIP/2.0 200 OK\r\n")}, {"rtp", rtp}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				LooksLikeSIP(c.in)
			}
		})
	}
}

// BenchmarkFramer frames a real TCP direction (INVITE, ACK, BYE) in 536-byte
// segments, and a 60 KiB message in 1-byte segments, which must stay
// linear: Next waits for the header end or the body instead of re-parsing.
func BenchmarkFramer(b *testing.B) {
	stream, err := os.ReadFile("testdata/corpus/tcp/sip-tcp-s0-p36959.bin")
	if err != nil {
		b.Fatal(err)
	}
	big := []byte(msg("big", string(make([]byte, 60<<10))))
	for _, c := range []struct {
		name    string
		stream  []byte
		segment int
	}{{"sip-tcp/536B-segments", stream, 536}, {"60KiB/1B-segments", big, 1}} {
		b.Run(c.name, func(b *testing.B) {
			f := NewFramer(0, nil)
			var m Message
			b.ReportAllocs()
			b.SetBytes(int64(len(c.stream)))
			for b.Loop() {
				for p := c.stream; len(p) > 0; {
					n := f.Feed(p[:min(c.segment, len(p))])
					p = p[n:]
					for _, ok := f.Next(&m); ok; _, ok = f.Next(&m) {
					}
				}
			}
			b.ReportMetric(float64(f.Stats().Messages.Load())/float64(b.N), "msgs/op")
		})
	}
}

// TestNoAllocs proves the parsing path allocates nothing once the reused
// structs have grown (ARCHITECTURE.md rule 3).
func TestNoAllocs(t *testing.T) {
	invite := realInvite(t)
	trunk := crlf(inviteText)
	srtpSDP := crlf(sdpText)
	acmeCT := []byte("multipart/mixed;boundary=unique-boundary-1")
	refer := crlf("REFER sip:b SIP/2.0\nCall-ID: r\nRefer-To: <sip:c@d?Replaces=a%40b%3Bto-tag%3D1%3Bfrom-tag%3D2>\nContent-Length: 0\n\n")
	siprec, err := os.ReadFile("testdata/siprec/acme-siprec-offer.txt")
	if err != nil {
		t.Fatal(err)
	}
	stream, err := os.ReadFile("testdata/corpus/tcp/sip-tcp-s0-p36959.bin")
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	var s SDP
	parts := make([]Part, 0, MaxParts)
	scratch := make([]byte, 0, 256)
	f := NewFramer(0, nil)
	cases := []struct {
		name string
		fn   func()
	}{
		{"Parse+accessors", func() {
			for _, b := range [][]byte{invite, trunk} {
				if _, err := Parse(b, &m); err != nil {
					t.Fatal(err)
				}
				trackerView(&m)
				m.SessionID()
				m.PAssertedIdentity()
				m.Header("X-UCID")
			}
		}},
		{"ParseSDP+Endpoint", func() {
			if _, err := Parse(invite, &m); err != nil {
				t.Fatal(err)
			}
			sdp, _ := m.SDPBody()
			for _, b := range [][]byte{sdp, srtpSDP} {
				if err := ParseSDP(b, &s); err != nil {
					t.Fatal(err)
				}
				for i := range s.Media {
					s.Endpoint(i)
				}
			}
		}},
		{"EmbeddedReplaces", func() {
			if _, err := Parse(refer, &m); err != nil {
				t.Fatal(err)
			}
			rt, err := m.ReferTo()
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := rt.URI.EmbeddedReplaces(scratch[:0]); err != nil {
				t.Fatal(err)
			}
		}},
		{"ParseMultipart", func() {
			var err error
			if parts, err = ParseMultipart(acmeCT, siprec, parts); err != nil {
				t.Fatal(err)
			}
		}},
		{"LooksLikeSIP", func() { LooksLikeSIP(invite) }},
		{"ParseDTMFInfo", func() { ParseDTMFInfo([]byte("application/dtmf-relay"), []byte("Signal=5\r\nDuration=160")) }},
		{"Framer", func() {
			for p := stream; len(p) > 0; {
				n := f.Feed(p[:min(100, len(p))])
				p = p[n:]
				for _, ok := f.Next(&m); ok; _, ok = f.Next(&m) {
					trackerView(&m)
				}
			}
		}},
	}
	for _, c := range cases {
		c.fn() // grow the reused structs first
		if n := testing.AllocsPerRun(100, c.fn); n != 0 {
			t.Errorf("%s: %v allocs per run", c.name, n)
		}
	}
}
