package sip

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/netip"
)

// Caps on what one SDP may hold. They bound the memory a reused SDP grows
// to; real offers stay far below them (a WebRTC offer has ~15 formats).
const (
	MaxMedia   = 32  // m= sections
	MaxFormats = 128 // payload types per m= line (7 bits' worth)
	MaxRTPMaps = 128 // a=rtpmap / a=fmtp per m= section
	MaxCryptos = 16  // a=crypto per m= section
)

// Direction is the media direction attribute (RFC 3264 §5.1, RFC 4566 §6).
type Direction uint8

// Directions. DirUnset means no attribute was given at that level.
const (
	DirUnset Direction = iota
	DirSendRecv
	DirSendOnly
	DirRecvOnly
	DirInactive
)

func (d Direction) String() string {
	switch d {
	case DirSendRecv:
		return "sendrecv"
	case DirSendOnly:
		return "sendonly"
	case DirRecvOnly:
		return "recvonly"
	case DirInactive:
		return "inactive"
	}
	return "unset"
}

func parseDirection(name []byte) Direction {
	switch {
	case equalFold(name, "sendrecv"):
		return DirSendRecv
	case equalFold(name, "sendonly"):
		return DirSendOnly
	case equalFold(name, "recvonly"):
		return DirRecvOnly
	case equalFold(name, "inactive"):
		return DirInactive
	}
	return DirUnset
}

// Origin is the o= line (RFC 4566 §5.2):
//
//	o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>
type Origin struct {
	Username, SessionID, SessionVersion []byte
	Address                             Connection
}

// Version returns the session version as a number: it grows with every
// changed offer (RFC 3264 §8), which tells a re-INVITE's new SDP apart.
func (o Origin) Version() (uint64, bool) { return parseUint(o.SessionVersion, 1<<64-1) }

// Connection is a c= line (RFC 4566 §5.7) or the address of o= or a=rtcp:
//
//	c=<nettype> <addrtype> <connection-address>
//
// Raw is the address as written (without a multicast /ttl/count suffix);
// Addr is set when Raw is an IP literal (it may be a host name).
type Connection struct {
	AddrType []byte // IP4 or IP6
	Raw      []byte
	Addr     netip.Addr
}

// Hold reports the RFC 2543 hold address c=0.0.0.0 (or ::), which says
// "send me nothing" (RFC 3264 §8.4 describes it as legacy).
func (c Connection) Hold() bool { return c.Addr.IsValid() && c.Addr.IsUnspecified() }

func parseConnection(nettype, addrtype, addr []byte) (Connection, error) {
	if !equalFold(nettype, "IN") {
		return Connection{}, fmt.Errorf("%w: nettype %q", ErrSDP, clip(nettype))
	}
	c := Connection{AddrType: addrtype}
	if slash := bytes.IndexByte(addr, '/'); slash >= 0 {
		addr = addr[:slash]
	}
	if len(addr) == 0 {
		return c, fmt.Errorf("%w: empty address", ErrSDP)
	}
	c.Raw = addr
	if a, ok := parseIP(addr); ok {
		c.Addr = a
	}
	return c, nil
}

// RTPMap is an a=rtpmap line (RFC 4566 §6) or a static payload type of
// RFC 3551 §6:
//
//	a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
type RTPMap struct {
	PayloadType uint8
	Encoding    []byte // as written; compare case-insensitively
	ClockRate   uint32
	Channels    uint8 // 1 when not given for audio
}

// Fmtp is an a=fmtp line: a=fmtp:<format> <format specific parameters>.
type Fmtp struct {
	PayloadType uint8
	Params      []byte
}

// Crypto is an a=crypto line (RFC 4568 §9.1):
//
//	a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]
//	key-params = "inline:" <key||salt> ["|" lifetime] ["|" MKI ":" length]
//
// Only the first key-param is kept: SDES offers carry one.
type Crypto struct {
	Tag           uint32
	Suite         []byte // e.g. AES_CM_128_HMAC_SHA1_80
	KeySalt       []byte // base64, as sent
	Lifetime      []byte // e.g. "2^31", or nil
	MKI           uint32
	MKILength     uint8 // 0: no MKI
	SessionParams []byte
}

// DecodeKey appends the base64-decoded master key || salt to dst.
func (c Crypto) DecodeKey(dst []byte) ([]byte, error) {
	// Room for padded and unpadded input alike: Decode panics if dst is
	// short, and StdEncoding.DecodedLen undercounts unpadded input.
	n := len(c.KeySalt)*3/4 + 3
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	k, err := base64.StdEncoding.Decode(dst[start:], c.KeySalt)
	if err != nil {
		// RFC 4568 keys are padded base64, but some stacks drop the padding.
		k, err = base64.RawStdEncoding.Decode(dst[start:], bytes.TrimRight(c.KeySalt, "="))
		if err != nil {
			return dst[:start], fmt.Errorf("%w: crypto key: %v", ErrSDP, err)
		}
	}
	return dst[:start+k], nil
}

// Media is one m= section with the attributes this package knows.
//
//	m=<media> <port>[/<number of ports>] <proto> <fmt> ...
type Media struct {
	Type     []byte // audio, video, image, application
	Port     uint16
	NumPorts uint16 // 1 unless m= says port/n
	Proto    []byte // RTP/AVP, RTP/SAVP, RTP/AVPF, RTP/SAVPF, UDP/TLS/RTP/SAVPF, udptl ...
	Formats  []byte // the fmt list as written
	// PayloadTypes holds the formats as numbers when Proto is RTP-based.
	PayloadTypes []uint8
	Conn         Connection // media-level c=; Conn.Raw is nil if absent
	RTPMaps      []RTPMap
	Fmtps        []Fmtp
	Ptime        uint32 // ms; 0 if absent
	Direction    Direction
	RTCPPort     uint16     // a=rtcp (RFC 3605); 0 if absent
	RTCPConn     Connection // a=rtcp address, if given
	RTCPMux      bool       // a=rtcp-mux (RFC 5761)
	Cryptos      []Crypto
	Label        []byte // a=label (RFC 4574), the SIPREC stream label
	MID          []byte // a=mid (RFC 5888)
}

// IsRTP reports whether the proto is an RTP profile (RFC 3551, 3711, 4585,
// 5124, 5764).
func (md *Media) IsRTP() bool {
	p := md.Proto
	return hasPrefixFold(p, "RTP/") || hasPrefixFold(p, "UDP/TLS/RTP/")
}

// Codec returns the mapping of payload type pt: the a=rtpmap if there is
// one, else the static assignment of RFC 3551 §6.
func (md *Media) Codec(pt uint8) (RTPMap, bool) {
	for _, r := range md.RTPMaps {
		if r.PayloadType == pt {
			return r, true
		}
	}
	return StaticPayloadType(pt)
}

// Fmtp returns the a=fmtp parameters of payload type pt, or nil.
func (md *Media) Fmtp(pt uint8) []byte {
	for _, f := range md.Fmtps {
		if f.PayloadType == pt {
			return f.Params
		}
	}
	return nil
}

func (md *Media) reset() {
	*md = Media{
		PayloadTypes: md.PayloadTypes[:0], RTPMaps: md.RTPMaps[:0],
		Fmtps: md.Fmtps[:0], Cryptos: md.Cryptos[:0], NumPorts: 1,
	}
}

// SDP is a parsed session description. Its []byte fields are views into
// the input; reuse one SDP to keep the capacity of Media and its slices.
type SDP struct {
	Origin    Origin
	Conn      Connection // session-level c=; Conn.Raw is nil if absent
	Direction Direction  // session-level direction attribute
	Media     []Media
}

// staticPTs is RFC 3551 §6 Table 4 and 5 (the audio and video payload
// types with fixed meaning). Channels is 1 for audio, 0 for video.
var staticPTs = [35]struct {
	name     string
	clock    uint32
	channels uint8
}{
	0: {"PCMU", 8000, 1}, 3: {"GSM", 8000, 1}, 4: {"G723", 8000, 1},
	5: {"DVI4", 8000, 1}, 6: {"DVI4", 16000, 1}, 7: {"LPC", 8000, 1},
	8: {"PCMA", 8000, 1}, 9: {"G722", 8000, 1}, 10: {"L16", 44100, 2},
	11: {"L16", 44100, 1}, 12: {"QCELP", 8000, 1}, 13: {"CN", 8000, 1},
	14: {"MPA", 90000, 0}, 15: {"G728", 8000, 1}, 16: {"DVI4", 11025, 1},
	17: {"DVI4", 22050, 1}, 18: {"G729", 8000, 1},
	25: {"CelB", 90000, 0}, 26: {"JPEG", 90000, 0}, 28: {"nv", 90000, 0},
	31: {"H261", 90000, 0}, 32: {"MPV", 90000, 0}, 33: {"MP2T", 90000, 0},
	34: {"H263", 90000, 0},
}

// staticNames holds the encoding names as byte slices so StaticPayloadType
// can return them without converting per call.
var staticNames = func() (n [len(staticPTs)][]byte) {
	for i, s := range staticPTs {
		if s.name != "" {
			n[i] = []byte(s.name)
		}
	}
	return n
}()

// StaticPayloadType returns the RFC 3551 static mapping of pt, if any.
// Note G.722's RTP clock is 8000 although it samples at 16 kHz (§4.5.2).
func StaticPayloadType(pt uint8) (RTPMap, bool) {
	if int(pt) >= len(staticPTs) || staticNames[pt] == nil {
		return RTPMap{}, false
	}
	s := staticPTs[pt]
	return RTPMap{PayloadType: pt, Encoding: staticNames[pt], ClockRate: s.clock, Channels: s.channels}, true
}

// ParseSDP parses a session description (RFC 4566) into s, reusing its
// memory. Lines end in CRLF or LF. Unknown line types and attributes are
// skipped, as RFC 4566 §5 asks; malformed lines this package relies on
// (o=, c=, m=, and the attributes it reads) are errors.
//
//	v=0
//	o=- 20076 595552 IN IP4 192.168.50.140
//	s=-
//	c=IN IP4 192.168.50.140
//	t=0 0
//	m=audio 20106 RTP/AVP 0 101
//	a=rtpmap:101 telephone-event/8000
//	a=sendonly
//	a=label:16777227
func ParseSDP(b []byte, s *SDP) error {
	*s = SDP{Media: s.Media[:0]}
	var md *Media
	first := true
	for pos := 0; pos < len(b); {
		var line []byte
		if nl := bytes.IndexByte(b[pos:], '\n'); nl >= 0 {
			line, pos = b[pos:pos+nl], pos+nl+1
		} else {
			line, pos = b[pos:], len(b)
		}
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(trimLWS(line)) == 0 {
			continue // blank lines, e.g. a trailing CRLF in a multipart
		}
		if len(line) < 2 || line[1] != '=' {
			return fmt.Errorf("%w: line %q is not <type>=<value>", ErrSDP, clip(line))
		}
		typ, val := line[0], line[2:]
		if first {
			if typ != 'v' || string(trimLWS(val)) != "0" {
				return fmt.Errorf("%w: first line %q is not v=0", ErrSDP, clip(line))
			}
			first = false
			continue
		}
		var err error
		switch typ {
		case 'o':
			err = s.parseOrigin(val)
		case 'c':
			var c Connection
			c, err = parseConnectionLine(val)
			if md != nil {
				md.Conn = c
			} else {
				s.Conn = c
			}
		case 'm':
			if len(s.Media) >= MaxMedia {
				return fmt.Errorf("%w: more than %d m= lines", ErrSDPLimit, MaxMedia)
			}
			if len(s.Media) < cap(s.Media) {
				s.Media = s.Media[:len(s.Media)+1]
			} else {
				s.Media = append(s.Media, Media{})
			}
			md = &s.Media[len(s.Media)-1]
			md.reset()
			err = md.parseMLine(val)
		case 'a':
			err = s.parseAttribute(md, val)
		}
		if err != nil {
			return err
		}
	}
	if first {
		return fmt.Errorf("%w: empty", ErrSDP)
	}
	return nil
}

// fields splits b at single spaces into dst, returning how many it filled;
// runs of spaces count as one (lenient towards sloppy generators).
func fields(b []byte, dst [][]byte) int {
	n := 0
	for n < len(dst) {
		b = trimLeftWS(b)
		if len(b) == 0 {
			break
		}
		i := 0
		for i < len(b) && !isLWS(b[i]) {
			i++
		}
		dst[n] = b[:i]
		n++
		b = b[i:]
	}
	return n
}

func (s *SDP) parseOrigin(v []byte) error {
	var f [6][]byte
	if fields(v, f[:]) != 6 {
		return fmt.Errorf("%w: o=%q needs 6 fields", ErrSDP, clip(v))
	}
	s.Origin.Username, s.Origin.SessionID, s.Origin.SessionVersion = f[0], f[1], f[2]
	c, err := parseConnection(f[3], f[4], f[5])
	if err != nil {
		return fmt.Errorf("o=: %w", err)
	}
	s.Origin.Address = c
	return nil
}

func parseConnectionLine(v []byte) (Connection, error) {
	var f [3][]byte
	if fields(v, f[:]) != 3 {
		return Connection{}, fmt.Errorf("%w: c=%q needs 3 fields", ErrSDP, clip(v))
	}
	c, err := parseConnection(f[0], f[1], f[2])
	if err != nil {
		return c, fmt.Errorf("c=: %w", err)
	}
	return c, nil
}

func (md *Media) parseMLine(v []byte) error {
	var f [3][]byte
	if fields(v, f[:]) != 3 {
		return fmt.Errorf("%w: m=%q needs media, port and proto", ErrSDP, clip(v))
	}
	md.Type = f[0]
	port, count, hasCount := cutByte(f[1], '/')
	p, ok := parseUint(port, 65535)
	if !ok {
		return fmt.Errorf("%w: m= port %q", ErrSDP, clip(f[1]))
	}
	md.Port = uint16(p)
	if hasCount {
		n, ok := parseUint(count, 65535)
		if !ok || n == 0 {
			return fmt.Errorf("%w: m= port count %q", ErrSDP, clip(f[1]))
		}
		md.NumPorts = uint16(n)
	}
	md.Proto = f[2]
	rest := v[offsetOf(v, f[2])+len(f[2]):]
	md.Formats = trimLWS(rest)
	if !md.IsRTP() {
		return nil
	}
	for fmts := md.Formats; ; {
		var one [1][]byte
		if fields(fmts, one[:]) == 0 {
			break
		}
		pt, ok := parseUint(one[0], 127)
		if !ok {
			return fmt.Errorf("%w: RTP payload type %q", ErrSDP, clip(one[0]))
		}
		if len(md.PayloadTypes) >= MaxFormats {
			return fmt.Errorf("%w: more than %d formats", ErrSDPLimit, MaxFormats)
		}
		md.PayloadTypes = append(md.PayloadTypes, uint8(pt))
		fmts = fmts[offsetOf(fmts, one[0])+len(one[0]):]
	}
	return nil
}

func (s *SDP) parseAttribute(md *Media, v []byte) error {
	name, val, _ := cutByte(v, ':')
	name = trimLWS(name)
	if d := parseDirection(name); d != DirUnset {
		if md != nil {
			md.Direction = d
		} else {
			s.Direction = d
		}
		return nil
	}
	if md == nil {
		return nil // the attributes below are media-level
	}
	val = trimLWS(val)
	switch {
	case equalFold(name, "rtpmap"):
		r, err := parseRTPMap(val)
		if err != nil {
			return err
		}
		if len(md.RTPMaps) >= MaxRTPMaps {
			return fmt.Errorf("%w: more than %d rtpmaps", ErrSDPLimit, MaxRTPMaps)
		}
		md.RTPMaps = append(md.RTPMaps, r)
	case equalFold(name, "fmtp"):
		var f [1][]byte
		if fields(val, f[:]) == 0 {
			return fmt.Errorf("%w: empty a=fmtp", ErrSDP)
		}
		pt, ok := parseUint(f[0], 127)
		if !ok {
			return nil // fmtp of a non-RTP format (e.g. T.38): not ours
		}
		if len(md.Fmtps) >= MaxRTPMaps {
			return fmt.Errorf("%w: more than %d fmtps", ErrSDPLimit, MaxRTPMaps)
		}
		md.Fmtps = append(md.Fmtps, Fmtp{PayloadType: uint8(pt), Params: trimLWS(val[len(f[0]):])})
	case equalFold(name, "ptime"):
		// Integer milliseconds; some stacks write "20.0".
		whole, _, _ := cutByte(val, '.')
		p, ok := parseUint(whole, 1<<16)
		if !ok {
			return fmt.Errorf("%w: a=ptime:%q", ErrSDP, clip(val))
		}
		md.Ptime = uint32(p)
	case equalFold(name, "rtcp"):
		// RFC 3605 §2.1: a=rtcp:<port> [<nettype> <addrtype> <connection-address>]
		var f [4][]byte
		n := fields(val, f[:])
		p, ok := parseUint(f[0], 65535)
		if n == 0 || !ok {
			return fmt.Errorf("%w: a=rtcp:%q", ErrSDP, clip(val))
		}
		md.RTCPPort = uint16(p)
		if n == 4 {
			c, err := parseConnection(f[1], f[2], f[3])
			if err != nil {
				return fmt.Errorf("a=rtcp: %w", err)
			}
			md.RTCPConn = c
		}
	case equalFold(name, "rtcp-mux"):
		md.RTCPMux = true
	case equalFold(name, "crypto"):
		c, err := parseCrypto(val)
		if err != nil {
			return err
		}
		if len(md.Cryptos) >= MaxCryptos {
			return fmt.Errorf("%w: more than %d crypto lines", ErrSDPLimit, MaxCryptos)
		}
		md.Cryptos = append(md.Cryptos, c)
	case equalFold(name, "label"):
		md.Label = val
	case equalFold(name, "mid"):
		md.MID = val
	}
	return nil
}

func parseRTPMap(v []byte) (RTPMap, error) {
	var f [2][]byte
	if fields(v, f[:]) != 2 {
		return RTPMap{}, fmt.Errorf("%w: a=rtpmap:%q", ErrSDP, clip(v))
	}
	pt, ok := parseUint(f[0], 127)
	if !ok {
		return RTPMap{}, fmt.Errorf("%w: a=rtpmap payload type %q", ErrSDP, clip(f[0]))
	}
	r := RTPMap{PayloadType: uint8(pt), Channels: 1}
	enc, rest, _ := cutByte(f[1], '/')
	clock, chans, hasChans := cutByte(rest, '/')
	c, ok := parseUint(clock, 1<<32-1)
	if len(enc) == 0 || !ok {
		return RTPMap{}, fmt.Errorf("%w: a=rtpmap encoding %q", ErrSDP, clip(f[1]))
	}
	r.Encoding, r.ClockRate = enc, uint32(c)
	if hasChans {
		n, ok := parseUint(chans, 255)
		if !ok || n == 0 {
			return RTPMap{}, fmt.Errorf("%w: a=rtpmap channels %q", ErrSDP, clip(f[1]))
		}
		r.Channels = uint8(n)
	}
	return r, nil
}

func parseCrypto(v []byte) (Crypto, error) {
	var f [4][]byte
	if fields(v, f[:]) < 3 {
		return Crypto{}, fmt.Errorf("%w: a=crypto:%q needs tag, suite and key", ErrSDP, clip(v))
	}
	tag, ok := parseUint(f[0], 999999999) // RFC 4568 §9.1: 1*9DIGIT
	if !ok {
		return Crypto{}, fmt.Errorf("%w: a=crypto tag %q", ErrSDP, clip(f[0]))
	}
	c := Crypto{Tag: uint32(tag), Suite: f[1]}
	if f[3] != nil {
		c.SessionParams = trimLWS(v[offsetOf(v, f[3]):])
	}
	key, _, _ := cutByte(f[2], ';') // first key-param only
	if !hasPrefixFold(key, "inline:") {
		return Crypto{}, fmt.Errorf("%w: a=crypto key method %q", ErrSDP, clip(key))
	}
	key = key[len("inline:"):]
	var parts [3][]byte
	n := 0
	for n < 3 {
		var p []byte
		var more bool
		p, key, more = cutByte(key, '|')
		parts[n] = p
		n++
		if !more {
			break
		}
	}
	c.KeySalt = parts[0]
	if len(c.KeySalt) == 0 {
		return Crypto{}, fmt.Errorf("%w: a=crypto empty key", ErrSDP)
	}
	// The optional fields are told apart by their form: MKI has a colon.
	for _, p := range parts[1:n] {
		if mki, l, ok := cutByte(p, ':'); ok {
			v, ok1 := parseUint(mki, 1<<32-1)
			ln, ok2 := parseUint(l, 128)
			if !ok1 || !ok2 || ln == 0 {
				return Crypto{}, fmt.Errorf("%w: a=crypto MKI %q", ErrSDP, clip(p))
			}
			c.MKI, c.MKILength = uint32(v), uint8(ln)
		} else {
			c.Lifetime = p
		}
	}
	return c, nil
}

// Endpoint is where one media stream is received, as the SDP's author
// announces it: RTP goes to Addr:Port, RTCP to RTCP.
type Endpoint struct {
	Addr      netip.Addr // invalid if no c= applies or it names a host
	Port      uint16
	RTCP      netip.AddrPort
	Direction Direction // effective: media level, else session level, else sendrecv
	Hold      bool      // c= is 0.0.0.0 or :: (RFC 2543 hold)
	Disabled  bool      // port 0: stream rejected or removed (RFC 3264 §6, §8.2)
	Label     []byte
}

// Endpoint returns the effective endpoint of media section i: the media
// c= overrides the session c= (RFC 4566 §5.7), the media direction
// overrides the session one and sendrecv is the default (RFC 3264 §5.1),
// and RTCP is on a=rtcp, else on the RTP port with a=rtcp-mux (RFC 5761),
// else on the next port (RFC 3550 §11).
func (s *SDP) Endpoint(i int) Endpoint {
	md := &s.Media[i]
	conn := s.Conn
	if md.Conn.Raw != nil {
		conn = md.Conn
	}
	e := Endpoint{Addr: conn.Addr, Port: md.Port, Hold: conn.Hold(), Disabled: md.Port == 0, Label: md.Label}
	e.Direction = md.Direction
	if e.Direction == DirUnset {
		e.Direction = s.Direction
	}
	if e.Direction == DirUnset {
		e.Direction = DirSendRecv
	}
	rtcpAddr, rtcpPort := conn.Addr, md.Port
	switch {
	case md.RTCPPort != 0:
		rtcpPort = md.RTCPPort
		if md.RTCPConn.Addr.IsValid() {
			rtcpAddr = md.RTCPConn.Addr
		}
	case md.RTCPMux:
	case md.Port != 0 && md.Port != 65535:
		rtcpPort = md.Port + 1
	}
	if rtcpAddr.IsValid() && rtcpPort != 0 {
		e.RTCP = netip.AddrPortFrom(rtcpAddr, rtcpPort)
	}
	return e
}
