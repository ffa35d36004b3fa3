package webui

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// tricky strings: what encoding/json escapes (quotes, backslashes, control
// characters, HTML's <>&, U+2028/9), invalid UTF-8, multi-byte runes.
var trickyStrings = []string{"", "a", "Hans Müller", `"quoted"`, `back\slash`, "tab\tnew\nline\r", "\b\f\x00\x1f\x7f",
	"<script>&amp;</script>", "line\u2028sep\u2029", "bad\xff\xfeutf8", "\xe2\x82", "emoji 😀", "+41 44 000 00 00", "日本語"}

func randString(rng *rand.Rand) string {
	if rng.IntN(3) == 0 {
		return trickyStrings[rng.IntN(len(trickyStrings))]
	}
	b := make([]byte, rng.IntN(12))
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return string(b)
}

func randTime(rng *rand.Rand) time.Time {
	t := time.Unix(rng.Int64N(4e9), rng.Int64N(1e9))
	switch rng.IntN(4) {
	case 0:
		return t.UTC()
	case 1:
		return t.In(time.FixedZone("x", (rng.IntN(48)-24)*1800))
	case 2:
		return t.Truncate(time.Second).UTC()
	}
	return time.Time{}
}

func randFloat(rng *rand.Rand) float64 {
	switch rng.IntN(6) {
	case 0:
		return 0
	case 1:
		return rng.Float64() * 1e-8
	case 2:
		return rng.Float64() * 1e22
	case 3:
		return -rng.Float64() * 100
	}
	return math.Round(rng.Float64()*10000) / 100
}

func randRecordingJSON(rng *rand.Rand) recordingJSON {
	opt := func() string {
		if rng.IntN(2) == 0 {
			return ""
		}
		return randString(rng)
	}
	j := recordingJSON{
		ID: randString(rng), Reference: randString(rng), PBXCallID: opt(), SIPCallIDIngress: opt(), SIPCallIDEgress: opt(),
		SessionID: opt(), Start: randTime(rng), DurationMs: rng.Int64N(1e9) - 1e3, DurationFlagged: rng.IntN(2) == 0,
		Direction: meta.Direction(opt()), Source: meta.Source(opt()), Technology: opt(), Channels: rng.IntN(3),
		Format: meta.Format(opt()), LocalParty: meta.LocalParty{User: opt(), Username: opt(), Number: opt(), Name: opt()},
		RemoteParty: meta.RemoteParty{Number: opt(), Name: opt()}, Group: opt(), Tenant: opt(), Rating: rng.IntN(6),
		Category: opt(), CompleteTransaction: rng.IntN(2) == 0, ReviewMinutes: rng.IntN(100), Transcript: opt(),
		Status: meta.Status(opt()), Tier: meta.Tier(opt()),
	}
	if rng.IntN(4) > 0 {
		j.Codecs = []string{}
		for range rng.IntN(3) {
			j.Codecs = append(j.Codecs, randString(rng))
		}
	}
	if rng.IntN(4) > 0 {
		j.Quality = []meta.ChannelQuality{}
		for range rng.IntN(3) {
			j.Quality = append(j.Quality, meta.ChannelQuality{Label: randString(rng), PacketsExpected: rng.Int64N(1e6),
				PacketsReceived: rng.Int64N(1e6), LossPct: randFloat(rng), JitterMs: randFloat(rng), OneWay: rng.IntN(2) == 0})
		}
	}
	if rng.IntN(4) > 0 {
		j.Notes = []meta.Note{}
		for range rng.IntN(3) {
			j.Notes = append(j.Notes, meta.Note{ID: randString(rng), Author: randString(rng), Time: randTime(rng), Text: randString(rng)})
		}
	}
	if rng.IntN(4) > 0 {
		j.CustomFields = map[string]string{}
		for range rng.IntN(4) {
			j.CustomFields[randString(rng)] = randString(rng)
		}
	}
	if rng.IntN(4) > 0 {
		j.Bookmarks = []meta.Bookmark{}
		for range rng.IntN(3) {
			j.Bookmarks = append(j.Bookmarks, meta.Bookmark{ID: randString(rng), Type: meta.BookmarkType(randString(rng)),
				OffsetMs: rng.Int64N(1e7), Author: opt(), Label: opt(), Time: randTime(rng)})
		}
	}
	if rng.IntN(4) > 0 {
		j.Related = []relatedJSON{}
		for range rng.IntN(3) {
			j.Related = append(j.Related, relatedJSON{ID: randString(rng), Relation: randString(rng), Reference: randString(rng), Start: randTime(rng)})
		}
	}
	if rng.IntN(2) == 0 {
		d := randTime(rng)
		j.DeleteAfter = &d
	}
	if rng.IntN(2) == 0 {
		j.Preserved = &meta.Preservation{By: randString(rng), At: randTime(rng), Until: randTime(rng),
			ReleaseRequestedBy: opt(), ReleaseRequestedAt: randTime(rng)}
	}
	return j
}

// checkListJSON: the appenders write exactly what json.Encoder.Encode
// writes for resp, or give way to it.
func checkListJSON(t *testing.T, resp *searchResponse) {
	t.Helper()
	var want bytes.Buffer
	werr := json.NewEncoder(&want).Encode(resp)
	got, ok := appendSearchResponse(nil, resp)
	if !ok {
		return // encoding/json answers these pages itself
	}
	if werr != nil {
		t.Fatalf("the appenders wrote a page encoding/json refuses (%v):\n%s", werr, got)
	}
	if !bytes.Equal(got, want.Bytes()) {
		i := 0
		for i < len(got) && i < want.Len() && got[i] == want.Bytes()[i] {
			i++
		}
		t.Fatalf("differs from encoding/json at byte %d:\n got …%q\nwant …%q", i, got[max(0, i-40):min(len(got), i+40)], want.Bytes()[max(0, i-40):min(want.Len(), i+40)])
	}
}

// TestListJSONMatchesEncodingJSON: search pages of random recordings
// (strings with every character encoding/json escapes, invalid UTF-8,
// times in other zones and the zero time, floats needing exponents, nil
// and empty lists and maps) come out byte for byte as encoding/json
// writes them; the pages it refuses (NaN, a year past 9999) are left to
// it.
func TestListJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	fallbacks := 0
	for i := range 3000 {
		resp := &searchResponse{Next: randString(rng)}
		if i%10 != 0 {
			resp.Recordings = []recordingJSON{}
			for range rng.IntN(4) {
				resp.Recordings = append(resp.Recordings, randRecordingJSON(rng))
			}
		}
		checkListJSON(t, resp)
		if _, ok := appendSearchResponse(nil, resp); !ok {
			fallbacks++
		}
	}
	if fallbacks > 300 {
		t.Fatalf("%d of 3000 random pages fell back to encoding/json", fallbacks)
	}
	for _, bad := range []recordingJSON{
		{Start: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Quality: []meta.ChannelQuality{{LossPct: math.NaN()}}},
		{Quality: []meta.ChannelQuality{{JitterMs: math.Inf(1)}}},
		{Start: time.Now().In(time.FixedZone("odd", 3601))},
	} {
		if _, ok := appendSearchResponse(nil, &searchResponse{Recordings: []recordingJSON{bad}}); ok {
			t.Fatalf("the appenders took a page encoding/json must answer: %+v", bad)
		}
	}
}

// FuzzListJSON compares the appenders with encoding/json on arbitrary
// strings and numbers.
func FuzzListJSON(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s, s, int64(len(s)), 0.5)
	}
	f.Add("a\u2028", "\xed\xa0\x80", int64(-1), 1e-7)
	f.Fuzz(func(t *testing.T, a, b string, n int64, x float64) {
		at := time.Unix(n%4e9, n%1e9).UTC()
		j := recordingJSON{ID: a, Reference: b, PBXCallID: a, Start: at, DurationMs: n, Codecs: []string{a, b},
			Quality:    []meta.ChannelQuality{{Label: b, LossPct: x, JitterMs: -x}},
			LocalParty: meta.LocalParty{Name: a, Number: b}, RemoteParty: meta.RemoteParty{Name: b},
			Notes: []meta.Note{{ID: a, Author: b, Text: a + b, Time: at}}, CustomFields: map[string]string{a: b, b: a},
			Bookmarks: []meta.Bookmark{{ID: b, Label: a, Time: at}}, Status: meta.Status(b)}
		checkListJSON(t, &searchResponse{Recordings: []recordingJSON{j}, Next: a})
	})
}

// TestListJSONKnowsEveryField: the appenders name every field of the
// types they write; a field added to one of them must be added to
// appendRecordingJSON too (and to randRecordingJSON), or this fails.
func TestListJSONKnowsEveryField(t *testing.T) {
	for typ, want := range map[reflect.Type]int{
		reflect.TypeFor[recordingJSON](): 33, reflect.TypeFor[relatedJSON](): 4, reflect.TypeFor[meta.ChannelQuality](): 6,
		reflect.TypeFor[meta.LocalParty](): 4, reflect.TypeFor[meta.RemoteParty](): 2, reflect.TypeFor[meta.Note](): 4,
		reflect.TypeFor[meta.Bookmark](): 6, reflect.TypeFor[meta.Preservation](): 5, reflect.TypeFor[searchResponse](): 2,
	} {
		if typ.NumField() != want {
			t.Errorf("%v has %d fields, the appenders in listjson.go write %d: add the new ones there", typ, typ.NumField(), want)
		}
	}
}
