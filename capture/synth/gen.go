package synth

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// Event kinds on the generator's heap.
const (
	evSIP  = iota // SIP message k of the call
	evSlot        // slot k of a stream comes due (nominal time)
	evSend        // audio packet k of a stream, sent late (jitter, reorder)
)

// ev is one thing due at capture time t (ns after Config.Start).
type ev struct {
	t    int64
	ord  uint64 // insertion order: ties come out first in, first out
	call int32
	k    int32
	kind uint8
	dir  uint8
}

// evHeap is a binary min-heap by (t, ord), typed so that pushing does not
// box (container/heap would allocate per event).
type evHeap []ev

func (h evHeap) less(i, j int) bool {
	return h[i].t < h[j].t || h[i].t == h[j].t && h[i].ord < h[j].ord
}

func (h *evHeap) push(e ev) {
	*h = append(*h, e)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *evHeap) pop() ev {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// generator produces the frames of all calls in capture-time order.
type generator struct {
	cfg   *Config
	calls []Call
	ipID  [][2]uint16
	h     evHeap
	ord   uint64
	frame [1600]byte
	sip   []byte
	// counts for the Summary
	sipN, rtp, lost, reordered int64
}

func newGenerator(cfg *Config) *generator {
	g := &generator{cfg: cfg, calls: make([]Call, cfg.Calls), ipID: make([][2]uint16, cfg.Calls)}
	for i := range g.calls {
		g.calls[i] = plan(cfg, i)
		g.ipID[i] = [2]uint16{uint16(hash(cfg.Seed, i, hBranch)), uint16(hash(cfg.Seed, i, hTag))}
		g.at(g.calls[i].Invite, ev{call: int32(i), kind: evSIP, k: 0})
	}
	return g
}

// at schedules e at capture time t.
func (g *generator) at(t time.Time, e ev) {
	e.t = int64(t.Sub(g.cfg.Start))
	g.ord++
	e.ord = g.ord
	g.h.push(e)
}

// run emits every frame, in order, to emit (which must not keep frame).
func (g *generator) run(emit func(t int64, frame []byte) error) error {
	for len(g.h) > 0 {
		e := g.h.pop()
		c := &g.calls[e.call]
		switch e.kind {
		case evSIP:
			f, next, ok := g.sipMessage(c, int(e.k))
			if err := emit(e.t, f); err != nil {
				return err
			}
			g.sipN++
			if ok {
				g.at(next, ev{call: e.call, kind: evSIP, k: e.k + 1})
			}
			if e.k == sipOK {
				for d := range c.Streams {
					g.at(c.Streams[d].First, ev{call: e.call, kind: evSlot, dir: uint8(d)})
				}
			}
		case evSlot:
			d, k := int(e.dir), int(e.k)
			s := &c.Streams[d]
			if k+1 < s.Slots {
				g.at(s.First.Add(time.Duration(k+1)*Ptime), ev{call: e.call, kind: evSlot, dir: e.dir, k: e.k + 1})
			}
			switch c.kind(d, k) {
			case SlotLost:
				g.lost++
				continue
			case SlotAudio:
				if dl, re := g.delay(c, d, k); dl > 0 {
					if re {
						g.reordered++
					}
					g.at(s.First.Add(time.Duration(k)*Ptime+dl), ev{call: e.call, kind: evSend, dir: e.dir, k: e.k})
					continue
				}
			}
			if err := emit(e.t, g.rtpFrame(c, d, k)); err != nil {
				return err
			}
			g.rtp++
		case evSend:
			if err := emit(e.t, g.rtpFrame(c, int(e.dir), int(e.k))); err != nil {
				return err
			}
			g.rtp++
		}
	}
	return nil
}

// rtpFrame builds the frame of slot k of direction d.
//
// RTP fixed header, RFC 3550 §5.1 (V=2, no padding, extension or CSRC):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|V=2|P|X|  CC   |M|     PT      |       sequence number         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                           timestamp                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           synchronization source (SSRC) identifier            |
//	+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//
// Telephone-event payload, RFC 4733 §2.3:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     event     |E|R| volume    |          duration             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// An event's packets share the timestamp of its first slot (§2.5.1.1),
// the first has the marker bit (§2.5.1.2), duration grows by one slot per
// update, and the final packet is sent three times (§2.5.1.4). Each packet
// still takes the next sequence number (RFC 3550 §5.1), so receivers see
// no loss and no duplicates.
func (g *generator) rtpFrame(c *Call, d, k int) []byte {
	s := &c.Streams[d]
	b := g.frame[udpOffset:]
	ts := s.FirstTS + uint32(k*FrameBytes)
	pt, marker := byte(PayloadPCMU), k == 0
	n := 12
	if i, ok := c.digitAt(d, k); ok {
		dg := &c.DTMF[i]
		j := k - dg.Slot
		pt, marker, ts = PayloadEvent, j == 0, dg.TS
		dur, end := uint16(min((j+1)*FrameBytes, 0xffff)), byte(0)
		if j >= dg.Slots-1 {
			dur, end = dg.Duration, 0x80
		}
		b[12], b[13] = dg.Event, end|10 // volume 10 (−10 dBm0)
		binary.BigEndian.PutUint16(b[14:], dur)
		n += 4
	} else {
		c.Payload(d, k, b[12:12+FrameBytes])
		n += FrameBytes
	}
	b[0] = 0x80
	b[1] = pt
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], s.FirstSeq+uint16(k))
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], s.SSRC)
	src, dst := c.Caller.RTP, c.Callee.RTP
	if d == CalleeToCaller {
		src, dst = dst, src
	}
	g.ipID[c.Index][d]++
	return g.udp(src, dst, g.ipID[c.Index][d], n)
}

// SIP messages of a call, in order.
const (
	sipInvite = iota
	sipTrying
	sipRinging
	sipOK
	sipACK
	sipBye
	sipByeOK
)

// sipMessage builds message k of call c and says when the next one is due.
func (g *generator) sipMessage(c *Call, k int) (frame []byte, next time.Time, more bool) {
	seed, i := g.cfg.Seed, c.Index
	ftag := fmt.Sprintf("%08x", uint32(hash(seed, i, hTag)))
	ttag := fmt.Sprintf("%08x", uint32(hash(seed, i, hTag)>>32))
	br := func(n int) string { return fmt.Sprintf("z9hG4bK%012x", hash(seed, 8*i+n, hBranch)&0xffffffffffff) }
	caller, callee := c.Caller, c.Callee
	ruri := fmt.Sprintf("sip:%s@%s", callee.Number, callee.SIP)
	contactCaller := fmt.Sprintf("<sip:%s@%s>", caller.Number, caller.SIP)
	contactCallee := fmt.Sprintf("<sip:%s@%s>", callee.Number, callee.SIP)
	from := fmt.Sprintf("\"Phone %s\" <sip:%s@%s>;tag=%s", caller.Number, caller.Number, caller.SIP.Addr(), ftag)
	to := fmt.Sprintf("<sip:%s@%s>", callee.Number, callee.SIP.Addr())
	toTag := to + ";tag=" + ttag
	viaCaller := fmt.Sprintf("SIP/2.0/UDP %s;branch=%s", caller.SIP, br(0))
	m := g.sip[:0]
	header := func(name, v string) { m = fmt.Appendf(m, "%s: %s\r\n", name, v) }
	finish := func(body []byte) []byte {
		if body != nil {
			header("Content-Type", "application/sdp")
		}
		m = fmt.Appendf(m, "Content-Length: %d\r\n\r\n", len(body))
		return append(m, body...)
	}
	src, dst := caller.SIP, callee.SIP
	switch k {
	case sipInvite: // RFC 3261 §8.1.1 / §13.2.1
		m = fmt.Appendf(m, "INVITE %s SIP/2.0\r\n", ruri)
		header("Via", viaCaller)
		header("Max-Forwards", "70")
		header("From", from)
		header("To", to)
		header("Call-ID", c.CallID)
		header("CSeq", "1 INVITE")
		header("Contact", contactCaller)
		header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO")
		header("User-Agent", "callvault-synth")
		m = finish(sdp(hash(seed, i, hCallID)>>12, caller.RTP))
		next, more = c.Invite.Add(2*time.Millisecond), true
	case sipTrying, sipRinging, sipOK: // §8.2.6, §13.3.1
		src, dst = dst, src
		status, t := "100 Trying", to
		next = c.Invite.Add(100 * time.Millisecond)
		if k != sipTrying {
			status, t, next = "180 Ringing", toTag, c.Answer
		}
		if k == sipOK {
			status, next = "200 OK", c.Answer.Add(3*time.Millisecond)
		}
		m = fmt.Appendf(m, "SIP/2.0 %s\r\n", status)
		header("Via", viaCaller)
		header("From", from)
		header("To", t)
		header("Call-ID", c.CallID)
		header("CSeq", "1 INVITE")
		var body []byte
		if k != sipTrying {
			header("Contact", contactCallee)
		}
		if k == sipOK {
			body = sdp(hash(seed, i, hCallID)>>13, callee.RTP)
		}
		m = finish(body)
		more = true
	case sipACK: // §13.2.2.4: a new transaction, CSeq number of the INVITE
		m = fmt.Appendf(m, "ACK %s SIP/2.0\r\n", ruri)
		header("Via", fmt.Sprintf("SIP/2.0/UDP %s;branch=%s", caller.SIP, br(1)))
		header("Max-Forwards", "70")
		header("From", from)
		header("To", toTag)
		header("Call-ID", c.CallID)
		header("CSeq", "1 ACK")
		m = finish(nil)
		next, more = c.Bye, true
	case sipBye, sipByeOK: // §15.1.1: even calls the phone hangs up, odd the trunk
		byCaller := c.Index%2 == 0
		if byCaller != (k == sipBye) {
			src, dst = dst, src
		}
		var via, bfrom, bto, cseq, target string
		if byCaller {
			via = fmt.Sprintf("SIP/2.0/UDP %s;branch=%s", caller.SIP, br(2))
			bfrom, bto, cseq, target = from, toTag, "2 BYE", ruri
		} else {
			via = fmt.Sprintf("SIP/2.0/UDP %s;branch=%s", callee.SIP, br(3))
			bfrom, bto, cseq = toTag, from, "1 BYE"
			target = fmt.Sprintf("sip:%s@%s", caller.Number, caller.SIP)
		}
		if k == sipBye {
			m = fmt.Appendf(m, "BYE %s SIP/2.0\r\n", target)
			header("Via", via)
			header("Max-Forwards", "70")
		} else {
			m = fmt.Appendf(m, "SIP/2.0 200 OK\r\n")
			header("Via", via)
		}
		header("From", bfrom)
		header("To", bto)
		header("Call-ID", c.CallID)
		header("CSeq", cseq)
		m = finish(nil)
		next, more = c.Bye.Add(2*time.Millisecond), k == sipBye
	}
	g.sip = m
	n := copy(g.frame[udpOffset:], m)
	id := &g.ipID[i][0]
	if src != caller.SIP {
		id = &g.ipID[i][1]
	}
	*id++
	return g.udp(src, dst, *id, n), next, more
}

// sdp is an offer or answer (RFC 4566, RFC 3264) for PCMU with RFC 4733
// telephone events at rtp.
func sdp(sessID uint64, rtp netip.AddrPort) []byte {
	host := rtp.Addr().String()
	return fmt.Appendf(nil, "v=0\r\n"+
		"o=- %d 1 IN IP4 %s\r\n"+
		"s=-\r\n"+
		"c=IN IP4 %s\r\n"+
		"t=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\n"+
		"a=rtpmap:0 PCMU/8000\r\n"+
		"a=rtpmap:101 telephone-event/8000\r\n"+
		"a=fmtp:101 0-16\r\n"+
		"a=ptime:20\r\n"+
		"a=sendrecv\r\n", sessID, host, host, rtp.Port())
}
