package sip

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

const sdpText = `v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
c=IN IP4 192.0.2.10
t=0 0
a=sendonly
m=audio 49170/2 RTP/SAVP 0 8 18 96 101
c=IN IP6 2001:db8::20
a=rtpmap:96 opus/48000/2
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=fmtp:96 minptime=10;useinbandfec=1
a=ptime:20.0
a=recvonly
a=rtcp:53020 IN IP4 198.51.100.7
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:aSBrbm93IGFsbCB5b3VyIGxpdHRsZSBzZWNyZXRz|2^20|1:4
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NhqBK/JjtVJgmOgPyDKpvMTEjvFCQ4eiyVQelF6x UNENCRYPTED_SRTCP
a=label:caller
a=mid:0
m=audio 50000 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=rtcp-mux
m=image 0 udptl t38
a=T38FaxVersion:0
m=audio 6000 RTP/AVP 0
`

func TestParseSDP(t *testing.T) {
	var s SDP
	if err := ParseSDP(crlf(sdpText), &s); err != nil {
		t.Fatal(err)
	}
	if string(s.Origin.SessionID) != "4611731400430051336" || string(s.Origin.Address.Raw) != "127.0.0.1" {
		t.Errorf("origin %+v", s.Origin)
	}
	if v, ok := s.Origin.Version(); !ok || v != 2 {
		t.Errorf("version %d %v", v, ok)
	}
	if s.Direction != DirSendOnly || s.Conn.Addr != netip.MustParseAddr("192.0.2.10") {
		t.Errorf("session direction %v conn %v", s.Direction, s.Conn.Addr)
	}
	if len(s.Media) != 4 {
		t.Fatalf("%d media", len(s.Media))
	}
	a := &s.Media[0]
	if string(a.Type) != "audio" || a.Port != 49170 || a.NumPorts != 2 || string(a.Proto) != "RTP/SAVP" || !a.IsRTP() {
		t.Errorf("m= %q %d/%d %q", a.Type, a.Port, a.NumPorts, a.Proto)
	}
	if !bytes.Equal(a.PayloadTypes, []byte{0, 8, 18, 96, 101}) {
		t.Errorf("payload types %v", a.PayloadTypes)
	}
	for _, c := range []struct {
		pt    uint8
		name  string
		clock uint32
		ch    uint8
	}{{0, "PCMU", 8000, 1}, {8, "PCMA", 8000, 1}, {18, "G729", 8000, 1}, {96, "opus", 48000, 2}, {101, "telephone-event", 8000, 1}} {
		r, ok := a.Codec(c.pt)
		if !ok || string(r.Encoding) != c.name || r.ClockRate != c.clock || r.Channels != c.ch {
			t.Errorf("codec %d = %+v %v", c.pt, r, ok)
		}
	}
	if _, ok := a.Codec(97); ok {
		t.Error("codec 97 should be unknown")
	}
	if string(a.Fmtp(101)) != "0-16" || string(a.Fmtp(96)) != "minptime=10;useinbandfec=1" || a.Fmtp(0) != nil {
		t.Errorf("fmtp %q %q", a.Fmtp(101), a.Fmtp(96))
	}
	if a.Ptime != 20 || a.Direction != DirRecvOnly || string(a.Label) != "caller" || string(a.MID) != "0" {
		t.Errorf("ptime %d dir %v label %q mid %q", a.Ptime, a.Direction, a.Label, a.MID)
	}
	if len(a.Cryptos) != 2 {
		t.Fatalf("%d crypto lines", len(a.Cryptos))
	}
	c := a.Cryptos[0]
	if c.Tag != 1 || string(c.Suite) != "AES_CM_128_HMAC_SHA1_80" || string(c.Lifetime) != "2^20" || c.MKI != 1 || c.MKILength != 4 {
		t.Errorf("crypto %+v", c)
	}
	key, err := c.DecodeKey(nil)
	if err != nil || string(key) != "i know all your little secrets" {
		t.Errorf("key %q %v", key, err)
	}
	if c2 := a.Cryptos[1]; c2.Tag != 2 || string(c2.SessionParams) != "UNENCRYPTED_SRTCP" || c2.Lifetime != nil || c2.MKILength != 0 {
		t.Errorf("crypto 2 %+v", c2)
	}
	if k, err := a.Cryptos[1].DecodeKey(nil); err != nil || len(k) != 30 {
		t.Errorf("key 2: %d bytes %v", len(k), err)
	}

	e := s.Endpoint(0)
	want := Endpoint{Addr: netip.MustParseAddr("2001:db8::20"), Port: 49170, RTCP: netip.MustParseAddrPort("198.51.100.7:53020"), Direction: DirRecvOnly, Label: []byte("caller")}
	if e.Addr != want.Addr || e.Port != want.Port || e.RTCP != want.RTCP || e.Direction != want.Direction || e.Hold || e.Disabled {
		t.Errorf("endpoint 0 %+v", e)
	}
	e = s.Endpoint(1) // c=0.0.0.0 with rtcp-mux; session direction applies
	if !e.Hold || e.Direction != DirSendOnly || e.RTCP.Port() != 50000 || !s.Media[1].RTCPMux {
		t.Errorf("endpoint 1 %+v", e)
	}
	e = s.Endpoint(2) // rejected T.38 stream
	if !e.Disabled || s.Media[2].IsRTP() || string(s.Media[2].Formats) != "t38" || len(s.Media[2].PayloadTypes) != 0 {
		t.Errorf("endpoint 2 %+v formats %q", e, s.Media[2].Formats)
	}
	e = s.Endpoint(3) // session c=, RTCP on the next port
	if e.Addr != netip.MustParseAddr("192.0.2.10") || e.RTCP != netip.MustParseAddrPort("192.0.2.10:6001") {
		t.Errorf("endpoint 3 %+v", e)
	}

	// Reuse: a smaller SDP must not show leftovers of the big one.
	if err := ParseSDP([]byte("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nm=audio 4000 RTP/AVP 8\n"), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Media) != 1 || len(s.Media[0].Cryptos) != 0 || len(s.Media[0].RTPMaps) != 0 || s.Media[0].Label != nil || s.Direction != DirUnset {
		t.Errorf("leftovers after reuse: %+v", s.Media[0])
	}
	if e := s.Endpoint(0); e.Addr.IsValid() || e.Direction != DirSendRecv {
		t.Errorf("no c= anywhere: %+v", e)
	}
}

func TestParseSDPErrors(t *testing.T) {
	cases := []struct {
		name, sdp string
		want      error
	}{
		{"empty", "", ErrSDP},
		{"no v", "o=- 1 1 IN IP4 1.2.3.4\n", ErrSDP},
		{"v=1", "v=1\n", ErrSDP},
		{"garbage line", "v=0\nhello\n", ErrSDP},
		{"short origin", "v=0\no=- 1 1 IN IP4\n", ErrSDP},
		{"bad nettype", "v=0\nc=ATM NSAP 1\n", ErrSDP},
		{"short c", "v=0\nc=IN IP4\n", ErrSDP},
		{"m no proto", "v=0\nm=audio 4000\n", ErrSDP},
		{"m bad port", "v=0\nm=audio 70000 RTP/AVP 0\n", ErrSDP},
		{"m zero count", "v=0\nm=audio 4000/0 RTP/AVP 0\n", ErrSDP},
		{"bad pt", "v=0\nm=audio 4000 RTP/AVP 128\n", ErrSDP},
		{"bad rtpmap", "v=0\nm=audio 4000 RTP/AVP 0\na=rtpmap:96 opus\n", ErrSDP},
		{"rtpmap channels 0", "v=0\nm=audio 4000 RTP/AVP 0\na=rtpmap:96 opus/48000/0\n", ErrSDP},
		{"bad ptime", "v=0\nm=audio 4000 RTP/AVP 0\na=ptime:x\n", ErrSDP},
		{"bad rtcp", "v=0\nm=audio 4000 RTP/AVP 0\na=rtcp:x\n", ErrSDP},
		{"crypto method", "v=0\nm=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 uri:x\n", ErrSDP},
		{"crypto mki", "v=0\nm=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc|1:0\n", ErrSDP},
		{"too many media", "v=0\n" + strings.Repeat("m=audio 4000 RTP/AVP 0\n", MaxMedia+1), ErrSDPLimit},
		{"too many formats", "v=0\nm=audio 4000 RTP/AVP" + strings.Repeat(" 0", MaxFormats+1) + "\n", ErrSDPLimit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s SDP
			if err := ParseSDP([]byte(c.sdp), &s); !errors.Is(err, c.want) {
				t.Errorf("err %v, want %v", err, c.want)
			}
		})
	}
}

func TestParseIP(t *testing.T) {
	for _, in := range []string{"0.0.0.0", "1.2.3.4", "255.255.255.255", "::", "::1", "1::", "2001:db8::20",
		"2001:db8:0:0:1:0:0:1", "::ffff:192.0.2.1", "64:ff9b::192.0.2.33", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4"} {
		got, ok := parseIP([]byte(in))
		if !ok || got != netip.MustParseAddr(in) {
			t.Errorf("parseIP(%q) = %v %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "1..2.3", "X.X.X.X", ":::", "1:2:3:4:5:6:7:8:9",
		"1::2::3", "::1:", "1:2:3:4:5:6:7::8", "12345::", "::1.2.3", "fe80::1%eth0", "1:2:3:4:5:6:7:1.2.3.4", "host.example.com"} {
		if got, ok := parseIP([]byte(in)); ok {
			t.Errorf("parseIP(%q) = %v, want failure", in, got)
		}
	}
}

func TestParseMultipart(t *testing.T) {
	body := crlf("preamble\n--b1\nContent-Type: application/sdp\n\nv=0\n\n--b1\n\nno headers\n--b1\nContent-Type: application/rs-metadata+xml\nContent-Disposition: recording-session\nContent-ID: <m1>\n\n<recording/>\n--b1--\nepilogue\n")
	parts, err := ParseMultipart([]byte(`multipart/mixed; boundary="b1"`), body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	if string(parts[0].ContentType) != "application/sdp" || string(parts[0].Body) != "v=0\r\n" {
		t.Errorf("part 0 %q %q", parts[0].ContentType, parts[0].Body)
	}
	if parts[1].ContentType != nil || string(parts[1].Body) != "no headers" {
		t.Errorf("part 1 %q %q", parts[1].ContentType, parts[1].Body)
	}
	if string(parts[2].ContentDisposition) != "recording-session" || string(parts[2].ContentID) != "<m1>" || string(parts[2].Body) != "<recording/>" {
		t.Errorf("part 2 %+v", parts[2])
	}
	// A boundary string inside a line is not a delimiter.
	parts, err = ParseMultipart([]byte("multipart/mixed;boundary=zz"), crlf("--zz\n\nx --zz y\n--zz--\n"), parts)
	if err != nil || len(parts) != 1 || string(parts[0].Body) != "x --zz y" {
		t.Errorf("inline boundary: %d parts %v", len(parts), err)
	}
	for _, c := range []struct{ ct, body string }{
		{"application/sdp", "--b\n\nx\n--b--"},
		{"multipart/mixed", "--b\n\nx\n--b--"},
		{"multipart/mixed;boundary=" + strings.Repeat("b", 71), "--b\n"},
		{"multipart/mixed;boundary=b", "no delimiter here"},
	} {
		if _, err := ParseMultipart([]byte(c.ct), []byte(c.body), nil); !errors.Is(err, ErrMultipart) {
			t.Errorf("ParseMultipart(%q): %v", c.ct, err)
		}
	}
	many := "multipart/mixed;boundary=b"
	if _, err := ParseMultipart([]byte(many), []byte(strings.Repeat("--b\n\nx\n", MaxParts+1)), nil); !errors.Is(err, ErrTooManyParts) {
		t.Errorf("too many parts: %v", err)
	}
}
