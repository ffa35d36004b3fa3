// Package packet decodes captured frames into the few fields capture needs
// (addresses, ports, TCP sequence numbers and the payload), reassembles IP
// fragments, and reassembles TCP byte streams for SIP over TCP.
//
// # Design
//
// The decoder sits on the packet path, which must reach a million packets a
// second per core without allocating (ARCHITECTURE.md, rule 3). So:
//
//   - [Decoder.Decode] fills a [Packet] the caller owns and reuses, in the
//     style of pion's rtp Header.Unmarshal. Addresses are net/netip values
//     (built from the bytes without allocating) and Packet.Payload points
//     into the frame, so nothing is copied.
//   - Only the layers capture needs are decoded: the link layer (Ethernet with
//     up to four 802.1Q/802.1ad tags, Linux cooked SLL and SLL2, raw IP, BSD
//     Null and Loop), IPv4 and IPv6 (extension headers skipped), IP-in-IP
//     tunnels, UDP and TCP. Everything else is reported, not guessed at: a
//     frame that carries no IP gets ErrUnsupported, and an IP packet of
//     another transport (SCTP, ICMP, GRE) is returned with its Protocol and
//     Payload so the caller can count it.
//   - Errors wrap one of the sentinels (ErrTruncated, ErrUnsupported,
//     ErrMalformed, ErrFragmentOverlap) and carry the numbers that failed ("ipv4 header 12 < 20").
//     Formatting an error for every bad frame would allocate on the packet
//     path, so the Decoder keeps one [DecodeError] and returns a pointer to
//     it; the message is built only when Error is called. The error is
//     therefore only valid until the next Decode on the same Decoder.
//   - A Decoder belongs to one goroutine (one per fanout socket). Its
//     counters are atomics so that the appliance can read them from another
//     goroutine without a lock.
//
// IP fragments are reassembled by a [Defragmenter] attached to the Decoder.
// Its memory is bounded three ways: the number of datagrams in flight, the
// bytes of buffer held across them, and the fragments per datagram. Time is
// the packets' own capture time, never the wall clock, so importing a pcap
// file behaves exactly like live capture. Overlapping fragments drop the
// whole datagram (RFC 5722, RFC 8200 §4.5); exact duplicates, which a SPAN
// port mirroring both directions produces routinely, are dropped alone.
//
// TCP streams are reassembled by an [Assembler], which hands in-order bytes of
// each flow direction to a [Stream] made by the caller's [StreamFactory]. In
// order segments are delivered straight from the frame without copying; only
// out-of-order segments are copied and held, within a per-flow and a total
// byte limit. A hole that is never filled (the capture lost a packet) must
// not stall a SIP trunk forever, so after the buffer limit or a packet-time
// timeout the assembler skips it and tells the Stream how many bytes were
// lost, so that the SIP framer above can resynchronise on the next start
// line.
package packet
