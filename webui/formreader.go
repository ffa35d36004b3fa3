package webui

// A streaming multipart/form-data reader for the upload API.
//
// mime/multipart reads through a 4 KiB bufio.Reader and, for every read
// of a part, scans that window for the boundary and then backwards
// (LastIndexByte) for where a boundary might begin: a 100 MB upload is
// 25,000 such scans and copies, about 8 % of the upload's CPU on the
// appliance (docs/PERFORMANCE.md, "Upload API"). formReader reads the body
// in 1 MiB blocks and finds the delimiter with one bytes.Index per block;
// what lies before it, or before the last len(delimiter)-1 bytes of the
// block when it is not there, is handed out without scanning again.
//
// The framing it accepts is that of RFC 2046 section 5.1.1 as
// mime/multipart reads it, which FuzzFormReader checks against it:
//
//	preamble (ignored)
//	"--" boundary [transport padding] CRLF      (first boundary line)
//	part headers CRLF
//	body                                         (any bytes but the delimiter)
//	CRLF "--" boundary [padding] CRLF            (next part)
//	...
//	CRLF "--" boundary "--"                      (end; the epilogue is ignored)
//
// A body whose first boundary line ends in a bare LF uses LF throughout,
// as mime/multipart allows. Part headers are parsed by net/textproto and
// may take at most maxFormHeader bytes. A quoted-printable part is decoded,
// as mime/multipart does.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
)

const (
	// formBufSize is the read block: large enough that the boundary scan
	// and the read calls are rare, small enough to be no memory concern.
	formBufSize = 1 << 20
	// maxFormHeader bounds one part's header block.
	maxFormHeader = 16 << 10
)

// Errors of formReader (also wrapped in errMultipart by the handler).
var (
	// errFormFraming: the body is not multipart framing with this boundary.
	errFormFraming = errors.New("multipart framing")
	// errFormHeader: a part's header block is malformed or too large.
	errFormHeader = errors.New("multipart part header")
)

// formReader reads the parts of one multipart/form-data body in order.
type formReader struct {
	r     io.Reader
	rerr  error  // the error r returned, once it has
	buf   []byte // buf[start:end] is read and not yet consumed
	start int
	end   int

	dash  []byte // "--" boundary
	delim []byte // nl "--" boundary: what ends a part's body
	nl    []byte // "\r\n", or "\n" for a body that uses bare LFs

	// While a part's body is read: buf[start:clean] holds no delimiter,
	// and at delimAt (if >= 0) one of delimLen bytes begins. bodyStart:
	// nothing of the body has been handed out yet.
	clean     int
	delimAt   int
	delimLen  int
	bodyStart bool

	part    *formPart
	started bool // the first boundary line has been read

	// minDirect is the smallest read of a body that readDirect serves
	// straight from the body's reader: smaller ones are not worth a read
	// call, and go through the buffer. Tests lower it.
	minDirect int
	done      bool // the final boundary has been read
}

// formPart is one part: its header and a reader of its body up to the
// next delimiter.
type formPart struct {
	Header textproto.MIMEHeader
	fr     *formReader
	r      io.Reader // the body as the caller reads it (fr, or a decoder over it)
	eof    bool
}

func newFormReader(r io.Reader, boundary string) *formReader {
	return &formReader{
		r:         r,
		buf:       make([]byte, formBufSize),
		dash:      []byte("--" + boundary),
		delim:     []byte("\r\n--" + boundary),
		nl:        []byte("\r\n"),
		delimAt:   -1,
		minDirect: 4 << 10,
	}
}

// fill reads more of the body after compacting the buffer. It returns
// false when the body has ended (r.rerr is set) and nothing was added.
func (f *formReader) fill() bool {
	if f.rerr != nil {
		return false
	}
	if f.start > 0 {
		n := copy(f.buf, f.buf[f.start:f.end])
		f.clean -= f.start
		if f.delimAt >= 0 {
			f.delimAt -= f.start
		}
		f.start, f.end = 0, n
	}
	for f.end < len(f.buf) {
		n, err := f.r.Read(f.buf[f.end:])
		f.end += n
		if err != nil {
			f.rerr = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	return true // the buffer is full
}

// unexpectedEOF turns the end of the body into io.ErrUnexpectedEOF (the
// handler's "cut off") and passes other read errors on.
func (f *formReader) unexpectedEOF(what string) error {
	if f.rerr == io.EOF {
		return fmt.Errorf("%w: the body ended %s", io.ErrUnexpectedEOF, what)
	}
	return f.rerr
}

// NextPart skips the rest of the current part and returns the next one, or
// io.EOF after the final boundary.
func (f *formReader) NextPart() (*formPart, error) {
	if f.part != nil {
		if _, err := io.Copy(io.Discard, f.part); err != nil {
			return nil, err
		}
		f.part = nil
		// The part ended at a delimiter; the line after it must be a
		// boundary line (CRLF is part of the delimiter).
		f.start += f.delimLen - len(f.dash)
	}
	if f.done {
		return nil, io.EOF
	}
	if !f.started {
		if err := f.firstBoundary(); err != nil {
			return nil, err
		}
		if f.done {
			return nil, io.EOF
		}
	} else {
		line, err := f.line()
		if err != nil {
			return nil, err
		}
		switch f.boundaryLine(line) {
		case lineFinal:
			f.done = true
			return nil, io.EOF
		case lineNone:
			if !bytes.HasSuffix(line, []byte("\n")) && f.rerr != nil {
				return nil, f.unexpectedEOF("where a boundary line belongs")
			}
			return nil, fmt.Errorf("%w: expected a boundary line, got %q", errFormFraming, clip(string(line)))
		}
		f.start += len(line)
	}
	hdr, err := f.header()
	if err != nil {
		return nil, err
	}
	f.clean, f.delimAt, f.bodyStart = f.start, -1, true
	p := &formPart{Header: hdr, fr: f}
	p.r = formBody{f}
	if strings.EqualFold(hdr.Get("Content-Transfer-Encoding"), "quoted-printable") {
		hdr.Del("Content-Transfer-Encoding")
		p.r = quotedprintable.NewReader(p.r)
	}
	f.part = p
	return p, nil
}

// line returns the bytes from start up to and including the next '\n', or
// up to the end of the body if it ends first (then without one). It does
// not consume them.
func (f *formReader) line() ([]byte, error) {
	for {
		w := f.buf[f.start:f.end]
		if i := bytes.IndexByte(w, '\n'); i >= 0 {
			return w[:i+1], nil
		}
		if len(w) > maxFormHeader {
			return nil, fmt.Errorf("%w: a line of more than %d bytes where a boundary line belongs", errFormFraming, maxFormHeader)
		}
		if !f.fill() {
			if f.rerr == io.EOF {
				return f.buf[f.start:f.end], nil // fill may have moved it
			}
			return nil, f.rerr
		}
	}
}

const (
	lineNone  = iota // not a boundary line
	lineNext         // "--" boundary, padding, line break: a part follows
	lineFinal        // "--" boundary "--", padding, line break or the end
)

// boundaryLine classifies a line (with its line break, if any) as
// mime/multipart does.
func (f *formReader) boundaryLine(line []byte) int {
	if !bytes.HasPrefix(line, f.dash) {
		return lineNone
	}
	rest := line[len(f.dash):]
	if bytes.HasPrefix(rest, []byte("--")) {
		r := bytes.TrimLeft(rest[2:], " \t")
		if len(r) == 0 || bytes.Equal(r, f.nl) {
			return lineFinal
		}
	}
	rest = bytes.TrimLeft(rest, " \t")
	if bytes.Equal(rest, f.nl) {
		return lineNext
	}
	return lineNone
}

// firstBoundary skips the preamble, line by line, up to and including the
// first boundary line, and learns the line ending from it.
func (f *formReader) firstBoundary() error {
	f.started = true
	for {
		line, err := f.line()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return fmt.Errorf("%w: no boundary %q in the body", errFormFraming, clip(string(f.dash)))
		}
		if bytes.HasPrefix(line, f.dash) && bytes.Equal(bytes.TrimLeft(line[len(f.dash):], " \t"), []byte("\n")) {
			// A bare LF after the first boundary: LF throughout.
			f.nl = f.nl[1:]
			f.delim = f.delim[1:]
		}
		switch f.boundaryLine(line) {
		case lineNext:
			f.start += len(line)
			return nil
		case lineFinal:
			f.start += len(line)
			f.done = true
			return nil
		}
		f.start += len(line)
	}
}

// header reads a part's header block, up to and including the empty line
// (a line break alone, "\r\n" or "\n", as net/textproto reads lines).
func (f *formReader) header() (textproto.MIMEHeader, error) {
	scanned := 0 // bytes of whole non-empty lines already looked at
	for {
		w := f.buf[f.start:f.end]
		for {
			i := bytes.IndexByte(w[scanned:], '\n')
			if i < 0 {
				break
			}
			line := w[scanned : scanned+i+1]
			scanned += i + 1
			if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
				block := w[:scanned]
				f.start += scanned
				h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(block))).ReadMIMEHeader()
				if err != nil {
					return nil, fmt.Errorf("%w: %v", errFormHeader, err)
				}
				return h, nil
			}
		}
		if len(w) > maxFormHeader {
			return nil, fmt.Errorf("%w: more than %d bytes", errFormHeader, maxFormHeader)
		}
		if !f.fill() {
			return nil, f.unexpectedEOF("inside a part's header")
		}
	}
}

type formBody struct{ f *formReader }

// Read reads the body up to the next delimiter. A large p is filled
// straight from the body's reader when it can be (readDirect), so the
// store reading an upload into its chunk buffer (ReadFrom) gets the bytes
// without a copy through the read buffer.
func (b formBody) Read(p []byte) (int, error) {
	if n := b.f.readDirect(p); n > 0 {
		return n, nil
	}
	w, err := b.f.next(len(p))
	return copy(p, w), err
}

// readDirect reads the body's reader straight into p and returns how many
// bytes of p are body, or 0 when it did not hand anything out (then next
// takes over, from whatever readDirect put back into the buffer).
//
// It only reads when the buffer holds nothing next knows about: a part's
// body is under way (not at its start, which next checks for a bare
// boundary line), no clean run and no delimiter is pending, and at most a
// possible delimiter's first bytes are buffered (the tail a read before
// kept back); these go to the front of p, which must have room for them
// and for a delimiter. Then it scans p once for the delimiter: what lies
// before it, or when there is none, before a tail that could begin one, is
// body; the rest goes back into the buffer for next to decide on. So the
// bytes handed out, and the errors, are next's (FuzzFormReader compares
// both ways with mime/multipart).
func (f *formReader) readDirect(p []byte) int {
	if f.part == nil || f.bodyStart || f.delimAt >= 0 || f.clean > f.start || f.rerr != nil ||
		f.end-f.start >= len(f.delim) || len(p) < max(f.minDirect, 2*len(f.delim)) {
		return 0
	}
	p = p[:min(len(p), len(f.buf))] // whatever is put back must fit the buffer
	k := copy(p, f.buf[f.start:f.end])
	f.start, f.end, f.clean = 0, 0, 0
	n, err := f.r.Read(p[k:])
	if err != nil {
		f.rerr = err
	}
	w := p[:k+n]
	cut := len(w)
	if i := bytes.Index(w, f.delim); i >= 0 {
		cut = i
	} else {
		// Only a tail that is the start of a delimiter must wait for
		// more bytes. next keeps back the last len(delim)-1 bytes
		// whatever they are; doing so here would leave every chunk that
		// many bytes short, and the read that completes it too small to
		// come here.
		for j := max(0, len(w)-(len(f.delim)-1)); j < len(w); j++ {
			i := bytes.IndexByte(w[j:], f.delim[0])
			if i < 0 {
				break
			}
			j += i
			if bytes.HasPrefix(f.delim, w[j:]) {
				cut = j
				break
			}
		}
	}
	f.end = copy(f.buf, w[cut:])
	return cut
}

// WriteTo writes the rest of the body to w straight from the read buffer,
// in pieces of up to the block size: the upload's attachment goes to the
// store without a copy of its own.
func (b formBody) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		p, err := b.f.next(formBufSize)
		if len(p) > 0 {
			m, werr := w.Write(p)
			n += int64(m)
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// next hands out up to max bytes of the body before the next delimiter, as
// a slice of the read buffer valid until the next call, or io.EOF at the
// delimiter. It scans each byte for the delimiter once: buf[start:clean]
// is known to hold none.
func (f *formReader) next(max int) ([]byte, error) {
	for {
		if f.start < f.clean {
			n := min(max, f.clean-f.start)
			p := f.buf[f.start : f.start+n]
			f.start += n
			f.bodyStart = false
			return p, nil
		}
		if f.delimAt >= 0 && f.start == f.delimAt {
			return nil, io.EOF
		}
		w := f.buf[f.start:f.end]
		if f.bodyStart && bytes.HasPrefix(w, f.dash) {
			// A body may end before its first byte with the boundary
			// line alone, as mime/multipart allows.
			switch f.matchAfter(w, len(f.dash)) {
			case +1:
				f.delimAt, f.delimLen = f.start, len(f.dash)
				continue
			case 0:
				f.fill() // at the end of the body matchAfter decides
				continue
			}
		}
		if len(w) < len(f.dash) && f.bodyStart && bytes.HasPrefix(f.dash, w) && f.rerr == nil {
			f.fill()
			continue
		}
		f.bodyStart = false
		found, more := false, false
		for from := 0; ; {
			i := bytes.Index(w[from:], f.delim)
			if i < 0 {
				break
			}
			at := from + i
			switch f.matchAfter(w[at:], len(f.delim)) {
			case +1:
				f.delimAt, f.delimLen, f.clean = f.start+at, len(f.delim), f.start+at
				found = true
			case 0:
				f.clean, more = f.start+at, true
			default:
				from = at + 1
				continue
			}
			break
		}
		if found {
			continue
		}
		if !more {
			// The last len(delim)-1 bytes may be the start of a delimiter.
			if safe := len(w) - (len(f.delim) - 1); safe > 0 {
				f.clean = f.start + safe
				continue
			}
		}
		if f.clean > f.start {
			continue
		}
		if !f.fill() {
			return nil, f.unexpectedEOF("inside a part")
		}
	}
}

// matchAfter says whether the delimiter of n bytes at the start of w ends
// the part (+1), does not (-1: it is "--boundaryX"), or whether more bytes
// must be read to tell (0), as mime/multipart's matchAfterPrefix does: a
// delimiter counts when followed by white space, a line break, "--", or
// the end of the body.
func (f *formReader) matchAfter(w []byte, n int) int {
	if len(w) == n {
		if f.rerr != nil {
			return +1
		}
		return 0
	}
	switch c := w[n]; c {
	case ' ', '\t', '\r', '\n':
		return +1
	case '-':
		if len(w) == n+1 {
			if f.rerr != nil {
				return -1
			}
			return 0
		}
		if w[n+1] == '-' {
			return +1
		}
	}
	return -1
}

// WriteTo writes the rest of the part's body to w, without copying it
// first unless it must be decoded.
func (p *formPart) WriteTo(w io.Writer) (int64, error) {
	if p.eof {
		return 0, nil
	}
	if body, ok := p.r.(formBody); ok {
		n, err := body.WriteTo(w)
		p.eof = err == nil
		return n, err
	}
	n, err := io.Copy(w, struct{ io.Reader }{p.r})
	p.eof = err == nil
	return n, err
}

// Read reads the part's body.
func (p *formPart) Read(b []byte) (int, error) {
	if p.eof {
		return 0, io.EOF
	}
	n, err := p.r.Read(b)
	if err == io.EOF {
		p.eof = true
	}
	return n, err
}

// FormName returns the name parameter of the part's Content-Disposition
// if it is form-data, as multipart.Part.FormName does.
func (p *formPart) FormName() string {
	d, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil || d != "form-data" {
		return ""
	}
	return params["name"]
}
