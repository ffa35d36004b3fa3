package rtp

import (
	"encoding/base64"
	"fmt"
	"strings"

	pionrtp "github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP decryption for streams whose SDES keys (RFC 4568 a=crypto) were
// visible in the SDP. The cryptography is pion/srtp's; this file maps the
// SDP suite names, checks the key material and keeps the pion header and
// output buffer in the decrypter, so the caller sees the same
// caller-owned-buffer shape as the rest of the package.
//
// Allocation: measured with BenchmarkSRTPDecrypt, pion's DecryptRTP does
// not allocate per packet once the SSRC is known and dst has room (0
// allocs/op; the 3 B/op there is the context the benchmark rebuilds every
// pass over the capture). Creating a Decrypter allocates; do it when the
// SDP is seen, not per packet.

// SRTP crypto suites from RFC 4568 §6.2 that Decrypter accepts.
const (
	SuiteAES128HMACSHA1_80 = "AES_CM_128_HMAC_SHA1_80"
	SuiteAES128HMACSHA1_32 = "AES_CM_128_HMAC_SHA1_32"
)

const (
	srtpKeyLen  = 16
	srtpSaltLen = 14
)

// Decrypter decrypts the SRTP packets of one crypto context (one sender's
// a=crypto line). Not safe for concurrent use.
type Decrypter struct {
	ctx    *srtp.Context
	hdr    pionrtp.Header
	tagLen int
}

// NewDecrypter builds a decrypter for suite (as written in a=crypto) from
// the raw master key||salt (30 bytes).
func NewDecrypter(suite string, keySalt []byte) (*Decrypter, error) {
	var prof srtp.ProtectionProfile
	tag := 0
	switch suite {
	case SuiteAES128HMACSHA1_80:
		prof, tag = srtp.ProtectionProfileAes128CmHmacSha1_80, 10
	case SuiteAES128HMACSHA1_32:
		prof, tag = srtp.ProtectionProfileAes128CmHmacSha1_32, 4
	default:
		return nil, fmt.Errorf("%w: crypto suite %q", ErrSRTPKey, suite)
	}
	if len(keySalt) != srtpKeyLen+srtpSaltLen {
		return nil, fmt.Errorf("%w: %d bytes of key||salt, %s needs %d", ErrSRTPKey, len(keySalt), suite, srtpKeyLen+srtpSaltLen)
	}
	ctx, err := srtp.CreateContext(keySalt[:srtpKeyLen], keySalt[srtpKeyLen:], prof)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSRTPKey, err)
	}
	return &Decrypter{ctx: ctx, tagLen: tag}, nil
}

// ParseSDESInline decodes the key parameter of an a=crypto line,
// "inline:<base64 key||salt>[|lifetime][|MKI:len]" (RFC 4568 §6.1), and
// returns the 30 raw bytes. Lifetime and MKI are ignored: MKI-tagged
// streams are not supported and will fail authentication, visibly.
func ParseSDESInline(param string) ([]byte, error) {
	s, ok := strings.CutPrefix(param, "inline:")
	if !ok {
		return nil, fmt.Errorf("%w: key parameter %.40q lacks \"inline:\"", ErrSRTPKey, param)
	}
	if i := strings.IndexByte(s, '|'); i >= 0 {
		s = s[:i]
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// some endpoints drop the '=' padding
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %w", ErrSRTPKey, err)
	}
	if len(b) != srtpKeyLen+srtpSaltLen {
		return nil, fmt.Errorf("%w: %d bytes of key||salt, want %d", ErrSRTPKey, len(b), srtpKeyLen+srtpSaltLen)
	}
	return b, nil
}

// DecryptRTP authenticates and decrypts one SRTP packet into dst (which
// should hold len(packet) bytes) and parses the result into p; p.Payload
// points into the returned slice. The rollover counter is tracked per SSRC
// by pion. A failed authentication tag returns ErrSRTPAuth.
func (d *Decrypter) DecryptRTP(dst, packet []byte, p *Packet) ([]byte, error) {
	if len(packet) < headerSize+d.tagLen {
		return nil, fmt.Errorf("%w: %d bytes, SRTP needs at least %d", ErrShort, len(packet), headerSize+d.tagLen)
	}
	out, err := d.ctx.DecryptRTP(dst, packet, &d.hdr)
	if err != nil {
		return nil, fmt.Errorf("%w: %d-byte packet seq %d: %w", ErrSRTPAuth, len(packet), d.hdr.SequenceNumber, err)
	}
	if err := p.Unmarshal(out); err != nil {
		return nil, err
	}
	return out, nil
}
