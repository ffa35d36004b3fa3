package sip

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// corpusSeeds returns the extracted corpus messages and SIPREC bodies.
func corpusSeeds(f *testing.F, globs ...string) [][]byte {
	f.Helper()
	var out [][]byte
	for _, g := range globs {
		files, _ := filepath.Glob(g)
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		f.Fatalf("no seeds for %v", globs)
	}
	return out
}

// exercise calls every accessor; none may panic on any input.
func exercise(m *Message) {
	m.From()
	m.To()
	m.Contact()
	m.CSeq()
	m.TopVia()
	m.Replaces()
	m.SessionID()
	m.PAssertedIdentity()
	m.Diversion()
	m.HistoryInfo()
	m.ReferredBy()
	if rt, err := m.ReferTo(); err == nil {
		rt.URI.EmbeddedReplaces(nil)
	}
	m.Header("X-UCID")
	m.SDPBody()
	m.Parts(nil)
	ParseDTMFInfo(m.ContentType(), m.Body)
	for _, h := range m.Headers {
		for v, rest := NextValue(h.Value); v != nil; v, rest = NextValue(rest) {
			ParseNameAddr(v)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range corpusSeeds(f, "testdata/corpus/udp/*.sip", "testdata/siprec/intrado-siprec-invite.txt") {
		f.Add(b)
	}
	f.Add(crlf(inviteText))
	f.Add([]byte("SIP/2.0 200 OK\r\nf: <sip:a@b>;tag=1\r\nl: 0\r\n\r\n"))
	f.Add([]byte("REFER sip:b SIP/2.0\r\nr: <sip:c@d?Replaces=a%40b%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		n, err := Parse(b, &m)
		if n < 0 || n > len(b) {
			t.Fatalf("n = %d of %d", n, len(b))
		}
		if err != nil {
			if n != 0 && !errors.Is(err, ErrKeepalive) {
				t.Fatalf("n = %d with error %v", n, err)
			}
			return
		}
		if len(m.Headers) > MaxHeaders {
			t.Fatalf("%d headers", len(m.Headers))
		}
		exercise(&m)
		// A stream parse of a message with Content-Length must agree.
		if m.ContentLength >= 0 {
			var s Message
			sn, err := ParseStream(b, &s)
			if err != nil || sn != n || !bytes.Equal(s.CallID(), m.CallID()) {
				t.Fatalf("stream parse %d %v, datagram %d", sn, err, n)
			}
		}
	})
}

func FuzzSDP(f *testing.F) {
	for _, b := range corpusSeeds(f, "testdata/siprec/sample-sdp*.txt", "testdata/siprec/non-siprec-payload.txt") {
		f.Add(b)
	}
	var m Message
	for _, b := range corpusSeeds(f, "testdata/corpus/udp/*.sip") {
		if _, err := Parse(b, &m); err == nil {
			if sdp, ok := m.SDPBody(); ok {
				f.Add(append([]byte(nil), sdp...))
			}
		}
	}
	f.Add(crlf(sdpText))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s SDP
		if err := ParseSDP(b, &s); err != nil {
			return
		}
		if len(s.Media) > MaxMedia {
			t.Fatalf("%d media", len(s.Media))
		}
		for i := range s.Media {
			md := &s.Media[i]
			if len(md.PayloadTypes) > MaxFormats || len(md.RTPMaps) > MaxRTPMaps || len(md.Cryptos) > MaxCryptos {
				t.Fatalf("media %d over caps", i)
			}
			s.Endpoint(i)
			for _, pt := range md.PayloadTypes {
				md.Codec(pt)
			}
			for _, c := range md.Cryptos {
				c.DecodeKey(nil)
			}
		}
	})
}

// FuzzFramer checks that any split of a stream gives the same messages as
// feeding it whole, and that arbitrary bytes never panic or outgrow the
// buffer. The first byte of split chooses the chunk sizes.
func FuzzFramer(f *testing.F) {
	for _, b := range corpusSeeds(f, "testdata/corpus/tcp/sip-tcp-*.bin") {
		f.Add(b, []byte{1, 7, 200})
	}
	f.Add([]byte("\r\n\r\n"+msg("a", "xyz")+"\r\n"+msg("b", "")), []byte{3})
	f.Add([]byte("garbage\nINVITE sip:a SIP/2.0\r\nl: 2\r\n\r\nhi"), []byte{1, 2})
	f.Fuzz(func(t *testing.T, stream, split []byte) {
		const max = minMaxMessage
		whole := frameRecord(t, NewFramer(max, nil), stream, nil)
		var chunks []int
		for _, c := range split {
			chunks = append(chunks, int(c)+1)
		}
		parts := frameRecord(t, NewFramer(max, nil), stream, chunks)
		// Resynchronisation may start at a different place when bytes
		// arrive in other pieces (a waiting partial line), so compare
		// only when the whole feed needed no resync or skipping.
		if whole.clean && !bytes.Equal(bytes.Join(whole.msgs, []byte{0}), bytes.Join(parts.msgs, []byte{0})) {
			t.Fatalf("split %v: %d messages, whole: %d", chunks, len(parts.msgs), len(whole.msgs))
		}
	})
}

type framed struct {
	msgs  [][]byte
	clean bool
}

func frameRecord(t *testing.T, f *Framer, stream []byte, chunks []int) framed {
	var m Message
	var out framed
	for i := 0; len(stream) > 0; i++ {
		c := len(stream)
		if len(chunks) > 0 {
			c = min(chunks[i%len(chunks)], len(stream))
		}
		n := f.Feed(stream[:c])
		stream = stream[n:]
		got := false
		for b, ok := f.Next(&m); ok; b, ok = f.Next(&m) {
			out.msgs = append(out.msgs, append([]byte(nil), b...))
			got = true
		}
		if f.Buffered() > len(f.buf) {
			t.Fatalf("buffered %d", f.Buffered())
		}
		if n == 0 && !got && f.Feed(stream[:min(1, len(stream))]) == 0 {
			t.Fatal("stalled")
		}
	}
	st := f.Stats()
	out.clean = st.Malformed.Load() == 0 && st.Oversized.Load() == 0 && f.Buffered() == 0
	return out
}

func FuzzMultipart(f *testing.F) {
	for _, b := range corpusSeeds(f, "testdata/siprec/*-offer*.txt") {
		f.Add([]byte("multipart/mixed;boundary=unique-boundary-1"), b)
	}
	f.Add([]byte(`multipart/mixed; boundary="b1"`), crlf("--b1\nContent-Type: application/sdp\n\nv=0\n--b1--\n"))
	f.Fuzz(func(t *testing.T, ct, body []byte) {
		parts, err := ParseMultipart(ct, body, nil)
		if len(parts) > MaxParts {
			t.Fatalf("%d parts", len(parts))
		}
		if err != nil {
			return
		}
		for _, p := range parts {
			// Every part is a view into the body.
			if len(p.Body) > 0 && (offsetOf(body, p.Body) < 0 || offsetOf(body, p.Body)+len(p.Body) > len(body)) {
				t.Fatalf("part outside body")
			}
		}
	})
}

// FuzzParseIP checks the allocation-free address parser against netip.
func FuzzParseIP(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "::", "2001:db8::1", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "01.2.3.4", "1::2::3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseIP([]byte(s))
		want, err := netip.ParseAddr(s)
		if want.Zone() != "" {
			if ok {
				t.Fatalf("parseIP(%q) accepted a zone", s)
			}
			return
		}
		if ok != (err == nil) || ok && got != want {
			t.Fatalf("parseIP(%q) = %v %v; netip %v %v", s, got, ok, want, err)
		}
	})
}
