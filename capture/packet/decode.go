package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
)

// Errors returned by Decode, always wrapped in a *DecodeError that names the
// field and the numbers; test for them with errors.Is.
var (
	// ErrTruncated means the frame ended before a header or the length a
	// header announced (a short snap length, or a cut frame).
	ErrTruncated = errors.New("packet: truncated")
	// ErrUnsupported means a well-formed frame that this decoder does not
	// handle: an EtherType other than IP, an unknown link type, more VLAN
	// tags or tunnel levels than it follows.
	ErrUnsupported = errors.New("packet: unsupported")
	// ErrMalformed means a header that contradicts itself (wrong IP version,
	// a length smaller than the header) or a fragment that cannot belong to
	// any valid datagram.
	ErrMalformed = errors.New("packet: malformed")
	// ErrFragmentOverlap means a fragment overlapped another fragment of the
	// same datagram with different bounds; the whole datagram was dropped
	// (RFC 5722).
	ErrFragmentOverlap = errors.New("packet: overlapping ip fragment")
)

// LinkType is a pcap LINKTYPE_ value (https://www.tcpdump.org/linktypes.html).
type LinkType uint32

// Link types the decoder understands.
const (
	LinkNull      LinkType = 0   // BSD loopback: 4-byte address family in host byte order
	LinkEthernet  LinkType = 1   // IEEE 802.3 Ethernet
	LinkRawDLT12  LinkType = 12  // raw IP, DLT_RAW on some BSDs
	LinkRawDLT14  LinkType = 14  // raw IP, DLT_RAW on OpenBSD
	LinkRaw       LinkType = 101 // raw IPv4 or IPv6
	LinkLoop      LinkType = 108 // OpenBSD loopback: address family in network byte order
	LinkLinuxSLL  LinkType = 113 // Linux cooked capture v1
	LinkIPv4      LinkType = 228 // raw IPv4 only
	LinkIPv6      LinkType = 229 // raw IPv6 only
	LinkLinuxSLL2 LinkType = 276 // Linux cooked capture v2
)

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
const (
	ProtoHopByHop uint8 = 0
	ProtoIPIP     uint8 = 4 // IPv4 encapsulated (RFC 2003)
	ProtoTCP      uint8 = 6
	ProtoUDP      uint8 = 17
	ProtoIPv6     uint8 = 41 // IPv6 encapsulated (RFC 4213)
	ProtoRouting  uint8 = 43
	ProtoFragment uint8 = 44
	ProtoAH       uint8 = 51
	ProtoNoNext   uint8 = 59
	ProtoDstOpts  uint8 = 60
)

const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100 // IEEE 802.1Q
	etherTypeQinQ  = 0x88a8 // IEEE 802.1ad service tag
	etherTypeQinQ2 = 0x9100 // pre-standard QinQ, still common on switches

	// MaxVLANTags is how many stacked VLAN tags Decode follows and records.
	MaxVLANTags = 4
	// maxTunnels bounds IP-in-IP nesting, so a crafted packet of nested
	// headers costs a bounded amount of work.
	maxTunnels = 3
	// maxExtHeaders bounds the IPv6 extension headers walked per packet.
	maxExtHeaders = 8
)

// Flags describe how a Packet came to be.
type Flags uint8

const (
	// FlagFragment: the IP packet is a fragment that has not (yet) been
	// reassembled. Protocol, FragID, FragOffset and Payload (the fragment's
	// data) are set; ports and TCP fields are not.
	FlagFragment Flags = 1 << iota
	// FlagReassembled: the transport layer was decoded from a datagram that
	// the Defragmenter reassembled. Payload points into the Defragmenter's
	// buffer and is valid only until the next Decode.
	FlagReassembled
	// FlagTunneled: the packet was carried in IP-in-IP; Src and Dst are the
	// inner addresses, OuterSrc and OuterDst the outermost ones.
	FlagTunneled
	// FlagMoreFragments mirrors the IP "more fragments" bit of a fragment.
	FlagMoreFragments
)

// TCP header flag bits (RFC 9293 §3.1).
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
	TCPUrg uint8 = 0x20
)

// VLANTag is one 802.1Q/802.1ad tag: the TPID that announced it and the tag
// control information.
type VLANTag struct {
	TPID uint16
	TCI  uint16
}

// ID is the 12-bit VLAN identifier.
func (v VLANTag) ID() uint16 { return v.TCI & 0x0fff }

// Priority is the 3-bit priority code point (802.1p).
func (v VLANTag) Priority() uint8 { return uint8(v.TCI >> 13) }

// Packet is what Decode extracts from one frame. The caller owns it and
// reuses it; Decode resets every field. Payload aliases the frame (or the
// Defragmenter's buffer, see FlagReassembled): copy it before reusing either.
type Packet struct {
	VLANs    [MaxVLANTags]VLANTag // outermost first
	NumVLANs int

	IPVersion uint8 // 4 or 6, of the innermost IP header
	Src, Dst  netip.Addr
	// OuterSrc and OuterDst are the outermost IP addresses when FlagTunneled
	// is set (the tunnel endpoints), invalid otherwise.
	OuterSrc, OuterDst netip.Addr

	Protocol         uint8 // transport protocol number (ProtoUDP, ProtoTCP, ...)
	SrcPort, DstPort uint16

	TCPSeq, TCPAck uint32
	TCPFlags       uint8 // TCPFin, TCPSyn, ...

	// FragID and FragOffset (in bytes) describe an IP fragment when
	// FlagFragment is set.
	FragID     uint32
	FragOffset uint16

	Flags   Flags
	Payload []byte // transport payload (or fragment data, or the IP payload of other protocols)
}

// DecodeError describes why a frame could not be decoded. Err is one of the
// package's sentinel errors; What names the field, Got and Want the numbers.
type DecodeError struct {
	Err  error
	What string
	Got  int
	Want int
	kind errKind
}

type errKind uint8

const (
	kindLess    errKind = iota // "what got < want"
	kindGreater                // "what got > want"
	kindValue                  // "what got"
	kindHex                    // "what 0xgot"
)

func (e *DecodeError) Error() string {
	switch e.kind {
	case kindLess:
		return fmt.Sprintf("%v: %s %d < %d", e.Err, e.What, e.Got, e.Want)
	case kindGreater:
		return fmt.Sprintf("%v: %s %d > %d", e.Err, e.What, e.Got, e.Want)
	case kindHex:
		return fmt.Sprintf("%v: %s 0x%04x", e.Err, e.What, e.Got)
	default:
		return fmt.Sprintf("%v: %s %d", e.Err, e.What, e.Got)
	}
}

func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeStats counts what a Decoder saw. The fields are atomics so the
// appliance can export them while the capture goroutine decodes.
type DecodeStats struct {
	Decoded     atomic.Uint64 // frames decoded without error (fragments included)
	Truncated   atomic.Uint64
	Unsupported atomic.Uint64
	Malformed   atomic.Uint64
	Fragments   atomic.Uint64 // fragments not (yet) completing a datagram
	Tunneled    atomic.Uint64 // packets decapsulated from IP-in-IP
}

// Decoder decodes frames. The zero value is ready to use and leaves IP
// fragments unreassembled (FlagFragment); set Defrag to reassemble them.
// A Decoder must not be used by more than one goroutine at a time.
type Decoder struct {
	// Defrag, when set, reassembles IP fragments. It may be shared only by
	// Decoders that run on the same goroutine.
	Defrag *Defragmenter

	stats DecodeStats
	err   DecodeError
	now   int64 // capture time of the frame being decoded, for Defrag
}

// Stats returns the Decoder's counters.
func (d *Decoder) Stats() *DecodeStats { return &d.stats }

// fail records an error in the Decoder's reusable DecodeError and counts it.
func (d *Decoder) fail(sentinel error, what string, kind errKind, got, want int) error {
	d.err = DecodeError{Err: sentinel, What: what, Got: got, Want: want, kind: kind}
	switch sentinel {
	case ErrTruncated:
		d.stats.Truncated.Add(1)
	case ErrUnsupported:
		d.stats.Unsupported.Add(1)
	default:
		d.stats.Malformed.Add(1)
	}
	return &d.err
}

// Decode decodes one frame of the given link type into p. ts is the frame's
// capture time; only the Defragmenter uses it.
//
// The returned error, when not nil, is a *DecodeError owned by the Decoder
// and overwritten by the next call: test it with errors.Is and call Error()
// before decoding again if the message is needed later. On error p holds
// whatever was decoded before the failure (VLAN tags, addresses).
func (d *Decoder) Decode(link LinkType, ts time.Time, frame []byte, p *Packet) error {
	*p = Packet{}
	d.now = ts.UnixNano()
	var err error
	switch link {
	case LinkEthernet:
		err = d.ethernet(frame, p)
	case LinkLinuxSLL:
		err = d.sll(frame, p)
	case LinkLinuxSLL2:
		err = d.sll2(frame, p)
	case LinkRaw, LinkRawDLT12, LinkRawDLT14:
		err = d.rawIP(frame, p)
	case LinkIPv4:
		err = d.ipv4(frame, p, 0)
	case LinkIPv6:
		err = d.ipv6(frame, p, 0)
	case LinkNull:
		err = d.null(frame, p, false)
	case LinkLoop:
		err = d.null(frame, p, true)
	default:
		err = d.fail(ErrUnsupported, "link type", kindValue, int(link), 0)
	}
	if err == nil {
		d.stats.Decoded.Add(1)
		if p.Flags&FlagFragment != 0 {
			d.stats.Fragments.Add(1)
		}
		if p.Flags&FlagTunneled != 0 {
			d.stats.Tunneled.Add(1)
		}
	}
	return err
}

// ethernet decodes an Ethernet II header (IEEE 802.3 clause 3.2.6).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  Destination MAC address                      |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                     Source MAC address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           EtherType           |   payload (or a VLAN tag) ... |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func (d *Decoder) ethernet(b []byte, p *Packet) error {
	if len(b) < 14 {
		return d.fail(ErrTruncated, "ethernet header", kindLess, len(b), 14)
	}
	return d.etherType(binary.BigEndian.Uint16(b[12:14]), b[14:], p)
}

// etherType dispatches on an EtherType, following VLAN tags first
// (IEEE 802.1Q clause 9.3, 802.1ad service tags and the 0x9100 variant):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| TPID 0x8100/0x88a8/0x9100     | PCP |D|        VLAN ID        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      next EtherType           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The TPID is the EtherType field that precedes the tag, so b starts at the
// TCI here.
func (d *Decoder) etherType(et uint16, b []byte, p *Packet) error {
	for et == etherTypeVLAN || et == etherTypeQinQ || et == etherTypeQinQ2 {
		if p.NumVLANs == MaxVLANTags {
			return d.fail(ErrUnsupported, "vlan tags", kindGreater, p.NumVLANs+1, MaxVLANTags)
		}
		if len(b) < 4 {
			return d.fail(ErrTruncated, "vlan tag", kindLess, len(b), 4)
		}
		p.VLANs[p.NumVLANs] = VLANTag{TPID: et, TCI: binary.BigEndian.Uint16(b[0:2])}
		p.NumVLANs++
		et = binary.BigEndian.Uint16(b[2:4])
		b = b[4:]
	}
	switch et {
	case etherTypeIPv4:
		return d.ipv4(b, p, 0)
	case etherTypeIPv6:
		return d.ipv6(b, p, 0)
	}
	return d.fail(ErrUnsupported, "ethertype", kindHex, int(et), 0)
}

// sll decodes a Linux cooked capture v1 header
// (https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Packet type           |        ARPHRD type            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Link-layer address length     |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|           Link-layer address (8 bytes, zero padded)           |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |        Protocol type          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The protocol type is an EtherType for the link types capture meets.
func (d *Decoder) sll(b []byte, p *Packet) error {
	if len(b) < 16 {
		return d.fail(ErrTruncated, "sll header", kindLess, len(b), 16)
	}
	return d.etherType(binary.BigEndian.Uint16(b[14:16]), b[16:], p)
}

// sll2 decodes a Linux cooked capture v2 header
// (https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        Protocol type          |           Reserved            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Interface index                         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         ARPHRD type           |  Packet type  | Addr length   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Link-layer address (8 bytes, zero padded)           |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func (d *Decoder) sll2(b []byte, p *Packet) error {
	if len(b) < 20 {
		return d.fail(ErrTruncated, "sll2 header", kindLess, len(b), 20)
	}
	return d.etherType(binary.BigEndian.Uint16(b[0:2]), b[20:], p)
}

// null decodes the 4-byte address family header of BSD loopback (DLT_NULL,
// host byte order of the capturing machine, so both orders are accepted) and
// OpenBSD DLT_LOOP (network byte order).
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Address family (AF_INET=2,                  |
//	|        AF_INET6=24 NetBSD/OpenBSD, 28 FreeBSD, 30 Darwin)     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func (d *Decoder) null(b []byte, p *Packet, networkOrder bool) error {
	if len(b) < 4 {
		return d.fail(ErrTruncated, "loopback header", kindLess, len(b), 4)
	}
	var af uint32
	if networkOrder {
		af = binary.BigEndian.Uint32(b[0:4])
	} else {
		// The writer's byte order is unknown; families are small numbers,
		// so a value that does not fit 16 bits was written big-endian.
		af = binary.LittleEndian.Uint32(b[0:4])
		if af > 0xffff {
			af = binary.BigEndian.Uint32(b[0:4])
		}
	}
	switch af {
	case 2:
		return d.ipv4(b[4:], p, 0)
	case 24, 28, 30:
		return d.ipv6(b[4:], p, 0)
	}
	return d.fail(ErrUnsupported, "loopback address family", kindValue, int(af), 0)
}

// rawIP decodes a packet that starts with an IP header of either version.
func (d *Decoder) rawIP(b []byte, p *Packet) error {
	if len(b) < 1 {
		return d.fail(ErrTruncated, "raw ip packet", kindLess, 0, 1)
	}
	switch b[0] >> 4 {
	case 4:
		return d.ipv4(b, p, 0)
	case 6:
		return d.ipv6(b, p, 0)
	}
	return d.fail(ErrMalformed, "raw ip version", kindValue, int(b[0]>>4), 0)
}

// ipv4 decodes an IPv4 header (RFC 791 §3.1). depth counts the tunnel
// levels above this header.
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
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The checksum is not verified: a mirror port delivers what the wire
// carried, and a recording is better with a rare corrupt packet than
// without it.
func (d *Decoder) ipv4(b []byte, p *Packet, depth int) error {
	if len(b) < 20 {
		return d.fail(ErrTruncated, "ipv4 header", kindLess, len(b), 20)
	}
	if v := b[0] >> 4; v != 4 {
		return d.fail(ErrMalformed, "ipv4 version", kindValue, int(v), 4)
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return d.fail(ErrMalformed, "ipv4 header length", kindLess, ihl, 20)
	}
	if len(b) < ihl {
		return d.fail(ErrTruncated, "ipv4 options", kindLess, len(b), ihl)
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total == 0 {
		// TCP segmentation offload: Linux captures outgoing super-packets
		// before the NIC fills in the length. The frame is all there is.
		total = len(b)
	}
	if total < ihl {
		return d.fail(ErrMalformed, "ipv4 total length", kindLess, total, ihl)
	}
	if total > len(b) {
		return d.fail(ErrTruncated, "ipv4 packet", kindLess, len(b), total)
	}
	b = b[:total] // drop Ethernet padding
	p.IPVersion = 4
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	proto := b[9]
	p.Protocol = proto
	frag := binary.BigEndian.Uint16(b[6:8])
	more := frag&0x2000 != 0
	off := int(frag&0x1fff) * 8
	if more || off != 0 {
		key := fragKey{src: p.Src, dst: p.Dst, id: uint32(binary.BigEndian.Uint16(b[4:6])), proto: proto}
		return d.fragment(p, key, proto, off, more, b[ihl:], depth, false)
	}
	return d.transport(proto, b[ihl:], p, depth)
}

// ipv6 decodes an IPv6 header (RFC 8200 §3) and walks its extension headers.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                         Source Address                        +
//	|                          (128 bits)                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                      Destination Address                      +
//	|                          (128 bits)                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func (d *Decoder) ipv6(b []byte, p *Packet, depth int) error {
	if len(b) < 40 {
		return d.fail(ErrTruncated, "ipv6 header", kindLess, len(b), 40)
	}
	if v := b[0] >> 4; v != 6 {
		return d.fail(ErrMalformed, "ipv6 version", kindValue, int(v), 6)
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if plen == 0 {
		// A jumbogram (RFC 2675) or a TSO super-packet: take the frame.
		plen = len(b) - 40
	}
	if 40+plen > len(b) {
		return d.fail(ErrTruncated, "ipv6 packet", kindLess, len(b), 40+plen)
	}
	p.IPVersion = 6
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	return d.ipv6Upper(b[6], b[40:40+plen], p, depth, false)
}

// ipv6Upper skips IPv6 extension headers (RFC 8200 §4) until the upper-layer
// header. Hop-by-Hop, Routing and Destination Options share one layout
// (§4.3, §4.4, §4.6), AH counts in 4-octet units (RFC 4302 §2.2):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |  Hdr Ext Len  |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	.        options or routing data ((Hdr Ext Len + 1) * 8)        .
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The Fragment header (§4.5):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Identification                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// reassembled is true when b is a reassembled fragmentable part, which must
// not hold another Fragment header.
func (d *Decoder) ipv6Upper(nh uint8, b []byte, p *Packet, depth int, reassembled bool) error {
	for range maxExtHeaders {
		switch nh {
		case ProtoHopByHop, ProtoRouting, ProtoDstOpts, ProtoAH:
			if len(b) < 8 {
				return d.fail(ErrTruncated, "ipv6 extension header", kindLess, len(b), 8)
			}
			n := (int(b[1]) + 1) * 8
			if nh == ProtoAH {
				n = (int(b[1]) + 2) * 4
			}
			if len(b) < n {
				return d.fail(ErrTruncated, "ipv6 extension header", kindLess, len(b), n)
			}
			nh, b = b[0], b[n:]
		case ProtoFragment:
			if reassembled {
				return d.fail(ErrMalformed, "ipv6 fragment header in reassembled packet", kindValue, int(nh), 0)
			}
			if len(b) < 8 {
				return d.fail(ErrTruncated, "ipv6 fragment header", kindLess, len(b), 8)
			}
			next := b[0]
			om := binary.BigEndian.Uint16(b[2:4])
			off := int(om>>3) * 8
			more := om&1 != 0
			if off == 0 && !more {
				// An atomic fragment (RFC 6946 §4): process it as a whole
				// packet, never as part of a reassembly.
				nh, b = next, b[8:]
				continue
			}
			p.Protocol = next
			// The Next Header of non-first fragments may differ (RFC 8200
			// §4.5), so it is not part of the key; the first fragment's wins.
			key := fragKey{src: p.Src, dst: p.Dst, id: binary.BigEndian.Uint32(b[4:8])}
			return d.fragment(p, key, next, off, more, b[8:], depth, true)
		case ProtoNoNext:
			p.Protocol = nh
			return nil
		default:
			return d.transport(nh, b, p, depth)
		}
	}
	return d.fail(ErrUnsupported, "ipv6 extension headers", kindGreater, maxExtHeaders+1, maxExtHeaders)
}

// fragment handles an IP fragment: without a Defragmenter it is returned
// as is; with one it is added, and a completed datagram is decoded further.
func (d *Decoder) fragment(p *Packet, key fragKey, proto uint8, off int, more bool, data []byte, depth int, v6 bool) error {
	p.FragID = key.id
	p.FragOffset = uint16(off)
	if more {
		p.Flags |= FlagMoreFragments
	}
	if d.Defrag == nil {
		p.Flags |= FlagFragment
		p.Payload = data
		return nil
	}
	dgram, firstProto, st := d.Defrag.add(d.now, key, proto, off, more, data)
	switch st {
	case fragPending, fragDuplicate:
		p.Flags |= FlagFragment
		p.Payload = data
		return nil
	case fragOverlap:
		return d.fail(ErrFragmentOverlap, "ip fragment offset", kindValue, off, 0)
	case fragTooLong:
		return d.fail(ErrMalformed, "ip fragment end", kindGreater, off+len(data), maxDatagram)
	case fragUnaligned:
		return d.fail(ErrMalformed, "ip fragment length not a multiple of 8", kindValue, len(data), 0)
	case fragEmpty:
		return d.fail(ErrMalformed, "ip fragment length with more fragments", kindValue, 0, 0)
	case fragTooMany:
		return d.fail(ErrMalformed, "ip fragments in datagram", kindGreater, maxFragments+1, maxFragments)
	case fragBadLast:
		return d.fail(ErrMalformed, "ip last fragment end", kindValue, off+len(data), 0)
	case fragNoMemory:
		return d.fail(ErrUnsupported, "ip datagram beyond defragmenter memory", kindValue, off+len(data), 0)
	}
	// Complete: continue with the reassembled payload.
	p.Flags &^= FlagMoreFragments
	p.Flags |= FlagReassembled
	p.FragOffset = 0
	p.Protocol = firstProto
	if v6 {
		return d.ipv6Upper(firstProto, dgram, p, depth, true)
	}
	return d.transport(firstProto, dgram, p, depth)
}

// transport decodes the layer above IP.
func (d *Decoder) transport(proto uint8, b []byte, p *Packet, depth int) error {
	p.Protocol = proto
	switch proto {
	case ProtoUDP:
		return d.udp(b, p)
	case ProtoTCP:
		return d.tcp(b, p)
	case ProtoIPIP, ProtoIPv6:
		if depth == maxTunnels {
			return d.fail(ErrUnsupported, "ip-in-ip nesting", kindGreater, depth+1, maxTunnels)
		}
		if p.Flags&FlagTunneled == 0 {
			p.Flags |= FlagTunneled
			p.OuterSrc, p.OuterDst = p.Src, p.Dst
		}
		// A reassembled outer datagram keeps FlagReassembled: the inner
		// packet, and so Payload, lives in the Defragmenter's buffer.
		if proto == ProtoIPIP {
			return d.ipv4(b, p, depth+1)
		}
		return d.ipv6(b, p, depth+1)
	}
	// Another transport (ICMP, SCTP, GRE, ...): hand over the IP payload.
	p.Payload = b
	return nil
}

// udp decodes a UDP header (RFC 768).
//
//	 0      7 8     15 16    23 24    31
//	+--------+--------+--------+--------+
//	|     Source      |   Destination   |
//	|      Port       |      Port       |
//	+--------+--------+--------+--------+
//	|     Length      |    Checksum     |
//	+--------+--------+--------+--------+
//	|          data octets ...
//	+---------------- ...
func (d *Decoder) udp(b []byte, p *Packet) error {
	if len(b) < 8 {
		return d.fail(ErrTruncated, "udp header", kindLess, len(b), 8)
	}
	p.SrcPort = binary.BigEndian.Uint16(b[0:2])
	p.DstPort = binary.BigEndian.Uint16(b[2:4])
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n == 0 {
		n = len(b) // IPv6 jumbogram (RFC 2675 §4)
	}
	if n < 8 {
		return d.fail(ErrMalformed, "udp length", kindLess, n, 8)
	}
	if n > len(b) {
		return d.fail(ErrTruncated, "udp datagram", kindLess, len(b), n)
	}
	p.Payload = b[8:n]
	return nil
}

// tcp decodes a TCP header (RFC 9293 §3.1).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|       |       |R|E|G|K|H|T|N|N|                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                           [Options]                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func (d *Decoder) tcp(b []byte, p *Packet) error {
	if len(b) < 20 {
		return d.fail(ErrTruncated, "tcp header", kindLess, len(b), 20)
	}
	p.SrcPort = binary.BigEndian.Uint16(b[0:2])
	p.DstPort = binary.BigEndian.Uint16(b[2:4])
	p.TCPSeq = binary.BigEndian.Uint32(b[4:8])
	p.TCPAck = binary.BigEndian.Uint32(b[8:12])
	off := int(b[12]>>4) * 4
	if off < 20 {
		return d.fail(ErrMalformed, "tcp data offset", kindLess, off, 20)
	}
	if len(b) < off {
		return d.fail(ErrTruncated, "tcp options", kindLess, len(b), off)
	}
	p.TCPFlags = b[13]
	p.Payload = b[off:]
	return nil
}
