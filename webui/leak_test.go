package webui

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"
)

// TestNoLeakToOutsiders aims every route that names a recording at
// recordings the caller may not see (another user's, another tenant's),
// searches with filters that match only those recordings, mixes them
// into zips, links and bulk deletes, and reads the audit log after all
// that probing. Every answer must be the plain 404 (or an empty result)
// and must carry none of the strings planted in those recordings. A
// positive control checks that the strings do reach who may see them, so
// the grep can fail.
func TestNoLeakToOutsiders(t *testing.T) {
	f := newFixture(t)

	// The audit logs before any probing: the uploads and the planting
	// are in them, and no reader outside may see those.
	f.checkAuditLogs(t, false)

	// Positive control: the planted strings are there for the right eyes.
	control := []struct {
		who     ident
		path    string
		planted []string
	}{
		{"admin", "/api/v1/recordings/" + f.bobRec, f.plantedBob},
		{`t2\t2admin`, "/api/v1/recordings/" + f.carolRec, f.plantedCarol},
		{"bob", "/api/v1/recordings?notes=plantedbobnote", f.plantedBob[:2]},
	}
	for _, c := range control {
		r := f.send(c.who, "GET", c.path, "")
		for _, s := range c.planted {
			if !bytes.Contains(r.body, []byte(s)) {
				t.Fatalf("control: %s as %s lacks %q: %d %s", c.path, c.who, s, r.code, r.body)
			}
		}
	}

	notFound := f.send("alice", "GET", "/api/v1/recordings/"+f.bobRec, "").body
	for _, who := range []ident{"alice", "sup", "aud", "np-user", `t2\t2admin`, `t2\carol`, `t2\t2aud`} {
		for _, victim := range []string{f.bobRec, f.carolRec} {
			if f.sees(t, who, victim) {
				continue
			}
			base := "/api/v1/recordings/" + victim
			single := []struct{ method, path, body string }{
				{"GET", base, ""}, {"GET", base + "/audio", ""}, {"GET", base + "/audio?format=mp3", ""},
				{"GET", base + "/download?format=wav", ""}, {"GET", base + "/related", ""},
				{"DELETE", base, ""}, {"POST", base + "/notes", `{"text":"x"}`}, {"PUT", base + "/rating", `{"rating":2}`},
				{"PUT", base + "/category", `{"category":"x"}`}, {"PUT", base + "/fields/k", `{"value":"v"}`},
				{"PUT", base + "/complete", `{"complete":true}`}, {"PUT", base + "/review-minutes", `{"minutes":1}`},
				{"PUT", base + "/transcript", `{"transcript":"x"}`}, {"POST", base + "/bookmarks", `{"type":"manual","offsetMs":1}`},
				{"POST", base + "/preserve", ""}, {"POST", base + "/release", ""},
				{"POST", base + "/related", `{"other":"` + f.target + `","relation":"x"}`},
				{"POST", "/api/v1/recordings/" + f.target + "/related", `{"other":"` + victim + `","relation":"x"}`},
				{"POST", "/api/v1/recordings/download", `{"ids":["` + f.target + `","` + victim + `"],"format":"wav"}`},
			}
			for _, c := range single {
				r := f.send(who, c.method, c.path, c.body)
				// 403 where the role forbids the action outright is fine: it
				// says nothing about the recording. Anything else is 404.
				if r.code == http.StatusForbidden {
					continue
				}
				if r.code != http.StatusNotFound {
					t.Errorf("%s %s as %s: %d, want 404 (%s)", c.method, c.path, who, r.code, r.body)
				}
				if c.path != "/api/v1/recordings/download" && !bytes.Equal(r.body, notFound) {
					t.Errorf("%s %s as %s: body %s differs from the plain 404 %s", c.method, c.path, who, r.body, notFound)
				}
				f.checkNoLeak(t, who, c.method+" "+c.path, r)
			}
			// Bulk delete echoes the IDs it was given, nothing more.
			r := f.send(who, "POST", "/api/v1/recordings/delete", `{"ids":["`+victim+`"]}`)
			if r.code == http.StatusOK {
				var res bulkResponse
				r.json(t, &res)
				if len(res.Results) != 1 || res.Results[0].Status != "not-found" || res.Results[0].Message != errNoRecording {
					t.Errorf("bulk delete of an invisible recording as %s: %s", who, r.body)
				}
			}
		}
		// Searches that match only the planted recordings find nothing.
		for _, q := range []string{"notes=plantedbobnote", "notes=plantedcarolnote", "callId=PLANTED-PBX-BOB", "callId=PLANTED-PBX-CAROL",
			"remoteNumber=%2B417600", "remoteNumber=%2B417900", "category=plantedcat-BOB", "category=plantedcat-CAROL",
			"recordingId=" + f.bobRec, "recordingId=" + f.carolRec, "localNumber=9099", "bookmark=manual", "from=2000-01-01", "localUser=" + f.users["bob"].ID} {
			r := f.send(who, "GET", "/api/v1/recordings?"+q, "")
			if r.code == http.StatusForbidden {
				continue
			}
			if r.code != http.StatusOK {
				t.Errorf("search %s as %s: %d %s", q, who, r.code, r.body)
			}
			var page searchResponse
			r.json(t, &page)
			for _, rec := range page.Recordings {
				if !f.sees(t, who, rec.ID) {
					t.Errorf("search %s as %s found %s", q, who, rec.ID)
				}
			}
			f.checkNoLeak(t, who, "search "+q, r)
		}
	}
	// After all that probing the audit logs hold the probes; whoever reads
	// them must not learn the probed recordings' metadata either. Search
	// entries are left out of the grep: they record what the searcher
	// typed, which the probes above took from the planted strings.
	f.checkAuditLogs(t, true)
	// And the global admin does see the probes, with the probed IDs.
	r := f.send("admin", "GET", "/api/v1/audit?recording="+url.QueryEscape(f.carolRec)+"&limit=1000", "")
	var page auditResponse
	r.json(t, &page)
	denied := 0
	for _, e := range page.Entries {
		if e.Outcome == "denied" {
			denied++
		}
	}
	if denied == 0 {
		t.Errorf("the global admin sees no denied probes of carol's recording: %s", r.body)
	}
}

// checkAuditLogs reads the audit log as the readers outside bob's and
// carol's view and greps what they get.
func (f *fixture) checkAuditLogs(t *testing.T, skipSearches bool) {
	t.Helper()
	for _, who := range []ident{"aud", `t2\t2admin`, `t2\t2aud`} {
		for _, q := range []string{"?limit=1000", "?action=view", "?action=annotate", "?recording=" + url.QueryEscape(f.bobRec), "?recording=" + url.QueryEscape(f.carolRec)} {
			r := f.send(who, "GET", "/api/v1/audit"+q, "")
			if r.code != http.StatusOK {
				t.Fatalf("audit%s as %s: %d %s", q, who, r.code, r.body)
			}
			var page auditResponse
			r.json(t, &page)
			if q == "?limit=1000" && len(page.Entries) == 0 {
				t.Errorf("audit as %s is empty", who)
			}
			if skipSearches {
				kept := page.Entries[:0]
				for _, e := range page.Entries {
					if e.Action != "search" {
						kept = append(kept, e)
					}
				}
				page.Entries = kept
				r.body = []byte(jsonMarshal(page))
			}
			f.checkNoLeak(t, who, "audit"+q, r)
		}
	}
}
