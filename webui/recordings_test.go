package webui

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
	"github.com/google/uuid"
)

// auditFailer fails audit appends while on is set; every other command
// passes through to the store.
type auditFailer struct {
	Committer
	on atomic.Bool
}

func (a *auditFailer) Apply(ctx context.Context, cmd meta.Command) (meta.Result, error) {
	if _, ok := cmd.(*meta.AppendAudit); ok && a.on.Load() {
		return meta.Result{}, errors.New("audit disk gone")
	}
	return a.Committer.Apply(ctx, cmd)
}

// auditEntries reads the whole audit log.
func (f *fixture) auditEntries(t *testing.T, q meta.AuditQuery) []meta.AuditEntry {
	t.Helper()
	q.Limit = 1000
	if err := f.srv.auditQ.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := f.st.Meta().SearchAudit(q)
	if err != nil {
		t.Fatal(err)
	}
	return page.Entries
}

// TestAudioRange plays the target through the API: the whole WAV equals
// the store's own render, Range requests answer 206 with exactly the
// bytes of that render at that offset (so a browser can seek), a range
// past the end answers 416, and every play is in the audit log with who,
// what, when and from where.
func TestAudioRange(t *testing.T) {
	f := newFixture(t)
	want := renderAll(t, f, f.target, audio.RenderOptions{Format: audio.OutputWAV})
	path := "/api/v1/recordings/" + f.target + "/audio"
	before := len(f.auditEntries(t, meta.AuditQuery{Recording: f.target, Action: meta.AuditPlay}))

	r := f.send("alice", "GET", path, "")
	if r.code != 200 || !bytes.Equal(r.body, want) || r.hdr.Get("Content-Type") != "audio/wav" || r.hdr.Get("Accept-Ranges") != "bytes" ||
		r.hdr.Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Fatalf("whole: %d, %d bytes (want %d), headers %v", r.code, len(r.body), len(want), r.hdr)
	}
	if string(r.body[:4]) != "RIFF" || binary.LittleEndian.Uint16(r.body[22:]) != 2 {
		t.Fatalf("not a stereo WAV: % x", r.body[:24])
	}
	size := int64(len(want))
	for _, c := range []struct {
		rng        string
		start, end int64 // inclusive
	}{
		{"bytes=0-0", 0, 0}, {"bytes=0-43", 0, 43}, {"bytes=44-1000", 44, 1000}, {"bytes=1001-", 1001, size - 1},
		{"bytes=-100", size - 100, size - 1}, {fmt.Sprintf("bytes=%d-%d", size-7, size+500), size - 7, size - 1},
		{"bytes=12345-54321", 12345, 54321},
	} {
		req := httptest.NewRequest("GET", path, nil)
		req.SetBasicAuth("sup", testPassword)
		req.Header.Set("Range", c.rng)
		r := f.do(req)
		if r.code != http.StatusPartialContent || !bytes.Equal(r.body, want[c.start:c.end+1]) ||
			r.hdr.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, size) {
			t.Errorf("%s: %d, %d bytes, Content-Range %q", c.rng, r.code, len(r.body), r.hdr.Get("Content-Range"))
		}
	}
	for _, rng := range []string{fmt.Sprintf("bytes=%d-", size), "bytes=-0"} {
		req := httptest.NewRequest("GET", path, nil)
		req.SetBasicAuth("sup", testPassword)
		req.Header.Set("Range", rng)
		if r := f.do(req); r.code != http.StatusRequestedRangeNotSatisfiable || r.hdr.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("%s: %d %v", rng, r.code, r.hdr)
		}
	}
	// Several ranges or garbage: the whole file (RFC 9110 lets a server ignore Range).
	req := httptest.NewRequest("GET", path, nil)
	req.SetBasicAuth("sup", testPassword)
	req.Header.Set("Range", "bytes=0-1,5-9")
	if r := f.do(req); r.code != 200 || !bytes.Equal(r.body, want) {
		t.Errorf("multi-range: %d %d bytes", r.code, len(r.body))
	}
	mono := renderAll(t, f, f.target, audio.RenderOptions{Format: audio.OutputWAV, Layout: audio.LayoutMono})
	if r := f.send("alice", "GET", path+"?layout=mono", ""); r.code != 200 || !bytes.Equal(r.body, mono) {
		t.Errorf("mono: %d, %d bytes, want %d", r.code, len(r.body), len(mono))
	}
	for q, param := range map[string]string{"?format=ogg": "format", "?layout=quad": "layout", "?speed=2": "speed", "?format=wav&format=mp3": "format"} {
		r := f.send("alice", "GET", path+q, "")
		var m apiMessage
		r.json(t, &m)
		if r.code != 400 || m.Parameter != param {
			t.Errorf("%s: %d %s", q, r.code, r.body)
		}
	}
	plays := f.auditEntries(t, meta.AuditQuery{Recording: f.target, Action: meta.AuditPlay})
	if got := len(plays) - before; got != 1+7+1+1 {
		t.Errorf("%d play entries, want %d", got, 10)
	}
	e := plays[0] // newest: the mono play by alice
	if e.Actor != f.users["alice"].ID || e.ActorName != "alice" || e.Address != "192.0.2.1" || e.Outcome != "ok" ||
		!strings.Contains(e.Detail, "mono") || e.Time.IsZero() || e.Tenant != "" {
		t.Errorf("play entry %+v", e)
	}
	if !slices.ContainsFunc(plays, func(e meta.AuditEntry) bool { return strings.Contains(e.Detail, "bytes 12345-54321/") }) {
		t.Error("the range of a seek is not in the audit log")
	}
}

// TestAudioRangeMP3: MP3 playback is seekable too: HEAD and GET announce
// the size, and ranges anywhere (across the encoder's segments, at the
// end) are the same bytes as the whole answer.
func TestAudioRangeMP3(t *testing.T) {
	f := newFixture(t)
	path := "/api/v1/recordings/" + f.target + "/audio?format=mp3"
	r := f.send("alice", "GET", path, "")
	if r.code == http.StatusNotImplemented {
		t.Skip("built without LAME (no cgo): no MP3 encoder")
	}
	want := r.body
	size := int64(len(want))
	if r.code != 200 || r.hdr.Get("Content-Type") != "audio/mpeg" || r.hdr.Get("Accept-Ranges") != "bytes" ||
		r.hdr.Get("Content-Length") != fmt.Sprint(size) || size < 1000 {
		t.Fatalf("whole: %d, %d bytes, headers %v", r.code, size, r.hdr)
	}
	if !bytes.Equal(want, renderAll(t, f, f.target, audio.RenderOptions{Format: audio.OutputMP3})) {
		t.Fatal("the MP3 answer differs from the store's render")
	}
	for _, rng := range [][2]int64{{0, 0}, {100, 999}, {size / 2, size/2 + 4096}, {size - 10, size - 1}} {
		req := httptest.NewRequest("GET", path, nil)
		req.SetBasicAuth("sup", testPassword)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", rng[0], rng[1]))
		end := min(rng[1], size-1)
		r := f.do(req)
		if r.code != http.StatusPartialContent || !bytes.Equal(r.body, want[rng[0]:end+1]) ||
			r.hdr.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", rng[0], end, size) {
			t.Errorf("%v: %d, %d bytes, Content-Range %q", rng, r.code, len(r.body), r.hdr.Get("Content-Range"))
		}
	}
	req := httptest.NewRequest("HEAD", path, nil)
	req.SetBasicAuth("sup", testPassword)
	if r := f.do(req); r.code != 200 || r.hdr.Get("Content-Length") != fmt.Sprint(size) || len(r.body) != 0 {
		t.Errorf("HEAD: %d, Content-Length %q, %d body bytes", r.code, r.hdr.Get("Content-Length"), len(r.body))
	}
}

func renderAll(t *testing.T, f *fixture, id string, o audio.RenderOptions) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := f.st.Render(context.Background(), id, &b, o); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestAudioAuditedBeforeBytes: when the audit entry cannot be written, no
// byte of audio leaves, for play, download and zip alike.
func TestAudioAuditedBeforeBytes(t *testing.T) {
	var fail *auditFailer
	f := &fixture{}
	f = newFixtureWith(t, func(c *Config, d *Data) {
		fail = &auditFailer{Committer: d.Commands}
		d.Commands = fail
	})
	fail.on.Store(true)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/recordings/" + f.target + "/audio", ""},
		{"GET", "/api/v1/recordings/" + f.target + "/audio?format=mp3", ""},
		{"GET", "/api/v1/recordings/" + f.target + "/download?format=wav", ""},
		{"GET", "/api/v1/recordings/" + f.target + "/download", ""},
		{"POST", "/api/v1/recordings/download", `{"ids":["` + f.target + `"]}`},
	} {
		r := f.send("admin", c.method, c.path, c.body)
		var m apiMessage
		r.json(t, &m)
		if r.code != 500 || m.CorrelationID == "" || r.hdr.Get("Content-Type") != "application/json; charset=utf-8" ||
			r.hdr.Get("Content-Disposition") != "" || bytes.Contains(r.body, []byte("RIFF")) {
			t.Errorf("%s %s with the audit log failing: %d %v %.100q", c.method, c.path, r.code, r.hdr, r.body)
		}
	}
	fail.on.Store(false)
	if r := f.send("admin", "GET", "/api/v1/recordings/"+f.target+"/audio", ""); r.code != 200 {
		t.Errorf("audit back: %d", r.code)
	}
}

// newFixtureWith is newFixture with the server's data changed first.
func newFixtureWith(t *testing.T, mod func(*Config, *Data)) *fixture {
	old := fixtureMod
	fixtureMod = mod
	defer func() { fixtureMod = old }()
	return newFixture(t)
}

// TestDownload checks the download name in UTC and in a time zone, the
// MP3 and WAV bodies, and the zip of several recordings.
func TestDownload(t *testing.T) {
	f := newFixture(t)
	rec, _ := f.st.Meta().Recording(f.target)
	r := f.send("alice", "GET", "/api/v1/recordings/"+f.target+"/download?format=wav", "")
	name := rec.Start.UTC().Format("20060102_1504") + "_" + rec.Reference + ".wav"
	if r.code != 200 || r.hdr.Get("Content-Disposition") != `attachment; filename=`+name ||
		!bytes.Equal(r.body, renderAll(t, f, f.target, audio.RenderOptions{Format: audio.OutputWAV})) {
		t.Fatalf("wav download: %d %v", r.code, r.hdr)
	}
	zurich, _ := time.LoadLocation("Asia/Kolkata") // +05:30: the minutes move too
	r = f.send("alice", "GET", "/api/v1/recordings/"+f.target+"/download?tz=Asia/Kolkata", "")
	name = rec.Start.In(zurich).Format("20060102_1504") + "_" + rec.Reference + ".mp3"
	if r.code != 200 || r.hdr.Get("Content-Disposition") != `attachment; filename=`+name || r.hdr.Get("Content-Type") != "audio/mpeg" {
		t.Fatalf("mp3 download: %d %v %.200s", r.code, r.hdr, r.body)
	}
	if _, err := audio.NewMP3Reader(bytes.NewReader(r.body), int64(len(r.body))); err != nil {
		t.Errorf("the MP3 download does not decode: %v", err)
	}
	if r := f.send("alice", "GET", "/api/v1/recordings/"+f.target+"/download?tz=Mars/Olympus", ""); r.code != 400 || !strings.Contains(string(r.body), `"parameter":"tz"`) {
		t.Errorf("bad tz: %d %s", r.code, r.body)
	}

	// Zip: both of alice's recordings, as WAV.
	r = f.send("sup", "POST", "/api/v1/recordings/download", `{"ids":["`+f.target+`","`+f.other+`","`+f.target+`"],"format":"wav"}`)
	if r.code != 200 || r.hdr.Get("Content-Type") != "application/zip" || !strings.HasPrefix(r.hdr.Get("Content-Disposition"), "attachment; filename=recordings_") {
		t.Fatalf("zip: %d %v %.200s", r.code, r.hdr, r.body)
	}
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 2 {
		t.Fatalf("zip holds %d files", len(zr.File))
	}
	for _, zf := range zr.File {
		id := f.target
		if !strings.Contains(zf.Name, rec.Reference) {
			id = f.other
		}
		rc, _ := zf.Open()
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, renderAll(t, f, id, audio.RenderOptions{Format: audio.OutputWAV})) {
			t.Errorf("zip entry %s: %d bytes, %v", zf.Name, len(got), err)
		}
	}
	zips := f.auditEntries(t, meta.AuditQuery{Actor: f.users["sup"].ID, Action: meta.AuditDownload})
	if len(zips) != 2 {
		t.Errorf("%d download entries for the zip, want one per recording", len(zips))
	}
	// 21 IDs: refused before anything is looked up.
	ids := make([]string, 21)
	for i := range ids {
		ids[i] = fmt.Sprintf(`"%s"`, f.freshRecording(t, false))
	}
	if r := f.send("admin", "POST", "/api/v1/recordings/download", `{"ids":[`+strings.Join(ids, ",")+`]}`); r.code != 400 || !strings.Contains(string(r.body), "at most 20") {
		t.Errorf("21 IDs: %d %s", r.code, r.body)
	}
}

// TestChanges applies every change route and checks the recording, the
// audit entry and the refusals.
func TestChanges(t *testing.T) {
	f := newFixture(t)
	base := "/api/v1/recordings/" + f.target
	steps := []struct {
		method, path, body string
		action             meta.AuditAction
		check              func(r recordingJSON) bool
	}{
		{"POST", "/notes", `{"text":"called back"}`, meta.AuditNote, func(r recordingJSON) bool { return r.Notes[len(r.Notes)-1].Text == "called back" }},
		{"PUT", "/rating", `{"rating":5}`, meta.AuditRating, func(r recordingJSON) bool { return r.Rating == 5 }},
		{"PUT", "/category", `{"category":"complaint"}`, meta.AuditAnnotate, func(r recordingJSON) bool { return r.Category == "complaint" }},
		{"PUT", "/fields/ticket", `{"value":"T-99"}`, meta.AuditAnnotate, func(r recordingJSON) bool { return r.CustomFields["ticket"] == "T-99" }},
		{"PUT", "/complete", `{"complete":true}`, meta.AuditAnnotate, func(r recordingJSON) bool { return r.CompleteTransaction }},
		{"PUT", "/review-minutes", `{"minutes":7}`, meta.AuditAnnotate, func(r recordingJSON) bool { return r.ReviewMinutes == 7 }},
		{"PUT", "/transcript", `{"transcript":"hello there"}`, meta.AuditAnnotate, func(r recordingJSON) bool { return r.Transcript == "hello there" }},
		{"POST", "/bookmarks", `{"type":"payment","offsetMs":2500,"label":"card"}`, meta.AuditAnnotate, func(r recordingJSON) bool {
			b := r.Bookmarks[len(r.Bookmarks)-1]
			return b.Type == meta.BookmarkPayment && b.OffsetMs == 2500 && b.Label == "card"
		}},
		{"POST", "/related", `{"other":"` + f.other + `","relation":"transfer"}`, meta.AuditAnnotate, func(r recordingJSON) bool {
			return len(r.Related) == 1 && r.Related[0].ID == f.other && r.Related[0].Relation == "transfer"
		}},
		// The target is held indefinitely (uploaded preserved): alice's
		// release is only a request (202), an admin approves it (below).
		{"POST", "/release", ``, meta.AuditRelease, func(r recordingJSON) bool {
			return r.Preserved != nil && r.Preserved.ReleaseRequestedBy == f.users["alice"].ID
		}},
	}
	for _, s := range steps {
		r := f.send("alice", s.method, base+s.path, s.body)
		var got recordingJSON
		r.json(t, &got)
		want := 200
		if s.path == "/release" {
			want = http.StatusAccepted
		}
		if r.code != want || !s.check(got) {
			t.Errorf("%s %s: %d %s", s.method, s.path, r.code, r.body)
			continue
		}
		es := f.auditEntries(t, meta.AuditQuery{Recording: f.target, Action: s.action})
		if len(es) == 0 || es[0].Actor != f.users["alice"].ID {
			t.Errorf("%s %s: no audit entry by alice", s.method, s.path)
		}
	}
	// Two-person rule: the requester cannot approve, an admin can; then
	// a dated hold is lifted by one person.
	if r := f.send("alice", "POST", base+"/release", ""); r.code != http.StatusConflict {
		t.Errorf("requester approving their own release: %d %s", r.code, r.body)
	}
	if r := f.send("admin", "POST", base+"/release", ""); r.code != 200 || strings.Contains(string(r.body), `"preserved"`) {
		t.Errorf("admin approving the release: %d %s", r.code, r.body)
	}
	if es := f.auditEntries(t, meta.AuditQuery{Recording: f.target, Action: meta.AuditRelease}); len(es) < 2 || !strings.Contains(es[0].Detail, "requested by "+f.users["alice"].ID) {
		t.Errorf("release audit entries: %+v", es)
	}
	if r := f.send("alice", "POST", base+"/preserve", `{"until":"2999-01-01T00:00:00Z"}`); r.code != 200 || !strings.Contains(string(r.body), `"until":"2999-01-01T00:00:00Z"`) {
		t.Errorf("dated preserve: %d %s", r.code, r.body)
	}
	// The related link shows on the other end, and only to who sees it.
	if r := f.send("alice", "GET", "/api/v1/recordings/"+f.other+"/related", ""); !strings.Contains(string(r.body), f.target) {
		t.Errorf("related from the other end: %s", r.body)
	}
	for _, c := range []struct{ method, path, body, want string }{
		{"PUT", "/rating", `{"rating":6}`, "rating"},
		{"PUT", "/rating", `{"rating":0}`, "rating"},
		{"PUT", "/rating", `{"stars":3}`, "unknown field"},
		{"POST", "/notes", `{"text":"  "}`, "text"},
		{"POST", "/bookmarks", `{"type":"party","offsetMs":1}`, "type"},
		{"POST", "/bookmarks", `{"type":"manual","offsetMs":-1}`, "offsetMs"},
		{"POST", "/preserve", `{"until":"2001-01-01T00:00:00Z"}`, "until"},
		{"POST", "/related", `{"other":"` + f.target + `","relation":"self"}`, "itself"},
		{"PUT", "/review-minutes", `{"minutes":-3}`, "minutes"},
		{"PUT", "/category", `{"category":"a"} {"category":"b"}`, "more than one"},
	} {
		if r := f.send("alice", c.method, base+c.path, c.body); r.code != 400 || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, r.code, r.body)
		}
	}
	// Deletion: a preserved recording is refused, a released one is
	// crypto-shredded (its tombstone keeps no key) and audited.
	if r := f.send("admin", "DELETE", base, ""); r.code != http.StatusConflict || !strings.Contains(string(r.body), "legal hold") {
		t.Errorf("delete preserved: %d %s", r.code, r.body)
	}
	if r := f.send("admin", "POST", base+"/release", ""); r.code != 200 {
		t.Fatalf("release: %d", r.code)
	}
	if r := f.send("admin", "DELETE", base, ""); r.code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	tomb, err := f.st.Meta().Recording(f.target)
	if err != nil || tomb.Status != meta.StatusDeleted || len(tomb.File.WrappedDEK) != 0 {
		t.Errorf("after delete: %+v %v", tomb, err)
	}
	if r := f.send("admin", "GET", base, ""); r.code != 404 {
		t.Errorf("deleted recording: %d", r.code)
	}
	if es := f.auditEntries(t, meta.AuditQuery{Recording: f.target, Action: meta.AuditDelete}); len(es) != 2 || es[0].Outcome != "ok" || es[1].Outcome != "denied" {
		t.Errorf("delete entries: %+v", es)
	}
}

// TestBulkDelete: one answer per ID, preserved ones refused, invisible and
// unknown ones "not-found" alike.
func TestBulkDelete(t *testing.T) {
	f := newFixture(t)
	plain1, plain2, held := f.freshRecording(t, false), f.freshRecording(t, false), f.freshRecording(t, true)
	body := `{"ids":["` + strings.Join([]string{plain1, held, f.bobRec, "0190c000-0000-7000-8000-00000000dead", "junk", plain2, plain1}, `","`) + `"]}`
	r := f.send("alice", "POST", "/api/v1/recordings/delete", body)
	var res bulkResponse
	r.json(t, &res)
	got := map[string]string{}
	for _, x := range res.Results {
		got[x.ID] = x.Status
	}
	want := map[string]string{plain1: "deleted", held: "preserved", f.bobRec: "not-found", "0190c000-0000-7000-8000-00000000dead": "not-found", "junk": "not-found", plain2: "deleted"}
	if r.code != 200 || len(res.Results) != 6 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bulk delete: %d %s", r.code, r.body)
	}
	if rec, _ := f.st.Meta().Recording(f.bobRec); rec.Status == meta.StatusDeleted {
		t.Error("alice deleted bob's recording")
	}
	if r := f.send("alice", "POST", "/api/v1/recordings/delete", `{"ids":[]}`); r.code != 400 {
		t.Errorf("no IDs: %d", r.code)
	}
}

// TestSearchFilters checks each query parameter against the recordings it
// must find, within the caller's view, and the 400 answers that name the
// bad parameter.
func TestSearchFilters(t *testing.T) {
	f := newFixture(t)
	if r := f.send("admin", "PUT", "/api/v1/recordings/"+f.target+"/rating", `{"rating":4}`); r.code != 200 {
		t.Fatal(r.code)
	}
	target, _ := f.st.Meta().Recording(f.target)
	ids := func(who ident, q string) []string {
		r := f.send(who, "GET", "/api/v1/recordings?"+q, "")
		if r.code != 200 {
			t.Fatalf("%s as %s: %d %s", q, who, r.code, r.body)
		}
		var page searchResponse
		r.json(t, &page)
		var out []string
		for _, rec := range page.Recordings {
			out = append(out, rec.ID)
		}
		slices.Sort(out)
		return out
	}
	one := func(id string) []string { return []string{id} }
	both := []string{f.target, f.other}
	slices.Sort(both)
	cases := []struct {
		who  ident
		q    string
		want []string
	}{
		{"alice", "", both},
		{"alice", "recordingId=" + f.target, one(f.target)},
		{"alice", "reference=" + target.Reference, one(f.target)},
		{"admin", "callId=PLANTED-PBX-BOB", one(f.bobRec)},
		{"admin", "notes=zebra+plantedbobnote", one(f.bobRec)},
		{"admin", "notes=target", one(f.target)},
		{"admin", "direction=outgoing", one(f.bobRec)},
		{"admin", "localUser=" + f.users["bob"].ID, one(f.bobRec)},
		{"admin", "localNumber=207", one(f.bobRec)},
		{"admin", "remoteNumber=%2B4176", one(f.bobRec)},
		{"admin", "group=g2", one(f.bobRec)},
		{"admin", "minRating=4", one(f.target)},
		{"admin", "category=plantedcat-BOB", one(f.bobRec)},
		{"admin", "bookmark=manual", []string{f.bobRec, f.carolRec}},
		{"bob", "preserved=true", nil},
		// The default tenant's auditor audits the whole appliance: every
		// preserved recording, carol's too, and nothing else whatever is asked.
		{"aud", "", append(slices.Clone(both), f.carolRec)},
		{"aud", "preserved=false", append(slices.Clone(both), f.carolRec)},
		{`t2\t2aud`, "", one(f.carolRec)},
		{`t2\carol`, "", one(f.carolRec)},
		{"admin", "minDurationMs=10000&maxDurationMs=12000&callId=PLANTED-PBX-CAROL", one(f.carolRec)},
		{"admin", "minDurationMs=12000&callId=PLANTED-PBX-CAROL", nil},
		{"admin", "status=complete&recordingId=" + f.other, one(f.other)},
		{"admin", "status=recording&recordingId=" + f.other, nil},
		{"alice", "to=" + url.QueryEscape(target.Start.Add(30*time.Second).Format(time.RFC3339)), one(f.target)},
		{"alice", "from=" + url.QueryEscape(target.Start.Add(30*time.Second).Format(time.RFC3339)), one(f.other)},
		// Outside the default 7 days: nothing, unless the range says so.
		{"admin", "to=2020-01-01", nil},
	}
	for _, c := range cases {
		got := ids(c.who, c.q)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%q as %s: %v, want %v", c.q, c.who, got, want)
		}
	}
	// remoteName has no upload field; set it and search by word prefix.
	if _, err := f.st.Apply(context.Background(), &meta.SetCallInfo{ID: f.other, RemoteParty: &meta.RemoteParty{Number: "+41440000000", Name: "Anna Müller"}}); err != nil {
		t.Fatal(err)
	}
	if got := ids("alice", "remoteName=m%C3%BCl"); !slices.Equal(got, one(f.other)) {
		t.Errorf("remoteName: %v", got)
	}
	// Paging with the cursor, oldest first.
	r := f.send("admin", "GET", "/api/v1/recordings?sort=oldest&limit=1", "")
	var page searchResponse
	r.json(t, &page)
	seen := []string{}
	for page.Next != "" {
		seen = append(seen, page.Recordings[0].ID)
		r = f.send("admin", "GET", "/api/v1/recordings?sort=oldest&limit=1&cursor="+page.Next, "")
		page = searchResponse{}
		r.json(t, &page)
	}
	seen = append(seen, page.Recordings[0].ID)
	if len(seen) < 4 || seen[0] != f.target || seen[1] != f.other {
		t.Errorf("paging: %v", seen)
	}
	for q, param := range map[string]string{
		"color=red": "color", "limit=0": "limit", "limit=501": "limit", "minRating=9": "minRating", "direction=sideways": "direction",
		"from=yesterday": "from", "from=2024-02-01&to=2024-01-01": "to", "minDurationMs=-1": "minDurationMs",
		"minDurationMs=5000&maxDurationMs=10": "maxDurationMs", "status=deleted": "status", "preserved=yes": "preserved",
		"bookmark=x": "bookmark", "sort=random": "sort", "group=a&group=b": "group", "callId=%00": "callId",
		"cursor=AAAA": "cursor", "notes=%ff": "notes", "q=%zz": "query",
	} {
		r := f.send("admin", "GET", "/api/v1/recordings?"+q, "")
		var m apiMessage
		r.json(t, &m)
		if r.code != 400 || m.Parameter != param || !strings.Contains(m.Message, param) {
			t.Errorf("%s: %d %s, want 400 naming %s", q, r.code, r.body, param)
		}
	}
	// A cursor made for newest-first does not page oldest-first.
	r = f.send("admin", "GET", "/api/v1/recordings?limit=1", "")
	page = searchResponse{}
	r.json(t, &page)
	if r := f.send("admin", "GET", "/api/v1/recordings?sort=oldest&cursor="+page.Next, ""); r.code != 400 {
		t.Errorf("cursor of the other order: %d", r.code)
	}
	if es := f.auditEntries(t, meta.AuditQuery{Actor: f.users["alice"].ID, Action: meta.AuditSearch}); len(es) < 5 || es[0].Detail == "" {
		t.Errorf("searches are not audited: %d entries", len(es))
	}
}

// TestAuditRoute checks the audit log's filters, paging and tenant walls.
func TestAuditRoute(t *testing.T) {
	f := newFixture(t)
	f.send("alice", "GET", "/api/v1/recordings/"+f.target+"/audio", "")
	f.send("bob", "GET", "/api/v1/recordings/"+f.target, "") // 404, audited as denied
	read := func(who ident, q string) auditResponse {
		r := f.send(who, "GET", "/api/v1/audit?"+q, "")
		if r.code != 200 {
			t.Fatalf("audit %s as %s: %d %s", q, who, r.code, r.body)
		}
		var a auditResponse
		r.json(t, &a)
		return a
	}
	a := read("admin", "user="+f.users["alice"].ID+"&action=play")
	if len(a.Entries) != 1 || a.Entries[0].Recording != f.target || a.Entries[0].Address != "192.0.2.1" {
		t.Errorf("alice's plays: %+v", a.Entries)
	}
	a = read("admin", "user="+f.users["bob"].ID)
	if len(a.Entries) != 1 || a.Entries[0].Outcome != "denied" || a.Entries[0].Action != meta.AuditView {
		t.Errorf("bob's denied view: %+v", a.Entries)
	}
	a = read("admin", "recording="+f.target+"&action=upload")
	if len(a.Entries) != 1 {
		t.Errorf("the target's upload: %+v", a.Entries)
	}
	if a = read("admin", "from=2999-01-01"); len(a.Entries) != 0 {
		t.Errorf("from the future: %d entries", len(a.Entries))
	}
	// Paging covers everything once.
	all := read("admin", "limit=1000")
	var paged []uint64
	for q := "limit=3"; ; {
		p := read("admin", q)
		for _, e := range p.Entries {
			paged = append(paged, e.Seq)
		}
		if p.Next == "" {
			break
		}
		q = "limit=3&cursor=" + p.Next
	}
	if len(paged) != len(all.Entries) {
		t.Errorf("paged %d entries, all %d", len(paged), len(all.Entries))
	}
	// Tenant walls: t2's admin sees t2's entries only.
	for _, e := range read(`t2\t2admin`, "limit=1000").Entries {
		if e.Tenant != "t2" {
			t.Errorf("t2admin sees an entry of tenant %q: %+v", e.Tenant, e)
		}
	}
	for q, param := range map[string]string{"action=dance": "action", "limit=5000": "limit", "cursor=x": "cursor", "from=now": "from", "who=me": "who"} {
		r := f.send("admin", "GET", "/api/v1/audit?"+q, "")
		if !strings.Contains(string(r.body), `"parameter":"`+param+`"`) || r.code != 400 {
			t.Errorf("%s: %d %s", q, r.code, r.body)
		}
	}
	if v, err := f.st.Meta().VerifyAudit(); err != nil || v.Broken != 0 || v.Entries == 0 {
		t.Errorf("audit chain: %+v %v", v, err)
	}
}

// TestSearchSortedAPI: sort=duration and sort=-duration order the search by
// duration across pages (the cursor carries on), and a bad sort is a 400
// that names the parameter.
func TestSearchSortedAPI(t *testing.T) {
	f := newFixture(t)
	durs := []int64{42_000, 7_000, 99_000, 15_000, 63_000}
	for i, d := range durs {
		id, _ := uuid.NewV7()
		rec := meta.Recording{ID: id.String(), Start: f.clock.Now().Add(-time.Duration(i+1) * time.Minute), Duration: d,
			Direction: meta.DirIncoming, Source: meta.SourceUpload, Status: meta.StatusComplete, Group: "g1",
			LocalParty: meta.LocalParty{User: f.users["alice"].ID, Username: "alice"}}
		if _, err := f.st.Apply(context.Background(), &meta.CreateRecording{Recording: rec}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		sort string
		desc bool
	}{{"duration", false}, {"-duration", true}} {
		var got []int64
		cursor := ""
		for range 10 {
			path := "/api/v1/recordings?minDurationMs=1000&limit=2&sort=" + c.sort
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			r := f.send("admin", "GET", path, "")
			var page searchResponse
			r.json(t, &page)
			if r.code != 200 {
				t.Fatalf("%s: %d %s", path, r.code, r.body)
			}
			for _, rec := range page.Recordings {
				got = append(got, rec.DurationMs)
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		// The fixture's own recordings are in the result too.
		sorted := slices.Clone(got)
		slices.Sort(sorted)
		if c.desc {
			slices.Reverse(sorted)
		}
		if !slices.Equal(got, sorted) || len(got) < len(durs) || !slices.ContainsFunc(durs, func(d int64) bool { return slices.Contains(got, d) }) {
			t.Errorf("sort=%s: durations %v are not in order or miss some of %v", c.sort, got, durs)
		}
		for _, d := range durs {
			if !slices.Contains(got, d) {
				t.Errorf("sort=%s: %d ms missing from %v", c.sort, d, got)
			}
		}
	}
	r := f.send("admin", "GET", "/api/v1/recordings?sort=loudest", "")
	var m apiMessage
	r.json(t, &m)
	if r.code != 400 || m.Parameter != "sort" {
		t.Errorf("unknown sort: %d %s", r.code, r.body)
	}
}
