package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/bundle"
	"github.com/callvault/callvault/store/meta"
)

// ownJob makes a finished export job owned by the caller (the matrix's
// caller, whatever its role) and returns the path of suffix on it.
func ownJob(suffix string) func(*testing.T, *fixture, ident) (string, string, string) {
	return func(t *testing.T, f *fixture, who ident) (string, string, string) {
		by := f.users[string(who)].ID
		if who == "" {
			by = "anonymous"
		}
		j, err := f.srv.data.Exports.Submit(store.ExportRequest{IDs: []string{f.target}, By: by, Tenant: f.users[string(who)].Tenant})
		if err != nil {
			t.Fatal(err)
		}
		waitExport(t, f.testEnv, j.ID, store.JobDone)
		return "/api/v1/exports/" + j.ID + suffix, "", ""
	}
}

// waitExport polls the job (through the store's jobs, not the API) until
// it is in one of states.
func waitExport(t *testing.T, e *testEnv, id string, states ...string) store.ExportJob {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := e.srv.data.Exports.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range states {
			if j.State == s {
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("export job %s is %s after 30 s (want %v): %s", id, j.State, states, j.Error)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestExportAPI: an auditor exports all preserved recordings it may see
// as a job; the job reports progress and the fingerprint, the download is
// a bundle that verifies and holds exactly those recordings, the creation
// and the download are audited; jobs are private to their owner (an admin
// of the tenant sees them); an auditor cannot export what is not held;
// bad requests are 400.
func TestExportAPI(t *testing.T) {
	f := newFixture(t)
	r := f.send("aud", http.MethodPost, "/api/v1/exports", `{"preserved":true}`)
	if r.code != http.StatusAccepted {
		t.Fatalf("POST exports: %d %s", r.code, r.body)
	}
	var job map[string]any
	r.json(t, &job)
	for _, k := range []string{"id", "state", "total", "done", "bytes", "created", "by"} {
		if _, ok := job[k]; !ok {
			t.Errorf("the 202 lacks %q: %s", k, r.body)
		}
	}
	id := job["id"].(string)
	if job["state"] != "queued" || r.hdr.Get("Location") != "/api/v1/exports/"+id {
		t.Errorf("202: %s, Location %q", r.body, r.hdr.Get("Location"))
	}
	// The preserved recordings the auditor sees: the default tenant's
	// auditor sees every tenant's held recordings (View), never bob's,
	// which is not held.
	want := map[string]bool{}
	all, err := f.st.Meta().RecordingsAfter("", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range all {
		if rec.Preserved != nil && rec.Status != meta.StatusDeleted {
			want[rec.ID] = true
		}
	}
	if !want[f.target] || !want[f.other] || !want[f.carolRec] || want[f.bobRec] {
		t.Fatalf("fixture: preserved set %v", want)
	}
	waitExport(t, f.testEnv, id, store.JobDone, store.JobFailed)
	r = f.send("aud", http.MethodGet, "/api/v1/exports/"+id, "")
	var got store.ExportJob
	r.json(t, &got)
	if r.code != 200 || got.State != store.JobDone || got.Total != len(want) || got.Done != got.Total || got.Bytes == 0 || got.Fingerprint == "" {
		t.Fatalf("GET job: %d %s", r.code, r.body)
	}
	r = f.send("aud", http.MethodGet, "/api/v1/exports/"+id+"/download", "")
	if r.code != 200 || r.hdr.Get("Content-Type") != "application/zip" || int64(len(r.body)) != got.Bytes {
		t.Fatalf("download: %d %v, %d bytes (job says %d)", r.code, r.hdr, len(r.body), got.Bytes)
	}
	var rep *bundle.Report
	rep, err = bundle.Verify(bytes.NewReader(r.body), int64(len(r.body)), got.Fingerprint)
	if err != nil || !rep.OK() {
		t.Fatalf("bundle: %v %+v", err, rep)
	}
	if len(rep.Manifest.Recordings) != len(want) {
		t.Fatalf("bundle holds %d recordings, want %d", len(rep.Manifest.Recordings), len(want))
	}
	for _, rec := range rep.Manifest.Recordings {
		if !want[rec.ID] {
			t.Errorf("bundle holds %s, which the auditor may not export", rec.ID)
		}
	}
	// HTTP ranges: the bundle decrypts from any offset.
	req := httptest.NewRequest(http.MethodGet, "/api/v1/exports/"+id+"/download", nil)
	req.Header.Set("Range", "bytes=0-3")
	req.SetBasicAuth("aud", testPassword)
	if rr := f.do(req); rr.code != http.StatusPartialContent || string(rr.body) != "PK\x03\x04" {
		t.Errorf("range 0-3: %d %q", rr.code, rr.body)
	}
	// Audited: the job's creation and its download, by the auditor.
	page, err := f.st.Meta().SearchAudit(meta.AuditQuery{Action: meta.AuditExport, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var created, downloaded bool
	for _, e := range page.Entries {
		if e.Actor != f.users["aud"].ID {
			continue
		}
		created = created || strings.Contains(e.Detail, "export job "+id+" queued")
		downloaded = downloaded || strings.Contains(e.Detail, "export job "+id+" downloaded")
	}
	if !created || !downloaded {
		t.Errorf("audit: created %v, downloaded %v", created, downloaded)
	}

	// Listings: the owner and the tenant's admin see it; others do not.
	for who, sees := range map[ident]bool{"aud": true, "admin": true, `t2\t2aud`: false, `t2\t2admin`: false} {
		r := f.send(who, http.MethodGet, "/api/v1/exports", "")
		var list []store.ExportJob
		r.json(t, &list)
		found := false
		for _, j := range list {
			found = found || j.ID == id
		}
		if found != sees {
			t.Errorf("%s lists the job: %v, want %v", who, found, sees)
		}
		if g := f.send(who, http.MethodGet, "/api/v1/exports/"+id, ""); (g.code == 200) != sees {
			t.Errorf("%s GET job: %d", who, g.code)
		}
	}
	if r := f.send("alice", http.MethodGet, "/api/v1/exports", ""); r.code != http.StatusForbidden {
		t.Errorf("a user lists exports: %d", r.code)
	}

	// An auditor cannot export a recording that is not held; bad bodies.
	if r := f.send("aud", http.MethodPost, "/api/v1/exports", `{"ids":["`+f.bobRec+`"]}`); r.code != http.StatusNotFound {
		t.Errorf("auditor exports an unheld recording: %d %s", r.code, r.body)
	}
	for _, body := range []string{`{}`, `{"ids":["x"],"preserved":true}`, `{"query":"sort=sideways"}`, `{"nope":1}`} {
		if r := f.send("admin", http.MethodPost, "/api/v1/exports", body); r.code != http.StatusBadRequest {
			t.Errorf("POST %s: %d %s", body, r.code, r.body)
		}
	}
	// By search: the admin exports bob's calls by number.
	r = f.send("admin", http.MethodPost, "/api/v1/exports", `{"query":"remoteNumber=%2B41760001357&from=2000-01-01T00:00:00Z"}`)
	if r.code != http.StatusAccepted {
		t.Fatalf("export by query: %d %s", r.code, r.body)
	}
	var byQuery store.ExportJob
	r.json(t, &byQuery)
	if byQuery.Total != 1 {
		t.Errorf("query export of bob's call: total %d", byQuery.Total)
	}

	// DELETE removes the job; then it is gone.
	if r := f.send("aud", http.MethodDelete, "/api/v1/exports/"+id, ""); r.code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.code, r.body)
	}
	if r := f.send("aud", http.MethodGet, "/api/v1/exports/"+id+"/download", ""); r.code != http.StatusNotFound {
		t.Errorf("download of a deleted job: %d", r.code)
	}
}

// TestExportDownloadBeforeDone: a job that has not finished answers 409
// to a download.
func TestExportDownloadBeforeDone(t *testing.T) {
	var jobs *store.ExportJobs
	e := newEnv(t, func(c *Config, d *Data) {
		st := d.Commands.(*store.Store)
		var err error
		if jobs, err = st.NewExportJobs(store.ExportJobsConfig{Workers: 1}); err != nil {
			t.Fatal(err)
		}
		d.Exports = jobs
	})
	t.Cleanup(func() { _ = jobs.Close() })
	admin := e.addUser("admin", meta.RoleAdmin)
	// Long recordings keep the one worker busy.
	var ids []string
	for i := range 3 {
		r, err := e.st.Create(context.Background(), meta.Recording{Start: time.Now().Add(time.Duration(-i) * time.Hour), Direction: meta.DirIncoming, Source: meta.SourceUpload, File: meta.FileInfo{Format: meta.FormatWAV}})
		if err != nil {
			t.Fatal(err)
		}
		r.Write(longWAV(8000 * 300))
		if _, err := r.Close(context.Background(), store.Final{}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID())
	}
	body, _ := json.Marshal(map[string]any{"ids": ids})
	var last string
	for range 2 {
		req := basic(httpReq(http.MethodPost, "/api/v1/exports", string(body)), "admin")
		r := e.do(req)
		if r.code != http.StatusAccepted {
			t.Fatalf("POST: %d %s", r.code, r.body)
		}
		var j store.ExportJob
		r.json(t, &j)
		last = j.ID
	}
	r := e.do(basic(httpReq(http.MethodGet, "/api/v1/exports/"+last+"/download", ""), "admin"))
	if r.code != http.StatusConflict {
		t.Fatalf("download of an unfinished job: %d %s", r.code, r.body)
	}
	_ = admin
}

func httpReq(method, path, body string) *http.Request {
	req, _ := http.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// longWAV is a mono 16-bit 8 kHz WAV of n samples of a ramp.
func longWAV(n int) []byte {
	var b bytes.Buffer
	le := func(v uint32, size int) {
		for i := range size {
			b.WriteByte(byte(v >> (8 * i)))
		}
	}
	b.WriteString("RIFF")
	le(uint32(36+2*n), 4)
	b.WriteString("WAVEfmt ")
	le(16, 4)
	le(1, 2)
	le(1, 2)
	le(8000, 4)
	le(16000, 4)
	le(2, 2)
	le(16, 2)
	b.WriteString("data")
	le(uint32(2*n), 4)
	for i := range n {
		le(uint32(uint16(int16(i%2000-1000))), 2)
	}
	return b.Bytes()
}

// TestPurgeRoute: the installation's admin runs the purge; recordings
// past their retention go, held ones stay, the run is audited.
func TestPurgeRoute(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	ctx := context.Background()
	if _, err := e.st.Apply(ctx, &meta.SetRetention{Days: 1}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 2 {
		r, err := e.st.Create(ctx, meta.Recording{Start: e.clock.Now().AddDate(0, 0, -3), Direction: meta.DirIncoming, Source: meta.SourceUpload, File: meta.FileInfo{Format: meta.FormatWAV}})
		if err != nil {
			t.Fatal(err)
		}
		r.Write(longWAV(800))
		if _, err := r.Close(ctx, store.Final{}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID())
		_ = i
	}
	if _, err := e.st.Apply(ctx, &meta.Preserve{ID: ids[1], By: "x", At: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	r := e.do(basic(httpReq(http.MethodPost, "/api/v1/retention/purge", ""), "admin"))
	var out purgeResponse
	r.json(t, &out)
	if r.code != 200 || out.Deleted != 1 {
		t.Fatalf("purge: %d %s", r.code, r.body)
	}
	for i, want := range []meta.Status{meta.StatusDeleted, meta.StatusComplete} {
		if rec, _ := e.st.Meta().Recording(ids[i]); rec.Status != want {
			t.Errorf("recording %d is %s, want %s", i, rec.Status, want)
		}
	}
	page, _ := e.st.Meta().SearchAudit(meta.AuditQuery{Action: meta.AuditPurge})
	byHand := false
	for _, en := range page.Entries {
		byHand = byHand || strings.Contains(en.Detail, "run by hand: 1 recordings deleted")
	}
	if !byHand {
		t.Errorf("the purge run is not audited: %+v", page.Entries)
	}
}
