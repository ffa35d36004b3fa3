package sip

import (
	"errors"
	"strings"
	"testing"
)

// crlf turns the readable "\n" of test messages into CRLF.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

const inviteText = `INVITE sip:+4930123456;npdi@gw.example.com;user=phone SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKsecond
Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKthird
Max-Forwards: 70
From: "Alice \"A\" Smith" <sip:alice@a.example.com>;tag=1928301774
To: Bob <sip:+4930123456@b.example.com;user=phone>
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@10.0.0.1:5060;transport=udp>;expires=60
P-Asserted-Identity: "Alice" <sip:+4940111@a.example.com;user=phone>, <tel:+4940111>
Diversion: <sip:+4989000@b.example.com>;reason=unconditional;counter=1
History-Info: <sip:+4930999@b.example.com?Reason=SIP%3Bcause%3D302>;index=1, <sip:+4930123456@b.example.com>;index=1.1
Session-ID: ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2
X-UCID: 00FA080018A3C3651234
Content-Type: application/sdp
Content-Length: 149

v=0
o=alice 2890844526 2890844526 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 49170 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
`

func mustParse(t *testing.T, b []byte) *Message {
	t.Helper()
	var m Message
	n, err := Parse(b, &m)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if n != len(b) {
		t.Fatalf("Parse used %d of %d bytes", n, len(b))
	}
	return &m
}

func TestParseInviteAccessors(t *testing.T) {
	m := mustParse(t, crlf(inviteText))
	if !m.IsRequest() || string(m.Method) != "INVITE" || string(m.RequestURI) != "sip:+4930123456;npdi@gw.example.com;user=phone" {
		t.Fatalf("start line: %q %q", m.Method, m.RequestURI)
	}
	ru, err := ParseURI(m.RequestURI)
	if err != nil || string(ru.Number()) != "+4930123456" || string(ru.User) != "+4930123456;npdi" || string(ru.Host) != "gw.example.com" || string(ru.Params) != "user=phone" {
		t.Errorf("request URI %+v %v", ru, err)
	}
	from, err := m.From()
	if err != nil || string(from.Display) != `Alice \"A\" Smith` || string(from.Tag()) != "1928301774" || string(from.URI.User) != "alice" {
		t.Errorf("From %+v %v", from, err)
	}
	to, err := m.To()
	if err != nil || string(to.Display) != "Bob" || to.Tag() != nil || string(to.URI.Number()) != "+4930123456" || string(to.URI.Params) != "user=phone" {
		t.Errorf("To %+v %v", to, err)
	}
	cs, err := m.CSeq()
	if err != nil || cs.Seq != 314159 || string(cs.Method) != "INVITE" {
		t.Errorf("CSeq %+v %v", cs, err)
	}
	via, err := m.TopVia()
	if err != nil || string(via.Branch()) != "z9hG4bK776asdhds" || string(via.Transport) != "UDP" || string(via.SentBy) != "10.0.0.1:5060" {
		t.Errorf("TopVia %+v %v", via, err)
	}
	if _, ok := Param(via.Params, "rport"); !ok {
		t.Error("rport flag not found")
	}
	ct, err := m.Contact()
	if err != nil || string(ct.URI.Host) != "10.0.0.1" || string(ct.URI.Port) != "5060" {
		t.Errorf("Contact %+v %v", ct, err)
	}
	if v, _ := Param(ct.Params, "expires"); string(v) != "60" {
		t.Errorf("Contact expires %q", v)
	}
	pai, err := m.PAssertedIdentity()
	if err != nil || string(pai.URI.Number()) != "+4940111" || string(pai.Display) != "Alice" {
		t.Errorf("P-Asserted-Identity %+v %v", pai, err)
	}
	_, second := NextValue(m.Header("P-Asserted-Identity"))
	tel, err := ParseNameAddr(second)
	if err != nil || string(tel.URI.Scheme) != "tel" || string(tel.URI.Number()) != "+4940111" {
		t.Errorf("second PAI %+v %v", tel, err)
	}
	div, err := m.Diversion()
	if err != nil || string(div.URI.Number()) != "+4989000" {
		t.Errorf("Diversion %+v %v", div, err)
	}
	hi, err := m.HistoryInfo()
	if err != nil || string(hi.URI.Number()) != "+4930999" {
		t.Errorf("History-Info %+v %v", hi, err)
	}
	sid, err := m.SessionID()
	if err != nil || string(sid.Local) != "ab30317f1a784dc48ff824d0d3715d86" || string(sid.Remote) != "47755a9de7794ba387653f2099600ef2" {
		t.Errorf("Session-ID %+v %v", sid, err)
	}
	if v := m.Header("x-ucid"); string(v) != "00FA080018A3C3651234" {
		t.Errorf("X-UCID %q", v)
	}
	if v := m.Header("max-forwards"); string(v) != "70" {
		t.Errorf("Max-Forwards %q", v)
	}
	if m.ContentLength != 149 || len(m.Body) != 149 {
		t.Errorf("Content-Length %d body %d", m.ContentLength, len(m.Body))
	}
	if sdp, ok := m.SDPBody(); !ok || string(sdp[:4]) != "v=0\r" {
		t.Errorf("SDPBody %q %v", sdp, ok)
	}
	if _, err := m.Replaces(); !errors.Is(err, ErrNoHeader) {
		t.Errorf("Replaces on a message without it: %v", err)
	}
	// Two Via headers, the first with two values: three hops in all.
	var hops []string
	for _, h := range m.Headers {
		if h.ID != HdrVia {
			continue
		}
		for v, rest := NextValue(h.Value); v != nil; v, rest = NextValue(rest) {
			via, err := ParseVia(v)
			if err != nil {
				t.Fatal(err)
			}
			hops = append(hops, string(via.Branch()))
		}
	}
	if strings.Join(hops, ",") != "z9hG4bK776asdhds,z9hG4bKsecond,z9hG4bKthird" {
		t.Errorf("Via hops %v", hops)
	}
}

func TestTransferHeaders(t *testing.T) {
	m := mustParse(t, crlf(`REFER sip:bob@b.example.com SIP/2.0
Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKref
From: <sip:alice@a.example.com>;tag=a1
To: <sip:bob@b.example.com>;tag=b1
Call-ID: refer-1
CSeq: 2 REFER
Refer-To: <sip:carol@c.example.com?Replaces=425928%40bobster.example.org%3Bto-tag%3D7743%3Bfrom-tag%3D6472>
Referred-By: "Alice" <sip:alice@a.example.com>
Content-Length: 0

`))
	rt, err := m.ReferTo()
	if err != nil || string(rt.URI.User) != "carol" {
		t.Fatalf("Refer-To %+v %v", rt, err)
	}
	scratch := make([]byte, 0, 128)
	r, _, err := rt.URI.EmbeddedReplaces(scratch)
	if err != nil || string(r.CallID) != "425928@bobster.example.org" || string(r.ToTag) != "7743" || string(r.FromTag) != "6472" {
		t.Errorf("embedded Replaces %+v %v", r, err)
	}
	rb, err := m.ReferredBy()
	if err != nil || string(rb.URI.User) != "alice" || string(rb.Display) != "Alice" {
		t.Errorf("Referred-By %+v %v", rb, err)
	}

	m = mustParse(t, crlf(`INVITE sip:bob@b.example.com SIP/2.0
Call-ID: new-call
CSeq: 1 INVITE
Replaces: 98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only
Content-Length: 0

`))
	rep, err := m.Replaces()
	if err != nil || string(rep.CallID) != "98732@sip.example.com" || string(rep.FromTag) != "r33th4x0r" || string(rep.ToTag) != "ff87ff" || !rep.EarlyOnly {
		t.Errorf("Replaces %+v %v", rep, err)
	}
}

// TestHeaderEdgeCases covers folding, compact forms, case, and framing.
func TestHeaderEdgeCases(t *testing.T) {
	t.Run("folding", func(t *testing.T) {
		m := mustParse(t, crlf("OPTIONS sip:a@b SIP/2.0\nSubject: I know you're there,\n   pull up a chair\nFrom:\n \"Bob\"\n\t<sip:bob@b.example.com>\n ;tag=f1\nCall-ID: fold\nContent-Length: 0\n\n"))
		if v := string(m.Header("subject")); v != "I know you're there,\r\n   pull up a chair" {
			t.Errorf("Subject %q", v)
		}
		from, err := m.From()
		if err != nil || string(from.Display) != "Bob" || string(from.Tag()) != "f1" || string(from.URI.User) != "bob" {
			t.Errorf("folded From %+v %v", from, err)
		}
		if string(m.CallID()) != "fold" {
			t.Errorf("header after folded one: %q", m.CallID())
		}
	})
	t.Run("compact forms and case", func(t *testing.T) {
		m := mustParse(t, crlf("BYE sip:a@b SIP/2.0\nv: SIP/2.0/UDP h;branch=z9hG4bKc\nf: <sip:a@b>;tag=1\nt: sip:c@d;tag=2\ni: compact-id\ncseq: 7 BYE\nm: <sip:a@h>\nr: <sip:x@y>\nb: <sip:z@w>\no: refer\nK: replaces\nx: 1800\nc: text/plain\nL: 5\n\nhello"))
		for _, c := range []struct{ name, want string }{
			{"Via", "SIP/2.0/UDP h;branch=z9hG4bKc"}, {"Call-ID", "compact-id"}, {"CALL-ID", "compact-id"},
			{"i", "compact-id"}, {"Contact", "<sip:a@h>"}, {"Refer-To", "<sip:x@y>"}, {"Referred-By", "<sip:z@w>"},
			{"Event", "refer"}, {"Supported", "replaces"}, {"Session-Expires", "1800"}, {"content-type", "text/plain"},
		} {
			if got := string(m.Header(c.name)); got != c.want {
				t.Errorf("Header(%q) = %q, want %q", c.name, got, c.want)
			}
		}
		to, err := m.To()
		// Without <>, ;tag is a header parameter, not a URI one (RFC 3261 §20.10).
		if err != nil || string(to.Tag()) != "2" || to.URI.Params != nil {
			t.Errorf("To %+v %v", to, err)
		}
		if string(m.Body) != "hello" {
			t.Errorf("body %q", m.Body)
		}
	})
	t.Run("no Content-Length on UDP takes the rest", func(t *testing.T) {
		b := crlf("MESSAGE sip:a@b SIP/2.0\nCall-ID: x\n\nbody without length\n")
		m := mustParse(t, b)
		if string(m.Body) != "body without length\r\n" || m.ContentLength != -1 {
			t.Errorf("body %q length %d", m.Body, m.ContentLength)
		}
		var m2 Message
		if _, err := ParseStream(b, &m2); !errors.Is(err, ErrNoContentLength) {
			t.Errorf("stream: %v, want ErrNoContentLength", err)
		}
	})
	t.Run("several messages in one buffer", func(t *testing.T) {
		b := crlf("SIP/2.0 100 Trying\nCall-ID: one\nContent-Length: 0\n\n\nSIP/2.0 180 Ringing\nCall-ID: two\nl: 3\n\nabcSIP/2.0 200 OK\ni: three\nContent-Length: 0\n\n")
		var ids []string
		var m Message
		for len(b) > 0 {
			n, err := Parse(b, &m)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, string(m.CallID())+"/"+string(m.Reason))
			b = b[n:]
		}
		if strings.Join(ids, ",") != "one/Trying,two/Ringing,three/OK" {
			t.Errorf("walked %v", ids)
		}
	})
	t.Run("short body", func(t *testing.T) {
		b := crlf("INFO sip:a@b SIP/2.0\nCall-ID: s\nContent-Length: 10\n\n12345")
		var m Message
		if _, err := Parse(b, &m); !errors.Is(err, ErrTruncated) {
			t.Errorf("datagram: %v, want ErrTruncated", err)
		}
		if _, err := ParseStream(b, &m); !errors.Is(err, ErrIncomplete) {
			t.Errorf("stream: %v, want ErrIncomplete", err)
		}
		n, err := ParseStream(append(b, "67890"...), &m)
		if err != nil || n != len(b)+5 || string(m.Body) != "1234567890" {
			t.Errorf("stream complete: %d %v %q", n, err, m.Body)
		}
	})
	t.Run("bare LF line ends", func(t *testing.T) {
		m := mustParse(t, []byte("SIP/2.0 486 Busy Here\nCall-ID: lf\nContent-Length: 0\n\n"))
		if m.StatusCode != 486 || string(m.Reason) != "Busy Here" || string(m.CallID()) != "lf" {
			t.Errorf("%d %q %q", m.StatusCode, m.Reason, m.CallID())
		}
	})
	t.Run("keepalive", func(t *testing.T) {
		var m Message
		n, err := Parse([]byte("\r\n\r\n"), &m)
		if n != 4 || !errors.Is(err, ErrKeepalive) {
			t.Errorf("n %d err %v", n, err)
		}
	})
	t.Run("reuse keeps capacity and clears", func(t *testing.T) {
		var m Message
		if _, err := Parse(crlf(inviteText), &m); err != nil {
			t.Fatal(err)
		}
		c := cap(m.Headers)
		if _, err := Parse(crlf("ACK sip:a@b SIP/2.0\nContent-Length: 0\n\n"), &m); err != nil {
			t.Fatal(err)
		}
		if cap(m.Headers) != c || m.CallID() != nil || len(m.Headers) != 1 || m.Header("X-UCID") != nil {
			t.Errorf("after reuse: cap %d/%d call-id %q headers %d", cap(m.Headers), c, m.CallID(), len(m.Headers))
		}
	})
}

func TestParseErrors(t *testing.T) {
	many := "OPTIONS sip:a@b SIP/2.0\n" + strings.Repeat("X-A: 1\n", MaxHeaders+1) + "\n"
	cases := []struct {
		name, msg string
		want      error
	}{
		{"empty", "", ErrTruncated},
		{"no line end", "INVITE sip:a@b SIP/2.0", ErrTruncated},
		{"headers not ended", "INVITE sip:a@b SIP/2.0\nCall-ID: x\n", ErrTruncated},
		{"http", "GET / HTTP/1.1\n\n", ErrStartLine},
		{"status 99", "SIP/2.0 099 Low\n\n", ErrStartLine},
		{"status 700", "SIP/2.0 700 High\n\n", ErrStartLine},
		{"status letters", "SIP/2.0 2OO OK\n\n", ErrStartLine},
		{"status glued", "SIP/2.0 2000 OK\n\n", ErrStartLine},
		{"no uri", "INVITE SIP/2.0\n\n", ErrStartLine},
		{"bad method", "INV(TE sip:a SIP/2.0\n\n", ErrStartLine},
		{"version", "INVITE sip:a SIP/3.0\n\n", ErrStartLine},
		{"no colon", "INVITE sip:a SIP/2.0\nCall-ID x\n\n", ErrHeader},
		{"empty name", "INVITE sip:a SIP/2.0\n: x\n\n", ErrHeader},
		{"space in name", "INVITE sip:a SIP/2.0\nCall ID: x\n\n", ErrHeader},
		{"leading continuation", "INVITE sip:a SIP/2.0\n x: y\n\n", ErrHeader},
		{"content-length letters", "INVITE sip:a SIP/2.0\nContent-Length: 1O\n\n", ErrContentLength},
		{"content-length negative", "INVITE sip:a SIP/2.0\nContent-Length: -1\n\n", ErrContentLength},
		{"content-length huge", "INVITE sip:a SIP/2.0\nContent-Length: 99999999999999999999999\n\n", ErrContentLength},
		{"too many headers", many, ErrTooManyHeaders},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m Message
			n, err := Parse(crlf(c.msg), &m)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if n != 0 {
				t.Errorf("n = %d on error", n)
			}
		})
	}
}

func TestHeaderValueErrors(t *testing.T) {
	m := mustParse(t, crlf(`INVITE sip:a@b SIP/2.0
From: "unterminated <sip:a@b>
To: <sip:c@d
CSeq: 4294967296 INVITE
Via: SIP/3.0/UDP h
Contact: <sip:@h>
Replaces: abc;to-tag=1
Session-ID: ;remote=x
Content-Length: 0

`))
	if _, err := m.From(); !errors.Is(err, ErrValue) {
		t.Errorf("From: %v", err)
	}
	if _, err := m.To(); !errors.Is(err, ErrValue) {
		t.Errorf("To: %v", err)
	}
	if _, err := m.CSeq(); !errors.Is(err, ErrValue) {
		t.Errorf("CSeq over 2**31: %v", err)
	}
	if _, err := m.TopVia(); !errors.Is(err, ErrValue) {
		t.Errorf("Via: %v", err)
	}
	if _, err := m.Contact(); !errors.Is(err, ErrURI) {
		t.Errorf("Contact: %v", err)
	}
	if _, err := m.Replaces(); !errors.Is(err, ErrValue) {
		t.Errorf("Replaces without from-tag: %v", err)
	}
	if _, err := m.SessionID(); !errors.Is(err, ErrValue) {
		t.Errorf("Session-ID: %v", err)
	}
	for _, bad := range []string{"", "sip:", "sip:u@h:99999", "sip:[::1", "sip:[::1]x", "tel:", "nocolon"} {
		if _, err := ParseURI([]byte(bad)); !errors.Is(err, ErrURI) {
			t.Errorf("ParseURI(%q): %v", bad, err)
		}
	}
	if u, err := ParseURI([]byte("sips:[2001:db8::1]:5061;transport=tls")); err != nil || string(u.Host) != "[2001:db8::1]" || string(u.Port) != "5061" {
		t.Errorf("IPv6 URI %+v %v", u, err)
	}
	if _, err := Unescape(nil, []byte("a%2")); !errors.Is(err, ErrURI) {
		t.Errorf("truncated escape: %v", err)
	}
	if _, err := Unescape(nil, []byte("a%zz")); !errors.Is(err, ErrURI) {
		t.Errorf("bad escape: %v", err)
	}
}

func TestLooksLikeSIP(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"INVITE sip:bob@b SIP/2.0\r\nVia: x\r\n", true},
		{"OPTIONS sip:b SIP/2.0\n", true},
		{"SIP/2.0 200 OK\r\n", true},
		{"SIP/2.0 183 Session Progress\r\n", true},
		{"SIP/2.0 800 Nope\r\n", false},
		{"SIP/2.0 20 OK\r\n", false},
		{"FOO sip:b SIP/2.0\r\n", false},
		{"INVITE sip:bob@b HTTP/1.1\r\n", false},
		{"INVITE sip:bob@b SIP/2.0", false}, // line not ended
		{"GET / HTTP/1.1\r\n", false},
		{"\x80\x08\x12\x34RTP....", false},
		{"", false},
		{"INVITE", false},
	}
	for _, c := range cases {
		if got := LooksLikeSIP([]byte(c.in)); got != c.want {
			t.Errorf("LooksLikeSIP(%q) = %v", c.in, got)
		}
	}
}

func TestParseDTMFInfo(t *testing.T) {
	cases := []struct {
		ct, body string
		digit    byte
		dur      int
		ok       bool
	}{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5', 160, true},
		{"Application/DTMF-Relay; charset=x", "Signal= *\nDuration= 250", '*', 250, true},
		{"application/dtmf-relay", "Signal=#\r\n", '#', 0, true},
		{"application/dtmf-relay", "Signal=11\r\nDuration=100", '#', 100, true},
		{"application/dtmf-relay", "Signal=d\r\nDuration=100", 'D', 100, true},
		{"application/dtmf-relay", "Signal=16\r\nDuration=100", 0, 0, false},
		{"application/dtmf-relay", "Signal=flash\r\nDuration=100", 0, 0, false},
		{"application/dtmf-relay", "Signal=!\r\n", 0, 0, false},
		{"application/dtmf-relay", "Duration=100", 0, 0, false},
		{"application/dtmf-relay", "Signal=1\r\nDuration=abc", 0, 0, false},
		{"application/dtmf", "5", '5', 0, true},
		{"application/dtmf", " 0\r\n", '0', 0, true},
		{"application/dtmf", "12", 0, 0, false},
		{"application/sdp", "Signal=5", 0, 0, false},
	}
	for _, c := range cases {
		d, dur, ok := ParseDTMFInfo([]byte(c.ct), []byte(c.body))
		if d != c.digit || dur != c.dur || ok != c.ok {
			t.Errorf("ParseDTMFInfo(%q, %q) = %q %d %v, want %q %d %v", c.ct, c.body, d, dur, ok, c.digit, c.dur, c.ok)
		}
	}
}
