package synth

import (
	"encoding/binary"
	"net/netip"
)

// Frame layout: Ethernet II (14) + IPv4 without options (20) + UDP (8).
const (
	ethLen    = 14
	ipLen     = 20
	udpLen    = 8
	udpOffset = ethLen + ipLen + udpLen
)

// mac derives a locally administered unicast MAC from an IPv4 address, so
// each host keeps one MAC across the file.
func mac(b []byte, a netip.Addr) {
	ip := a.As4()
	b[0], b[1] = 0x02, 0x00
	copy(b[2:6], ip[:])
}

// udp wraps the n payload bytes already at g.frame[udpOffset:] in UDP,
// IPv4 and Ethernet headers and returns the frame.
//
// IPv4 header, RFC 791 §3.1:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// UDP header, RFC 768:
//
//	 0      7 8     15 16    23 24    31
//	+--------+--------+--------+--------+
//	|     Source      |   Destination   |
//	|      Port       |      Port       |
//	+--------+--------+--------+--------+
//	|     Length      |    Checksum     |
//	+--------+--------+--------+--------+
func (g *generator) udp(src, dst netip.AddrPort, id uint16, n int) []byte {
	f := g.frame[:udpOffset+n]
	mac(f[0:6], dst.Addr())
	mac(f[6:12], src.Addr())
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[ethLen : ethLen+ipLen]
	ip[0], ip[1] = 0x45, 0xb8 // IPv4, 5 words; DSCP EF for voice (RFC 3246)
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen+udpLen+n))
	binary.BigEndian.PutUint16(ip[4:], id)
	ip[6], ip[7] = 0x40, 0 // don't fragment
	ip[8], ip[9] = 64, 17  // TTL, UDP
	ip[10], ip[11] = 0, 0
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(0, ip)))
	u := f[ethLen+ipLen:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen+n))
	u[6], u[7] = 0, 0
	// Checksum over the pseudo-header (RFC 768), header and data.
	s := sum(0, ip[12:20]) + 17 + uint32(udpLen+n)
	c := ^fold(sum(s, u))
	if c == 0 {
		c = 0xffff // 0 means "no checksum"
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return f
}

// sum adds b as big-endian 16-bit words to s (RFC 1071).
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
