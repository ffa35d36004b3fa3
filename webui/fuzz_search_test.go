package webui

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// FuzzSearchQuery feeds query strings to the search parser. It must never
// panic; an error must be ErrBadParameter naming a parameter; a query it
// accepts must be within the bounds the parser promises and must run
// against a real metadata database without an error other than a bad
// cursor (which only meta can judge).
func FuzzSearchQuery(f *testing.F) {
	for _, s := range []string{
		"", "limit=10&sort=oldest", "from=2024-01-01&to=2024-02-01T10:00:00Z", "minDurationMs=1000&maxDurationMs=5000",
		"callId=abc@host", "recordingId=0190c000-0000-7000-8000-000000000000", "reference=2024000000001",
		"notes=hello+world", "direction=incoming", "localUser=u1", "localNumber=20", "remoteNumber=%2B41",
		"remoteName=m%C3%BCl", "group=g1", "minRating=3", "category=sales", "preserved=true", "bookmark=dtmf",
		"status=complete", "cursor=AQAAAAGQwAAAAAAAAAAAAAAAAAAAAAAA", "limit=0", "x=1", "a=%zz", "from=9999-12-31",
		"limit=1&limit=2", "notes=%00", "to=1970-01-01", "from=2024-02-01&to=2024-01-01",
	} {
		f.Add(s)
	}
	db, err := meta.Open(filepath.Join(f.TempDir(), "meta.db"), meta.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseSearchQuery(raw, now)
		if err != nil {
			var pe *paramError
			if !errors.Is(err, ErrBadParameter) || !errors.As(err, &pe) || pe.param == "" {
				t.Fatalf("%q: error %v does not name a parameter", raw, err)
			}
			return
		}
		switch {
		case q.Limit < 0 || q.Limit > meta.MaxLimit, q.MinRating < 0 || q.MinRating > 5,
			q.MinDurationMs < 0, q.MaxDurationMs < 0, q.MaxDurationMs > 0 && q.MaxDurationMs < q.MinDurationMs,
			!q.Start.IsZero() && !q.End.IsZero() && !q.End.After(q.Start),
			q.Scope.All || q.Scope.Tenant != "" || q.Scope.User != "" || q.Scope.Groups != nil, q.IncludeDeleted,
			q.Status == meta.StatusDeleted:
			t.Fatalf("%q: out-of-bounds query %+v", raw, q)
		}
		q.Scope = meta.Scope{User: "u1"}
		if _, err := db.Search(q); err != nil && !(errors.Is(err, meta.ErrInvalid) && q.Cursor != "") {
			t.Fatalf("%q: search failed: %v", raw, err)
		}
	})
}

// FuzzAuditQuery: the audit route's query parser never panics, names the
// parameter it refuses, and what it accepts is in bounds.
func FuzzAuditQuery(f *testing.F) {
	for _, s := range []string{"", "user=u&recording=r&action=play", "from=2024-01-01&to=2024-02-01", "limit=1000", "cursor=17",
		"action=nope", "limit=0", "cursor=0", "x=1", "user=a&user=b", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseAuditQuery(raw)
		if err != nil {
			var pe *paramError
			if !errors.As(err, &pe) || pe.param == "" {
				t.Fatalf("%q: %v names no parameter", raw, err)
			}
			return
		}
		if q.Limit < 0 || q.Limit > 1000 || q.Tenant != nil {
			t.Fatalf("%q: %+v", raw, q)
		}
	})
}

// FuzzRange: a Range header never panics and never yields bytes outside
// the body.
func FuzzRange(f *testing.F) {
	for _, s := range []string{"", "bytes=0-0", "bytes=5-", "bytes=-5", "bytes=0-1,3-4", "bytes=9-3", "bytes=-0", "items=1-2", "bytes=99999999999999999999-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
			if size < 0 {
				size = 0
			}
		}
		start, length, partial, ok := parseRange(h, size)
		if !ok {
			return
		}
		if start < 0 || length < 0 || start+length > size || (!partial && (start != 0 || length != size)) || (partial && length == 0) {
			t.Fatalf("%q of %d: start %d length %d partial %v", h, size, start, length, partial)
		}
	})
}

// TestAuditActionNames: the actions the API documents and filters by are
// exactly those meta accepts (meta refuses an unknown action in a query).
func TestAuditActionNames(t *testing.T) {
	db, err := meta.Open(filepath.Join(t.TempDir(), "meta.db"), meta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, a := range auditActionNames() {
		if _, err := db.SearchAudit(meta.AuditQuery{Action: meta.AuditAction(a)}); err != nil {
			t.Errorf("meta refuses %q: %v", a, err)
		}
	}
	// Every meta action constant named in the API docs is known to meta;
	// the reverse is checked by appending each known one.
	for _, a := range []meta.AuditAction{meta.AuditLogin, meta.AuditLoginFailed, meta.AuditLogout, meta.AuditSearch, meta.AuditView,
		meta.AuditPlay, meta.AuditDownload, meta.AuditExport, meta.AuditUpload, meta.AuditDelete, meta.AuditPreserve, meta.AuditRelease,
		meta.AuditNote, meta.AuditRating, meta.AuditAnnotate, meta.AuditConfig, meta.AuditUser, meta.AuditToken, meta.AuditKey,
		meta.AuditPurge, meta.AuditSeal} {
		found := false
		for _, n := range auditActionNames() {
			found = found || n == string(a)
		}
		if !found {
			t.Errorf("action %q is missing from auditActionNames", a)
		}
	}
}
