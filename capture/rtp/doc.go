// Package rtp is everything capture does per RTP stream between the packet
// decoder and the recording file: parsing (RTP, RTCP, RFC 4733 events),
// receiver statistics, the per-stream ring, playout onto the recording's
// tick grid, and SRTP decryption.
//
// The design follows the packet path's one rule, that it does not allocate:
//
//   - Parsers decode into structs the caller owns (Packet, Compound,
//     TelephoneEvent), with fixed arrays where the RFC allows lists (CSRC,
//     report blocks), and payload slices that point into the input. The
//     RFC's diagram sits beside each parser, and each has a fuzz target.
//   - Ring is a single-producer single-consumer queue of preallocated slots:
//     the reader goroutine that owns the stream's fanout member pushes, one
//     flusher drains. A full ring or an oversized payload is refused and
//     counted, never waited on.
//   - Playout turns the drained packets into ticks for store/audio's grid
//     container: a bounded timeline indexed by RTP timestamp from an
//     arrival-time anchor, with a playout delay for reordering, silence for
//     gaps, and re-anchoring for SSRC changes and absurd timestamp jumps.
//     EventTracker turns telephone-event packets into digits exactly once.
//   - StreamStats implements RFC 3550 Appendix A.1/A.3/A.8 for loss and
//     jitter, measured against capture time, not wall clock.
//
// Counters are plain fields or atomics in Stats structs; the appliance
// exports them (this package must not import Prometheus or net/http).
// SRTP (Decrypter) wraps pion/srtp; its per-packet path does not allocate
// either once the context exists (BenchmarkSRTPDecrypt).
package rtp
