package sip

import "bytes"

// knownMethods are the request methods LooksLikeSIP accepts: RFC 3261 §27.4
// and the extensions seen in recorded traffic (PRACK RFC 3262, SUBSCRIBE and
// NOTIFY RFC 6665, REFER RFC 3515, INFO RFC 6086, UPDATE RFC 3311, MESSAGE
// RFC 3428, PUBLISH RFC 3903).
var knownMethods = [...]string{
	"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK",
	"SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
}

// maxStartLine bounds how far LooksLikeSIP looks for the end of a
// Request-Line; real request URIs are far shorter.
const maxStartLine = 2048

// LooksLikeSIP reports whether b starts like a SIP message: a Status-Line
// "SIP/2.0 NNN " (NNN in 100..699) or a Request-Line with a known method
// ending in " SIP/2.0" CRLF (bare LF accepted, as Parse does) within the
// first 2 KiB. It is cheap enough to run on every UDP payload on a
// port not known to carry SIP, and never allocates.
func LooksLikeSIP(b []byte) bool {
	if len(b) >= 12 && string(b[:8]) == "SIP/2.0 " {
		return isDigit(b[8]) && isDigit(b[9]) && isDigit(b[10]) && b[11] == ' ' && b[8] >= '1' && b[8] <= '6'
	}
	sp := -1
	for i := 0; i < len(b) && i < 10; i++ {
		if b[i] == ' ' {
			sp = i
			break
		}
	}
	if sp < 3 || !isKnownMethod(b[:sp]) {
		return false
	}
	line := b[sp:]
	if len(line) > maxStartLine {
		line = line[:maxStartLine]
	}
	nl := bytes.IndexByte(line, '\n')
	if nl < 0 {
		return false
	}
	line = line[:nl]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return len(line) > 9 && string(line[len(line)-8:]) == " SIP/2.0"
}

func isKnownMethod(m []byte) bool {
	for _, k := range knownMethods {
		if string(m) == k {
			return true
		}
	}
	return false
}
