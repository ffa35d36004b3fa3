package rtp

import (
	"encoding/binary"
	"fmt"
)

// RTP fixed header, RFC 3550 §5.1:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|V=2|P|X|  CC   |M|     PT      |       sequence number         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                           timestamp                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           synchronization source (SSRC) identifier            |
//	+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//	|            contributing source (CSRC) identifiers             |
//	|                             ....                              |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Header extension, RFC 3550 §5.3.1 (present when X=1):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      defined by profile       |           length              |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        header extension                       |
//	|                             ....                              |
//
// length counts 32-bit words after the 4-byte extension header. With P=1
// the last payload octet counts the padding octets, itself included.
const (
	headerSize = 12
	// MaxCSRC is the largest CSRC count a 4-bit CC field can hold.
	MaxCSRC = 15
)

// Header is a parsed RTP fixed header. It lives in memory the caller owns
// (a decoder struct, a stack variable) and is overwritten by every
// Unmarshal; the CSRC list is a fixed array, so parsing never allocates.
type Header struct {
	Version        uint8
	Padding        bool
	Extension      bool
	Marker         bool
	PayloadType    uint8
	SequenceNumber uint16
	Timestamp      uint32
	SSRC           uint32
	CSRCCount      uint8
	CSRC           [MaxCSRC]uint32
	// ExtensionProfile is the 16-bit "defined by profile" field
	// (0xBEDE for RFC 8285 one-byte extensions), valid when Extension.
	ExtensionProfile uint16
	// ExtensionData points into the buffer given to Unmarshal.
	ExtensionData []byte
}

// Packet is a parsed RTP packet: the header and the payload without
// padding. Payload points into the buffer given to Unmarshal; copy it
// before that buffer is reused.
type Packet struct {
	Header
	Payload []byte
	// PaddingSize is the number of padding octets removed (0 if P=0).
	PaddingSize uint8
}

// Unmarshal parses buf into h and returns the header length in bytes
// (where the payload starts). It does not allocate.
func (h *Header) Unmarshal(buf []byte) (int, error) {
	if len(buf) < headerSize {
		return 0, fmt.Errorf("%w: %d bytes, fixed header needs %d", ErrShort, len(buf), headerSize)
	}
	b0, b1 := buf[0], buf[1]
	h.Version = b0 >> 6
	if h.Version != 2 {
		return 0, fmt.Errorf("%w: version %d", ErrVersion, h.Version)
	}
	h.Padding = b0&0x20 != 0
	h.Extension = b0&0x10 != 0
	h.CSRCCount = b0 & 0x0F
	h.Marker = b1&0x80 != 0
	h.PayloadType = b1 & 0x7F
	h.SequenceNumber = binary.BigEndian.Uint16(buf[2:])
	h.Timestamp = binary.BigEndian.Uint32(buf[4:])
	h.SSRC = binary.BigEndian.Uint32(buf[8:])
	n := headerSize + 4*int(h.CSRCCount)
	if len(buf) < n {
		return 0, fmt.Errorf("%w: %d bytes, header with %d CSRCs needs %d", ErrShort, len(buf), h.CSRCCount, n)
	}
	for i := 0; i < int(h.CSRCCount); i++ {
		h.CSRC[i] = binary.BigEndian.Uint32(buf[headerSize+4*i:])
	}
	h.ExtensionProfile = 0
	h.ExtensionData = nil
	if h.Extension {
		if len(buf) < n+4 {
			return 0, fmt.Errorf("%w: %d bytes, extension header needs %d", ErrShort, len(buf), n+4)
		}
		h.ExtensionProfile = binary.BigEndian.Uint16(buf[n:])
		words := int(binary.BigEndian.Uint16(buf[n+2:]))
		end := n + 4 + 4*words
		if len(buf) < end {
			return 0, fmt.Errorf("%w: %d bytes, extension of %d words needs %d", ErrShort, len(buf), words, end)
		}
		h.ExtensionData = buf[n+4 : end : end]
		n = end
	}
	return n, nil
}

// Unmarshal parses a whole RTP packet into p. The payload excludes the
// padding (RFC 3550 §5.1, P bit). It does not allocate.
func (p *Packet) Unmarshal(buf []byte) error {
	n, err := p.Header.Unmarshal(buf)
	if err != nil {
		return err
	}
	end := len(buf)
	p.PaddingSize = 0
	if p.Padding {
		if end == n {
			return fmt.Errorf("%w: P bit set but no payload after %d header bytes", ErrPadding, n)
		}
		pad := int(buf[end-1])
		if pad == 0 || pad > end-n {
			return fmt.Errorf("%w: %d padding octets, %d after the header", ErrPadding, pad, end-n)
		}
		p.PaddingSize = uint8(pad)
		end -= pad
	}
	p.Payload = buf[n:end:end]
	return nil
}

// MarshalSize returns the size of the packet once marshaled (without
// padding: Marshal never writes padding).
func (p *Packet) MarshalSize() int {
	n := headerSize + 4*int(p.CSRCCount)
	if p.Extension {
		n += 4 + (len(p.ExtensionData)+3)/4*4
	}
	return n + len(p.Payload)
}

// MarshalTo writes the packet into buf and returns the bytes written. The
// version is always 2 and the P bit is cleared. Tests and the SRTP path use
// it to build packets; it does not allocate.
func (p *Packet) MarshalTo(buf []byte) (int, error) {
	size := p.MarshalSize()
	if len(buf) < size {
		return 0, fmt.Errorf("%w: buffer of %d bytes, packet needs %d", ErrShort, len(buf), size)
	}
	if p.CSRCCount > MaxCSRC {
		return 0, fmt.Errorf("%w: %d CSRCs (max %d)", ErrConfig, p.CSRCCount, MaxCSRC)
	}
	b0 := byte(2<<6) | p.CSRCCount
	if p.Extension {
		b0 |= 0x10
	}
	b1 := p.PayloadType & 0x7F
	if p.Marker {
		b1 |= 0x80
	}
	buf[0], buf[1] = b0, b1
	binary.BigEndian.PutUint16(buf[2:], p.SequenceNumber)
	binary.BigEndian.PutUint32(buf[4:], p.Timestamp)
	binary.BigEndian.PutUint32(buf[8:], p.SSRC)
	n := headerSize
	for i := 0; i < int(p.CSRCCount); i++ {
		binary.BigEndian.PutUint32(buf[n:], p.CSRC[i])
		n += 4
	}
	if p.Extension {
		words := (len(p.ExtensionData) + 3) / 4
		binary.BigEndian.PutUint16(buf[n:], p.ExtensionProfile)
		binary.BigEndian.PutUint16(buf[n+2:], uint16(words))
		n += 4
		copy(buf[n:], p.ExtensionData)
		clear(buf[n+len(p.ExtensionData) : n+4*words])
		n += 4 * words
	}
	n += copy(buf[n:], p.Payload)
	return n, nil
}

// IsRTCP reports whether a packet on a port shared by RTP and RTCP
// (RFC 5761 "rtcp-mux") is RTCP. RFC 5761 §4: the second octet of an RTCP
// packet is its packet type, 192..223 in practice (SR 200 .. XR 207, FIR/NACK
// 192/193, RTPFB/PSFB 205/206); RTP payload types 64..95 would collide once
// the marker bit is added, so RTP must not use them and the range test is
// unambiguous. The first two bits must still say version 2.
func IsRTCP(b []byte) bool {
	return len(b) >= 8 && b[0]>>6 == 2 && b[1] >= 192 && b[1] <= 223
}

// LooksLikeRTP is the heuristic for UDP traffic on ports no SIP dialog
// announced (streams without signalling must still become recordings). It
// accepts a datagram only if it parses as RTP version 2 with a consistent
// CSRC/extension/padding layout, is not RTCP (RFC 5761 range), carries a
// payload type that RFC 3551 §6 assigns to audio/video (0..34) or the
// dynamic range (96..127) — 35..95 are unassigned or reserved for the RTCP
// collision — and has a non-empty payload. It never allocates.
func LooksLikeRTP(b []byte) bool {
	if IsRTCP(b) {
		return false
	}
	var p Packet
	if p.Unmarshal(b) != nil {
		return false
	}
	pt := p.PayloadType
	if pt > 34 && pt < 96 {
		return false
	}
	return len(p.Payload) > 0
}
