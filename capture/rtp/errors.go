package rtp

import "errors"

// Sentinel errors. Every error returned by this package wraps one of these
// with %w and carries the offending numbers, so callers test with
// errors.Is and operators still see what was wrong.
var (
	// ErrShort: the buffer ends before a length the packet itself promises
	// (fixed header, CSRC list, extension, padding, RTCP length field).
	ErrShort = errors.New("rtp: packet too short")
	// ErrVersion: the version field is not 2 (RFC 3550 §5.1).
	ErrVersion = errors.New("rtp: version is not 2")
	// ErrPadding: the padding count is zero or larger than the payload
	// (RFC 3550 §5.1, P bit).
	ErrPadding = errors.New("rtp: bad padding")
	// ErrRTCPLength: an RTCP length field or report count does not fit
	// the compound packet (RFC 3550 §6.4, Appendix A.2).
	ErrRTCPLength = errors.New("rtp: bad RTCP length")
	// ErrRTCPType: a compound RTCP packet holds a packet type outside
	// the RTCP range 192..223 (RFC 5761 §4).
	ErrRTCPType = errors.New("rtp: not an RTCP packet type")
	// ErrEventShort: an RFC 4733 telephone-event payload is shorter than
	// its 4-byte event block.
	ErrEventShort = errors.New("rtp: telephone-event payload too short")
	// ErrConfig: a Playout, Ring or SRTP configuration is unusable.
	ErrConfig = errors.New("rtp: bad configuration")
	// ErrSRTPKey: SDES key material is not valid for the crypto suite.
	ErrSRTPKey = errors.New("rtp: bad SRTP key")
	// ErrSRTPAuth: an SRTP packet failed authentication or decryption.
	ErrSRTPAuth = errors.New("rtp: SRTP decrypt failed")
)
