package sip

import (
	"bytes"
	"errors"
	"sync/atomic"
)

// DefaultMaxMessage is the Framer buffer size: 64 KiB holds any real SIP
// message, including SIPREC INVITEs with metadata, many times over.
const DefaultMaxMessage = 64 << 10

// minMaxMessage keeps the buffer larger than the longest start line the
// resynchronisation scan waits for.
const minMaxMessage = 2 * maxStartLine

// FramerStats counts what Framers did. The fields are atomic so that one
// FramerStats can be shared by the framers of every TCP connection and read
// by the appliance's metrics exporter while capture runs.
type FramerStats struct {
	Messages     atomic.Uint64 // complete messages returned by Next
	Keepalives   atomic.Uint64 // runs of CRLF between messages (RFC 5626 §3.5.1)
	Oversized    atomic.Uint64 // messages dropped for not fitting the buffer
	Malformed    atomic.Uint64 // messages that failed to parse and were skipped
	Gaps         atomic.Uint64 // calls to Gap
	DroppedBytes atomic.Uint64 // bytes discarded: oversized, malformed, lost sync
}

// Framer cuts a SIP stream (one direction of a TCP connection, in order)
// into messages using Content-Length (RFC 3261 §18.3). It owns one buffer
// of fixed size, allocated by NewFramer, and never grows it: a message
// larger than the buffer is skipped as its bytes arrive (its length is
// known from Content-Length once its headers are in) and counted; a header
// section that does not fit is dropped and the Framer resynchronises.
//
// After a gap in the stream (reported with Gap) or a malformed message, the
// Framer discards bytes until a line that LooksLikeSIP begins.
//
// A Framer is used by one goroutine. Use it as
//
//	for len(p) > 0 {
//		n := f.Feed(p)
//		p = p[n:]
//		for msg, ok := f.Next(&m); ok; msg, ok = f.Next(&m) {
//			// use msg and m before the next Feed
//		}
//	}
type Framer struct {
	buf    []byte
	r, w   int  // unread bytes are buf[r:w]
	skip   int  // bytes of an oversized message still to discard
	resync bool // scanning for the next start line
	// need (total length, once the header section is in) and scanned
	// (bytes known to hold no header end) let Next wait for more bytes
	// without re-parsing: otherwise a peer sending 1-byte segments would
	// cost O(n²) per message.
	need, scanned int
	stats         *FramerStats
}

// NewFramer returns a Framer with a buffer of max bytes (DefaultMaxMessage
// if max <= 0; at least 4 KiB) counting into stats (a private FramerStats
// if nil).
func NewFramer(max int, stats *FramerStats) *Framer {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	if max < minMaxMessage {
		max = minMaxMessage
	}
	if stats == nil {
		stats = new(FramerStats)
	}
	return &Framer{buf: make([]byte, max), stats: stats}
}

// Stats returns the counters the Framer adds to.
func (f *Framer) Stats() *FramerStats { return f.stats }

// Buffered returns how many bytes wait for the rest of their message.
func (f *Framer) Buffered() int { return f.w - f.r }

// Feed takes stream bytes and returns how many it consumed. It consumes
// less than len(p) only when the buffer is full; call Next until it reports
// no message and Feed the rest. Feed invalidates slices returned by Next.
func (f *Framer) Feed(p []byte) int {
	consumed := 0
	if f.skip > 0 {
		k := min(f.skip, len(p))
		f.skip -= k
		f.stats.DroppedBytes.Add(uint64(k))
		consumed, p = k, p[k:]
	}
	if len(p) == 0 {
		return consumed
	}
	if f.r == f.w {
		f.r, f.w = 0, 0
	} else if len(f.buf)-f.w < len(p) && f.r > 0 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	k := copy(f.buf[f.w:], p)
	f.w += k
	return consumed + k
}

// Gap tells the Framer that stream bytes were lost (a hole in the TCP
// sequence space). Buffered bytes are discarded and the Framer looks for
// the next start line.
func (f *Framer) Gap() {
	f.stats.Gaps.Add(1)
	f.drop(f.w - f.r)
	f.skip = 0
	f.resync = true
}

// drop discards n buffered bytes.
func (f *Framer) drop(n int) {
	f.stats.DroppedBytes.Add(uint64(n))
	f.advance(n)
}

// advance moves the read offset past n bytes; whatever was learned about
// the message at the old offset no longer applies.
func (f *Framer) advance(n int) {
	f.r += n
	f.need, f.scanned = 0, 0
	if f.r == f.w {
		f.r, f.w = 0, 0
	}
}

// Next returns the next complete message, parsed into m; msg is the raw
// message and, like m's fields, a view into the Framer's buffer valid until
// the next Feed. ok is false when more bytes are needed. Next always leaves
// room for Feed to make progress.
func (f *Framer) Next(m *Message) (msg []byte, ok bool) {
	for f.r < f.w {
		data := f.buf[f.r:f.w]
		// CRLF keep-alives (RFC 5626 §3.5.1) and CRLF before a start line,
		// which RFC 3261 §7.5 says to ignore.
		i := 0
		for i < len(data) && (data[i] == '\r' || data[i] == '\n') {
			i++
		}
		if i > 0 {
			f.stats.Keepalives.Add(1)
			f.advance(i)
			continue
		}
		if f.resync {
			off, wait := findStartLine(data, min(maxStartLine, len(f.buf)/2))
			if off > 0 {
				f.drop(off)
			}
			if wait {
				return nil, false
			}
			f.resync = false
			continue
		}
		if f.need > 0 {
			if len(data) < f.need {
				return nil, false // the body is still arriving
			}
		} else if !headerEnded(data, &f.scanned) {
			if len(data) == len(f.buf) {
				// A header section larger than the buffer: its end is
				// unknown, so drop it and look for the next message.
				f.stats.Oversized.Add(1)
				f.drop(len(data))
				f.resync = true
			}
			return nil, false
		}
		n, need, err := parse(data, m, true)
		switch {
		case err == nil:
			f.advance(n)
			f.stats.Messages.Add(1)
			return data[:n], true
		case errors.Is(err, ErrIncomplete):
			if need > len(f.buf) {
				// Too large to buffer, but its end is known: skip it.
				f.stats.Oversized.Add(1)
				f.skip = need - len(data)
				f.drop(len(data))
				return nil, false
			}
			f.need = need
			return nil, false
		default:
			f.stats.Malformed.Add(1)
			f.drop(1)
			f.resync = true
		}
	}
	return nil, false
}

// headerEnded reports whether data holds the empty line that ends a header
// section (CRLF CRLF, or LF LF). *scanned is how far earlier calls looked;
// the search resumes a few bytes before it so a split line end is found.
func headerEnded(data []byte, scanned *int) bool {
	from := max(0, *scanned-3)
	for {
		i := bytes.IndexByte(data[from:], '\n')
		if i < 0 {
			break
		}
		j := from + i + 1
		if j < len(data) && data[j] == '\n' || j+1 < len(data) && data[j] == '\r' && data[j+1] == '\n' {
			return true
		}
		from = j
	}
	*scanned = len(data)
	return false
}

// findStartLine returns the offset of the first line in data (at offset 0
// or after a LF) that LooksLikeSIP. If the last line is still incomplete
// and no longer than limit, it returns its offset with wait set: more
// bytes may complete it. Otherwise everything is junk: len(data), false
// with wait set so nothing is parsed.
func findStartLine(data []byte, limit int) (off int, wait bool) {
	pos := 0
	for pos < len(data) {
		nl := bytes.IndexByte(data[pos:], '\n')
		if nl < 0 {
			if len(data)-pos <= limit {
				return pos, true
			}
			return len(data), true
		}
		if LooksLikeSIP(data[pos:]) {
			return pos, false
		}
		pos += nl + 1
	}
	return len(data), true
}
