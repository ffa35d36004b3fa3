package capture

import (
	"net/netip"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/callvault/callvault/capture/rtp"
	"github.com/callvault/callvault/capture/sip"
)

// Reader decodes the frames of one source (or one fanout member) and feeds
// the engine. It owns its decoder, defragmenter and TCP assembler, so it
// must stay on one goroutine; run one Reader per goroutine.
type Reader struct {
	e      *Engine
	id     int
	dec    packet.Decoder
	defrag *packet.Defragmenter
	asm    *packet.Assembler
	pkt    packet.Packet
	hdr    rtp.Header
	msg    sip.Message
	rtcp   rtp.Compound
	srtp   rtp.Packet
	plain  [2048]byte
	// tcpSIP remembers TCP flows on other ports that started with a SIP
	// start line, so their later segments go to the assembler too.
	tcpSIP   map[packet.Flow]struct{}
	flows    []flowEntry // flowcache.go
	lastTick int64
	// Import only: the capture time of the last frame, and how far this
	// file's jumps forward have shifted its frames (importClock).
	lastTS int64
	shift  int64
}

// How far an imported capture's clock may move between frames and still
// count as time passing: any jump forward of more than maxClockJump, or
// back by more than maxClockStepBack, is a discontinuity (importClock).
// Frames a little older than the clock are normal (interfaces merged, a
// clock stepped by NTP) and are handled as late packets.
const (
	maxClockJump     = int64(time.Hour)
	maxClockStepBack = int64(time.Minute)
)

// NewReader makes a Reader. Each needs its own goroutine; at most maxLanes
// readers may run at once.
func (e *Engine) NewReader() *Reader {
	e.mu.Lock()
	id := e.readers % maxLanes
	e.readers++
	e.mu.Unlock()
	r := &Reader{e: e, id: id, tcpSIP: make(map[packet.Flow]struct{}), flows: make([]flowEntry, flowCacheSize)}
	r.defrag = packet.NewDefragmenter(packet.DefragConfig{})
	r.dec.Defrag = r.defrag
	r.asm = packet.NewAssembler(&sipStreams{r: r}, packet.AssemblerConfig{})
	return r
}

// Handle processes one captured frame. It allocates nothing on the RTP path.
func (r *Reader) Handle(link packet.LinkType, ts time.Time, frame []byte) {
	e := r.e
	e.stats.Packets.Add(1)
	e.stats.Bytes.Add(int64(len(frame)))
	p := &r.pkt
	if err := r.dec.Decode(link, ts, frame, p); err != nil {
		e.stats.DecodeErrors.Add(1)
		return
	}
	now := ts.UnixNano()
	if !e.cfg.Live {
		now = r.importClock(now)
		ts = time.Unix(0, now)
	}
	e.advance(now)
	if p.Flags&packet.FlagFragment == 0 {
		switch p.Protocol {
		case packet.ProtoUDP:
			r.udp(now)
		case packet.ProtoTCP:
			r.tcp(ts)
		}
	}
	if !e.cfg.Live && now-r.lastTick >= int64(e.cfg.FlushEvery) {
		// Import: flush inline on capture time, so a file is processed as
		// it was captured whatever the speed of reading it.
		r.lastTick = now
		r.asm.Expire(ts)
		e.importPass(now, false)
	}
}

// importClock maps an imported frame's capture time to the engine's
// clock. Within one file, a jump forward of more than maxClockJump is
// counted away: the file goes on a second later (synthetic captures whose
// every frame is years after the one before, files appended to one
// another), so calls open across the jump neither time out nor get years
// of silence; metadata gets the true times back through the engine's
// offset. A jump back, or a file whose clock is far from the one before
// (each file of an import has a reader of its own), is a discontinuity.
func (r *Reader) importClock(now int64) int64 {
	e := r.e
	if r.lastTS != 0 && now-r.lastTS > maxClockJump {
		r.shift += now - r.lastTS - int64(time.Second)
		e.offset.Store(r.shift)
		e.stats.ClockJumps.Add(1)
		e.cfg.Log.Warn("capture clock jumped forward; the capture goes on a second later",
			"from", time.Unix(0, r.lastTS).UTC(), "to", time.Unix(0, now).UTC())
	}
	r.lastTS = now
	t := now - r.shift
	if c := e.clock.Load(); c != 0 && (t-c > maxClockJump || c-t > maxClockStepBack || e.offset.Load() != r.shift) {
		r.discontinuity(c, t)
	}
	return t
}

// discontinuity starts an import over on a new clock: files of different
// captures imported together, or given out of order, or a capture whose
// clock goes back. The calls open on the old clock end where their media
// ended ("capture gap") and their recordings are sealed before the frame
// is handled. Left on one clock, a file older than the one before made
// the engine close its calls years "later" (the newest time it had seen):
// closing one corpus call filled 15 years of silence, 55 GB before the
// disk was full.
func (r *Reader) discontinuity(last, next int64) {
	e := r.e
	e.stats.ClockJumps.Add(1)
	e.cfg.Log.Warn("capture clock jumped: calls open before the jump end there (\"capture gap\")",
		"from", e.realTime(last), "to", time.Unix(0, next+r.shift).UTC())
	// SIP held for a hole in a TCP stream, and fragments waiting for the
	// rest of their datagram, belong to the old clock.
	r.asm.Flush()
	r.defrag = packet.NewDefragmenter(packet.DefragConfig{})
	r.dec.Defrag = r.defrag
	e.endAll(last, "capture gap")
	e.flush(last)
	// Endpoints of the ended calls linger, and unknown flows wait to be
	// recognised as RTP, until times of the old clock.
	e.expireLinger(maxTime)
	e.mu.Lock()
	e.expireCandidates(maxTime)
	e.mu.Unlock()
	e.clock.Store(next)
	e.offset.Store(r.shift)
	r.lastTick = next
}

func (r *Reader) udp(now int64) {
	e, p := r.e, &r.pkt
	pl := p.Payload
	if e.isSIPPort(p.SrcPort) || e.isSIPPort(p.DstPort) || (e.cfg.DetectSIP && sip.LooksLikeSIP(pl)) {
		r.sipDatagram(now, pl)
		return
	}
	dst := netip.AddrPortFrom(p.Dst, p.DstPort)
	src := netip.AddrPortFrom(p.Src, p.SrcPort)
	s, ring, isRTCP, fe := r.lookupFlow(src, dst)
	if s == nil {
		if rtp.IsRTCP(pl) {
			return
		}
		if rtp.LooksLikeRTP(pl) {
			e.stats.RTPUnmatched.Add(1)
			e.candidate(r, now, src, dst, pl)
		}
		return
	}
	if s.gone.Load() {
		e.stats.AfterEnd.Add(1)
		return
	}
	if isRTCP || (rtp.IsRTCP(pl) && len(pl) >= 8) {
		e.stats.RTCPPackets.Add(1)
		if rtp.ParseRTCP(pl, &r.rtcp) == nil {
			s.c.noteRTCP(&r.rtcp)
		}
		return
	}
	if ring = r.pushRTP(s, ring, now, pl); ring != nil && fe != nil {
		fe.ring = ring
	}
}

// pushRTP parses an RTP packet (decrypting SRTP where the call's SDP gave
// keys) and queues it on the stream's lane for this reader, ring if the
// caller knows it. It returns the lane (nil if it has none).
func (r *Reader) pushRTP(s *stream, ring *rtp.Ring, now int64, pl []byte) *rtp.Ring {
	e := r.e
	if s.srtp != nil {
		s.srtpMu.Lock()
		out, err := s.srtp.DecryptRTP(r.plain[:0], pl, &r.srtp)
		s.srtpMu.Unlock()
		if err != nil {
			e.stats.SRTPErrors.Add(1)
			return ring
		}
		pl = out
	}
	n, err := r.hdr.Unmarshal(pl)
	if err != nil {
		e.stats.DecodeErrors.Add(1)
		return ring
	}
	if ring == nil {
		if ring = s.lane(r.id, e.cfg.RingSlots, len(pl)-n); ring == nil {
			e.stats.RingDrops.Add(1)
			return nil
		}
	}
	payload := pl[n:]
	if r.hdr.Padding && len(payload) > 0 {
		pad := int(payload[len(payload)-1])
		if pad <= len(payload) {
			payload = payload[:len(payload)-pad]
		}
	}
	order := e.pushed.Add(1)
	for !ring.PushOrdered(&r.hdr, payload, now, order) {
		if e.cfg.Live || len(payload) > ring.SlotPayload() {
			e.stats.RingDrops.Add(1)
			return ring
		}
		// Import: the reader is also the flusher; make room and retry.
		e.importPass(e.clock.Load(), true)
	}
	// Load before writing: an atomic write takes the cache line even when
	// nothing changes, and these rarely change.
	if s.firstPT.Load() == 0 {
		s.firstPT.CompareAndSwap(0, int32(r.hdr.PayloadType)+1)
	}
	if s.ssrc.Load() != r.hdr.SSRC {
		s.ssrc.Store(r.hdr.SSRC)
	}
	s.lastPacket.Store(now)
	s.packets.Add(1)
	e.stats.RTPPackets.Add(1)
	return ring
}

// sipDatagram parses every SIP message in a UDP payload.
func (r *Reader) sipDatagram(now int64, b []byte) {
	e, p := r.e, &r.pkt
	src, dst := netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)
	for len(b) > 0 {
		// Keep-alives (CRLF, RFC 5626) and padding between messages.
		for len(b) > 0 && (b[0] == '\r' || b[0] == '\n' || b[0] == 0) {
			b = b[1:]
		}
		if len(b) == 0 {
			return
		}
		n, err := sip.Parse(b, &r.msg)
		if err != nil {
			e.stats.SIPErrors.Add(1)
			return
		}
		e.stats.SIPMessages.Add(1)
		e.onSIP(now, src, dst, &r.msg, b[:n], false)
		b = b[n:]
	}
}

func (r *Reader) tcp(ts time.Time) {
	e, p := r.e, &r.pkt
	f := packet.Flow{Src: netip.AddrPortFrom(p.Src, p.SrcPort), Dst: netip.AddrPortFrom(p.Dst, p.DstPort)}
	if !e.isSIPPort(p.SrcPort) && !e.isSIPPort(p.DstPort) {
		_, known := r.tcpSIP[f]
		if !known {
			if !e.cfg.DetectSIP || !sip.LooksLikeSIP(p.Payload) {
				return
			}
			if len(r.tcpSIP) >= 4096 {
				clear(r.tcpSIP)
			}
			r.tcpSIP[f] = struct{}{}
			r.tcpSIP[f.Reverse()] = struct{}{}
		}
	}
	r.asm.Add(ts, p)
}

// sipStreams makes a SIP framer for each TCP flow direction.
type sipStreams struct{ r *Reader }

func (f *sipStreams) NewStream(fl packet.Flow, fromSYN bool) packet.Stream {
	st := &sipStream{r: f.r, flow: fl, fr: sip.NewFramer(0, nil)}
	if !fromSYN {
		st.fr.Gap() // joined mid-connection: find the next start line
	}
	return st
}

type sipStream struct {
	r    *Reader
	flow packet.Flow
	fr   *sip.Framer
}

func (s *sipStream) Data(b []byte) {
	r := s.r
	now := r.e.clock.Load()
	for len(b) > 0 {
		n := s.fr.Feed(b)
		b = b[n:]
		for {
			raw, ok := s.fr.Next(&r.msg)
			if !ok {
				break
			}
			r.e.stats.SIPMessages.Add(1)
			r.e.onSIP(now, s.flow.Src, s.flow.Dst, &r.msg, raw, true)
		}
		if n == 0 && len(b) > 0 {
			// The framer's buffer is full of something that is not SIP.
			r.e.stats.SIPErrors.Add(1)
			s.fr.Gap()
		}
	}
}

func (s *sipStream) Gap(int) {
	s.r.e.stats.TCPStreamGaps.Add(1)
	s.fr.Gap()
}

func (s *sipStream) End(packet.EndReason) {}
