// Package sip parses what the dialog tracker needs from captured SIP
// traffic: SIP messages (RFC 3261), their SDP offers and answers (RFC 4566,
// RFC 3264, RFC 4568 SDES keys, RFC 4574 SIPREC labels), multipart bodies
// (RFC 2046, for SIPREC RFC 7866) and SIP INFO key presses.
//
// # Design
//
// Capture sees every SIP packet on a busy trunk, so parsing sits on the
// packet path and follows its rules (ARCHITECTURE.md rule 3): nothing is
// allocated per message. Parse and ParseSDP fill structs the caller owns
// and reuses (pion's rtp.Header.Unmarshal style), keep the capacity of
// their slices, and return []byte views into the input instead of strings.
// The views are only valid while the input buffer is; the dialog tracker
// copies the few it keeps (Call-ID, tags, numbers). Accessors such as From,
// CSeq or TopVia parse one header on demand, also into views, so a message
// whose Call-ID is not tracked costs only the header split.
//
// Input is hostile or broken as often as not: every parser returns an
// error wrapping one sentinel of errors.go, never panics, and caps what it
// stores (MaxHeaders, MaxParts, MaxMedia ...); fuzz targets check both.
// The parsers are lenient where real devices are sloppy and a recorder
// must not lose a call over it (bare LF line ends, missing multipart close
// delimiter, "a=ptime:20.0") and strict where a wrong guess would mislabel
// a call (start line, Content-Length, CSeq).
//
// Datagrams and streams frame messages differently (RFC 3261 §18.3): Parse
// takes the rest of a datagram as the body when Content-Length is missing;
// ParseStream insists on it and asks for more bytes instead of failing on
// a short body. Framer buffers one TCP direction in a fixed buffer, skips
// CRLF keep-alives, skips oversized messages without buffering them, and
// resynchronises on the next start line after a gap or garbage; its
// counters are atomics in a FramerStats the appliance exports.
//
// LooksLikeSIP is the cheap test capture runs on UDP and TCP payloads on
// ports not configured as SIP.
package sip
