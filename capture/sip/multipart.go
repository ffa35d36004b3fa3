package sip

import (
	"bytes"
	"fmt"
)

// MaxParts caps the parts ParseMultipart returns; a SIPREC INVITE has two
// or three.
const MaxParts = 16

// Part is one body part of a multipart body (RFC 2046 §5.1). Its fields
// are views into the body.
type Part struct {
	ContentType        []byte // raw value; text/plain when absent (RFC 2046 §5.1)
	ContentDisposition []byte // e.g. "recording-session" for SIPREC metadata (RFC 7866 §7.1.1)
	ContentID          []byte
	Headers            []byte // the part's header section as sent
	Body               []byte
}

// ParseMultipart splits a multipart body (multipart/mixed,
// multipart/alternative, ...) whose Content-Type value is contentType,
// appending the parts to dst[:0]. SIPREC (RFC 7866 §9) sends the SDP offer
// and the application/rs-metadata+xml document this way. Lines may end in
// CRLF or LF.
//
//	--boundary CRLF
//	Content-Type: application/sdp CRLF
//	CRLF
//	v=0 ... CRLF
//	--boundary CRLF
//	Content-Type: application/rs-metadata+xml CRLF
//	CRLF
//	<?xml ...?> ... CRLF
//	--boundary-- CRLF
func ParseMultipart(contentType, body []byte, dst []Part) ([]Part, error) {
	dst = dst[:0]
	var err error
	w, err := newMultipartWalker(contentType, body)
	if err != nil {
		return dst, err
	}
	for {
		p, ok, err := w.next()
		if err != nil {
			return dst, err
		}
		if !ok {
			return dst, nil
		}
		if len(dst) >= MaxParts {
			return dst, fmt.Errorf("%w: more than %d", ErrTooManyParts, MaxParts)
		}
		dst = append(dst, p)
	}
}

// multipartWalker yields parts one by one, so SDPBody can look for the SDP
// part without a slice of parts.
type multipartWalker struct {
	boundary []byte
	body     []byte
	pos      int // offset just after the last delimiter line, or -1 at the start
	done     bool
	parts    int
}

func newMultipartWalker(contentType, body []byte) (multipartWalker, error) {
	mt, params := MediaType(contentType)
	if !hasPrefixFold(mt, "multipart/") {
		return multipartWalker{}, fmt.Errorf("%w: content type %q", ErrMultipart, clip(mt))
	}
	b, ok := Param(params, "boundary")
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	// RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace
	if !ok || len(b) == 0 || len(b) > 70 {
		return multipartWalker{}, fmt.Errorf("%w: boundary of %d bytes", ErrMultipart, len(b))
	}
	return multipartWalker{boundary: b, body: body, pos: -1}, nil
}

// findDelimiter returns the offset of the next "--boundary" at a line
// start at or after from, and the offset just after it; -1 if none.
func (w *multipartWalker) findDelimiter(from int) (at, after int) {
	for from <= len(w.body) {
		i := bytes.Index(w.body[from:], w.boundary)
		if i < 0 {
			return -1, -1
		}
		i += from
		d := i - 2
		if d >= 0 && w.body[d] == '-' && w.body[d+1] == '-' && (d == 0 || w.body[d-1] == '\n') {
			return d, i + len(w.boundary)
		}
		from = i + 1
	}
	return -1, -1
}

// next returns the next part; ok is false after the close delimiter.
func (w *multipartWalker) next() (Part, bool, error) {
	if w.done {
		return Part{}, false, nil
	}
	if w.pos < 0 {
		// Skip the preamble up to the first delimiter.
		at, after := w.findDelimiter(0)
		if at < 0 {
			return Part{}, false, fmt.Errorf("%w: no boundary line in %d bytes", ErrMultipart, len(w.body))
		}
		if bytes.HasPrefix(w.body[after:], []byte("--")) {
			w.done = true
			return Part{}, false, nil
		}
		w.pos = skipLine(w.body, after)
	}
	start := w.pos
	at, after := w.findDelimiter(start)
	var content []byte
	if at < 0 {
		// No close delimiter: take the rest, as a recorder should keep
		// what a sloppy sender meant.
		content = w.body[start:]
		w.done = true
	} else {
		// The CRLF before the delimiter belongs to it (RFC 2046 §5.1.1).
		end := at
		if end > start && w.body[end-1] == '\n' {
			end--
			if end > start && w.body[end-1] == '\r' {
				end--
			}
		}
		content = w.body[start:end]
		if bytes.HasPrefix(w.body[after:], []byte("--")) {
			w.done = true
		} else {
			w.pos = skipLine(w.body, after)
		}
	}
	w.parts++
	return parsePart(content), true, nil
}

// skipLine returns the offset after the next LF at or after pos (the
// transport padding and line end after a delimiter).
func skipLine(b []byte, pos int) int {
	if i := bytes.IndexByte(b[pos:], '\n'); i >= 0 {
		return pos + i + 1
	}
	return len(b)
}

// parsePart splits a part into headers and body. A part that starts with
// an empty line has no headers (RFC 2046 §5.1.1); so, leniently, has a
// part whose first line is not a header line.
func parsePart(content []byte) Part {
	var p Part
	hdrEnd, bodyStart := len(content), len(content)
	for pos := 0; pos < len(content); {
		line, next, ok := nextLine(content, pos)
		if !ok {
			line, next = content[pos:], len(content)
		}
		if len(line) == 0 {
			hdrEnd, bodyStart = pos, next
			break
		}
		name, val, found := cutByte(line, ':')
		name, val = trimLWS(name), trimLWS(val)
		if pos == 0 && (!found || !isToken(name)) {
			hdrEnd, bodyStart = 0, 0
			break
		}
		switch {
		case equalFold(name, "Content-Type"), equalFold(name, "c"):
			p.ContentType = val
		case equalFold(name, "Content-Disposition"):
			p.ContentDisposition = val
		case equalFold(name, "Content-ID"):
			p.ContentID = val
		}
		pos = next
	}
	p.Headers, p.Body = content[:hdrEnd], content[bodyStart:]
	return p
}

// SDPBody returns the session description of the message: the body if it
// is application/sdp, or the first application/sdp part of a multipart
// body (SIPREC, SIP-I). ok is false if there is none.
func (m *Message) SDPBody() (sdp []byte, ok bool) {
	mt, _ := MediaType(m.ContentType())
	switch {
	case equalFold(mt, "application/sdp"):
		return m.Body, true
	case hasPrefixFold(mt, "multipart/"):
		w, err := newMultipartWalker(m.ContentType(), m.Body)
		if err != nil {
			return nil, false
		}
		for i := 0; i < MaxParts; i++ {
			p, ok, err := w.next()
			if err != nil || !ok {
				return nil, false
			}
			if pt, _ := MediaType(p.ContentType); equalFold(pt, "application/sdp") {
				return p.Body, true
			}
		}
	}
	return nil, false
}

// Parts splits the message body with ParseMultipart.
func (m *Message) Parts(dst []Part) ([]Part, error) {
	return ParseMultipart(m.ContentType(), m.Body, dst)
}
