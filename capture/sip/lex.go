package sip

// Byte-level helpers shared by the SIP, SDP and multipart parsers. They
// work on views and never allocate (except clip, which only error paths
// call).

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// equalFold compares ASCII case-insensitively; header names, parameter
// names, methods in CSeq and media types are all ASCII (RFC 3261 §7.3.1).
func equalFold[A, B []byte | string](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func hasPrefixFold[T []byte | string](b T, prefix string) bool {
	return len(b) >= len(prefix) && equalFold(b[:len(prefix)], prefix)
}

// tokenChars marks the characters of RFC 3261 §25.1 token:
// alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-.!%*_+`'~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// isLWS reports linear white space, including the CR and LF of a folded
// line (RFC 3261 §25.1 LWS = [*WSP CRLF] 1*WSP).
func isLWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimLWS(b []byte) []byte {
	for len(b) > 0 && isLWS(b[0]) {
		b = b[1:]
	}
	return trimRightWS(b)
}

func trimRightWS(b []byte) []byte {
	for len(b) > 0 && isLWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func trimLeftWS(b []byte) []byte {
	for len(b) > 0 && isLWS(b[0]) {
		b = b[1:]
	}
	return b
}

// parseUint parses a non-empty run of decimal digits no larger than max.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
		if v > max {
			return 0, false
		}
	}
	return v, true
}

// clip shortens input quoted in an error message.
func clip(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// cutByte splits b around the first c.
func cutByte(b []byte, c byte) (before, after []byte, found bool) {
	for i := 0; i < len(b); i++ {
		if b[i] == c {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// indexUnquoted returns the index of the first c in b that is not inside a
// quoted-string or, if angle is set, inside <...>; -1 if none.
func indexUnquoted(b []byte, c byte, angle bool) int {
	inQuote, inAngle := false, false
	for i := 0; i < len(b); i++ {
		switch ch := b[i]; {
		case inQuote:
			if ch == '\\' {
				i++
			} else if ch == '"' {
				inQuote = false
			}
		case ch == '"':
			inQuote = true
		case angle && ch == '<':
			inAngle = true
		case angle && inAngle && ch == '>':
			inAngle = false
		case ch == c && !inAngle:
			return i
		}
	}
	return -1
}

// NextValue splits a header value holding several comma-separated values
// (RFC 3261 §7.3.1: "Via: a, b" is the same as two Via headers) into the
// first value and the rest. Commas inside quoted strings and <...> do not
// split. Loop while rest is non-nil:
//
//	for v, rest := sip.NextValue(h.Value); v != nil; v, rest = sip.NextValue(rest) { ... }
func NextValue(v []byte) (first, rest []byte) {
	v = trimLeftWS(v)
	if len(v) == 0 {
		return nil, nil
	}
	i := indexUnquoted(v, ',', true)
	if i < 0 {
		return trimRightWS(v), nil
	}
	return trimRightWS(v[:i]), v[i+1:]
}

// Param returns the value of the parameter called name in a run of
// ";name=value" pairs (RFC 3261 §25.1 generic-param), compared case-
// insensitively. A parameter without "=" has an empty, non-nil value.
// Quoted values are returned with their quotes.
func Param(params []byte, name string) (value []byte, ok bool) {
	for len(params) > 0 {
		params = trimLeftWS(params)
		if len(params) > 0 && params[0] == ';' {
			params = params[1:]
			continue
		}
		end := indexUnquoted(params, ';', false)
		var p []byte
		if end < 0 {
			p, params = params, nil
		} else {
			p, params = params[:end], params[end+1:]
		}
		n, v, hasEq := cutByte(p, '=')
		if equalFold(trimLWS(n), name) {
			if !hasEq {
				return p[len(p):], true
			}
			return trimLWS(v), true
		}
	}
	return nil, false
}
