package rtp

import (
	"encoding/binary"
	"fmt"
)

// RTCP common header, RFC 3550 §6.4.1 / §6.4.2 (SR and RR); SDES, BYE, APP
// (§6.5-6.7), XR (RFC 3611) and feedback (RFC 4585) share the first word:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|V=2|P|    RC   |   PT=SR=200   |             length            | header
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         SSRC of sender                        |
//	+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//	|              NTP timestamp, most significant word             | sender
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ info
//	|             NTP timestamp, least significant word             | (SR only)
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         RTP timestamp                         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     sender's packet count                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      sender's octet count                     |
//	+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//	|                 SSRC_1 (SSRC of first source)                 | report
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ block
//	| fraction lost |       cumulative number of packets lost       |   1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           extended highest sequence number received           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      interarrival jitter                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         last SR (LSR)                         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   delay since last SR (DLSR)                  |
//	+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//	|                  profile-specific extensions                  |
//
// length is the packet's size in 32-bit words minus one, header included.
// An RR (PT=201) has no sender info. Several packets are stacked into one
// compound datagram (§6.1); only the last may carry padding (Appendix A.2).
const (
	rtcpSR   = 200
	rtcpRR   = 201
	rtcpSDES = 202
	rtcpBYE  = 203
	rtcpAPP  = 204

	reportBlockSize = 24
	senderInfoSize  = 20

	// MaxSenderReports and MaxReportBlocks bound what one Compound keeps.
	// A 1500-byte datagram holds at most 61 report blocks; real endpoints
	// send one SR/RR with one or two blocks. Blocks past the bound are
	// counted in Compound.Dropped, never stored: no unbounded memory.
	MaxSenderReports = 4
	MaxReportBlocks  = 32
)

// SenderReport is the sender information of an SR (RFC 3550 §6.4.1).
type SenderReport struct {
	SSRC        uint32
	NTPTime     uint64 // 32.32 fixed point seconds since 1900
	RTPTime     uint32 // RTP timestamp matching NTPTime
	PacketCount uint32
	OctetCount  uint32
}

// ReportBlock is one reception report (RFC 3550 §6.4.1), with the SSRC of
// the reporter that sent it.
type ReportBlock struct {
	Reporter     uint32 // SSRC of the SR/RR sender
	SSRC         uint32 // source this block reports on
	FractionLost uint8  // fixed point, lost/expected * 256 since last report
	// CumulativeLost is a signed 24-bit count; duplicates can make it
	// negative (RFC 3550 §6.4.1).
	CumulativeLost int32
	HighestSeq     uint32 // extended highest sequence number received
	Jitter         uint32 // interarrival jitter, timestamp units
	LSR            uint32 // middle 32 bits of the last SR's NTP time
	DLSR           uint32 // delay since last SR, 1/65536 s
}

// Compound is a parsed compound RTCP packet in caller-owned memory:
// fixed arrays, so ParseRTCP never allocates.
type Compound struct {
	Senders  [MaxSenderReports]SenderReport
	NSenders int
	Reports  [MaxReportBlocks]ReportBlock
	NReports int
	// Packets counts the RTCP packets in the datagram; Skipped those of a
	// type we only step over (SDES, BYE, APP, XR, feedback).
	Packets, Skipped int
	// Dropped counts SR and report blocks beyond the fixed arrays.
	Dropped int
}

// ParseRTCP parses a compound RTCP packet (RFC 3550 §6.1) into c. It
// validates every packet header the way Appendix A.2 suggests (version 2,
// lengths adding up to the datagram, padding only on the last packet,
// report counts fitting their packet) and steps over packet types it does
// not interpret. It does not require the first packet to be SR/RR, because
// RFC 5506 reduced-size RTCP (feedback only) is legal. On error c holds
// what was parsed before the bad packet.
func ParseRTCP(buf []byte, c *Compound) error {
	c.NSenders, c.NReports, c.Packets, c.Skipped, c.Dropped = 0, 0, 0, 0, 0
	if len(buf) < 4 {
		return fmt.Errorf("%w: %d bytes, RTCP header needs 4", ErrShort, len(buf))
	}
	for off := 0; off < len(buf); {
		if len(buf)-off < 4 {
			return fmt.Errorf("%w: %d trailing bytes at offset %d", ErrRTCPLength, len(buf)-off, off)
		}
		b0, pt := buf[off], buf[off+1]
		if b0>>6 != 2 {
			return fmt.Errorf("%w: version %d in RTCP packet at offset %d", ErrVersion, b0>>6, off)
		}
		if pt < 192 || pt > 223 {
			return fmt.Errorf("%w: type %d at offset %d", ErrRTCPType, pt, off)
		}
		size := 4 * (int(binary.BigEndian.Uint16(buf[off+2:])) + 1)
		if off+size > len(buf) {
			return fmt.Errorf("%w: packet at offset %d claims %d bytes, %d left", ErrRTCPLength, off, size, len(buf)-off)
		}
		pkt := buf[off : off+size]
		if b0&0x20 != 0 {
			if off+size != len(buf) {
				return fmt.Errorf("%w: padding in RTCP packet at offset %d, not the last", ErrPadding, off)
			}
			pad := int(pkt[size-1])
			if pad == 0 || pad > size-4 {
				return fmt.Errorf("%w: %d padding octets in RTCP packet of %d bytes", ErrPadding, pad, size)
			}
			pkt = pkt[:size-pad]
		}
		c.Packets++
		count := int(b0 & 0x1F)
		switch pt {
		case rtcpSR, rtcpRR:
			if err := c.parseReport(pkt, pt == rtcpSR, count, off); err != nil {
				return err
			}
		default:
			// SDES, BYE, APP, XR and feedback carry nothing the recorder
			// keeps; their length has been validated, step over them.
			c.Skipped++
		}
		off += size
	}
	return nil
}

func (c *Compound) parseReport(pkt []byte, sr bool, count, off int) error {
	need := 8 + count*reportBlockSize
	if sr {
		need += senderInfoSize
	}
	if len(pkt) < need {
		kind := "RR"
		if sr {
			kind = "SR"
		}
		return fmt.Errorf("%w: %s at offset %d with %d blocks needs %d bytes, has %d", ErrRTCPLength, kind, off, count, need, len(pkt))
	}
	reporter := binary.BigEndian.Uint32(pkt[4:])
	p := 8
	if sr {
		if c.NSenders < MaxSenderReports {
			s := &c.Senders[c.NSenders]
			s.SSRC = reporter
			s.NTPTime = binary.BigEndian.Uint64(pkt[8:])
			s.RTPTime = binary.BigEndian.Uint32(pkt[16:])
			s.PacketCount = binary.BigEndian.Uint32(pkt[20:])
			s.OctetCount = binary.BigEndian.Uint32(pkt[24:])
			c.NSenders++
		} else {
			c.Dropped++
		}
		p += senderInfoSize
	}
	for i := 0; i < count; i, p = i+1, p+reportBlockSize {
		if c.NReports == MaxReportBlocks {
			c.Dropped++
			continue
		}
		b := pkt[p : p+reportBlockSize]
		r := &c.Reports[c.NReports]
		r.Reporter = reporter
		r.SSRC = binary.BigEndian.Uint32(b)
		r.FractionLost = b[4]
		// 24-bit two's complement: shift into the top of an int32 and
		// back to sign-extend.
		r.CumulativeLost = int32(binary.BigEndian.Uint32(b[4:])<<8) >> 8
		r.HighestSeq = binary.BigEndian.Uint32(b[8:])
		r.Jitter = binary.BigEndian.Uint32(b[12:])
		r.LSR = binary.BigEndian.Uint32(b[16:])
		r.DLSR = binary.BigEndian.Uint32(b[20:])
		c.NReports++
	}
	return nil
}
