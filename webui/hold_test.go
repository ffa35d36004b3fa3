package webui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// TestCaseHold: a case is held at once, by IDs or by a search, each
// recording audited with the case name; recordings the caller may not see
// are neither held nor named.
func TestCaseHold(t *testing.T) {
	f := newFixture(t)
	a, b := f.freshRecording(t, false), f.freshRecording(t, false)
	r := f.send("admin", "POST", "/api/v1/recordings/preserve", `{"ids":["`+a+`","`+b+`","nope"],"case":"case-4711"}`)
	var resp casePreserveResponse
	r.json(t, &resp)
	if r.code != 200 || resp.Held != 2 || len(resp.Results) != 3 || resp.Results[2].Status != "not-found" {
		t.Fatalf("hold by ids: %d %s", r.code, r.body)
	}
	for _, id := range []string{a, b} {
		rec, _ := f.st.Meta().Recording(id)
		if rec.Preserved == nil {
			t.Fatalf("%s not held", id)
		}
		es := f.auditEntries(t, meta.AuditQuery{Recording: id, Action: meta.AuditPreserve})
		if len(es) != 1 || !strings.Contains(es[0].Detail, "case-4711") {
			t.Fatalf("audit of the case hold: %+v", es)
		}
	}
	// Another tenant's admin: the default tenant's recording is neither
	// held nor told apart from one that does not exist.
	other := f.freshRecording(t, false)
	r = f.send(`t2\t2admin`, "POST", "/api/v1/recordings/preserve", `{"ids":["`+other+`","`+f.carolRec+`"]}`)
	r.json(t, &resp)
	if r.code != 200 || resp.Held != 1 || resp.Results[0].Status != "not-found" {
		t.Fatalf("hold across tenants: %d %s", r.code, r.body)
	}
	if rec, _ := f.st.Meta().Recording(other); rec.Preserved != nil {
		t.Fatal("another tenant's admin held a recording of the default tenant")
	}
	// By search: everything alice's supervisor sees in the last week.
	c := f.freshRecording(t, false)
	r = f.send("sup", "POST", "/api/v1/recordings/preserve", `{"query":"sort=oldest","until":"2999-01-01T00:00:00Z","case":"by search"}`)
	r.json(t, &resp)
	if r.code != 200 || resp.Held == 0 {
		t.Fatalf("hold by search: %d %s", r.code, r.body)
	}
	if rec, _ := f.st.Meta().Recording(c); rec.Preserved == nil {
		t.Fatalf("a recording the search finds was not held: %s", r.body)
	}
	if strings.Contains(string(r.body), f.carolRec) {
		t.Fatalf("the hold names another tenant's recording: %s", r.body)
	}
	for _, bad := range []string{`{}`, `{"ids":["x"],"query":"sort=oldest"}`, `{"query":"nosuch=1"}`, `{"ids":["x"],"until":"2000-01-01T00:00:00Z"}`} {
		if r := f.send("admin", "POST", "/api/v1/recordings/preserve", bad); r.code != 400 {
			t.Errorf("%s: %d %s", bad, r.code, r.body)
		}
	}
}

// TestPreservePeriod: with storage.preserve_days set, Preserve without an
// end date holds a recording that many days past the later of now and its
// deletion date (which moves out with it); "indefinite" still holds it
// until released; both at once is refused.
func TestPreservePeriod(t *testing.T) {
	f := newFixture(t)
	f.srv.cfg.PreserveDays = 3650
	now := f.clock.Now().UTC()
	fresh := f.freshRecording(t, false)
	dated := f.freshRecording(t, false)
	deleteAt := now.AddDate(0, 0, 30).Truncate(time.Second)
	if _, err := f.st.Apply(context.Background(), &meta.SetDeleteAfter{ID: dated, DeleteAfter: deleteAt}); err != nil {
		t.Fatal(err)
	}
	forever := f.freshRecording(t, false)

	for id, want := range map[string]time.Time{fresh: now.AddDate(0, 0, 3650), dated: deleteAt.AddDate(0, 0, 3650)} {
		if r := f.send("admin", "POST", "/api/v1/recordings/"+id+"/preserve", ""); r.code != 200 {
			t.Fatalf("preserve: %d %s", r.code, r.body)
		}
		rec, _ := f.st.Meta().Recording(id)
		if rec.Preserved == nil || !rec.Preserved.Until.Equal(want) {
			t.Errorf("%s: held %+v, want until %v", id, rec.Preserved, want)
		}
		if id == dated && !rec.DeleteAfter.Equal(want) {
			t.Errorf("the deletion date stayed %v, want %v", rec.DeleteAfter, want)
		}
	}
	if r := f.send("admin", "POST", "/api/v1/recordings/"+forever+"/preserve", `{"indefinite":true}`); r.code != 200 {
		t.Fatalf("indefinite: %d %s", r.code, r.body)
	}
	if rec, _ := f.st.Meta().Recording(forever); rec.Preserved == nil || !rec.Preserved.Until.IsZero() {
		t.Errorf("indefinite hold: %+v", rec.Preserved)
	}
	if r := f.send("admin", "POST", "/api/v1/recordings/"+fresh+"/preserve", `{"indefinite":true,"until":"2999-01-01T00:00:00Z"}`); r.code != 400 {
		t.Errorf("until and indefinite together: %d", r.code)
	}
	es := f.auditEntries(t, meta.AuditQuery{Action: meta.AuditPreserve, Recording: fresh})
	if len(es) == 0 || !strings.Contains(es[0].Detail, "3650 days") {
		t.Errorf("the period hold's audit entry: %+v", es)
	}
}
