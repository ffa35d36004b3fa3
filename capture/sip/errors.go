package sip

import "errors"

// Sentinel errors. Every error a function of this package returns wraps one
// of these (test with errors.Is) and carries the offending numbers or
// offsets, so a log line says what was wrong without the packet at hand.
var (
	// ErrIncomplete means the stream does not hold a whole message yet:
	// ParseStream wants more bytes. Only stream parsing returns it, and
	// unwrapped: it is the normal case while segments arrive.
	ErrIncomplete = errors.New("sip: incomplete message")
	// ErrTruncated means a datagram ends inside the start line, the header
	// section or the body announced by Content-Length.
	ErrTruncated = errors.New("sip: truncated message")
	// ErrKeepalive means the input holds only CRLF keep-alive bytes
	// (RFC 5626 §3.5.1); n reports how many.
	ErrKeepalive = errors.New("sip: keep-alive only")
	// ErrStartLine means the first line is neither a Request-Line nor a
	// Status-Line (RFC 3261 §7.1, §7.2).
	ErrStartLine = errors.New("sip: bad start line")
	// ErrHeader means a header line has no colon, an empty or invalid name,
	// or is a continuation line with no header before it (RFC 3261 §7.3).
	ErrHeader = errors.New("sip: bad header line")
	// ErrTooManyHeaders means a message has more than MaxHeaders header
	// fields; the cap keeps memory per message bounded.
	ErrTooManyHeaders = errors.New("sip: too many headers")
	// ErrContentLength means Content-Length is not a decimal number in
	// range (RFC 3261 §20.14).
	ErrContentLength = errors.New("sip: bad Content-Length")
	// ErrNoContentLength means a message on a stream transport has no
	// Content-Length, which RFC 3261 §18.3 requires there.
	ErrNoContentLength = errors.New("sip: Content-Length required on stream transport")
	// ErrNoHeader means the message does not carry the header asked for.
	// It is returned unwrapped, without allocating: optional headers are
	// usually absent.
	ErrNoHeader = errors.New("sip: header not present")
	// ErrValue means a header value does not follow its grammar.
	ErrValue = errors.New("sip: bad header value")
	// ErrURI means a URI does not follow RFC 3261 §19.1 / RFC 3966.
	ErrURI = errors.New("sip: bad URI")
	// ErrMultipart means a multipart body or its boundary is malformed
	// (RFC 2046 §5.1).
	ErrMultipart = errors.New("sip: bad multipart body")
	// ErrTooManyParts means a multipart body has more than MaxParts parts.
	ErrTooManyParts = errors.New("sip: too many multipart parts")
	// ErrSDP means an SDP line does not follow RFC 4566.
	ErrSDP = errors.New("sip: bad SDP")
	// ErrSDPLimit means an SDP has more media sections, formats, rtpmaps,
	// fmtps or crypto lines than the caps below allow.
	ErrSDPLimit = errors.New("sip: SDP over limit")
)
