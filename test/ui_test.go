package test

import (
	"bytes"
	"context"
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// uiNeeds skips, saying why, unless node, Debian's Chromium and the
// playwright-core package of test/ui are there (.ci/run installs them).
func uiNeeds(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("browser tests need Node.js (Debian package nodejs; .ci/run installs it): %v", err)
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser tests need Debian's Chromium (package chromium; .ci/run installs it): %v", err)
	}
	if _, err := os.Stat(filepath.Join("ui", "node_modules", "playwright-core")); err != nil {
		t.Skipf("browser tests need playwright-core: run 'npm ci --prefix test/ui' (.ci/run does): %v", err)
	}
	return node
}

// runUI runs a page test script of test/ui against a server and returns its
// JSON report; a failed check fails the test with the script's message.
func runUI(t *testing.T, script string, env ...string) map[string]any {
	t.Helper()
	node := uiNeeds(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = "ui"
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	var rep map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(lastLine(out.Bytes())), &rep); err != nil {
		t.Fatalf("%s: no report (%v, %v)\nstdout:\n%s\nstderr:\n%s", script, runErr, err, out.String(), errOut.String())
	}
	if rep["ok"] != true || runErr != nil {
		t.Fatalf("%s: %v\n%s", script, rep["error"], errOut.String())
	}
	return rep
}

func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// TestUISignIn signs in and out through the real page in Chromium.
func TestUISignIn(t *testing.T) {
	uiNeeds(t)
	dir := t.TempDir()
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=ui-admin-password"}, "--data-dir", filepath.Join(dir, "data"))
	rep := runUI(t, "login.mjs", "BASE=http://"+s.addr, "USER_NAME=admin", "PASSWORD=ui-admin-password")
	if rep["user"] != "admin" {
		t.Fatalf("report %v", rep)
	}
}

// uiClient talks to the API as the admin, to set the stage for the page
// tests the way an integrator would: users through /api/v1/users,
// recordings through the Imagicle upload route.
type uiClient struct {
	t    *testing.T
	base string
	pass string
}

func (c *uiClient) do(method, path, ctype string, body io.Reader) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth("admin", c.pass)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (c *uiClient) json(method, path string, v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if code, out := c.do(method, path, "application/json", bytes.NewReader(b)); code/100 != 2 {
		c.t.Fatalf("%s %s: %d %s", method, path, code, out)
	}
}

// upload sends a call through the Imagicle route and returns its ID.
func (c *uiClient) upload(user string, start time.Time, dur string, dir int, remote, note string, wav []byte) string {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	meta := map[string]any{"startDateTime": start.UTC().Format("2006-01-02T15:04:05.0000000Z"), "duration": dur, "direction": dir,
		"localParty": map[string]string{"username": user, "phoneNumber": "201"}, "remoteParty": map[string]string{"phoneNumber": remote},
		"pbxCallId": "ui-" + remote}
	if note != "" {
		meta["notes"] = note
	}
	js, _ := json.Marshal(meta)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="jsondata"`)
	pw, _ := mw.CreatePart(h)
	_, _ = pw.Write(js)
	h = textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="attachment"; filename="call.wav"`)
	h.Set("Content-Type", "audio/wave")
	pw, _ = mw.CreatePart(h)
	_, _ = pw.Write(wav)
	_ = mw.Close()
	code, out := c.do(http.MethodPost, "/fw/Apps/Recorder/WebAPI/Recordings", mw.FormDataContentType(), &body)
	var r struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal(out, &r) != nil {
		c.t.Fatalf("upload: %d %s", code, out)
	}
	return r.ID
}

// toneWAV is d of a 440 Hz tone (with a louder second half, so the
// waveform has a shape) as 8 kHz 16-bit mono PCM.
func toneWAV(d time.Duration) []byte {
	n := int(d.Seconds() * 8000)
	b := make([]byte, 44+2*n)
	copy(b, "RIFF")
	bin.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	bin.LittleEndian.PutUint32(b[16:], 16)
	bin.LittleEndian.PutUint16(b[20:], 1)
	bin.LittleEndian.PutUint16(b[22:], 1)
	bin.LittleEndian.PutUint32(b[24:], 8000)
	bin.LittleEndian.PutUint32(b[28:], 16000)
	bin.LittleEndian.PutUint16(b[32:], 2)
	bin.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	bin.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i := range n {
		amp := 6000.0
		if i > n/2 {
			amp = 16000
		}
		bin.LittleEndian.PutUint16(b[44+2*i:], uint16(int16(amp*math.Sin(2*math.Pi*440*float64(i)/8000))))
	}
	return b
}

// TestUIPages drives the pages in Chromium against the real binary with
// users and recordings made through the API: each role's view, filter,
// sort and page, playback and bookmarks, notes and rating after reload,
// preserve, downloads (one file and a zip of three), delete, Arabic
// right to left, keyboard use, administration through the pages (a group
// with a supervisor, a member and restricted permissions, a user created,
// edited and disabled, retention, a tenant; auditors and users get no
// admin page), page sorting by the other columns, the waveform drawn from
// the server's peaks, the audit viewer's filters, an evidence export
// followed to done and downloaded as a zip (admin) and one of every
// preserved recording (auditor), and screenshots of every page in English
// and German, the admin and exports pages in Arabic too (test/screenshots/).
func TestUIPages(t *testing.T) {
	uiNeeds(t)
	dir := t.TempDir()
	const adminPW = "ui-admin-password"
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=" + adminPW}, "--data-dir", filepath.Join(dir, "data"))
	c := &uiClient{t: t, base: "http://" + s.addr, pass: adminPW}
	const pw = "page test password"
	all := map[string]bool{"play": true, "download": true, "delete": true, "preserve": true, "notes": true, "bulkDownload": true, "upload": true}
	for _, u := range []struct {
		name, role string
		perms      map[string]bool
	}{
		{"alice", "user", all}, {"sup", "supervisor", all}, {"rec", "record-only", nil}, {"aud", "auditor", all},
		{"viewer", "user", map[string]bool{"play": true}},
	} {
		c.json(http.MethodPost, "/api/v1/users", map[string]any{"username": u.name, "password": pw, "role": u.role, "permissions": u.perms})
	}
	now := time.Now()
	short, err := os.ReadFile(filepath.Join("testdata", "upload", "jfk_8k_pcm16.wav"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 6 {
		dirn := 1 + i%2 // incoming, outgoing
		ids = append(ids, c.upload("alice", now.Add(-time.Duration(i+1)*time.Hour), "PT11S", dirn, fmt.Sprintf("+4144000000%d", i), "", short))
	}
	c.upload("viewer", now.Add(-30*time.Minute), "PT11S", 1, "+41449999999", "", short)
	// The one-hour call for playback start-up and bookmarks.
	long := c.upload("alice", now.Add(-10*time.Minute), "PT1H", 1, "+41447777777", "from the upload", toneWAV(time.Hour))
	for _, bm := range []map[string]any{{"type": "dtmf", "offsetMs": 600_000, "label": "1"}, {"type": "manual", "offsetMs": 2_400_000, "label": "complaint"}} {
		c.json(http.MethodPost, "/api/v1/recordings/"+long+"/bookmarks", bm)
	}
	shots, _ := filepath.Abs("screenshots")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	dl := t.TempDir()
	rep := runUI(t, "pages.mjs", "BASE="+c.base, "ADMIN_PASSWORD="+adminPW, "PASSWORD="+pw, "LONG_ID="+long,
		"SHORT_IDS="+strings.Join(ids, ","), "SHOTS="+shots, "DOWNLOADS="+dl)
	t.Logf("playback started %v ms after the click on a one-hour recording; page report %v", rep["playbackStartMs"], rep)
	// What the pages did is in the store too: the deleted recording is gone.
	if code, _ := c.do(http.MethodGet, "/api/v1/recordings/"+fmt.Sprint(rep["deleted"]), "", nil); code != http.StatusNotFound {
		t.Errorf("recording deleted in the page still answers %d", code)
	}
	var got struct {
		Rating    int
		Notes     []struct{ Text string }
		Preserved *struct{ By string }
	}
	_, b := c.do(http.MethodGet, "/api/v1/recordings/"+long, "", nil)
	if err := json.Unmarshal(b, &got); err != nil || got.Rating != 4 || got.Preserved == nil || len(got.Notes) < 2 {
		t.Errorf("the page's note, rating and hold are not in the store: %s", b)
	}
}
