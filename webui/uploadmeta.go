package webui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/callvault/callvault/store/meta"
)

// UploadMetadata is the `jsondata` part of an upload (the Imagicle Call
// Recording WebAPI layout), validated:
//
//	{
//	  "startDateTime": "2018-09-25T13:00:00.0000000Z",  required, ISO 8601
//	  "duration":      "PT1M30S",                       required, ISO 8601 duration
//	  "direction":     1,                               required: 0 unknown, 1 incoming, 2 outgoing
//	  "localParty":    {"username": "alice", "phoneNumber": "201"},  required, both fields
//	  "remoteParty":   {"phoneNumber": "+41 44 000 00 00"},          optional
//	  "pbxCallId":     "…",                             optional
//	  "notes":         "…",                             optional: a note by the uploader
//	  "preserved":     true                             optional: preserved by the uploader
//	}
//
// Unknown fields are ignored, so integrations that send more keep working.
type UploadMetadata struct {
	Start            time.Time
	Duration         time.Duration
	Direction        meta.Direction
	LocalUsername    string
	LocalNumber      string
	RemoteNumber     string
	PBXCallID        string
	Notes            string
	Preserved        bool
	HasRemoteParty   bool
	StartHadTimeZone bool
}

// uploadJSON mirrors the wire format. Pointers tell a missing field from a
// zero one.
type uploadJSON struct {
	StartDateTime *string `json:"startDateTime"`
	Duration      *string `json:"duration"`
	Direction     *int    `json:"direction"`
	LocalParty    *struct {
		Username    *string `json:"username"`
		PhoneNumber *string `json:"phoneNumber"`
	} `json:"localParty"`
	RemoteParty *struct {
		PhoneNumber *string `json:"phoneNumber"`
	} `json:"remoteParty"`
	PBXCallID *string `json:"pbxCallId"`
	Notes     *string `json:"notes"`
	Preserved *bool   `json:"preserved"`
}

// Limits of the metadata fields; they are meta's own limits, checked here
// so that a too-long field is a 400 naming it, not an internal error.
const (
	maxJSONData    = 64 << 10
	maxUsernameLen = 256
	maxNumberLen   = 64
	maxCallIDLen   = 256
	maxNoteLen     = 8 << 10
)

// ParseUploadMetadata parses and validates the jsondata part. Errors wrap
// ErrInvalidData (not JSON at all) or ErrInvalidMetadata (a field is
// missing or wrong; the message names it).
func ParseUploadMetadata(data []byte) (UploadMetadata, error) {
	var m UploadMetadata
	if len(bytes.TrimSpace(data)) == 0 {
		return m, fmt.Errorf("%w: jsondata is empty", ErrInvalidData)
	}
	if len(data) > maxJSONData {
		return m, fmt.Errorf("%w: jsondata is %d bytes, limit %d", ErrInvalidData, len(data), maxJSONData)
	}
	var j uploadJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&j); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return m, fmt.Errorf("%w: %s must be %s, not a JSON %s", ErrInvalidMetadata, te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return m, fmt.Errorf("%w: jsondata is not a JSON object: %v", ErrInvalidData, err)
	}
	if dec.More() {
		return m, fmt.Errorf("%w: jsondata has data after the JSON object", ErrInvalidData)
	}
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidMetadata, field, fmt.Sprintf(format, args...))
	}

	if j.StartDateTime == nil {
		return m, bad("startDateTime", "is missing")
	}
	start, hadZone, err := parseISOTime(*j.StartDateTime)
	if err != nil {
		return m, bad("startDateTime", "%q is not an ISO 8601 date and time (e.g. 2018-09-25T13:00:00.0000000Z): %v", clip(*j.StartDateTime), err)
	}
	m.Start, m.StartHadTimeZone = start, hadZone

	if j.Duration == nil {
		return m, bad("duration", "is missing")
	}
	if m.Duration, err = ParseISODuration(*j.Duration); err != nil {
		return m, bad("duration", "%q is not an ISO 8601 duration (e.g. PT1M30S): %v", clip(*j.Duration), err)
	}

	if j.Direction == nil {
		return m, bad("direction", "is missing")
	}
	switch *j.Direction {
	case 0:
		m.Direction = meta.DirUnknown
	case 1:
		m.Direction = meta.DirIncoming
	case 2:
		m.Direction = meta.DirOutgoing
	default:
		return m, bad("direction", "is %d; allowed: 0 (unknown), 1 (incoming), 2 (outgoing)", *j.Direction)
	}

	if j.LocalParty == nil {
		return m, bad("localParty", "is missing")
	}
	if j.LocalParty.Username == nil || strings.TrimSpace(*j.LocalParty.Username) == "" {
		return m, bad("localParty.username", "is missing")
	}
	if j.LocalParty.PhoneNumber == nil || strings.TrimSpace(*j.LocalParty.PhoneNumber) == "" {
		return m, bad("localParty.phoneNumber", "is missing")
	}
	m.LocalUsername = strings.TrimSpace(*j.LocalParty.Username)
	m.LocalNumber = strings.TrimSpace(*j.LocalParty.PhoneNumber)
	if err := checkField("localParty.username", m.LocalUsername, maxUsernameLen); err != nil {
		return m, err
	}
	if err := checkField("localParty.phoneNumber", m.LocalNumber, maxNumberLen); err != nil {
		return m, err
	}
	if j.RemoteParty != nil {
		m.HasRemoteParty = true
		if j.RemoteParty.PhoneNumber != nil {
			m.RemoteNumber = strings.TrimSpace(*j.RemoteParty.PhoneNumber)
			if err := checkField("remoteParty.phoneNumber", m.RemoteNumber, maxNumberLen); err != nil {
				return m, err
			}
		}
	}
	if j.PBXCallID != nil {
		m.PBXCallID = strings.TrimSpace(*j.PBXCallID)
		if err := checkField("pbxCallId", m.PBXCallID, maxCallIDLen); err != nil {
			return m, err
		}
	}
	if j.Notes != nil {
		m.Notes = strings.TrimSpace(*j.Notes)
		if len(m.Notes) > maxNoteLen {
			return m, bad("notes", "is %d bytes, limit %d", len(m.Notes), maxNoteLen)
		}
		if !utf8.ValidString(m.Notes) {
			return m, bad("notes", "is not valid UTF-8")
		}
	}
	if j.Preserved != nil {
		m.Preserved = *j.Preserved
	}
	return m, nil
}

// checkField enforces what meta requires of a string that becomes part of
// an index key: bounded, valid UTF-8, no NUL or other control characters.
func checkField(field, v string, limit int) error {
	if len(v) > limit {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrInvalidMetadata, field, len(v), limit)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidMetadata, field)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s contains control character %U", ErrInvalidMetadata, field, r)
		}
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "ptr", "struct":
		return "an object"
	case "int":
		return "a whole number"
	case "bool":
		return "true or false"
	}
	return "a " + k
}

// clip shortens a value quoted back in an error message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// parseISOTime parses an ISO 8601 / RFC 3339 date and time with any number
// of fraction digits (Imagicle sends seven, .NET's "o" format). A time
// without a zone is taken as UTC, as .NET's DateTime of kind Unspecified
// usually is; the caller learns whether a zone was given.
func parseISOTime(s string) (time.Time, bool, error) {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		return time.Time{}, false, fmt.Errorf("%d characters", len(s))
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return checkYear(t.UTC(), true)
	}
	// No zone: "2018-09-25T13:00:00.0000000" (or with a space for the T).
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", strings.Replace(s, " ", "T", 1)); err == nil {
		return checkYear(t.UTC(), false)
	}
	_, err := time.Parse(time.RFC3339Nano, s)
	return time.Time{}, false, err
}

func checkYear(t time.Time, zone bool) (time.Time, bool, error) {
	if y := t.Year(); y < 1970 || y > 9999 {
		return time.Time{}, false, fmt.Errorf("year %d outside 1970..9999", y)
	}
	return t, zone, nil
}

// ParseISODuration parses an ISO 8601 duration of days, hours, minutes and
// seconds: P[nW][nD][T[nH][nM][n[.f]S]] (e.g. PT1M30S, PT90.5S, P1DT2H).
// Years and months are refused: their length depends on the calendar. Each
// number may carry a fraction (only the last one, per ISO 8601, but .NET's
// XmlConvert writes fractions on seconds only anyway). Negative durations
// are refused.
func ParseISODuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		return 0, fmt.Errorf("%d characters", len(s))
	}
	if len(s) < 3 || (s[0] != 'P' && s[0] != 'p') {
		return 0, errors.New("does not start with P and a number")
	}
	rest := s[1:]
	inTime := false
	var total float64
	seen := ""
	order := "WDHMS"
	last := -1
	found := false
	for len(rest) > 0 {
		if rest[0] == 'T' || rest[0] == 't' {
			if inTime {
				return 0, errors.New("two T designators")
			}
			inTime = true
			rest = rest[1:]
			if rest == "" {
				return 0, errors.New("the T designator has no time part after it")
			}
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.' || rest[i] == ',') {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("expected a number and a designator at %q", rest)
		}
		num := strings.Replace(rest[:i], ",", ".", 1)
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, fmt.Errorf("bad number %q", rest[:i])
		}
		d := rest[i] | 0x20 // lower case
		var unit float64
		var key byte
		switch {
		case !inTime && d == 'y', !inTime && d == 'm':
			return 0, errors.New("years and months have no fixed length; use days")
		case !inTime && d == 'w':
			unit, key = 7*24*3600, 'W'
		case !inTime && d == 'd':
			unit, key = 24*3600, 'D'
		case inTime && d == 'h':
			unit, key = 3600, 'H'
		case inTime && d == 'm':
			unit, key = 60, 'M'
		case inTime && d == 's':
			unit, key = 1, 'S'
		default:
			return 0, fmt.Errorf("unexpected designator %q", rest[i])
		}
		pos := strings.IndexByte(order, key)
		if pos <= last || strings.IndexByte(seen, key) >= 0 {
			return 0, fmt.Errorf("designator %c out of order or repeated", key)
		}
		last = pos
		seen += string(key)
		total += v * unit
		found = true
		rest = rest[i+1:]
	}
	if !found {
		return 0, errors.New("no value")
	}
	// Beyond ~290 years a time.Duration overflows; no call lasts a year.
	if total > 366*24*3600 {
		return 0, fmt.Errorf("%.0f s is longer than a year", total)
	}
	return time.Duration(math.Round(total * float64(time.Second))), nil
}
