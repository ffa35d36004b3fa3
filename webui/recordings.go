package webui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callvault/callvault/store/meta"
)

// Searching and reading recordings.
//
// What a caller sees comes from the principal alone (Principal.View): the
// query string can narrow a search but never widen it, since the scope is
// set after the parameters are parsed and meta.Search intersects every
// filter with it. A single-recording route loads the recording and checks
// View.Sees, the same rule as the search scope; a recording outside the
// view answers exactly like one that does not exist (404, same body), so
// IDs of other users' or tenants' calls cannot be probed.

// defaultSearchWindow is the time range of a search that names none.
const defaultSearchWindow = 7 * 24 * time.Hour

// maxParamLen bounds a text parameter (meta's key text limit).
const maxParamLen = 1024

// searchParam is one query parameter of GET /api/v1/recordings. The same
// table parses requests and documents them in the OpenAPI document.
type searchParam struct {
	name, typ, desc string
	enum            []string
	set             func(q *meta.Query, v string) error
}

var (
	directionValues = []string{string(meta.DirIncoming), string(meta.DirOutgoing), string(meta.DirUnknown)}
	statusValues    = []string{string(meta.StatusRecording), string(meta.StatusComplete), string(meta.StatusRecovered), string(meta.StatusFailed)}
	bookmarkValues  = []string{string(meta.BookmarkPause), string(meta.BookmarkResume), string(meta.BookmarkStart), string(meta.BookmarkStop),
		string(meta.BookmarkHold), string(meta.BookmarkTransfer), string(meta.BookmarkDTMF), string(meta.BookmarkManual),
		string(meta.BookmarkAnnouncement), string(meta.BookmarkPayment)}
)

func textParam(dst func(q *meta.Query) *string) func(q *meta.Query, v string) error {
	return func(q *meta.Query, v string) error {
		*dst(q) = v
		return nil
	}
}

// wordsParam is a text parameter that meta splits into words (letters and
// digits): one without any is refused here, naming the parameter.
func wordsParam(dst func(q *meta.Query) *string) func(q *meta.Query, v string) error {
	return func(q *meta.Query, v string) error {
		if !strings.ContainsFunc(v, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			return errors.New("has no words (letters or digits)")
		}
		*dst(q) = v
		return nil
	}
}

func enumParam(values []string, set func(q *meta.Query, v string)) func(q *meta.Query, v string) error {
	return func(q *meta.Query, v string) error {
		if !slices.Contains(values, v) {
			return fmt.Errorf("must be one of %s", strings.Join(values, ", "))
		}
		set(q, v)
		return nil
	}
}

func intParam(lo, hi int64, set func(q *meta.Query, n int64)) func(q *meta.Query, v string) error {
	return func(q *meta.Query, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be an integer from %d to %d", lo, hi)
		}
		set(q, n)
		return nil
	}
}

func timeParam(set func(q *meta.Query, t time.Time)) func(q *meta.Query, v string) error {
	return func(q *meta.Query, v string) error {
		t, err := parseTimeParam(v)
		if err != nil {
			return err
		}
		set(q, t)
		return nil
	}
}

// parseTimeParam accepts RFC 3339 (with any fraction) or a plain date,
// which means its midnight UTC.
func parseTimeParam(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		if t, err = time.Parse(time.DateOnly, v); err != nil {
			return time.Time{}, errors.New("must be an RFC 3339 time (2024-05-01T13:00:00Z) or a date (2024-05-01)")
		}
	}
	if y := t.Year(); y < 1970 || y > 9999 {
		return time.Time{}, fmt.Errorf("year %d is outside 1970..9999", y)
	}
	return t.UTC(), nil
}

const maxDurationMs = 100 * 24 * 3600 * 1000 // nothing records for 100 days

// sortValues are the sort parameter's values: the time orders, and every
// other key of meta's in both orders.
var sortValues = func() []string {
	vs := []string{"newest", "oldest"}
	for _, k := range meta.SortKeys {
		vs = append(vs, string(k), "-"+string(k))
	}
	return vs
}()

var searchParams = []searchParam{
	{"from", "date-time", "calls that started at or after this time (default: 7 days before `to`, or before now)", nil,
		timeParam(func(q *meta.Query, t time.Time) { q.Start = t })},
	{"to", "date-time", "calls that started before this time (default: none)", nil,
		timeParam(func(q *meta.Query, t time.Time) { q.End = t })},
	{"minDurationMs", "integer", "at least this long (milliseconds)", nil,
		intParam(0, maxDurationMs, func(q *meta.Query, n int64) { q.MinDurationMs = n })},
	{"maxDurationMs", "integer", "at most this long (milliseconds)", nil,
		intParam(1, maxDurationMs, func(q *meta.Query, n int64) { q.MaxDurationMs = n })},
	{"callId", "string", "PBX call ID, SIP Call-ID or session ID, exactly (searches all time unless from/to is given)", nil,
		textParam(func(q *meta.Query) *string { return &q.CallID })},
	{"recordingId", "string", "the recording ID (searches all time unless from/to is given)", nil,
		textParam(func(q *meta.Query) *string { return &q.RecordingID })},
	{"reference", "string", "the reference number (searches all time unless from/to is given)", nil,
		textParam(func(q *meta.Query) *string { return &q.Reference })},
	{"notes", "string", "every word appears in the recording's notes (case-insensitive)", nil,
		wordsParam(func(q *meta.Query) *string { return &q.NoteWords })},
	{"direction", "string", "call direction", directionValues,
		enumParam(directionValues, func(q *meta.Query, v string) { q.Direction = meta.Direction(v) })},
	{"localUser", "string", "the local party's user ID", nil,
		textParam(func(q *meta.Query) *string { return &q.LocalUser })},
	{"localNumber", "string", "the local party's number starts with this", nil,
		textParam(func(q *meta.Query) *string { return &q.LocalNumber })},
	{"remoteNumber", "string", "the remote party's number starts with this", nil,
		textParam(func(q *meta.Query) *string { return &q.RemoteNumber })},
	{"remoteName", "string", "every word is the start of a word of the remote party's name", nil,
		wordsParam(func(q *meta.Query) *string { return &q.RemoteName })},
	{"group", "string", "the recording's group ID", nil,
		textParam(func(q *meta.Query) *string { return &q.Group })},
	{"minRating", "integer", "rated at least this (1 to 5)", nil,
		intParam(1, 5, func(q *meta.Query, n int64) { q.MinRating = int(n) })},
	{"category", "string", "the category, exactly", nil,
		textParam(func(q *meta.Query) *string { return &q.Category })},
	{"preserved", "boolean", "true: only recordings under legal hold", []string{"true", "false"},
		enumParam([]string{"true", "false"}, func(q *meta.Query, v string) { q.Preserved = v == "true" })},
	{"bookmark", "string", "has a bookmark of this type", bookmarkValues,
		enumParam(bookmarkValues, func(q *meta.Query, v string) { q.BookmarkType = meta.BookmarkType(v) })},
	{"status", "string", "the recording's status (default: any)", statusValues,
		enumParam(statusValues, func(q *meta.Query, v string) { q.Status = meta.Status(v) })},
	{"sort", "string", "newest (default) or oldest first; or by duration, remoteNumber, remoteName, localNumber, rating or direction, " +
		"smallest first, or largest first with a leading minus (-duration); such a sort takes at most 50,000 matches (narrow the time range)", sortValues,
		enumParam(sortValues, func(q *meta.Query, v string) {
			switch {
			case v == "newest" || v == "oldest":
				q.Ascending = v == "oldest"
			case strings.HasPrefix(v, "-"):
				q.Sort, q.Ascending = meta.SortKey(v[1:]), false
			default:
				q.Sort, q.Ascending = meta.SortKey(v), true
			}
		})},
	{"limit", "integer", "results per page, 1 to 500 (default 50)", nil,
		intParam(1, meta.MaxLimit, func(q *meta.Query, n int64) { q.Limit = int(n) })},
	{"cursor", "string", "the `next` value of the previous page", nil,
		textParam(func(q *meta.Query) *string { return &q.Cursor })},
}

// paramError is a bad query parameter; the answer names it.
type paramError struct {
	param string
	err   error
}

func (e *paramError) Error() string { return "parameter " + e.param + ": " + e.err.Error() }
func (e *paramError) Unwrap() error { return ErrBadParameter }

// paramName is how an answer names a parameter the client sent.
func paramName(name string) string {
	if name == "" {
		return "(empty name)"
	}
	return strings.ToValidUTF8(clip(name), "?")
}

func badParam(name string, format string, args ...any) error {
	return &paramError{param: name, err: fmt.Errorf(format, args...)}
}

// parseSearchQuery turns a search's query string into a meta.Query
// without a scope (the caller sets it from the principal). Unknown or
// repeated parameters are errors, so a typo never silently widens a
// search. Without from and to the search covers the last 7 days; an
// exact lookup (recordingId, reference, callId) covers all time.
func parseSearchQuery(raw string, now time.Time) (meta.Query, error) {
	var q meta.Query
	if len(raw) > 16<<10 {
		return q, badParam("query", "the query string is %d bytes, limit %d", len(raw), 16<<10)
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, badParam("query", "%v", err)
	}
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	slices.Sort(names) // the first bad parameter named is the same every time
	for _, name := range names {
		vs := vals[name]
		i := slices.IndexFunc(searchParams, func(p searchParam) bool { return p.name == name })
		if i < 0 {
			return q, badParam(paramName(name), "unknown parameter")
		}
		if len(vs) != 1 {
			return q, badParam(name, "given %d times", len(vs))
		}
		v := vs[0]
		if len(v) > maxParamLen || strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
			return q, badParam(name, "must be valid UTF-8 without NUL, at most %d bytes", maxParamLen)
		}
		if v == "" {
			continue // an empty field of a search form does not filter
		}
		if err := searchParams[i].set(&q, v); err != nil {
			return q, &paramError{param: name, err: err}
		}
	}
	if q.MaxDurationMs > 0 && q.MaxDurationMs < q.MinDurationMs {
		return q, badParam("maxDurationMs", "%d is below minDurationMs %d", q.MaxDurationMs, q.MinDurationMs)
	}
	exact := q.RecordingID != "" || q.Reference != "" || q.CallID != ""
	switch {
	case !q.Start.IsZero() && !q.End.IsZero() && !q.End.After(q.Start):
		return q, badParam("to", "%s is not after from %s", q.End.Format(time.RFC3339), q.Start.Format(time.RFC3339))
	case q.Start.IsZero() && q.End.IsZero() && !exact:
		q.Start = now.UTC().Add(-defaultSearchWindow)
	case q.Start.IsZero() && !q.End.IsZero() && !exact:
		q.Start = q.End.Add(-defaultSearchWindow)
	}
	return q, nil
}

// recordingJSON is a recording as the API shows it: everything but the
// file's location and wrapped data key, which never leave the appliance.
type recordingJSON struct {
	ID                  string                `json:"id"`
	Reference           string                `json:"reference"`
	PBXCallID           string                `json:"pbxCallId,omitempty"`
	SIPCallIDIngress    string                `json:"sipCallIdIngress,omitempty"`
	SIPCallIDEgress     string                `json:"sipCallIdEgress,omitempty"`
	SessionID           string                `json:"sessionId,omitempty"`
	Start               time.Time             `json:"start"`
	DurationMs          int64                 `json:"durationMs"`
	DurationFlagged     bool                  `json:"durationFlagged"`
	Direction           meta.Direction        `json:"direction"`
	Source              meta.Source           `json:"source"`
	Technology          string                `json:"technology,omitempty"`
	Codecs              []string              `json:"codecs"`
	Channels            int                   `json:"channels"`
	Format              meta.Format           `json:"format,omitempty"`
	Quality             []meta.ChannelQuality `json:"quality"`
	LocalParty          meta.LocalParty       `json:"localParty"`
	RemoteParty         meta.RemoteParty      `json:"remoteParty"`
	Group               string                `json:"group,omitempty"`
	Tenant              string                `json:"tenant,omitempty"`
	Notes               []meta.Note           `json:"notes"`
	Rating              int                   `json:"rating"`
	Category            string                `json:"category,omitempty"`
	CustomFields        map[string]string     `json:"customFields"`
	CompleteTransaction bool                  `json:"completeTransaction"`
	ReviewMinutes       int                   `json:"reviewMinutes"`
	Transcript          string                `json:"transcript,omitempty"`
	Bookmarks           []meta.Bookmark       `json:"bookmarks"`
	Related             []relatedJSON         `json:"related"`
	Status              meta.Status           `json:"status"`
	DeleteAfter         *time.Time            `json:"deleteAfter,omitempty"`
	Preserved           *meta.Preservation    `json:"preserved,omitempty"`
	Tier                meta.Tier             `json:"tier,omitempty"`
}

// relatedJSON is a link to another recording the caller can see.
type relatedJSON struct {
	ID        string    `json:"id"`
	Relation  string    `json:"relation"`
	Reference string    `json:"reference"`
	Start     time.Time `json:"start"`
}

// searchResponse is one page of search results.
type searchResponse struct {
	Recordings []recordingJSON `json:"recordings"`
	// Next is the cursor of the next page; empty on the last one.
	Next string `json:"next"`
}

// toJSON builds the API view of rec. related lists the links the caller
// may follow (the caller filters them by visibility).
func toJSON(rec *meta.Recording, related []relatedJSON) recordingJSON {
	out := recordingJSON{
		ID: rec.ID, Reference: rec.Reference, PBXCallID: rec.PBXCallID, SIPCallIDIngress: rec.SIPCallIDIngress,
		SIPCallIDEgress: rec.SIPCallIDEgress, SessionID: rec.SessionID, Start: rec.Start, DurationMs: rec.Duration,
		DurationFlagged: rec.DurationFlagged, Direction: rec.Direction, Source: rec.Source, Technology: rec.Technology,
		Codecs: nonNil(rec.Codecs), Channels: rec.Channels, Format: rec.File.Format, Quality: nonNil(rec.Quality),
		LocalParty: rec.LocalParty, RemoteParty: rec.RemoteParty, Group: rec.Group, Tenant: rec.Tenant,
		Notes: nonNil(rec.Notes), Rating: rec.Rating, Category: rec.Category, CustomFields: rec.CustomFields,
		CompleteTransaction: rec.CompleteTransaction, ReviewMinutes: rec.ReviewMinutes, Transcript: rec.Transcript,
		Bookmarks: nonNil(rec.Bookmarks), Related: nonNil(related), Status: rec.Status, Preserved: rec.Preserved, Tier: rec.Tier,
	}
	if out.CustomFields == nil {
		out.CustomFields = map[string]string{}
	}
	if !rec.DeleteAfter.IsZero() {
		d := rec.DeleteAfter
		out.DeleteAfter = &d
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

var errNoRecording = "no such recording"

// visible loads the recording named by the path's {id} and answers 404
// unless the principal sees it. Missing, malformed, deleted and invisible
// IDs get the same answer.
func (s *Server) visible(w http.ResponseWriter, r *http.Request, p *Principal) (meta.Recording, bool) {
	rec, ok, err := s.lookupVisible(p, r.PathValue("id"))
	if err != nil {
		s.internalError(w, r, "read recording", err)
		return rec, false
	}
	if !ok {
		s.auditDenied(r, p, r.PathValue("id"), "no visible recording")
		writeError(w, http.StatusNotFound, errNoRecording)
	}
	return rec, ok
}

// lookupVisible returns the recording if p may see it; ok is false for
// every other case but a storage error.
func (s *Server) lookupVisible(p *Principal, id string) (meta.Recording, bool, error) {
	rec, err := s.data.Catalog.Recording(id)
	switch {
	case errors.Is(err, meta.ErrNotFound), errors.Is(err, meta.ErrInvalid):
		return meta.Recording{}, false, nil
	case err != nil:
		return meta.Recording{}, false, err
	}
	if !p.View().Sees(&rec) {
		return meta.Recording{}, false, nil
	}
	return rec, true, nil
}

// visibleRelated resolves rec's links to the recordings p may see; links
// to anything else are left out, not even their IDs are shown.
func (s *Server) visibleRelated(p *Principal, rec *meta.Recording) ([]relatedJSON, error) {
	out := []relatedJSON{}
	for _, rel := range rec.Related {
		other, ok, err := s.lookupVisible(p, rel.ID)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, relatedJSON{ID: other.ID, Relation: rel.Relation, Reference: other.Reference, Start: other.Start})
		}
	}
	return out, nil
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request, p *Principal) {
	q, err := parseSearchQuery(r.URL.RawQuery, s.now())
	if err != nil {
		writeParamError(w, err)
		return
	}
	v := p.View()
	q.Scope = v.Scope
	q.Preserved = q.Preserved || v.PreservedOnly
	// A search is CPU work of about a millisecond. Admitting as many at
	// once as there are cores, the rest waiting in arrival order (a
	// channel's waiters are served first in, first out), keeps the latency
	// of many concurrent clients close to their average: left to the
	// scheduler, fifty searches in flight on two cores finish in no
	// particular order, and the unlucky ones wait six times the average.
	select {
	case s.searchSlots <- struct{}{}:
	case <-r.Context().Done():
		return // the client has gone
	}
	defer func() { <-s.searchSlots }()
	page, err := s.data.Catalog.Search(q)
	if errors.Is(err, meta.ErrTooManyToSort) {
		writeJSON(w, http.StatusBadRequest, apiMessage{Message: "parameter sort: " + strings.TrimPrefix(err.Error(), "meta: invalid value: meta: "), Parameter: "sort"})
		return
	}
	if errors.Is(err, meta.ErrInvalid) {
		// What meta rejects that the parser let through: a cursor that is
		// malformed or was made for the other sort order (the fuzz target
		// checks that nothing else gets here).
		msg := strings.TrimPrefix(err.Error(), "meta: ")
		if q.Cursor != "" {
			writeJSON(w, http.StatusBadRequest, apiMessage{Message: "parameter cursor: " + msg, Parameter: "cursor"})
		} else {
			writeError(w, http.StatusBadRequest, msg)
		}
		return
	}
	if err != nil {
		s.internalError(w, r, "search", err)
		return
	}
	// The entry holds the filters, not the result count: readers of the
	// log may see less than the searcher, and a count would tell them
	// how much the searcher's view holds.
	// An identical repeat by the same principal within minutes (the
	// page's auto-refresh) is not a new access and is folded into the
	// entry already written (searchfold.go).
	if s.searchFold.audit(s.searchPrincipal(r, p), r.URL.RawQuery) {
		s.auditLater(r, p, auditEvent{action: meta.AuditSearch, detail: clipN(r.URL.RawQuery, 2048)})
	}
	resp := searchResponse{Recordings: make([]recordingJSON, 0, len(page.Recordings)), Next: page.Next}
	for i := range page.Recordings {
		rec := &page.Recordings[i]
		// Links are resolved on the details route; a list shows none, so
		// it needs no lookup per result. Transcripts can be a megabyte
		// each: the details route has them too.
		j := toJSON(rec, nil)
		j.Transcript = ""
		resp.Recordings = append(resp.Recordings, j)
	}
	s.writeSearchResponse(w, &resp)
}

func writeParamError(w http.ResponseWriter, err error) {
	var pe *paramError
	if errors.As(err, &pe) {
		writeJSON(w, http.StatusBadRequest, apiMessage{Message: pe.Error(), Parameter: pe.param})
		return
	}
	writeError(w, http.StatusBadRequest, err.Error())
}

func (s *Server) handleRecording(w http.ResponseWriter, r *http.Request, p *Principal) {
	rec, ok := s.visible(w, r, p)
	if !ok {
		return
	}
	related, err := s.visibleRelated(p, &rec)
	if err != nil {
		s.internalError(w, r, "related recordings", err)
		return
	}
	s.auditLater(r, p, auditEvent{action: meta.AuditView, recording: rec.ID, tenant: tenantOf(rec.Tenant)})
	writeJSON(w, http.StatusOK, toJSON(&rec, related))
}

func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
