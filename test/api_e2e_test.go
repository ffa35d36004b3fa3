package test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The recordings API end to end: the real binary, users created through
// the API, recordings uploaded with curl -F, then search, details,
// playback with Range, downloads, a zip, annotations, the audit log and
// deletion, all with curl, as the owner, a colleague and the admin.
func TestRecordingsAPIEndToEnd(t *testing.T) {
	u := startUploadServer(t)
	admin := []string{"-u", "admin:e2e admin password"}
	mkUser := func(name, role, extra string) {
		body := `{"username":"` + name + `","password":"e2e password 123","role":"` + role + `","permissions":{"play":true,"download":true,"delete":true,"preserve":true,"notes":true,"bulkDownload":true,"upload":true}` + extra + `}`
		if code, resp := u.curl("/api/v1/users", append(admin, "-H", "Content-Type: application/json", "-d", body)...); code != 201 {
			t.Fatalf("create %s: %d %s", name, code, resp)
		}
	}
	mkUser("alice", "user", `,"groups":["sales"]`)
	mkUser("bob", "user", `,"groups":["support"]`)
	mkUser("sup", "supervisor", `,"groups":["sales"],"supervisedGroups":["sales"]`)
	alice := []string{"-u", "alice:e2e password 123"}
	bob := []string{"-u", "bob:e2e password 123"}
	sup := []string{"-u", "sup:e2e password 123"}

	td, _ := filepath.Abs(filepath.Join("testdata", "upload"))
	start := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04:05.0000000Z")
	upload := func(who []string, user, notes string) string {
		meta := u.writeFile("meta-"+user+".json", `{"startDateTime":"`+start+`","duration":"PT11S","direction":1,`+
			`"localParty":{"username":"`+user+`","phoneNumber":"201"},"remoteParty":{"phoneNumber":"+41441234567"},"notes":"`+notes+`"}`)
		code, body := u.curl("/api/v1/recordings", append(who, "-F", "jsondata=<"+meta+";type=application/json",
			"-F", "attachment=@"+filepath.Join(td, "jfk_8k_pcm16.wav")+";type=audio/wave")...)
		if code != 201 {
			t.Fatalf("upload for %s: %d %s", user, code, body)
		}
		var r struct{ ID string }
		_ = json.Unmarshal([]byte(body), &r)
		return r.ID
	}
	aliceRec := upload(alice, "alice", "customer asked about invoices")
	bobRec := upload(admin, "bob", "secret escalation")

	search := func(who []string, q string) []string {
		code, body := u.curl("/api/v1/recordings?"+q, who...)
		if code != 200 {
			t.Fatalf("search %s: %d %s", q, code, body)
		}
		var page struct{ Recordings []struct{ ID string } }
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range page.Recordings {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got := search(alice, ""); len(got) != 1 || got[0] != aliceRec {
		t.Errorf("alice sees %v", got)
	}
	if got := search(sup, "notes=invoices"); len(got) != 1 || got[0] != aliceRec {
		t.Errorf("the supervisor finds %v", got)
	}
	if got := search(alice, "notes=escalation"); len(got) != 0 {
		t.Errorf("alice finds bob's call: %v", got)
	}
	if got := search(admin, "remoteNumber="+url.QueryEscape("+4144")); len(got) != 2 {
		t.Errorf("the admin finds %v", got)
	}
	if code, body := u.curl("/api/v1/recordings?color=red", alice...); code != 400 || !strings.Contains(body, `"parameter":"color"`) {
		t.Errorf("bad parameter: %d %s", code, body)
	}
	if code, body := u.curl("/api/v1/recordings/"+bobRec, alice...); code != 404 || strings.Contains(body, "escalation") {
		t.Errorf("alice reads bob's call: %d %s", code, body)
	}
	if code, body := u.curl("/api/v1/recordings/"+aliceRec, alice...); code != 200 || !strings.Contains(body, "invoices") {
		t.Errorf("details: %d %s", code, body)
	}

	// Playback with a Range, as a browser seeking does.
	hdrs := filepath.Join(u.dir, "headers")
	code, body := u.curl("/api/v1/recordings/"+aliceRec+"/audio", append(alice, "-r", "1000-1999", "-D", hdrs)...)
	h, _ := os.ReadFile(hdrs)
	if code != 206 || len(body) != 1000 || !strings.Contains(string(h), "Content-Range: bytes 1000-1999/") {
		t.Errorf("range: %d, %d bytes, headers %s", code, len(body), h)
	}
	code, whole := u.curl("/api/v1/recordings/"+aliceRec+"/audio", alice...)
	if code != 200 || !strings.HasPrefix(whole, "RIFF") || whole[1000:2000] != body {
		t.Errorf("whole: %d, %d bytes; the range is not the same bytes", code, len(whole))
	}
	// Download: the file name is <yyyymmdd>_<hhmm>_<reference>.mp3.
	dl := t.TempDir()
	cmd := exec.Command("curl", "-sS", "-f", "-O", "-J", "-u", "alice:e2e password 123", "http://"+u.addr+"/api/v1/recordings/"+aliceRec+"/download")
	cmd.Dir = dl
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("download: %v %s", err, out)
	}
	files, _ := os.ReadDir(dl)
	if len(files) != 1 || !strings.HasPrefix(files[0].Name(), strings.ReplaceAll(start[:10], "-", "")+"_") || !strings.HasSuffix(files[0].Name(), ".mp3") {
		t.Errorf("download name: %v", files)
	}
	// Zip of both calls as the admin; bob's is refused to alice.
	ids := `{"ids":["` + aliceRec + `","` + bobRec + `"],"format":"wav"}`
	code, zipBody := u.curl("/api/v1/recordings/download", append(admin, "-H", "Content-Type: application/json", "-d", ids)...)
	zr, err := zip.NewReader(bytes.NewReader([]byte(zipBody)), int64(len(zipBody)))
	if code != 200 || err != nil || len(zr.File) != 2 {
		t.Fatalf("zip: %d %v", code, err)
	}
	if code, body := u.curl("/api/v1/recordings/download", append(alice, "-H", "Content-Type: application/json", "-d", ids)...); code != 404 || strings.Contains(body, bobRec) {
		t.Errorf("alice zips bob's call: %d %s", code, body)
	}

	// Annotate as the supervisor.
	jsonArgs := func(who []string, method, body string) []string {
		return append(append([]string{}, who...), "-X", method, "-H", "Content-Type: application/json", "-d", body)
	}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/rating", `{"rating":4}`}, {"POST", "/notes", `{"text":"good call"}`}, {"PUT", "/category", `{"category":"billing"}`},
		{"POST", "/preserve", `{}`},
	} {
		if code, body := u.curl("/api/v1/recordings/"+aliceRec+c.path, jsonArgs(sup, c.method, c.body)...); code != 200 {
			t.Errorf("%s %s: %d %s", c.method, c.path, code, body)
		}
	}
	if code, body := u.curl("/api/v1/recordings/"+aliceRec, jsonArgs(admin, "DELETE", "")...); code != 409 {
		t.Errorf("delete a preserved call: %d %s", code, body)
	}
	if code, _ := u.curl("/api/v1/recordings/"+bobRec, jsonArgs(bob, "DELETE", "")...); code != 204 {
		t.Errorf("bob deletes his call: %d", code)
	}
	if got := search(admin, ""); len(got) != 1 {
		t.Errorf("after the delete the admin finds %v", got)
	}

	// The audit log has every access to audio, by whom and from where.
	code, body = u.curl("/api/v1/audit?limit=1000", admin...)
	var audit struct {
		Entries []struct{ Action, Actor, ActorName, Recording, Address, Outcome string }
	}
	if err := json.Unmarshal([]byte(body), &audit); code != 200 || err != nil {
		t.Fatalf("audit: %d %v", code, err)
	}
	count := map[string]int{}
	for _, e := range audit.Entries {
		count[e.Action+"/"+e.ActorName+"/"+e.Outcome]++
		if e.Address != "127.0.0.1" && !strings.HasPrefix(e.Actor, "system:") {
			t.Errorf("entry from %q", e.Address)
		}
	}
	for key, want := range map[string]int{"play/alice/ok": 2, "download/alice/ok": 1, "download/admin/ok": 2, "upload/alice/ok": 1,
		"view/alice/denied": 1, "delete/bob/ok": 1, "delete/admin/denied": 1, "preserve/sup/ok": 1, "rating/sup/ok": 1, "user/admin/ok": 3} {
		if count[key] != want {
			t.Errorf("audit %s: %d entries, want %d", key, count[key], want)
		}
	}
	if code, _ := u.curl("/api/v1/audit", alice...); code != 403 {
		t.Errorf("alice reads the audit log: %d", code)
	}
	if code, body := u.curl("/api/v1/openapi.json", alice...); code != 200 || !strings.Contains(body, `"openapi": "3.0.3"`) {
		t.Errorf("openapi: %d", code)
	}
	if code, body := u.curl("/api/v1/users", admin...); code != 200 || strings.Contains(body, "argon2") || !strings.Contains(body, "alice") {
		t.Errorf("users: %d %s", code, body)
	}
}
