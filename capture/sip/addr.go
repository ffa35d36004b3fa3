package sip

import "net/netip"

// parseIP parses a textual IPv4 or IPv6 address without allocating
// (netip.ParseAddr takes a string, and converting the view would copy).
// It accepts what netip.ParseAddr accepts except zones, which SDP and SIP
// never carry; FuzzParseIP checks the two agree.
func parseIP(b []byte) (netip.Addr, bool) {
	for _, c := range b {
		if c == ':' {
			return parseIPv6(b)
		}
	}
	a4, ok := parseIPv4(b)
	if !ok {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a4), true
}

// parseIPv4 parses dotted-quad: four decimal octets, no leading zeros.
func parseIPv4(b []byte) (out [4]byte, ok bool) {
	octet, digits, pos := 0, 0, 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case isDigit(c):
			if digits == 1 && octet == 0 {
				return out, false // leading zero
			}
			octet = octet*10 + int(c-'0')
			digits++
			if octet > 255 {
				return out, false
			}
		case c == '.':
			if digits == 0 || pos == 3 {
				return out, false
			}
			out[pos] = byte(octet)
			pos++
			octet, digits = 0, 0
		default:
			return out, false
		}
	}
	if pos != 3 || digits == 0 {
		return out, false
	}
	out[3] = byte(octet)
	return out, true
}

// parseIPv6 parses RFC 4291 §2.2 text: eight groups of up to four hex
// digits, one "::" for a run of zero groups, and an optional dotted IPv4
// tail in place of the last two groups.
func parseIPv6(b []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // byte index in ip where "::" stands
	i := 0
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis = 0
		b = b[2:]
		if len(b) == 0 {
			return netip.AddrFrom16(ip), true
		}
	}
	for i < 16 {
		// One group: hex digits up to ':' or end, or an IPv4 tail.
		v, n := 0, 0
		for n < len(b) && unhex(b[n]) >= 0 {
			v = v<<4 | unhex(b[n])
			n++
			if n > 4 {
				return netip.Addr{}, false
			}
		}
		if n == 0 {
			return netip.Addr{}, false
		}
		if n < len(b) && b[n] == '.' {
			// IPv4 tail: needs room for 4 bytes and must be last.
			if i > 12 {
				return netip.Addr{}, false
			}
			if ellipsis < 0 && i != 12 {
				return netip.Addr{}, false
			}
			a4, ok := parseIPv4(b)
			if !ok {
				return netip.Addr{}, false
			}
			copy(ip[i:], a4[:])
			i += 4
			b = nil
			break
		}
		ip[i], ip[i+1] = byte(v>>8), byte(v)
		i += 2
		b = b[n:]
		if len(b) == 0 {
			break
		}
		if b[0] != ':' || len(b) == 1 {
			return netip.Addr{}, false
		}
		b = b[1:]
		if b[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = i
			b = b[1:]
			if len(b) == 0 {
				break
			}
		}
	}
	if len(b) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		copy(ip[ellipsis+n:], ip[ellipsis:i])
		for j := ellipsis; j < ellipsis+n; j++ {
			ip[j] = 0
		}
	} else if ellipsis >= 0 {
		return netip.Addr{}, false // "::" must stand for at least one group
	}
	return netip.AddrFrom16(ip), true
}
