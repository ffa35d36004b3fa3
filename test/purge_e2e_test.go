package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// The purge proof (issue 7): the real binary, built with -tags devclock so
// its clock can be moved by a file instead of by sleeping. Recordings are
// uploaded and imported from capture files, some preserved, the clock moved past their retention and the
// purge run: the held ones survive, the others are gone from the API,
// their files from the disk and their keys from the metadata, each
// deletion is in the audit log, and `callvault verify audit` still passes.
// A bulk delete that includes a held recording deletes the others and
// reports the held one.

var (
	devBinaryOnce sync.Once
	devBinary     string
	devBinaryErr  error
)

// buildDevBinary builds callvault with the devclock tag (once per run).
func buildDevBinary(t *testing.T) string {
	t.Helper()
	devBinaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "callvault-devbin")
		if err != nil {
			devBinaryErr = err
			return
		}
		devBinary = filepath.Join(dir, "callvault-devclock")
		cmd := exec.Command("go", "build", "-tags", "devclock", "-o", devBinary, "../cmd/callvault")
		if out, err := cmd.CombinedOutput(); err != nil {
			devBinaryErr = fmt.Errorf("go build -tags devclock: %v\n%s", err, out)
		}
	})
	if devBinaryErr != nil {
		t.Fatal(devBinaryErr)
	}
	return devBinary
}

// e2eAPI is a client of a running server as one user.
type e2eAPI struct {
	t          *testing.T
	base       string
	user, pass string
}

func (a e2eAPI) do(method, path, ctype string, body io.Reader) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	req.SetBasicAuth(a.user, a.pass)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (a e2eAPI) json(method, path string, in any, want int, out any) {
	a.t.Helper()
	var body io.Reader
	ctype := ""
	if in != nil {
		b, _ := json.Marshal(in)
		body, ctype = bytes.NewReader(b), "application/json"
	}
	code, b := a.do(method, path, ctype, body)
	if code != want {
		a.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// upload sends an 11 s WAV through the upload API and returns its ID.
func (a e2eAPI) upload(start time.Time, n int) string {
	a.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="jsondata"`)
	h.Set("Content-Type", "application/json")
	pw, _ := mw.CreatePart(h)
	pw.Write([]byte(`{"startDateTime":"` + start.UTC().Format("2006-01-02T15:04:05.0000000Z") + `","duration":"PT11S","direction":1,` +
		`"localParty":{"username":"admin","phoneNumber":"201"},"remoteParty":{"phoneNumber":"+4144000000` + fmt.Sprint(n%10) + `"},"pbxCallId":"purge-` + fmt.Sprint(n) + `"}`))
	h = textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="attachment"; filename="call.wav"`)
	h.Set("Content-Type", "audio/wave")
	pw, _ = mw.CreatePart(h)
	wav := filepath.Join(a.t.TempDir(), "call.wav")
	writeWAV(a.t, wav, 44+11*16000)
	b, _ := os.ReadFile(wav)
	pw.Write(b)
	mw.Close()
	code, resp := a.do(http.MethodPost, "/api/v1/recordings", mw.FormDataContentType(), &body)
	if code != http.StatusCreated {
		a.t.Fatalf("upload: %d %s", code, resp)
	}
	var out struct{ ID string }
	json.Unmarshal(resp, &out)
	return out.ID
}

// startDevServer runs the devclock binary's serve with the clock file.
func startDevServer(t *testing.T, dir, data, clockFile string, env []string) *server {
	t.Helper()
	addr := freeAddr(t)
	return startBinary(t, buildDevBinary(t), dir, env, addr, "serve", "--data-dir", data, "--http", addr, "--dev-clock-file", clockFile)
}

// recordingFiles maps recording IDs to their files under data.
func recordingFilesByID(t *testing.T, data string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.WalkDir(filepath.Join(data, "recordings"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".cvr") {
			out[strings.TrimSuffix(filepath.Base(p), ".cvr")] = p
		}
		return nil
	})
	return out
}

func TestPurgeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	clockFile := filepath.Join(dir, "clock")
	if err := os.WriteFile(clockFile, []byte("0s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const pass = "purge e2e admin password"
	s := startDevServer(t, dir, data, clockFile, []string{"CALLVAULT_ADMIN_PASSWORD=" + pass, "CALLVAULT_STORAGE_DEFAULT_RETENTION_DAYS=30"})
	if !strings.Contains(s.stderr.String(), "clock is shifted") {
		t.Errorf("the test build does not announce its shifted clock:\n%s", s.stderr)
	}
	api := e2eAPI{t: t, base: "http://" + s.addr, user: "admin", pass: pass}

	now := time.Now()
	var ids []string
	for i := range 6 {
		ids = append(ids, api.upload(now.Add(-time.Duration(i+1)*time.Hour), i))
	}
	// Two held: one indefinitely, one until 90 days from now (past the move).
	api.json(http.MethodPost, "/api/v1/recordings/"+ids[0]+"/preserve", nil, http.StatusOK, nil)
	api.json(http.MethodPost, "/api/v1/recordings/"+ids[1]+"/preserve", map[string]any{"until": now.AddDate(0, 0, 90)}, http.StatusOK, nil)
	held, due := slicesClone(ids[:2]), slicesClone(ids[2:5])
	bulkOther := ids[5]

	// Captured calls too: `callvault import` of capture files (with the
	// server stopped: it holds the data directory). Their calls are years
	// old, so the 30-day retention ran out for them at once.
	if _, err := s.stop(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.stderr)
	}
	corpus, _ := filepath.Abs("../capture/testdata/corpus")
	out, stderr, code := runCLI(t, dir, nil, "import", "--json", "--data-dir", data,
		filepath.Join(corpus, "SIP_DTMF2.pcap"), filepath.Join(corpus, "one.pcap"))
	if code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	var imported struct {
		Calls []struct {
			RecordingID string `json:"recordingId"`
		}
	}
	if err := json.Unmarshal([]byte(out), &imported); err != nil || len(imported.Calls) < 2 {
		t.Fatalf("import --json: %v\n%s", err, out)
	}
	var captured []string
	for _, c := range imported.Calls {
		captured = append(captured, c.RecordingID)
	}
	s = startDevServer(t, dir, data, clockFile, nil)
	api.base = "http://" + s.addr
	api.json(http.MethodPost, "/api/v1/recordings/"+captured[0]+"/preserve", nil, http.StatusOK, nil)
	held = append(held, captured[0])

	files := recordingFilesByID(t, data)
	for _, id := range append(slicesClone(ids), captured...) {
		if files[id] == "" {
			t.Fatalf("no file for recording %s", id)
		}
	}

	// Before the move only the old captured calls are due, but the held one.
	var pr struct{ Deleted int }
	api.json(http.MethodPost, "/api/v1/retention/purge", nil, http.StatusOK, &pr)
	if pr.Deleted != len(captured)-1 {
		t.Fatalf("purge before the uploads' retention ran out deleted %d, want the %d old captured calls", pr.Deleted, len(captured)-1)
	}
	for _, id := range ids {
		if code, _ := api.do(http.MethodGet, "/api/v1/recordings/"+id, "", nil); code != http.StatusOK {
			t.Fatalf("upload %s is gone before its retention ran out: %d", id, code)
		}
	}
	due = append(due, captured[1:]...)
	// A bulk delete that names a held recording deletes the other one and
	// reports the held one.
	var bulk struct {
		Results []struct{ ID, Status, Message string }
	}
	api.json(http.MethodPost, "/api/v1/recordings/delete", map[string]any{"ids": []string{bulkOther, held[0]}}, http.StatusOK, &bulk)
	got := map[string]string{}
	for _, r := range bulk.Results {
		got[r.ID] = r.Status
	}
	if got[bulkOther] != "deleted" || got[held[0]] != "preserved" {
		t.Fatalf("bulk delete of a held and an unheld recording: %+v", bulk.Results)
	}

	// 35 days on: the 30-day retention has run out for every one of them.
	if err := os.WriteFile(clockFile, []byte("840h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api.json(http.MethodPost, "/api/v1/retention/purge", nil, http.StatusOK, &pr)
	if want := len(due) - (len(captured) - 1); pr.Deleted != want {
		t.Fatalf("purge after 35 days deleted %d, want %d\n%s", pr.Deleted, want, s.stderr)
	}
	for _, id := range held {
		if code, b := api.do(http.MethodGet, "/api/v1/recordings/"+id, "", nil); code != http.StatusOK {
			t.Errorf("held recording %s: %d %s", id, code, b)
		}
		if code, _ := api.do(http.MethodGet, "/api/v1/recordings/"+id+"/audio", "", nil); code != http.StatusOK {
			t.Errorf("held recording %s does not play: %d", id, code)
		}
		if _, err := os.Stat(files[id]); err != nil {
			t.Errorf("held recording's file: %v", err)
		}
	}
	for _, id := range append(slicesClone(due), bulkOther) {
		if code, _ := api.do(http.MethodGet, "/api/v1/recordings/"+id, "", nil); code != http.StatusNotFound {
			t.Errorf("deleted recording %s answers %d", id, code)
		}
		if _, err := os.Stat(files[id]); !os.IsNotExist(err) {
			t.Errorf("deleted recording %s: file still there (%v)", id, err)
		}
		// Nor any side file (the SIP messages of a captured call).
		_ = filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), id) {
				t.Errorf("deleted recording %s: %s is still there", id, p)
			}
			return nil
		})
	}
	if _, err := s.stop(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.stderr)
	}

	// The metadata: tombstones without keys, each deletion audited.
	db, err := meta.Open(filepath.Join(data, "meta.db"), meta.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ids    []string
		action meta.AuditAction
	}{{due, meta.AuditPurge}, {[]string{bulkOther}, meta.AuditDelete}} {
		for _, id := range c.ids {
			rec, err := db.Recording(id)
			if err != nil || rec.Status != meta.StatusDeleted || len(rec.File.WrappedDEK) != 0 {
				t.Errorf("recording %s after deletion: status %s, %d bytes of wrapped key (%v)", id, rec.Status, len(rec.File.WrappedDEK), err)
			}
			page, err := db.SearchAudit(meta.AuditQuery{Recording: id, Action: c.action})
			if err != nil || len(page.Entries) == 0 {
				t.Errorf("recording %s: no %s entry in the audit log (%v)", id, c.action, err)
			}
		}
	}
	for _, id := range held {
		if rec, err := db.Recording(id); err != nil || rec.Status == meta.StatusDeleted || len(rec.File.WrappedDEK) == 0 {
			t.Errorf("held recording %s: %s, key %d bytes (%v)", id, rec.Status, len(rec.File.WrappedDEK), err)
		}
	}
	// The refused deletion of the held one is on record too.
	if page, _ := db.SearchAudit(meta.AuditQuery{Recording: held[0], Action: meta.AuditDelete}); len(page.Entries) == 0 || page.Entries[0].Outcome != "denied" {
		t.Errorf("the refused bulk deletion of the held recording is not audited: %+v", page.Entries)
	}
	db.Close()

	out, stderr, code = runCLI(t, dir, nil, "verify", "audit", "--data-dir", data)
	if code != 0 || !strings.Contains(out, "audit chain holds") {
		t.Fatalf("verify audit after the purge: exit %d\n%s%s", code, out, stderr)
	}

	// A normal build has no such flag: production cannot be told the time.
	if _, stderr, code := runCLI(t, dir, nil, "serve", "--data-dir", data, "--dev-clock-file", clockFile); code == 0 || !strings.Contains(stderr, "unknown flag") {
		t.Errorf("a normal build accepted --dev-clock-file: exit %d\n%s", code, stderr)
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }
