package webui

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/callvault/callvault/store/meta"
)

// A search answer is fifty recordings as JSON; encoding/json's reflection
// was half of a search's CPU (BenchmarkSearchAPI's profile), so pages are
// written by the appenders below, which produce exactly the bytes
// encoding/json does (TestListJSONMatchesEncodingJSON compares them on
// random recordings, FuzzListJSON on arbitrary strings). A value
// encoding/json would refuse (a time outside years 0-9999, a NaN) makes
// the page go through encoding/json instead, which answers as before.

// writeSearchResponse writes resp as writeJSON would.
func (s *Server) writeSearchResponse(w http.ResponseWriter, resp *searchResponse) {
	buf, _ := s.pageBufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	b, ok := appendSearchResponse((*buf)[:0], resp)
	if ok {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b)
	} else {
		writeJSON(w, http.StatusOK, resp)
	}
	if cap(b) <= 1<<20 { // a page with megabytes of notes is not kept
		*buf = b
		s.pageBufs.Put(buf)
	}
}

// appendSearchResponse appends resp as json.Encoder.Encode writes it
// (with the trailing newline); false if encoding/json must do it.
func appendSearchResponse(b []byte, resp *searchResponse) ([]byte, bool) {
	b = append(b, `{"recordings":`...)
	if resp.Recordings == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range resp.Recordings {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendRecordingJSON(b, &resp.Recordings[i]); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"next":`...)
	b = appendJSONString(b, resp.Next)
	return append(b, '}', '\n'), true
}

// appendRecordingJSON appends j in recordingJSON's field order, with its
// omitempty rules.
func appendRecordingJSON(b []byte, j *recordingJSON) ([]byte, bool) {
	ok := true
	b = append(b, `{"id":`...)
	b = appendJSONString(b, j.ID)
	b = append(b, `,"reference":`...)
	b = appendJSONString(b, j.Reference)
	b = appendOptString(b, `,"pbxCallId":`, j.PBXCallID)
	b = appendOptString(b, `,"sipCallIdIngress":`, j.SIPCallIDIngress)
	b = appendOptString(b, `,"sipCallIdEgress":`, j.SIPCallIDEgress)
	b = appendOptString(b, `,"sessionId":`, j.SessionID)
	b = append(b, `,"start":`...)
	b, ok = appendJSONTime(b, j.Start, ok)
	b = append(b, `,"durationMs":`...)
	b = strconv.AppendInt(b, j.DurationMs, 10)
	b = append(b, `,"durationFlagged":`...)
	b = strconv.AppendBool(b, j.DurationFlagged)
	b = append(b, `,"direction":`...)
	b = appendJSONString(b, string(j.Direction))
	b = append(b, `,"source":`...)
	b = appendJSONString(b, string(j.Source))
	b = appendOptString(b, `,"technology":`, j.Technology)
	b = append(b, `,"codecs":`...)
	if j.Codecs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, c := range j.Codecs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, c)
		}
		b = append(b, ']')
	}
	b = append(b, `,"channels":`...)
	b = strconv.AppendInt(b, int64(j.Channels), 10)
	b = appendOptString(b, `,"format":`, string(j.Format))
	b = append(b, `,"quality":`...)
	if j.Quality == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range j.Quality {
			if i > 0 {
				b = append(b, ',')
			}
			q := &j.Quality[i]
			b = append(b, `{"label":`...)
			b = appendJSONString(b, q.Label)
			b = append(b, `,"packetsExpected":`...)
			b = strconv.AppendInt(b, q.PacketsExpected, 10)
			b = append(b, `,"packetsReceived":`...)
			b = strconv.AppendInt(b, q.PacketsReceived, 10)
			b = append(b, `,"lossPct":`...)
			b, ok = appendJSONFloat(b, q.LossPct, ok)
			b = append(b, `,"jitterMs":`...)
			b, ok = appendJSONFloat(b, q.JitterMs, ok)
			b = append(b, `,"oneWay":`...)
			b = strconv.AppendBool(b, q.OneWay)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"localParty":{`...)
	first := true
	for _, f := range [...]struct{ name, v string }{{"user", j.LocalParty.User}, {"username", j.LocalParty.Username}, {"number", j.LocalParty.Number}, {"name", j.LocalParty.Name}} {
		b, first = appendObjString(b, f.name, f.v, first)
	}
	b = append(b, `},"remoteParty":{`...)
	first = true
	b, first = appendObjString(b, "number", j.RemoteParty.Number, first)
	b, _ = appendObjString(b, "name", j.RemoteParty.Name, first)
	b = append(b, '}')
	b = appendOptString(b, `,"group":`, j.Group)
	b = appendOptString(b, `,"tenant":`, j.Tenant)
	b = append(b, `,"notes":`...)
	if j.Notes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range j.Notes {
			if i > 0 {
				b = append(b, ',')
			}
			n := &j.Notes[i]
			b = append(b, `{"id":`...)
			b = appendJSONString(b, n.ID)
			b = append(b, `,"author":`...)
			b = appendJSONString(b, n.Author)
			b = append(b, `,"time":`...)
			b, ok = appendJSONTime(b, n.Time, ok)
			b = append(b, `,"text":`...)
			b = appendJSONString(b, n.Text)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"rating":`...)
	b = strconv.AppendInt(b, int64(j.Rating), 10)
	b = appendOptString(b, `,"category":`, j.Category)
	b = append(b, `,"customFields":`...)
	if j.CustomFields == nil {
		b = append(b, "null"...)
	} else {
		keys := make([]string, 0, len(j.CustomFields))
		for k := range j.CustomFields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, j.CustomFields[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"completeTransaction":`...)
	b = strconv.AppendBool(b, j.CompleteTransaction)
	b = append(b, `,"reviewMinutes":`...)
	b = strconv.AppendInt(b, int64(j.ReviewMinutes), 10)
	b = appendOptString(b, `,"transcript":`, j.Transcript)
	b = append(b, `,"bookmarks":`...)
	if j.Bookmarks == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range j.Bookmarks {
			if i > 0 {
				b = append(b, ',')
			}
			m := &j.Bookmarks[i]
			b = append(b, `{"id":`...)
			b = appendJSONString(b, m.ID)
			b = append(b, `,"type":`...)
			b = appendJSONString(b, string(m.Type))
			b = append(b, `,"offsetMs":`...)
			b = strconv.AppendInt(b, m.OffsetMs, 10)
			b = appendOptString(b, `,"author":`, m.Author)
			b = appendOptString(b, `,"label":`, m.Label)
			b = append(b, `,"time":`...)
			b, ok = appendJSONTime(b, m.Time, ok)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"related":`...)
	if j.Related == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range j.Related {
			if i > 0 {
				b = append(b, ',')
			}
			r := &j.Related[i]
			b = append(b, `{"id":`...)
			b = appendJSONString(b, r.ID)
			b = append(b, `,"relation":`...)
			b = appendJSONString(b, r.Relation)
			b = append(b, `,"reference":`...)
			b = appendJSONString(b, r.Reference)
			b = append(b, `,"start":`...)
			b, ok = appendJSONTime(b, r.Start, ok)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(j.Status))
	if j.DeleteAfter != nil {
		b = append(b, `,"deleteAfter":`...)
		b, ok = appendJSONTime(b, *j.DeleteAfter, ok)
	}
	if j.Preserved != nil {
		b, ok = appendPreservation(b, j.Preserved, ok)
	}
	b = appendOptString(b, `,"tier":`, string(j.Tier))
	return append(b, '}'), ok
}

func appendPreservation(b []byte, p *meta.Preservation, ok bool) ([]byte, bool) {
	b = append(b, `,"preserved":{"by":`...)
	b = appendJSONString(b, p.By)
	b = append(b, `,"at":`...)
	b, ok = appendJSONTime(b, p.At, ok)
	if !p.Until.IsZero() {
		b = append(b, `,"until":`...)
		b, ok = appendJSONTime(b, p.Until, ok)
	}
	b = appendOptString(b, `,"releaseRequestedBy":`, p.ReleaseRequestedBy)
	if !p.ReleaseRequestedAt.IsZero() {
		b = append(b, `,"releaseRequestedAt":`...)
		b, ok = appendJSONTime(b, p.ReleaseRequestedAt, ok)
	}
	return append(b, '}'), ok
}

// appendOptString appends key and s unless s is empty (omitempty).
func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONString(append(b, key...), s)
}

// appendObjString appends an omitempty string member of an object whose
// first member may not have been written yet.
func appendObjString(b []byte, name, s string, first bool) ([]byte, bool) {
	if s == "" {
		return b, first
	}
	if !first {
		b = append(b, ',')
	}
	b = append(append(append(b, '"'), name...), '"', ':')
	return appendJSONString(b, s), false
}

// appendJSONTime appends t as time.Time.MarshalJSON does; ok becomes false
// where MarshalJSON may fail (a year outside 0-9999, a zone offset that is
// not whole minutes under a day), leaving those to encoding/json.
func appendJSONTime(b []byte, t time.Time, ok bool) ([]byte, bool) {
	if y := t.Year(); y < 0 || y >= 10000 {
		return b, false
	}
	if _, off := t.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), ok
}

// appendJSONFloat appends f as encoding/json writes a float64; ok becomes
// false for NaN and the infinities, which it refuses.
func appendJSONFloat(b []byte, f float64, ok bool) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, ok
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does with its default
// HTML escaping: ", \ and control characters escaped, <, > and &
// as \u003c, \u003e, \u0026, U+2028 and U+2029 escaped, invalid UTF-8 as
// \ufffd.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
