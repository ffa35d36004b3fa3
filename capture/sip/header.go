package sip

import (
	"bytes"
	"fmt"
)

// URI is a SIP, SIPS or tel URI split into views (RFC 3261 §19.1.1,
// RFC 3966 §3):
//
//	sip:user:password@host:port;uri-parameters?headers
//	tel:+1-201-555-0123;phone-context=example.com
//
// For other schemes only Scheme and Opaque are set.
type URI struct {
	Scheme   []byte
	User     []byte // user part (may hold ";"-separated user parameters); the number for tel:
	Password []byte
	Host     []byte // IPv6 references keep their brackets
	Port     []byte // digits, or nil
	Params   []byte // after the first ';' of the host part, without it
	Headers  []byte // after '?', without it; still %-escaped
	Opaque   []byte // everything after "scheme:"
}

// ParseURI splits a URI. It checks structure, not every character class:
// a recorder should keep what a real device sent, however odd.
func ParseURI(b []byte) (URI, error) {
	var u URI
	b = trimLWS(b)
	colon := bytes.IndexByte(b, ':')
	if colon <= 0 {
		return u, fmt.Errorf("%w: no scheme in %q", ErrURI, clip(b))
	}
	u.Scheme, u.Opaque = b[:colon], b[colon+1:]
	rest := u.Opaque
	switch {
	case equalFold(u.Scheme, "sip"), equalFold(u.Scheme, "sips"):
	case equalFold(u.Scheme, "tel"):
		// RFC 3966: telephone-subscriber *par; the number is up to ';'.
		num, params, _ := cutByte(rest, ';')
		if len(num) == 0 {
			return u, fmt.Errorf("%w: empty tel number", ErrURI)
		}
		u.User, u.Params = num, params
		return u, nil
	default:
		return u, nil
	}
	if q := bytes.IndexByte(rest, '?'); q >= 0 {
		rest, u.Headers = rest[:q], rest[q+1:]
	}
	// The user part may hold ';' (user parameters, RFC 4694) but never an
	// unescaped '@', which the host part cannot hold either.
	if at := bytes.LastIndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		rest = rest[at+1:]
		u.User, u.Password, _ = cutByte(userinfo, ':')
		if len(u.User) == 0 {
			return u, fmt.Errorf("%w: empty user part", ErrURI)
		}
	}
	hostport := rest
	if semi := bytes.IndexByte(rest, ';'); semi >= 0 {
		hostport, u.Params = rest[:semi], rest[semi+1:]
	}
	if len(hostport) > 0 && hostport[0] == '[' {
		end := bytes.IndexByte(hostport, ']')
		if end < 0 {
			return u, fmt.Errorf("%w: unterminated IPv6 reference", ErrURI)
		}
		u.Host, hostport = hostport[:end+1], hostport[end+1:]
		if len(hostport) > 0 {
			if hostport[0] != ':' {
				return u, fmt.Errorf("%w: junk after IPv6 reference", ErrURI)
			}
			u.Port = hostport[1:]
		}
	} else {
		u.Host, u.Port, _ = cutByte(hostport, ':')
	}
	if len(u.Host) == 0 {
		return u, fmt.Errorf("%w: empty host", ErrURI)
	}
	if u.Port != nil {
		if _, ok := parseUint(u.Port, 65535); !ok {
			return u, fmt.Errorf("%w: port %q", ErrURI, clip(u.Port))
		}
	}
	return u, nil
}

// Number returns the user part without user parameters: the dialled or
// calling number for sip:+4930123;npdi@host and for tel: URIs.
func (u URI) Number() []byte {
	n, _, _ := cutByte(u.User, ';')
	return n
}

// Header returns the still %-escaped value of the URI header called name
// (RFC 3261 §19.1.1 "?h=v&h=v"), e.g. the Replaces of a Refer-To URI.
func (u URI) Header(name string) (value []byte, ok bool) {
	hs := u.Headers
	for len(hs) > 0 {
		var h []byte
		h, hs, _ = cutByte(hs, '&')
		n, v, _ := cutByte(h, '=')
		if equalFold(n, name) {
			return v, true
		}
	}
	return nil, false
}

// EmbeddedReplaces decodes the Replaces header embedded in the URI (RFC
// 3891 §3 with RFC 3515 Refer-To), e.g.
// <sip:bob@b.example?Replaces=12345%40a.example%3Bto-tag%3D1%3Bfrom-tag%3D2>.
// The unescaped text is appended to scratch, and the returned Replaces
// points into it; pass a scratch with spare capacity to avoid allocating.
func (u URI) EmbeddedReplaces(scratch []byte) (Replaces, []byte, error) {
	v, ok := u.Header("Replaces")
	if !ok {
		return Replaces{}, scratch, ErrNoHeader
	}
	start := len(scratch)
	scratch, err := Unescape(scratch, v)
	if err != nil {
		return Replaces{}, scratch, err
	}
	r, err := ParseReplaces(scratch[start:])
	return r, scratch, err
}

// Unescape appends src to dst with %XX escapes decoded (RFC 3986 §2.1).
func Unescape(dst, src []byte) ([]byte, error) {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(src) {
			return dst, fmt.Errorf("%w: truncated escape at %d", ErrURI, i)
		}
		h, l := unhex(src[i+1]), unhex(src[i+2])
		if h < 0 || l < 0 {
			return dst, fmt.Errorf("%w: bad escape %q at %d", ErrURI, src[i:i+3], i)
		}
		dst = append(dst, byte(h<<4|l))
		i += 2
	}
	return dst, nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// NameAddr is a From, To, Contact, Refer-To, Referred-By,
// P-Asserted-Identity, Diversion or History-Info value (RFC 3261 §20.10,
// §25.1):
//
//	( name-addr / addr-spec ) *( SEMI generic-param )
//	name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
//	display-name = *(token LWS) / quoted-string
//
// Without angle brackets every ';' parameter belongs to the header, not
// the URI (§20.10).
type NameAddr struct {
	Display []byte // without quotes; backslash escapes left as sent
	URI     URI
	Params  []byte // header parameters, after the first ';', without it
}

// Tag returns the tag parameter (RFC 3261 §19.3), or nil.
func (a NameAddr) Tag() []byte {
	v, _ := Param(a.Params, "tag")
	return v
}

// ParseNameAddr parses one name-addr or addr-spec with its parameters.
// A Contact of "*" gives a NameAddr whose URI.Opaque is "*".
func ParseNameAddr(v []byte) (NameAddr, error) {
	var a NameAddr
	v = trimLWS(v)
	if len(v) == 1 && v[0] == '*' {
		a.URI.Opaque = v
		return a, nil
	}
	var spec []byte
	switch lt := indexUnquoted(v, '<', false); {
	case lt >= 0:
		disp := trimLWS(v[:lt])
		if len(disp) > 0 && disp[0] == '"' {
			end := closingQuote(disp)
			if end < 0 {
				return a, fmt.Errorf("%w: unterminated display name", ErrValue)
			}
			disp = disp[1:end]
		}
		a.Display = disp
		gt := bytes.IndexByte(v[lt:], '>')
		if gt < 0 {
			return a, fmt.Errorf("%w: no '>' after '<'", ErrValue)
		}
		spec = v[lt+1 : lt+gt]
		rest := trimLeftWS(v[lt+gt+1:])
		if len(rest) > 0 {
			if rest[0] != ';' {
				return a, fmt.Errorf("%w: junk after '>': %q", ErrValue, clip(rest))
			}
			a.Params = rest[1:]
		}
	default:
		if len(v) > 0 && v[0] == '"' {
			return a, fmt.Errorf("%w: display name without <URI>", ErrValue)
		}
		spec = v
		if semi := bytes.IndexByte(v, ';'); semi >= 0 {
			spec, a.Params = v[:semi], v[semi+1:]
		}
	}
	u, err := ParseURI(spec)
	if err != nil {
		return a, err
	}
	a.URI = u
	return a, nil
}

// closingQuote returns the index of the quote closing the quoted-string
// that starts at b[0], or -1.
func closingQuote(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// nameAddr parses the first value of the first header of kind id.
func (m *Message) nameAddr(id HeaderID) (NameAddr, error) {
	v, err := m.header(id)
	if err != nil {
		return NameAddr{}, err
	}
	first, _ := NextValue(v)
	a, err := ParseNameAddr(first)
	if err != nil {
		return a, fmt.Errorf("%s: %w", headerNames[id], err)
	}
	return a, nil
}

// From returns the From header (RFC 3261 §20.20).
func (m *Message) From() (NameAddr, error) { return m.nameAddr(HdrFrom) }

// To returns the To header (RFC 3261 §20.39).
func (m *Message) To() (NameAddr, error) { return m.nameAddr(HdrTo) }

// Contact returns the first Contact value (RFC 3261 §20.10).
func (m *Message) Contact() (NameAddr, error) { return m.nameAddr(HdrContact) }

// ReferTo returns the Refer-To header (RFC 3515 §2.1); see
// URI.EmbeddedReplaces for an attended transfer.
func (m *Message) ReferTo() (NameAddr, error) { return m.nameAddr(HdrReferTo) }

// ReferredBy returns the Referred-By header (RFC 3892 §3).
func (m *Message) ReferredBy() (NameAddr, error) { return m.nameAddr(HdrReferredBy) }

// PAssertedIdentity returns the first P-Asserted-Identity value (RFC 3325
// §9.1); a second value, if any, is usually the tel: form.
func (m *Message) PAssertedIdentity() (NameAddr, error) { return m.nameAddr(HdrPAssertedIdentity) }

// Diversion returns the first (most recent) Diversion value (RFC 5806 §4):
// URI.Number is the number the call was diverted from.
func (m *Message) Diversion() (NameAddr, error) { return m.nameAddr(HdrDiversion) }

// HistoryInfo returns the first History-Info entry (RFC 7044 §4.1): the
// originally called target.
func (m *Message) HistoryInfo() (NameAddr, error) { return m.nameAddr(HdrHistoryInfo) }

// CSeq is the CSeq header (RFC 3261 §20.16): CSeq = 1*DIGIT LWS Method.
type CSeq struct {
	Seq    uint32
	Method []byte
}

// ParseCSeq parses a CSeq value. The number must be below 2**31
// (RFC 3261 §8.1.1.5).
func ParseCSeq(v []byte) (CSeq, error) {
	v = trimLWS(v)
	i := 0
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	seq, ok := parseUint(v[:i], 1<<31-1)
	method := trimLWS(v[i:])
	if !ok || i == len(v) || !isLWS(v[i]) || !isToken(method) {
		return CSeq{}, fmt.Errorf("%w: CSeq %q", ErrValue, clip(v))
	}
	return CSeq{Seq: uint32(seq), Method: method}, nil
}

// CSeq returns the CSeq header.
func (m *Message) CSeq() (CSeq, error) {
	v, err := m.header(HdrCSeq)
	if err != nil {
		return CSeq{}, err
	}
	return ParseCSeq(v)
}

// Via is one Via value (RFC 3261 §20.42):
//
//	via-parm      = sent-protocol LWS sent-by *( SEMI via-params )
//	sent-protocol = protocol-name SLASH protocol-version SLASH transport
type Via struct {
	Transport []byte // UDP, TCP, TLS, SCTP, WS, WSS
	SentBy    []byte // host[:port]
	Params    []byte
}

// Branch returns the branch parameter (RFC 3261 §8.1.1.7), or nil.
func (v Via) Branch() []byte { b, _ := Param(v.Params, "branch"); return b }

// ParseVia parses one Via value.
func ParseVia(v []byte) (Via, error) {
	var out Via
	v = trimLWS(v)
	// protocol-name and version: "SIP" SLASH "2.0", LWS allowed around SLASH.
	part := func() []byte {
		i := 0
		for i < len(v) && v[i] != '/' && !isLWS(v[i]) {
			i++
		}
		p := v[:i]
		v = trimLeftWS(v[i:])
		return p
	}
	slash := func() bool {
		if len(v) == 0 || v[0] != '/' {
			return false
		}
		v = trimLeftWS(v[1:])
		return true
	}
	name := part()
	if !equalFold(name, "SIP") || !slash() {
		return out, fmt.Errorf("%w: Via protocol %q", ErrValue, clip(name))
	}
	if ver := part(); !equalFold(ver, "2.0") || !slash() {
		return out, fmt.Errorf("%w: Via version %q", ErrValue, clip(ver))
	}
	out.Transport = part()
	if !isToken(out.Transport) {
		return out, fmt.Errorf("%w: Via transport %q", ErrValue, clip(out.Transport))
	}
	sentBy, params, _ := cutByte(v, ';')
	out.SentBy, out.Params = trimLWS(sentBy), params
	if len(out.SentBy) == 0 {
		return out, fmt.Errorf("%w: Via without sent-by", ErrValue)
	}
	return out, nil
}

// TopVia returns the first value of the first Via header: the hop that
// sent the request, whose branch names the transaction.
func (m *Message) TopVia() (Via, error) {
	v, err := m.header(HdrVia)
	if err != nil {
		return Via{}, err
	}
	first, _ := NextValue(v)
	return ParseVia(first)
}

// Replaces is the Replaces header (RFC 3891 §6.1):
//
//	Replaces       = "Replaces" HCOLON callid *(SEMI replaces-param)
//	replaces-param = to-tag / from-tag / early-flag / generic-param
type Replaces struct {
	CallID, ToTag, FromTag []byte
	EarlyOnly              bool
}

// ParseReplaces parses a Replaces value.
func ParseReplaces(v []byte) (Replaces, error) {
	id, params, _ := cutByte(trimLWS(v), ';')
	r := Replaces{CallID: trimLWS(id)}
	if len(r.CallID) == 0 {
		return r, fmt.Errorf("%w: Replaces without Call-ID", ErrValue)
	}
	r.ToTag, _ = Param(params, "to-tag")
	r.FromTag, _ = Param(params, "from-tag")
	_, r.EarlyOnly = Param(params, "early-only")
	if len(r.ToTag) == 0 || len(r.FromTag) == 0 {
		return r, fmt.Errorf("%w: Replaces needs to-tag and from-tag", ErrValue)
	}
	return r, nil
}

// Replaces returns the Replaces header.
func (m *Message) Replaces() (Replaces, error) {
	v, err := m.header(HdrReplaces)
	if err != nil {
		return Replaces{}, err
	}
	return ParseReplaces(v)
}

// SessionID is the Session-ID header (RFC 7989 §4):
//
//	session-id-value = local-uuid *(SEMI sess-id-param)
//	sess-id-param    = remote-param / generic-param   ; remote=<uuid>
type SessionID struct {
	Local, Remote []byte
}

// SessionID returns the Session-ID header. Remote is nil when the
// parameter is absent; the all-zero null UUID is returned as sent.
func (m *Message) SessionID() (SessionID, error) {
	v, err := m.header(HdrSessionID)
	if err != nil {
		return SessionID{}, err
	}
	local, params, _ := cutByte(trimLWS(v), ';')
	s := SessionID{Local: trimLWS(local)}
	s.Remote, _ = Param(params, "remote")
	if len(s.Local) == 0 {
		return s, fmt.Errorf("%w: empty Session-ID", ErrValue)
	}
	return s, nil
}

// MediaType splits a Content-Type value into "type/subtype" and the
// parameters after the first ';' (RFC 3261 §20.15).
func MediaType(v []byte) (mediaType, params []byte) {
	mt, params, _ := cutByte(trimLWS(v), ';')
	return trimLWS(mt), params
}
