package capture

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
)

// sim drives the engine with hand-built Ethernet/IPv4/UDP frames, so
// tests can play any dialog, packet by packet, on a capture clock.
type sim struct {
	t   *testing.T
	e   *Engine
	r   *Reader
	st  *store.Store
	now time.Time
}

func newSim(t *testing.T, cfg Config) *sim {
	t.Helper()
	st := testStore(t)
	e := New(cfg, StoreSink(st))
	return &sim{t: t, e: e, r: e.NewReader(), st: st, now: time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)}
}

func (s *sim) udp(src, dst string, payload []byte) {
	a, b := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	f := make([]byte, 14+20+8+len(payload))
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[8], ip[9] = 64, 17
	a4, b4 := a.Addr().As4(), b.Addr().As4()
	copy(ip[12:], a4[:])
	copy(ip[16:], b4[:])
	u := ip[20:]
	binary.BigEndian.PutUint16(u[0:], a.Port())
	binary.BigEndian.PutUint16(u[2:], b.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	s.r.Handle(packet.LinkEthernet, s.now, f)
}

// sip sends a SIP message written with \n line ends and {len} for the
// Content-Length of the body after the blank line.
func (s *sim) sip(src, dst, msg string) {
	msg = strings.ReplaceAll(strings.TrimLeft(msg, "\n"), "\n", "\r\n")
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	msg = strings.Replace(head, "{len}", fmt.Sprint(len(body)), 1) + "\r\n\r\n" + body
	s.udp(src, dst, []byte(msg))
}

func (s *sim) advance(d time.Duration) { s.now = s.now.Add(d) }

// rtpStream is one sender's RTP state.
type rtpStream struct {
	src, dst string
	ssrc     uint32
	seq      uint16
	ts       uint32
	pt       uint8
	fill     byte // payload byte (µ-law): tells the parties apart
}

func (s *sim) send(r *rtpStream, payload []byte, marker bool) {
	p := make([]byte, 12+len(payload))
	p[0] = 0x80
	p[1] = r.pt
	if marker {
		p[1] |= 0x80
	}
	binary.BigEndian.PutUint16(p[2:], r.seq)
	binary.BigEndian.PutUint32(p[4:], r.ts)
	binary.BigEndian.PutUint32(p[8:], r.ssrc)
	copy(p[12:], payload)
	s.udp(r.src, r.dst, p)
	r.seq++
}

// talk sends 20 ms G.711 packets from every stream for d of capture time.
func (s *sim) talk(d time.Duration, rs ...*rtpStream) {
	pl := make([]byte, 160)
	for t := time.Duration(0); t < d; t += 20 * time.Millisecond {
		for _, r := range rs {
			for i := range pl {
				pl[i] = r.fill
			}
			s.send(r, pl, false)
			r.ts += 160
		}
		s.advance(20 * time.Millisecond)
	}
}

// dtmf sends an RFC 4733 event (PT 101) of 100 ms, end packet three times.
func (s *sim) dtmf(r *rtpStream, event byte) {
	start := r.ts
	for i, dur := range []uint16{160, 480, 800, 800, 800} {
		e := []byte{event, 10, 0, 0}
		if i >= 2 {
			e[1] |= 0x80
		}
		binary.BigEndian.PutUint16(e[2:], dur)
		pt := r.pt
		r.pt = 101
		saved := r.ts
		r.ts = start
		s.send(r, e, i == 0)
		r.ts, r.pt = saved, pt
		if i < 2 {
			s.advance(20 * time.Millisecond)
			r.ts += 160
		}
	}
}

func (s *sim) close() []meta.Recording {
	s.e.Close()
	page, err := s.st.Meta().Search(meta.Query{Scope: meta.Scope{All: true}, Limit: 100, Ascending: true})
	if err != nil {
		s.t.Fatal(err)
	}
	return page.Recordings
}

// channels renders a recording and returns its left and right µ-law bytes
// per 20 ms tick as the dominant byte value (the fill of the sender heard).
func (s *sim) channels(id string) (left, right []byte) {
	a, err := s.st.OpenAudio(context.Background(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	defer a.Close()
	g, err := audio.NewGridReader(a, a.Size())
	if err != nil {
		s.t.Fatal(err)
	}
	buf := make([]byte, g.TickSize())
	for k := int64(0); k < g.NumTicks(); k++ {
		if _, err := g.ReadTicks(k, buf); err != nil {
			s.t.Fatal(err)
		}
		_, l := g.Channel(buf, 0)
		_, r := g.Channel(buf, 1)
		left = append(left, l[len(l)/2])
		right = append(right, r[len(r)/2])
	}
	return left, right
}

func invite(callID, fromTag, from, to, ip string, port int, dir string) string {
	return fmt.Sprintf(`
INVITE sip:%[4]s@example.com SIP/2.0
Via: SIP/2.0/UDP %[5]s:5060;branch=z9hG4bK%[1]s
From: "Alice" <sip:%[3]s@example.com>;tag=%[2]s
To: <sip:%[4]s@example.com>
Call-ID: %[1]s
CSeq: 1 INVITE
Contact: <sip:%[3]s@%[5]s>
Content-Type: application/sdp
Content-Length: {len}

v=0
o=- 1 1 IN IP4 %[5]s
s=-
c=IN IP4 %[5]s
t=0 0
m=audio %[6]d RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=%[7]s
`, callID, fromTag, from, to, ip, port, dir)
}

func response(code int, reason, method string, cseq int, callID, fromTag, from, to, toTag, sdpIP string, port int, dir string) string {
	m := fmt.Sprintf(`
SIP/2.0 %d %s
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK%s
From: "Alice" <sip:%s@example.com>;tag=%s
To: <sip:%s@example.com>;tag=%s
Call-ID: %s
CSeq: %d %s
`, code, reason, callID, from, fromTag, to, toTag, callID, cseq, method)
	if sdpIP == "" {
		return m + "Content-Length: 0\n\n"
	}
	return m + fmt.Sprintf(`Content-Type: application/sdp
Content-Length: {len}

v=0
o=- 2 2 IN IP4 %[1]s
s=-
c=IN IP4 %[1]s
t=0 0
m=audio %[2]d RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=%[3]s
`, sdpIP, port, dir)
}

func request(method string, cseq int, callID, fromTag, from, to, toTag string, extra string) string {
	return fmt.Sprintf(`
%[1]s sip:%[5]s@example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK%[3]s%[2]d
From: <sip:%[4]s@example.com>;tag=%[6]s
To: <sip:%[5]s@example.com>;tag=%[7]s
Call-ID: %[3]s
CSeq: %[2]d %[1]s
%[8]sContent-Length: 0

`, method, cseq, callID, from, to, fromTag, toTag, extra)
}
