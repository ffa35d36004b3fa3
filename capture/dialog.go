package capture

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"

	"github.com/callvault/callvault/capture/rtp"
	"github.com/callvault/callvault/capture/sip"
	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
)

// onSIP follows dialogs (RFC 3261 §12-§15): INVITE/18x/200/ACK set a call
// up, re-INVITE and UPDATE (RFC 3311) change its media, BYE and CANCEL end
// it, INFO carries DTMF (RFC 2976), REFER and Replaces (RFC 3515, 3891)
// link transfers. SDP (RFC 3264 offer/answer) says where each party
// receives media; those endpoints go into the stream table.
func (e *Engine) onSIP(now int64, src, dst netip.AddrPort, m *sip.Message, raw []byte, tcp bool) {
	cseq, err := m.CSeq()
	if err != nil {
		e.stats.SIPErrors.Add(1)
		return
	}
	callID := m.CallID()
	if len(callID) == 0 {
		e.stats.SIPErrors.Add(1)
		return
	}
	from, _ := m.From()
	to, _ := m.To()
	method := cseq.Method

	if !e.cfg.Live {
		// SIP may change a deferred call (batch.go).
		e.flushMu.Lock()
		defer e.flushMu.Unlock()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.byID[string(callID)]
	if c != nil {
		e.touch(c)
	}
	if c == nil {
		// Only an initial INVITE starts a call. Anything else for an unknown
		// dialog (capture began mid-call) may still adopt RTP we already
		// record without signalling, through its SDP.
		if !(m.IsRequest() && bytes.Equal(m.Method, []byte("INVITE")) && len(to.Tag()) == 0) {
			if sdp, ok := m.SDPBody(); ok {
				if o := e.adoptBySDP(now, string(callID), m, sdp, src); o != nil {
					e.noteSignal(o, now, src, dst, raw, tcp)
				}
			}
			return
		}
		c = e.newSIPCall(now, string(callID), m, from, to, src, dst)
	}
	e.noteSignal(c, now, src, dst, raw, tcp)
	c.lastSig = now
	if c.ended {
		return
	}
	// Which party sent this message? Requests come from the party whose tag
	// is in From; responses from the other one.
	fromCaller := string(from.Tag()) == c.parties[0].tag || c.parties[0].tag == ""
	sender := 1
	if fromCaller == m.IsRequest() {
		sender = 0
	}

	if m.IsRequest() {
		switch string(m.Method) {
		case "INVITE":
			if r, err := m.Replaces(); err == nil && c.replaces == "" {
				c.replaces = string(r.CallID)
				c.events = append(c.events, event{at: now, kind: string(meta.BookmarkTransfer), label: "replaces " + string(r.CallID)})
			}
			e.sdpFrom(c, sender, m, now)
		case "ACK", "UPDATE", "PRACK":
			e.sdpFrom(c, sender, m, now)
		case "BYE":
			e.endCall(c, now, "bye")
		case "CANCEL":
			if !c.answered {
				c.failed = true
				e.endCall(c, now, "cancelled")
			}
		case "INFO":
			if d, dur, ok := sip.ParseDTMFInfo(m.ContentType(), m.Body); ok {
				c.events = append(c.events, event{at: now, kind: string(meta.BookmarkDTMF), label: string(d) + " (SIP INFO, " + strconv.Itoa(dur) + " ms)"})
			}
		case "REFER":
			label := "REFER"
			if rt, err := m.ReferTo(); err == nil {
				label = "REFER to " + string(rt.URI.Number())
				if rep, _, err := rt.URI.EmbeddedReplaces(nil); err == nil {
					c.referTo = string(rep.CallID)
				}
			}
			c.events = append(c.events, event{at: now, kind: string(meta.BookmarkTransfer), label: label})
		}
		return
	}

	// Responses.
	code := m.StatusCode
	switch string(method) {
	case "INVITE", "UPDATE", "PRACK":
	default:
		return
	}
	if code >= 180 && code < 300 {
		if string(method) == "INVITE" && c.parties[1].tag == "" && len(to.Tag()) > 0 && code >= 200 {
			c.parties[1].tag = string(to.Tag())
		}
		e.sdpFrom(c, sender, m, now)
	}
	if string(method) != "INVITE" {
		return
	}
	switch {
	case code >= 200 && code < 300 && !c.answered:
		c.answered, c.answeredAt = true, now
		e.stats.CallsAnswered.Add(1)
	case code >= 300 && !c.answered:
		// A final failure of the initial INVITE. With forking, another
		// branch may still answer; only fail once nothing else is pending.
		c.failed = true
		e.endCall(c, now, "failed "+strconv.Itoa(code))
	}
}

func (e *Engine) newSIPCall(now int64, callID string, m *sip.Message, from, to sip.NameAddr, src, dst netip.AddrPort) *call {
	c := e.newCall(now, callID)
	c.sip, c.callID = true, callID
	caller, callee := &c.parties[0], &c.parties[1]
	caller.tag = string(from.Tag())
	caller.number, caller.name = string(from.URI.Number()), unquote(from.Display)
	if pai, err := m.PAssertedIdentity(); err == nil && len(pai.URI.Number()) > 0 {
		caller.number = string(pai.URI.Number())
		if len(pai.Display) > 0 {
			caller.name = unquote(pai.Display)
		}
	}
	callee.number, callee.name = string(to.URI.Number()), unquote(to.Display)
	if u, err := sip.ParseURI(m.RequestURI); err == nil && len(u.Number()) > 0 {
		callee.number = string(u.Number())
	}
	caller.sigAddr, callee.sigAddr = src.Addr(), dst.Addr()
	if sid, err := m.SessionID(); err == nil {
		c.sessionID = string(sid.Local)
	}
	for _, h := range []string{"X-UCID", "User-to-User", "X-Cisco-GUID", "X-Call-ID"} {
		if v := m.Header(h); len(v) > 0 && len(v) < 200 {
			c.pbxCallID = string(v)
			break
		}
	}
	e.byID[callID] = c
	return c
}

func (e *Engine) newCall(now int64, key string) *call {
	c := &call{key: key, created: now, lastSig: now, local: -1}
	for i := range c.parties {
		c.parties[i].pt = -1
	}
	for i := range c.streams {
		c.streams[i] = &stream{c: c, party: i}
	}
	e.calls[c] = struct{}{}
	e.slow[c] = struct{}{}
	e.stats.CallsActive.Add(1)
	e.stats.CallsTotal.Add(1)
	return c
}

// sdpFrom applies the SDP body of m, authored by party, to the call:
// where that party receives media, which codecs and keys it uses, hold.
func (e *Engine) sdpFrom(c *call, party int, m *sip.Message, now int64) {
	body, ok := m.SDPBody()
	if !ok {
		return
	}
	var s sip.SDP
	if err := sip.ParseSDP(body, &s); err != nil {
		e.stats.SIPErrors.Add(1)
		return
	}
	p := &c.parties[party]
	wasHold := p.hold || c.parties[1-party].hold
	for i := range s.Media {
		md := &s.Media[i]
		if !bytes.Equal(md.Type, []byte("audio")) || !md.IsRTP() {
			continue
		}
		ep := s.Endpoint(i)
		if ep.Disabled {
			continue
		}
		p.hold = ep.Hold || ep.Direction == sip.DirSendOnly || ep.Direction == sip.DirInactive
		if ep.Addr.IsValid() && !ep.Hold && ep.Port != 0 {
			e.register(c, party, netip.AddrPortFrom(ep.Addr, ep.Port), false)
			if ep.RTCP.IsValid() && ep.RTCP.Port() != ep.Port {
				e.register(c, party, ep.RTCP, true)
			}
		}
		p.codecMap = p.codecMap[:0]
		for _, pt := range md.PayloadTypes {
			rm, ok := md.Codec(pt)
			if !ok {
				continue
			}
			name := strings.ToUpper(string(rm.Encoding))
			if name == "TELEPHONE-EVENT" {
				p.eventPT = pt
				continue
			}
			p.codecMap = append(p.codecMap, ptCodec{pt: pt, name: name, clock: int(rm.ClockRate), channels: int(rm.Channels)})
		}
		if len(md.Cryptos) > 0 {
			if key, err := md.Cryptos[0].DecodeKey(nil); err == nil {
				p.crypto = cryptoKey{suite: string(md.Cryptos[0].Suite), key: key}
				e.setSRTP(c, party)
			}
		}
		break // one audio stream per party: the first active one
	}
	if hold := p.hold || c.parties[1-party].hold; hold != wasHold {
		label := "hold"
		if !hold {
			label = "resume"
		}
		c.events = append(c.events, event{at: now, kind: string(meta.BookmarkHold), label: label})
	}
	e.decideLocal(c)
}

// setSRTP gives the stream of party's voice a decrypter for its SDES key
// (RFC 4568: a=crypto is the key its author sends with).
func (e *Engine) setSRTP(c *call, party int) {
	k := c.parties[party].crypto
	d, err := rtp.NewDecrypter(k.suite, k.key)
	if err != nil {
		e.stats.SRTPErrors.Add(1)
		return
	}
	s := c.streams[party]
	s.srtpMu.Lock()
	s.srtp = d
	s.srtpMu.Unlock()
}

// register maps a media endpoint to a call party. An endpoint still held
// by a call that has ended, or by RTP recorded without signalling, passes
// to the new owner.
func (e *Engine) register(c *call, party int, ap netip.AddrPort, rtcp bool) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	for _, have := range c.parties[party].media {
		if have == ap {
			return
		}
	}
	old := e.table.put(ap, newEndpoint(c, party, rtcp))
	c.parties[party].media = append(c.parties[party].media, ap)
	if old != nil && old.c != c && !old.c.sip && !old.c.ended && !c.adopted {
		e.adopt(c, old.c)
	}
}

// adopt merges an orphan call (RTP seen before any SIP) into the SIP call
// c whose SDP names its endpoints: the recording continues, now with the
// dialog's identity.
func (e *Engine) adopt(c, orphan *call) {
	if orphan.rec == nil && !orphan.hasMedia() {
		return
	}
	e.touch(orphan)
	// The simplest faithful merge: the orphan keeps recording (its
	// flusher state is live), and takes over the dialog's identity.
	orphan.sip, orphan.callID = true, c.callID
	orphan.parties[0].number, orphan.parties[0].name = c.parties[0].number, c.parties[0].name
	orphan.parties[1].number, orphan.parties[1].name = c.parties[1].number, c.parties[1].name
	orphan.answered = true
	orphan.adopted, orphan.infoDirty = true, true
	e.byID[c.callID] = orphan
	// The SIP call object carried no media yet; retire it quietly.
	for i := range c.parties {
		for _, ap := range c.parties[i].media {
			e.table.put(ap, newEndpoint(orphan, i, false))
		}
	}
	delete(e.calls, c)
	delete(e.slow, c)
	e.stats.CallsActive.Add(-1)
	e.stats.CallsTotal.Add(-1)
	e.stats.OrphanStreams.Add(0)
}

// adoptBySDP handles SIP of a dialog whose INVITE was never seen: if its
// SDP names endpoints of RTP recorded without signalling, the recording
// gets the dialog's identity.
func (e *Engine) adoptBySDP(now int64, callID string, m *sip.Message, body []byte, src netip.AddrPort) *call {
	var s sip.SDP
	if sip.ParseSDP(body, &s) != nil {
		return nil
	}
	for i := range s.Media {
		ep := s.Endpoint(i)
		if !ep.Addr.IsValid() {
			continue
		}
		old := e.table.get(netip.AddrPortFrom(ep.Addr.Unmap(), ep.Port))
		if old == nil || old.c.sip || old.c.ended {
			continue
		}
		o := old.c
		e.touch(o)
		from, _ := m.From()
		to, _ := m.To()
		o.sip, o.callID, o.adopted, o.infoDirty = true, callID, true, true
		// The SDP's author is the party owning that endpoint; From/To say
		// who is who only for requests.
		fromParty := old.party
		if !m.IsRequest() {
			fromParty = 1 - old.party
		}
		o.parties[fromParty].number, o.parties[fromParty].name = string(from.URI.Number()), unquote(from.Display)
		o.parties[1-fromParty].number, o.parties[1-fromParty].name = string(to.URI.Number()), unquote(to.Display)
		o.parties[fromParty].tag = string(from.Tag())
		o.lastSig = now
		e.byID[callID] = o
		e.decideLocal(o)
		return o
	}
	return nil
}

// endCall marks a call ended; the flusher seals its recording.
func (e *Engine) endCall(c *call, now int64, reason string) {
	if c.ended {
		return
	}
	c.ended, c.endAt, c.endReason = true, now, reason
}

// decideLocal works out which party is local (the left channel) from the
// configured local networks, local number prefixes and trunk addresses;
// without any of them the caller is taken as local.
func (e *Engine) decideLocal(c *call) {
	score := func(p *party) int {
		s := 0
		if e.cfg.isLocalNumber(p.number) {
			s += 4
		}
		if e.cfg.isLocalAddr(p.sigAddr) {
			s += 2
		}
		for _, m := range p.media {
			if e.cfg.isLocalAddr(m.Addr()) {
				s += 2
				break
			}
		}
		if e.cfg.isTrunk(p.sigAddr) {
			s -= 8
		}
		for _, m := range p.media {
			if e.cfg.isTrunk(m.Addr()) {
				s -= 8
				break
			}
		}
		return s
	}
	a, b := score(&c.parties[0]), score(&c.parties[1])
	switch {
	case a > b:
		c.local, c.direction = 0, string(meta.DirOutgoing)
	case b > a:
		c.local, c.direction = 1, string(meta.DirIncoming)
	default:
		c.local, c.direction = 0, string(meta.DirUnknown)
	}
}

// codecFor says how to play party's voice that arrives with payload type
// pt: the party sends with the numbers its peer's SDP defined (RFC 3264
// §6.1), else its own, else the static table (RFC 3551).
func (c *call) codecFor(who int, pt uint8) (codec audio.Codec, clock int, name string, eventPT uint8) {
	eventPT = c.parties[1-who].eventPT
	if eventPT == 0 {
		eventPT = c.parties[who].eventPT
	}
	for _, p := range []*party{&c.parties[1-who], &c.parties[who]} {
		for _, m := range p.codecMap {
			if m.pt == pt {
				return codecByName(m.name, m.channels), m.clock, m.name, eventPT
			}
		}
	}
	if rm, ok := sip.StaticPayloadType(pt); ok {
		n := strings.ToUpper(string(rm.Encoding))
		return codecByName(n, int(rm.Channels)), int(rm.ClockRate), n, eventPT
	}
	return audio.CodecUnknown, 8000, "PT" + strconv.Itoa(int(pt)), eventPT
}

func codecByName(name string, channels int) audio.Codec {
	switch name {
	case "PCMU":
		return audio.CodecPCMU
	case "PCMA":
		return audio.CodecPCMA
	case "G722":
		return audio.CodecG722
	case "L16":
		if channels <= 1 {
			return audio.CodecL16
		}
	}
	return audio.CodecUnknown
}

func unquote(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return s
}
