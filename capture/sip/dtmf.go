package sip

// ParseDTMFInfo decodes the body of a SIP INFO carrying a key press (RFC
// 6086 with the de-facto formats in use):
//
//	Content-Type: application/dtmf-relay     Content-Type: application/dtmf
//
//	Signal=5                                 5
//	Duration=160
//
// digit is one of 0-9 * # A-D. Signal may also be an RFC 4733 event number
// (10 = *, 11 = #, 12-15 = A-D), as some gateways send. Flash-hook (event
// 16, "!" or "flash") and anything else give ok = false. durationMs is 0
// when no Duration line is present.
func ParseDTMFInfo(contentType, body []byte) (digit byte, durationMs int, ok bool) {
	mt, _ := MediaType(contentType)
	switch {
	case equalFold(mt, "application/dtmf-relay"):
		var sig []byte
		for pos := 0; pos < len(body); {
			line, next, found := nextLine(body, pos)
			if !found {
				line, next = body[pos:], len(body)
			}
			pos = next
			name, val, hasEq := cutByte(line, '=')
			if !hasEq {
				continue
			}
			name, val = trimLWS(name), trimLWS(val)
			switch {
			case equalFold(name, "Signal"):
				sig = val
			case equalFold(name, "Duration"):
				d, good := parseUint(val, 1<<20)
				if !good {
					return 0, 0, false
				}
				durationMs = int(d)
			}
		}
		digit, ok = dtmfDigit(sig)
		if !ok {
			return 0, 0, false
		}
		return digit, durationMs, true
	case equalFold(mt, "application/dtmf"):
		// A single character here; event numbers are a dtmf-relay habit.
		if b := trimLWS(body); len(b) == 1 {
			digit, ok = dtmfDigit(b)
			return digit, 0, ok
		}
	}
	return 0, 0, false
}

// dtmfDigit maps a Signal value to its key.
func dtmfDigit(s []byte) (byte, bool) {
	if len(s) == 1 {
		switch c := s[0]; {
		case isDigit(c), c == '*', c == '#':
			return c, true
		case c >= 'A' && c <= 'D':
			return c, true
		case c >= 'a' && c <= 'd':
			return c - 'a' + 'A', true
		}
		return 0, false
	}
	if ev, ok := parseUint(s, 15); ok {
		return "0123456789*#ABCD"[ev], true
	}
	return 0, false
}
