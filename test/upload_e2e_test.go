package test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The upload API end to end: the real binary, driven by curl -F with the
// Imagicle two-part layout (jsondata, then attachment), for every answer
// the issue lists; then memory while a 256 MB file streams in, and a body
// cut off mid-way.

const uploadPath = "/fw/Apps/Recorder/WebAPI/Recordings"

type uploadServer struct {
	*server
	t    *testing.T
	dir  string
	base string
}

func startUploadServer(t *testing.T) *uploadServer {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skipf("curl not installed (%v): the upload API is tested with curl -F", err)
	}
	dir := t.TempDir()
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=e2e admin password", "CALLVAULT_STORAGE_DEFAULT_RETENTION_DAYS=30"})
	return &uploadServer{server: s, t: t, dir: dir, base: "http://" + s.addr}
}

// curl runs curl with args against path and returns status and body.
func (u *uploadServer) curl(path string, args ...string) (int, string) {
	u.t.Helper()
	out := filepath.Join(u.t.TempDir(), "body")
	full := append([]string{"-sS", "-o", out, "-w", "%{http_code}", "--max-time", "120"}, args...)
	full = append(full, u.base+path)
	cmd := exec.Command("curl", full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	code, err := cmd.Output()
	if err != nil {
		u.t.Fatalf("curl %v: %v\n%s", args, err, stderr.String())
	}
	body, _ := os.ReadFile(out)
	n, _ := strconv.Atoi(string(code))
	return n, string(body)
}

func (u *uploadServer) writeFile(name, content string) string {
	u.t.Helper()
	p := filepath.Join(u.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		u.t.Fatal(err)
	}
	return p
}

// recordingFiles counts the encrypted recording files in the data directory.
func (u *uploadServer) recordingFiles() int {
	n := 0
	_ = filepath.WalkDir(filepath.Join(u.dir, "callvault-data", "recordings"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".cvr") {
			n++
		}
		return nil
	})
	return n
}

func (u *uploadServer) metric(name string) float64 {
	u.t.Helper()
	_, body := u.curl("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name)), 64)
			return v
		}
	}
	return 0
}

func jsonData(start time.Time, extra string) string {
	s := `{"startDateTime":"` + start.UTC().Format("2006-01-02T15:04:05.0000000Z") + `","duration":"PT11S","direction":1,` +
		`"localParty":{"username":"admin","phoneNumber":"201"},"remoteParty":{"phoneNumber":"+41440000000"},"pbxCallId":"e2e-1"`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

func TestUploadAPI(t *testing.T) {
	u := startUploadServer(t)
	admin := []string{"-u", "admin:e2e admin password"}
	td, _ := filepath.Abs(filepath.Join("testdata", "upload"))
	good := u.writeFile("good.json", jsonData(time.Now().Add(-time.Hour), `"notes":"from curl","preserved":true`))

	// Users to be refused: record-only, auditor, and a supervisor whose
	// upload permission the admin withheld.
	for _, nu := range []string{
		`{"username":"rec","password":"record only pw","role":"record-only","permissions":{"upload":true}}`,
		`{"username":"aud","password":"auditor password","role":"auditor","permissions":{"upload":true}}`,
		`{"username":"sup","password":"supervisor pw","role":"supervisor","permissions":{"play":true}}`,
	} {
		if code, body := u.curl("/api/v1/users", append(admin, "-H", "Content-Type: application/json", "-d", nu)...); code != 201 {
			t.Fatalf("create user %s: %d %s", nu, code, body)
		}
	}

	// 201 for every coding, on both routes.
	created := 0
	for i, f := range []struct{ file, ctype string }{
		{"jfk_8k_ulaw.wav", "audio/wave"}, {"jfk_8k_alaw.wav", "audio/wave"}, {"jfk_8k_pcm16.wav", "audio/wave"},
		{"jfk_8k_pcm8.wav", "audio/wave"}, {"jfk.mp3", "audio/mpeg"},
	} {
		path := uploadPath
		if i%2 == 1 {
			path = "/api/v1/recordings"
		}
		code, body := u.curl(path, append(admin, "-F", "jsondata=<"+good, "-F", "attachment=@"+filepath.Join(td, f.file)+";type="+f.ctype)...)
		var out struct{ ID string }
		if code != 201 || json.Unmarshal([]byte(body), &out) != nil || len(out.ID) != 36 {
			t.Fatalf("%s to %s: %d %s", f.file, path, code, body)
		}
		created++
	}
	if n := u.recordingFiles(); n != created {
		t.Fatalf("%d recording files after %d uploads", n, created)
	}

	// A token works like the password.
	code, body := u.curl("/api/v1/tokens", append(admin, "-H", "Content-Type: application/json", "-d", `{"label":"e2e"}`)...)
	var tok struct{ Token string }
	if code != 201 || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("create token: %d %s", code, body)
	}
	bearer := []string{"-H", "Authorization: Bearer " + tok.Token}
	if code, body := u.curl(uploadPath, append(bearer, "-F", "jsondata=<"+good, "-F", "attachment=@"+filepath.Join(td, "jfk_8k_ulaw.wav")+";type=audio/wave")...); code != 201 {
		t.Fatalf("upload with a token: %d %s", code, body)
	}
	created++

	wav := "attachment=@" + filepath.Join(td, "jfk_8k_ulaw.wav") + ";type=audio/wave"
	old := u.writeFile("old.json", jsonData(time.Now().Add(-40*24*time.Hour), ""))
	missing := u.writeFile("missing.json", `{"startDateTime":"2018-09-25T13:00:00.0000000Z","duration":"PT1M30S","localParty":{"username":"admin","phoneNumber":"201"}}`)
	badJSON := u.writeFile("bad.json", `{"startDateTime": "2018-`)
	text := u.writeFile("notes.txt", "this is not audio, only words\n")
	cases := []struct {
		name string
		args []string
		code int
		body string // exact JSON for 400s, a part otherwise
	}{
		{"no body", append(admin, "-X", "POST"), 400, `{"reason":0,"message":"invalid data: the request has no body"}`},
		{"no jsondata", append(admin, "-F", wav), 400, `{"reason":0,"message":"invalid data: the jsondata part must come before the attachment"}`},
		{"no attachment", append(admin, "-F", "jsondata=<"+good), 400, `{"reason":0,"message":"invalid data: the attachment part is missing"}`},
		{"bad JSON", append(admin, "-F", "jsondata=<"+badJSON, "-F", wav), 400, `{"reason":0,"message":"invalid data: jsondata is not a JSON object: unexpected EOF"}`},
		{"missing direction", append(admin, "-F", "jsondata=<"+missing, "-F", wav), 400, `{"reason":1,"message":"invalid recording metadata: direction is missing"}`},
		{"24-bit WAV", append(admin, "-F", "jsondata=<"+good, "-F", "attachment=@"+filepath.Join(td, "bwf.wav")+";type=audio/wave"), 400,
			`{"reason":2,"message":"invalid recording audio file: WAV with PCM 24-bit samples; allowed: PCM 8 or 16 bit, A-law, µ-law"}`},
		{"not audio", append(admin, "-F", "jsondata=<"+good, "-F", "attachment=@"+text+";type=audio/wave"), 400,
			`{"reason":2,"message":"invalid recording audio file: not a WAV or MP3 file (first bytes 74 68 69 73 20 69 73 20)"}`},
		{"no credentials", []string{"-F", "jsondata=<" + good, "-F", wav}, 401, "sign in"},
		{"wrong password", []string{"-u", "admin:wrong password", "-F", "jsondata=<" + good, "-F", wav}, 401, "wrong user name or password"},
		{"revoked-looking token", []string{"-H", "Authorization: Bearer cvt_nottherightone", "-F", "jsondata=<" + good, "-F", wav}, 401, "unknown or revoked"},
		{"record-only", []string{"-u", "rec:record only pw", "-F", "jsondata=<" + good, "-F", wav}, 403, "may not upload"},
		{"auditor", []string{"-u", "aud:auditor password", "-F", "jsondata=<" + good, "-F", wav}, 403, "may not upload"},
		{"permission withheld", []string{"-u", "sup:supervisor pw", "-F", "jsondata=<" + good, "-F", wav}, 403, "may not upload"},
		{"outside retention", append(admin, "-F", "jsondata=<"+old, "-F", wav), 409, "retention period of 30 days"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := u.curl(uploadPath, c.args...)
			body = strings.TrimSpace(body)
			if code != c.code {
				t.Fatalf("%d %s, want %d", code, body, c.code)
			}
			if c.code == 400 && body != c.body || c.code != 400 && !strings.Contains(body, c.body) {
				t.Errorf("body %s\nwant %s", body, c.body)
			}
		})
	}
	if n := u.recordingFiles(); n != created {
		t.Errorf("%d recording files after %d accepted uploads and only refusals since", n, created)
	}

	// More than 256 MB: reason 2, and nothing is left.
	huge := filepath.Join(u.dir, "huge.wav")
	writeWAV(t, huge, 256<<20+1)
	code, body = u.curl(uploadPath, append(admin, "-F", "jsondata=<"+good, "-F", "attachment=@"+huge+";type=audio/wave")...)
	if code != 400 || strings.TrimSpace(body) != `{"reason":2,"message":"invalid recording audio file: the attachment is larger than 268435456 bytes"}` {
		t.Errorf("257 MB upload: %d %s", code, body)
	}
	if n := u.recordingFiles(); n != created {
		t.Errorf("oversized upload left a file: %d files", n)
	}

	// A body cut off half-way (the client dies): nothing is left.
	cutOff(t, u, "admin:e2e admin password", good, filepath.Join(td, "jfk_8k_pcm16.wav"))
	deadline := time.Now().Add(5 * time.Second)
	for u.metric(`callvault_uploads_total{result="cut_off"}`) < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if v := u.metric(`callvault_uploads_total{result="cut_off"}`); v != 1 {
		t.Errorf("uploads_total{cut_off} = %v", v)
	}
	if n := u.recordingFiles(); n != created {
		t.Errorf("cut-off upload left a file: %d files, want %d", n, created)
	}
	if v := u.metric(`callvault_uploads_total{result="created"}`); v != float64(created) {
		t.Errorf("uploads_total{created} = %v, want %d", v, created)
	}
}

// writeWAV writes a PCM-16 8 kHz mono WAV of size bytes whose samples are a
// counter (not silence, so nothing could compress it away).
func writeWAV(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	data := size - 44
	hdr := make([]byte, 44)
	copy(hdr, "RIFF")
	bin.LittleEndian.PutUint32(hdr[4:], uint32(min(size-8, 1<<32-1)))
	copy(hdr[8:], "WAVEfmt ")
	bin.LittleEndian.PutUint32(hdr[16:], 16)
	bin.LittleEndian.PutUint16(hdr[20:], 1)     // PCM
	bin.LittleEndian.PutUint16(hdr[22:], 1)     // mono
	bin.LittleEndian.PutUint32(hdr[24:], 8000)  // rate
	bin.LittleEndian.PutUint32(hdr[28:], 16000) // byte rate
	bin.LittleEndian.PutUint16(hdr[32:], 2)     // block align
	bin.LittleEndian.PutUint16(hdr[34:], 16)    // bits
	copy(hdr[36:], "data")
	bin.LittleEndian.PutUint32(hdr[40:], uint32(data))
	_, _ = w.Write(hdr)
	buf := make([]byte, 64<<10)
	var ctr uint16
	for written := int64(0); written < data; {
		for i := 0; i+1 < len(buf); i += 2 {
			bin.LittleEndian.PutUint16(buf[i:], ctr)
			ctr += 7
		}
		n := min(int64(len(buf)), data-written)
		if _, err := w.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		written += n
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// cutOff sends the two-part body over a raw connection and closes it half
// way through the audio, as a client that dies does.
func cutOff(t *testing.T, u *uploadServer, userpass, jsonFile, wavFile string) {
	t.Helper()
	js, _ := os.ReadFile(jsonFile)
	audio, _ := os.ReadFile(wavFile)
	var b bytes.Buffer
	b.WriteString("--cutcut\r\nContent-Disposition: form-data; name=jsondata\r\n\r\n")
	b.Write(js)
	b.WriteString("\r\n--cutcut\r\nContent-Disposition: form-data; name=attachment; filename=sample.wav\r\nContent-Type: audio/wave\r\n\r\n")
	b.Write(audio)
	b.WriteString("\r\n--cutcut--\r\n")
	c, err := net.Dial("tcp", u.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	user, pass, _ := strings.Cut(userpass, ":")
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: multipart/form-data; boundary=cutcut\r\nContent-Length: %d\r\n\r\n",
		uploadPath, u.addr, basicAuth(user, pass), b.Len())
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b.Bytes()[:b.Len()/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server store what came
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// procStatus reads a "VmXxx:  N kB" field of /proc/PID/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestUploadMemory streams a 256 MB WAV into the real binary with curl and
// checks that the server's peak resident memory (VmHWM, reset just before
// the upload through /proc/PID/clear_refs) rises by at most 32 MB over its
// resident memory before the upload. The 256 MB file itself is 256 MiB,
// the limit, and so accepted.
func TestUploadMemory(t *testing.T) {
	u := startUploadServer(t)
	good := u.writeFile("good.json", jsonData(time.Now().Add(-time.Hour), ""))
	td, _ := filepath.Abs(filepath.Join("testdata", "upload"))
	admin := []string{"-u", "admin:e2e admin password"}
	if code, body := u.curl(uploadPath, append(admin, "-F", "jsondata=<"+good, "-F", "attachment=@"+filepath.Join(td, "jfk_8k_ulaw.wav")+";type=audio/wave")...); code != 201 {
		t.Fatalf("warm-up upload: %d %s", code, body)
	}
	code, body := u.curl("/api/v1/tokens", append(admin, "-H", "Content-Type: application/json", "-d", `{"label":"memory"}`)...)
	var tok struct{ Token string }
	if code != 201 || json.Unmarshal([]byte(body), &tok) != nil {
		t.Fatalf("create token: %d %s", code, body)
	}
	// Restart, and upload with the token: the new process never runs
	// argon2id (64 MiB that the Go runtime keeps for a while after a
	// sign-in), so its resident memory before the upload is a true
	// baseline and the heap has no spare room the upload could hide in.
	if _, err := u.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	u.server = startServer(t, u.dir, []string{"CALLVAULT_STORAGE_DEFAULT_RETENTION_DAYS=30"})
	u.base = "http://" + u.addr
	pid := u.cmd.Process.Pid
	bearer := []string{"-H", "Authorization: Bearer " + tok.Token}
	if code, body := u.curl(uploadPath, append(bearer, "-F", "jsondata=<"+good, "-F", "attachment=@"+filepath.Join(td, "jfk_8k_ulaw.wav")+";type=audio/wave")...); code != 201 {
		t.Fatalf("small upload after restart: %d %s", code, body)
	}
	big := filepath.Join(u.dir, "big.wav")
	writeWAV(t, big, 256<<20)

	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS of the server (%v): the memory bound cannot be measured here", err)
	}
	before := procStatus(t, pid, "VmRSS")
	start := time.Now()
	code, body = u.curl(uploadPath, append(bearer, "-F", "jsondata=<"+good, "-F", "attachment=@"+big+";type=audio/wave")...)
	took := time.Since(start)
	if code != 201 {
		t.Fatalf("256 MB upload: %d %s", code, body)
	}
	peak := procStatus(t, pid, "VmHWM")
	after := procStatus(t, pid, "VmRSS")
	rise := peak - before
	t.Logf("256 MB upload in %v (%.0f MB/s): VmRSS before %d MB, VmHWM during %d MB, VmRSS after %d MB: rise %.1f MB",
		took.Round(time.Millisecond), 256/took.Seconds(), before>>20, peak>>20, after>>20, float64(rise)/(1<<20))
	if rise > 32<<20 {
		t.Errorf("peak RSS rose by %.1f MB during a 256 MB upload; the bound is 32 MB", float64(rise)/(1<<20))
	}
}
