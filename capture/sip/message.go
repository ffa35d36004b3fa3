package sip

import (
	"bytes"
	"fmt"
)

// MaxHeaders caps the header fields one message may carry. Real messages
// carry 10-40; the cap bounds the Headers slice a reused Message grows to.
const MaxHeaders = 256

// maxContentLength bounds Content-Length before it is added to offsets, so
// the sum cannot overflow. No SIP message comes near it.
const maxContentLength = 1 << 30

// HeaderID names the headers this package knows, so lookups by kind are an
// array index instead of a scan. HdrOther is every other header.
type HeaderID uint8

// Known headers. The compact forms (RFC 3261 §7.3.3 and the RFCs named)
// map to the same IDs as the long forms.
const (
	HdrOther              HeaderID = iota
	HdrCallID                      // i
	HdrFrom                        // f
	HdrTo                          // t
	HdrVia                         // v
	HdrCSeq                        //
	HdrContact                     // m
	HdrContentType                 // c
	HdrContentLength               // l
	HdrContentEncoding             // e
	HdrSupported                   // k
	HdrSubject                     // s
	HdrEvent                       // o (RFC 6665)
	HdrReferTo                     // r (RFC 3515)
	HdrReferredBy                  // b (RFC 3892)
	HdrSessionExpires              // x (RFC 4028)
	HdrIdentity                    // y (RFC 8224)
	HdrAllowEvents                 // u (RFC 6665)
	HdrAcceptContact               // a (RFC 3841)
	HdrRejectContact               // j (RFC 3841)
	HdrRequestDisposition          // d (RFC 3841)
	HdrIdentityInfo                // n (RFC 4474)
	HdrReplaces                    // RFC 3891
	HdrPAssertedIdentity           // RFC 3325
	HdrDiversion                   // RFC 5806
	HdrHistoryInfo                 // RFC 7044
	HdrSessionID                   // RFC 7989
	numHeaderIDs
)

// headerNames holds the canonical long name of each HeaderID.
var headerNames = [numHeaderIDs]string{
	HdrCallID: "Call-ID", HdrFrom: "From", HdrTo: "To", HdrVia: "Via", HdrCSeq: "CSeq",
	HdrContact: "Contact", HdrContentType: "Content-Type", HdrContentLength: "Content-Length",
	HdrContentEncoding: "Content-Encoding", HdrSupported: "Supported", HdrSubject: "Subject",
	HdrEvent: "Event", HdrReferTo: "Refer-To", HdrReferredBy: "Referred-By",
	HdrSessionExpires: "Session-Expires", HdrIdentity: "Identity", HdrAllowEvents: "Allow-Events",
	HdrAcceptContact: "Accept-Contact", HdrRejectContact: "Reject-Contact",
	HdrRequestDisposition: "Request-Disposition", HdrIdentityInfo: "Identity-Info",
	HdrReplaces: "Replaces", HdrPAssertedIdentity: "P-Asserted-Identity",
	HdrDiversion: "Diversion", HdrHistoryInfo: "History-Info", HdrSessionID: "Session-ID",
}

// compactForms maps a lower-case compact name to its header.
var compactForms = [256]HeaderID{
	'i': HdrCallID, 'f': HdrFrom, 't': HdrTo, 'v': HdrVia,
	'm': HdrContact, 'c': HdrContentType, 'l': HdrContentLength,
	'e': HdrContentEncoding, 'k': HdrSupported, 's': HdrSubject,
	'o': HdrEvent, 'r': HdrReferTo, 'b': HdrReferredBy,
	'x': HdrSessionExpires, 'y': HdrIdentity, 'u': HdrAllowEvents,
	'a': HdrAcceptContact, 'j': HdrRejectContact, 'd': HdrRequestDisposition,
	'n': HdrIdentityInfo,
}

// String returns the canonical long name, or "" for HdrOther.
func (id HeaderID) String() string {
	if id >= numHeaderIDs {
		return ""
	}
	return headerNames[id]
}

// lookupHeader maps a header name as written (any case, long or compact)
// to its ID. It is on the per-header path, so it dispatches on length and
// compares only the candidates of that length.
func lookupHeader[T []byte | string](name T) HeaderID {
	if len(name) == 1 {
		return compactForms[lower(name[0])]
	}
	var cands []HeaderID
	switch len(name) {
	case 2:
		cands = []HeaderID{HdrTo}
	case 3:
		cands = []HeaderID{HdrVia}
	case 4:
		cands = []HeaderID{HdrFrom, HdrCSeq}
	case 5:
		cands = []HeaderID{HdrEvent}
	case 7:
		cands = []HeaderID{HdrCallID, HdrContact, HdrSubject}
	case 8:
		cands = []HeaderID{HdrReferTo, HdrIdentity, HdrReplaces}
	case 9:
		cands = []HeaderID{HdrSupported, HdrDiversion}
	case 10:
		cands = []HeaderID{HdrSessionID}
	case 11:
		cands = []HeaderID{HdrReferredBy}
	case 12:
		cands = []HeaderID{HdrContentType, HdrAllowEvents, HdrHistoryInfo}
	case 13:
		cands = []HeaderID{HdrIdentityInfo}
	case 14:
		cands = []HeaderID{HdrContentLength, HdrAcceptContact, HdrRejectContact}
	case 15:
		cands = []HeaderID{HdrSessionExpires}
	case 16:
		cands = []HeaderID{HdrContentEncoding}
	case 19:
		cands = []HeaderID{HdrRequestDisposition, HdrPAssertedIdentity}
	}
	for _, id := range cands {
		if equalFold(name, headerNames[id]) {
			return id
		}
	}
	return HdrOther
}

// Header is one header field. Name is as written (it may be a compact
// form); Value has the surrounding whitespace trimmed and may still hold
// folded line breaks (CRLF followed by SP or HTAB, RFC 3261 §7.3.1), which
// every accessor of this package treats as the single space they stand for.
type Header struct {
	ID    HeaderID
	Name  []byte
	Value []byte
}

// Message is one parsed SIP message. All []byte fields are views into the
// buffer given to Parse: copy what you keep after the buffer is reused.
// A Message is meant to be reused; Parse keeps the capacity of Headers.
type Message struct {
	// Method and RequestURI are set for requests, StatusCode and Reason
	// for responses (StatusCode is 0 for a request).
	Method     []byte
	RequestURI []byte
	StatusCode int
	Reason     []byte
	// Headers in the order they appear; repeated headers stay separate.
	Headers []Header
	// Body is the message body: Content-Length bytes, or the rest of the
	// datagram when a datagram has no Content-Length.
	Body []byte
	// ContentLength is the value of Content-Length, or -1 if absent.
	ContentLength int

	// first holds, for each known header, 1 + the index of its first
	// occurrence in Headers (0: absent).
	first [numHeaderIDs]uint16
}

// IsRequest reports whether m is a request (it has a Method).
func (m *Message) IsRequest() bool { return m.StatusCode == 0 }

func (m *Message) reset() {
	m.Method, m.RequestURI, m.Reason, m.Body = nil, nil, nil, nil
	m.StatusCode = 0
	m.Headers = m.Headers[:0]
	m.ContentLength = -1
	m.first = [numHeaderIDs]uint16{}
}

// Parse parses one SIP message from the start of a datagram (UDP, SCTP
// chunk, WebSocket frame). It returns the number of bytes the message used:
// a datagram may hold several messages back to back, so call Parse again on
// b[n:] while n < len(b). Leading CR and LF bytes are skipped (RFC 3261
// §7.5); if nothing else is there, Parse returns len(b) and ErrKeepalive.
//
// A message without Content-Length takes the rest of the datagram as its
// body (RFC 3261 §18.3); a body shorter than Content-Length is an error
// (ErrTruncated). m's fields are views into b.
func Parse(b []byte, m *Message) (n int, err error) {
	n, _, err = parse(b, m, false)
	return n, err
}

// ParseStream parses one SIP message from the start of a stream buffer (TCP,
// TLS after decryption). Where Parse would report ErrTruncated it returns
// ErrIncomplete (read more and try again), and a message without
// Content-Length is an error (ErrNoContentLength, RFC 3261 §18.3). The
// Framer wraps this with buffering and resynchronisation.
func ParseStream(b []byte, m *Message) (n int, err error) {
	n, _, err = parse(b, m, true)
	return n, err
}

// parse does the work of Parse and ParseStream. On ErrIncomplete, need is
// the total message length if the header section is complete (0 if not
// known yet), so the Framer can tell an oversized message early.
//
// Message layout (RFC 3261 §7):
//
//	generic-message = start-line
//	                  *message-header
//	                  CRLF
//	                  [ message-body ]
//	start-line      = Request-Line / Status-Line
//	Request-Line    = Method SP Request-URI SP SIP-Version CRLF
//	Status-Line     = SIP-Version SP Status-Code SP Reason-Phrase CRLF
//	message-header  = field-name HCOLON field-value CRLF
//	                  ; a line starting with SP or HTAB continues the
//	                  ; previous header (folding, §7.3.1)
//
// Bare LF line ends are accepted as well as CRLF: some stacks send them
// and a recorder must not lose a call over it.
func parse(b []byte, m *Message, stream bool) (n, need int, err error) {
	m.reset()
	// Over a stream, "need more bytes" is the common case while segments
	// arrive, so it is the bare sentinel: formatting it would allocate on
	// every retry.
	// have and want (-1: unknown) are boxed for fmt only on the datagram
	// branch.
	truncate := func(what string, have, want int) error {
		if stream {
			return ErrIncomplete
		}
		if want < 0 {
			return fmt.Errorf("%w: %s after %d bytes", ErrTruncated, what, have)
		}
		return fmt.Errorf("%w: %s has %d of %d bytes", ErrTruncated, what, have, want)
	}
	pos := 0
	for pos < len(b) && (b[pos] == '\r' || b[pos] == '\n') {
		pos++
	}
	if pos == len(b) {
		if pos == 0 {
			return 0, 0, truncate("empty input", 0, -1)
		}
		return pos, 0, fmt.Errorf("%w: %d bytes", ErrKeepalive, pos)
	}
	start := pos

	// Start line.
	line, next, ok := nextLine(b, pos)
	if !ok {
		return 0, 0, truncate("no end of start line", len(b)-pos, -1)
	}
	if err := m.parseStartLine(line); err != nil {
		return 0, 0, err
	}
	pos = next

	// Header fields.
	lastStart := -1 // offset in b of the last header's value, for folding
	for {
		line, next, ok = nextLine(b, pos)
		if !ok {
			return 0, 0, truncate("header section not ended", len(b)-start, -1)
		}
		if len(line) == 0 {
			pos = next
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Folded continuation of the previous header (§7.3.1).
			if lastStart < 0 {
				return 0, 0, fmt.Errorf("%w: continuation line at offset %d before any header", ErrHeader, pos)
			}
			h := &m.Headers[len(m.Headers)-1]
			h.Value = trimLWS(b[lastStart : pos+len(line)])
			if len(h.Value) > 0 {
				lastStart = int(offsetOf(b, h.Value))
			}
			pos = next
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return 0, 0, fmt.Errorf("%w: no colon in line at offset %d", ErrHeader, pos)
		}
		name := trimRightWS(line[:colon])
		if len(name) == 0 || !isToken(name) {
			return 0, 0, fmt.Errorf("%w: invalid field name at offset %d", ErrHeader, pos)
		}
		if len(m.Headers) >= MaxHeaders {
			return 0, 0, fmt.Errorf("%w: more than %d", ErrTooManyHeaders, MaxHeaders)
		}
		vs := colon + 1
		for vs < len(line) && (line[vs] == ' ' || line[vs] == '\t') {
			vs++
		}
		lastStart = pos + vs
		id := lookupHeader(name)
		m.Headers = append(m.Headers, Header{ID: id, Name: name, Value: trimRightWS(line[vs:])})
		if id != HdrOther && m.first[id] == 0 {
			m.first[id] = uint16(len(m.Headers))
		}
		pos = next
	}

	// Body (§7.4, §18.3, §20.14).
	if i := m.first[HdrContentLength]; i != 0 {
		cl, ok := parseUint(trimLWS(m.Headers[i-1].Value), maxContentLength)
		if !ok {
			return 0, 0, fmt.Errorf("%w: %q", ErrContentLength, clip(m.Headers[i-1].Value))
		}
		m.ContentLength = int(cl)
		if len(b)-pos < m.ContentLength {
			return 0, pos + m.ContentLength, truncate("body", len(b)-pos, m.ContentLength)
		}
		m.Body = b[pos : pos+m.ContentLength]
		return pos + m.ContentLength, 0, nil
	}
	if stream {
		return 0, 0, fmt.Errorf("%w: header section of %d bytes", ErrNoContentLength, pos-start)
	}
	m.Body = b[pos:]
	return len(b), 0, nil
}

// sipVersion is the only version this parser accepts (RFC 3261 §7.1).
const sipVersion = "SIP/2.0"

func (m *Message) parseStartLine(line []byte) error {
	if len(line) >= 8 && equalFold(line[:8], "SIP/2.0 ") {
		// Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
		rest := line[8:]
		if len(rest) < 3 || !isDigit(rest[0]) || !isDigit(rest[1]) || !isDigit(rest[2]) {
			return fmt.Errorf("%w: status code %q", ErrStartLine, clip(rest))
		}
		code := int(rest[0]-'0')*100 + int(rest[1]-'0')*10 + int(rest[2]-'0')
		if code < 100 || code > 699 {
			return fmt.Errorf("%w: status code %d out of 100..699", ErrStartLine, code)
		}
		if len(rest) > 3 && rest[3] != ' ' {
			return fmt.Errorf("%w: status code %q", ErrStartLine, clip(rest))
		}
		m.StatusCode = code
		if len(rest) > 4 {
			m.Reason = rest[4:]
		}
		return nil
	}
	// Request-Line = Method SP Request-URI SP SIP-Version
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return fmt.Errorf("%w: %q", ErrStartLine, clip(line))
	}
	if !equalFold(line[sp2+1:], sipVersion) {
		return fmt.Errorf("%w: version %q", ErrStartLine, clip(line[sp2+1:]))
	}
	method, uri := line[:sp1], line[sp1+1:sp2]
	if !isToken(method) || bytes.IndexByte(uri, ' ') >= 0 {
		return fmt.Errorf("%w: %q", ErrStartLine, clip(line))
	}
	m.Method, m.RequestURI = method, uri
	return nil
}

// nextLine returns the line starting at pos without its CRLF or LF, and
// the offset after the line end. ok is false if no LF follows.
func nextLine(b []byte, pos int) (line []byte, next int, ok bool) {
	i := bytes.IndexByte(b[pos:], '\n')
	if i < 0 {
		return nil, 0, false
	}
	line = b[pos : pos+i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, pos + i + 1, true
}

// offsetOf returns where sub starts inside b; sub must be a view into b.
func offsetOf(b, sub []byte) int {
	return cap(b) - cap(sub)
}

// Header returns the value of the first header called name (long or
// compact form, any case), or nil.
func (m *Message) Header(name string) []byte {
	if id := lookupHeader(name); id != HdrOther {
		return m.HeaderByID(id)
	}
	for i := range m.Headers {
		if equalFold(m.Headers[i].Name, name) {
			return m.Headers[i].Value
		}
	}
	return nil
}

// HeaderByID returns the value of the first header of kind id, or nil.
func (m *Message) HeaderByID(id HeaderID) []byte {
	if id == HdrOther || id >= numHeaderIDs {
		return nil
	}
	if i := m.first[id]; i != 0 {
		return m.Headers[i-1].Value
	}
	return nil
}

// header is HeaderByID that reports absence as ErrNoHeader. Absence of
// optional headers is the common case, so it is the bare sentinel (no
// allocation); the caller knows which header it asked for.
func (m *Message) header(id HeaderID) ([]byte, error) {
	if i := m.first[id]; i != 0 {
		return m.Headers[i-1].Value, nil
	}
	return nil, ErrNoHeader
}

// CallID returns the Call-ID (RFC 3261 §20.8), or nil.
func (m *Message) CallID() []byte { return m.HeaderByID(HdrCallID) }

// ContentType returns the raw Content-Type value (RFC 3261 §20.15), or nil.
// MediaType splits it.
func (m *Message) ContentType() []byte { return m.HeaderByID(HdrContentType) }
