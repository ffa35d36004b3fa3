package webui

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

const imagicle = "/fw/Apps/Recorder/WebAPI/Recordings"

// TestUploadFormats uploads one file of every coding the issue lists and
// checks the 201, the stored metadata, the measured duration and that the
// stored audio is the uploaded file byte for byte.
func TestUploadFormats(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.addUser("admin", meta.RoleAdmin)
	alice := e.addUser("alice", meta.RoleUser, func(u *meta.User) { u.Groups = []string{"g1"} })
	start := e.clock.Now().Add(-time.Hour)
	cases := []struct {
		file, ctype, codec string
		format             meta.Format
		ms                 int64 // measured duration
		path               string
	}{
		{"jfk_8k_ulaw.wav", "audio/wave", "PCMU", meta.FormatWAV, 11000, imagicle},
		{"jfk_8k_alaw.wav", "audio/wave", "PCMA", meta.FormatWAV, 11000, "/api/v1/recordings"},
		{"jfk_8k_pcm16.wav", "audio/wav", "PCM", meta.FormatWAV, 11000, imagicle},
		{"jfk_8k_pcm8.wav", "application/octet-stream", "PCM", meta.FormatWAV, 11000, imagicle},
		{"jfk.mp3", "audio/mpeg", "MP3", meta.FormatMP3, 11100, "/api/v1/recordings"}, // soxi: 11.09 s
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data := readTestdata(t, c.file)
			js := metaJSON("alice", start, "PT11S", `"notes":"called about the invoice","preserved":true`)
			r := e.do(basic(uploadRequest(t, c.path, js, c.file, c.ctype, data), "admin"))
			if r.code != http.StatusCreated {
				t.Fatalf("%d %s", r.code, r.body)
			}
			var out struct{ ID string }
			r.json(t, &out)
			if r.hdr.Get("Location") != "/api/v1/recordings/"+out.ID {
				t.Errorf("Location %q", r.hdr.Get("Location"))
			}
			rec, err := e.st.Meta().Recording(out.ID)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status != meta.StatusComplete || rec.Source != meta.SourceUpload || rec.File.Format != c.format ||
				rec.Direction != meta.DirIncoming || rec.PBXCallID != "pbx-1" || !rec.Start.Equal(start) ||
				rec.LocalParty != (meta.LocalParty{User: alice.ID, Username: "alice", Number: "201"}) ||
				rec.RemoteParty.Number != "+41440000000" || rec.Group != "g1" || rec.Channels != 1 ||
				len(rec.Codecs) != 1 || rec.Codecs[0] != c.codec || rec.Size != int64(len(data)) {
				t.Errorf("stored metadata %+v", rec)
			}
			if d := rec.Duration - c.ms; d < -40 || d > 40 || rec.DurationFlagged {
				t.Errorf("duration %d ms flagged %v, want about %d", rec.Duration, rec.DurationFlagged, c.ms)
			}
			if rec.Preserved == nil || rec.Preserved.By != admin.ID {
				t.Errorf("not preserved by the uploader: %+v", rec.Preserved)
			}
			if len(rec.Notes) != 1 || rec.Notes[0].Text != "called about the invoice" || rec.Notes[0].Author != admin.ID {
				t.Errorf("notes %+v", rec.Notes)
			}
			a, err := e.st.OpenAudio(context.Background(), out.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			got := make([]byte, a.Size())
			if _, err := a.ReadAt(got, 0); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Error("stored audio differs from the upload")
			}
		})
	}
	if n := e.counter("callvault_uploads_total", "result", "created"); n != float64(len(cases)) {
		t.Errorf("uploads_total{created} = %v", n)
	}
}

// TestUploadDuration: a metadata duration within a second of the audio is
// replaced by the measured one; one further off is kept and flagged.
func TestUploadDuration(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	data := readTestdata(t, "jfk_8k_ulaw.wav") // 11.000 s
	for dur, want := range map[string]struct {
		ms      int64
		flagged bool
	}{
		"PT11S":      {11000, false},
		"PT11.9S":    {11000, false},
		"PT10.2S":    {11000, false},
		"PT12.5S":    {12500, true},
		"PT1M30S":    {90000, true},
		"PT0S":       {0, true},
		"P0DT0H0M9S": {9000, true},
	} {
		r := e.do(basic(uploadRequest(t, imagicle, metaJSON("admin", e.clock.Now().Add(-time.Hour), dur, ""), "a.wav", "audio/wave", data), "admin"))
		if r.code != http.StatusCreated {
			t.Fatalf("%s: %d %s", dur, r.code, r.body)
		}
		var out struct{ ID string }
		r.json(t, &out)
		rec, _ := e.st.Meta().Recording(out.ID)
		if rec.Duration != want.ms || rec.DurationFlagged != want.flagged {
			t.Errorf("%s: stored %d ms flagged %v, want %d %v", dur, rec.Duration, rec.DurationFlagged, want.ms, want.flagged)
		}
	}
}

// TestUploadDurationHeaderPlacement: the duration is measured from the
// header kept in memory when it fits there, from the stored file when a
// large chunk (a 100 KiB LIST) pushes the data chunk past it, and from
// the bytes received when the header claims more data than came.
func TestUploadDurationHeaderPlacement(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	wav := readTestdata(t, "jfk_8k_ulaw.wav") // 11.000 s of µ-law, 8,000 bytes a second
	dataAt := bytes.Index(wav, []byte("data"))
	fmtAt := bytes.Index(wav, []byte("fmt "))
	if dataAt < 0 || fmtAt < 0 || fmtAt > dataAt {
		t.Fatal("unexpected test WAV layout")
	}
	list := append([]byte("LIST"), binary.LittleEndian.AppendUint32(nil, 100<<10)...)
	list = append(list, make([]byte, 100<<10)...)
	bigHeader := append(append(append([]byte{}, wav[:dataAt]...), list...), wav[dataAt:]...)
	binary.LittleEndian.PutUint32(bigHeader[4:], uint32(len(bigHeader)-8))
	cut := wav[:len(wav)-8000*3] // the header still says 11 s; 8 s came

	// Each is given the duration it should measure: a different measurement
	// would be flagged.
	for name, c := range map[string]struct {
		data  []byte
		given string
		ms    int64
	}{
		"header in the head":       {wav, "PT11S", 11000},
		"header past the head":     {bigHeader, "PT11S", 11000},
		"data shorter than header": {cut, "PT8S", 8000},
	} {
		r := e.do(basic(uploadRequest(t, imagicle, metaJSON("admin", e.clock.Now().Add(-time.Hour), c.given, ""), "a.wav", "audio/wave", c.data), "admin"))
		if r.code != http.StatusCreated {
			t.Fatalf("%s: %d %s", name, r.code, r.body)
		}
		var out struct{ ID string }
		r.json(t, &out)
		rec, _ := e.st.Meta().Recording(out.ID)
		if rec.Duration != c.ms || rec.DurationFlagged {
			t.Errorf("%s: stored %d ms, flagged %v; want %d ms measured, not flagged", name, rec.Duration, rec.DurationFlagged, c.ms)
		}
	}
}

type uploadCase struct {
	name   string
	req    func(t *testing.T) *http.Request
	code   int
	reason int    // for 400
	msg    string // a part of the message
}

// TestUploadErrors drives every refusal the issue lists and checks the
// exact status, reason and JSON body, and that nothing is left behind.
func TestUploadErrors(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Data) {
		c.DefaultRetentionDays = 30
		c.MaxUploadBytes = 1 << 20
	})
	e.addUser("admin", meta.RoleAdmin)
	e.addUser("alice", meta.RoleUser)
	e.addUser("rec", meta.RoleRecordOnly)
	e.addUser("aud", meta.RoleAuditor)
	e.addUser("noup", meta.RoleSupervisor, func(u *meta.User) { u.Permissions.Upload = false })
	e.addUser("nopres", meta.RoleSupervisor, func(u *meta.User) { u.Permissions.Preserve = false; u.Permissions.Notes = false })
	wav := readTestdata(t, "jfk_8k_ulaw.wav")
	now := e.clock.Now()
	good := metaJSON("alice", now.Add(-time.Hour), "PT11S", "")
	up := func(user, js, ctype string, audio []byte) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			return basic(uploadRequest(t, imagicle, js, "sample.wav", ctype, audio), user)
		}
	}
	withField := func(field, value string) string { // replace one field of good
		var m map[string]any
		_ = jsonUnmarshal(good, &m)
		if value == "" {
			delete(m, field)
		} else {
			var v any
			_ = jsonUnmarshal(value, &v)
			m[field] = v
		}
		return jsonMarshal(m)
	}
	raw := func(user, ctype, body string) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			req := httptest.NewRequest(http.MethodPost, imagicle, strings.NewReader(body))
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			return basic(req, user)
		}
	}
	big := append(append([]byte{}, wav...), make([]byte, 1<<20)...)
	corrupt := append([]byte{}, wav[:bytes.Index(wav, []byte("data"))+8]...) // header only: no samples
	badHeader := append([]byte{}, wav...)
	binary.LittleEndian.PutUint16(badHeader[22:], 0) // zero channels
	reversed := func(t *testing.T) *http.Request {   // attachment before jsondata
		var b bytes.Buffer
		b.WriteString("--XX\r\nContent-Disposition: form-data; name=attachment; filename=a.wav\r\nContent-Type: audio/wave\r\n\r\n")
		b.Write(wav)
		b.WriteString("\r\n--XX\r\nContent-Disposition: form-data; name=jsondata\r\n\r\n" + good + "\r\n--XX--\r\n")
		req := httptest.NewRequest(http.MethodPost, imagicle, &b)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=XX")
		return basic(req, "admin")
	}
	cases := []uploadCase{
		// 400 reason 0: InvalidData.
		{"no body", raw("admin", "multipart/form-data; boundary=XX", ""), 400, 0, "no body"},
		{"not multipart", raw("admin", "application/json", good), 400, 0, "not multipart/form-data"},
		{"no boundary", raw("admin", "multipart/form-data", "x"), 400, 0, "boundary"},
		{"garbage body", raw("admin", "multipart/form-data; boundary=XX", "hello"), 400, 0, "multipart"},
		{"no jsondata", up("admin", "", "audio/wave", wav), 400, 0, "jsondata part must come before"},
		{"no attachment", up("admin", good, "", nil), 400, 0, "attachment part is missing"},
		{"no parts", raw("admin", "multipart/form-data; boundary=XX", "--XX--\r\n"), 400, 0, "jsondata part is missing"},
		{"attachment first", reversed, 400, 0, "must come before"},
		{"unparsable json", up("admin", `{"startDateTime":`, "audio/wave", wav), 400, 0, "not a JSON object"},
		{"json array", up("admin", `[1,2]`, "audio/wave", wav), 400, 0, "not a JSON object"},
		{"empty json", up("admin", ` `, "audio/wave", wav), 400, 0, "empty"},
		// 400 reason 1: InvalidRecordingMetadata, naming the field.
		{"no startDateTime", up("admin", withField("startDateTime", ""), "audio/wave", wav), 400, 1, "startDateTime is missing"},
		{"bad startDateTime", up("admin", withField("startDateTime", `"yesterday"`), "audio/wave", wav), 400, 1, "startDateTime"},
		{"future startDateTime", up("admin", withField("startDateTime", `"`+now.Add(time.Hour).Format(time.RFC3339)+`"`), "audio/wave", wav), 400, 1, "startDateTime"},
		{"no duration", up("admin", withField("duration", ""), "audio/wave", wav), 400, 1, "duration is missing"},
		{"bad duration", up("admin", withField("duration", `"90 seconds"`), "audio/wave", wav), 400, 1, "duration"},
		{"number duration", up("admin", withField("duration", `90`), "audio/wave", wav), 400, 1, "duration"},
		{"no direction", up("admin", withField("direction", ""), "audio/wave", wav), 400, 1, "direction is missing"},
		{"bad direction", up("admin", withField("direction", `3`), "audio/wave", wav), 400, 1, "direction"},
		{"string direction", up("admin", withField("direction", `"1"`), "audio/wave", wav), 400, 1, "direction"},
		{"no localParty", up("admin", withField("localParty", ""), "audio/wave", wav), 400, 1, "localParty is missing"},
		{"no username", up("admin", withField("localParty", `{"phoneNumber":"1"}`), "audio/wave", wav), 400, 1, "localParty.username"},
		{"no phoneNumber", up("admin", withField("localParty", `{"username":"alice"}`), "audio/wave", wav), 400, 1, "localParty.phoneNumber"},
		{"long number", up("admin", withField("remoteParty", `{"phoneNumber":"`+strings.Repeat("1", 65)+`"}`), "audio/wave", wav), 400, 1, "remoteParty.phoneNumber"},
		{"NUL in pbxCallId", up("admin", withField("pbxCallId", `"a\u0000b"`), "audio/wave", wav), 400, 1, "pbxCallId"},
		{"bad preserved", up("admin", withField("preserved", `"yes"`), "audio/wave", wav), 400, 1, "preserved"},
		// 400 reason 2: InvalidRecordingAudioFile.
		{"24-bit WAV", up("admin", good, "audio/wave", readTestdata(t, "bwf.wav")), 400, 2, "24-bit"},
		{"text file", up("admin", good, "audio/wave", []byte("this is not audio at all, just some text\n")), 400, 2, "not a WAV or MP3"},
		{"empty file", up("admin", good, "audio/wave", []byte{}), 400, 2, "empty"},
		{"text content type", up("admin", good, "text/plain", wav), 400, 2, "Content-Type"},
		{"header only", up("admin", good, "audio/wave", corrupt), 400, 2, "no audio"},
		{"zero channels", up("admin", good, "audio/wave", badHeader), 400, 2, ""},
		{"too large", up("admin", good, "audio/wave", big), 400, 2, "larger than 1048576 bytes"},
		// 401, 403, 409.
		{"wrong password", func(t *testing.T) *http.Request {
			req := uploadRequest(t, imagicle, good, "a.wav", "audio/wave", wav)
			req.SetBasicAuth("admin", "not the password")
			return req
		}, 401, 0, ""},
		{"anonymous", func(t *testing.T) *http.Request { return uploadRequest(t, imagicle, good, "a.wav", "audio/wave", wav) }, 401, 0, ""},
		{"record-only", up("rec", good, "audio/wave", wav), 403, 0, "upload"},
		{"auditor", up("aud", good, "audio/wave", wav), 403, 0, "upload"},
		{"upload withheld", up("noup", good, "audio/wave", wav), 403, 0, "upload"},
		{"preserve withheld", up("nopres", withField("preserved", "true"), "audio/wave", wav), 403, 0, "preserve"},
		{"notes withheld", up("nopres", withField("notes", `"hi"`), "audio/wave", wav), 403, 0, "notes"},
		{"user for someone else", up("alice", withField("localParty", `{"username":"admin","phoneNumber":"1"}`), "audio/wave", wav), 403, 0, "own calls"},
		{"before retention", up("admin", withField("startDateTime", `"`+now.Add(-31*24*time.Hour).Format(time.RFC3339)+`"`), "audio/wave", wav), 409, 0, "retention period of 30 days"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := e.recordingFiles()
			r := e.do(c.req(t))
			if r.code != c.code {
				t.Fatalf("%d %s, want %d", r.code, r.body, c.code)
			}
			if c.code == 400 {
				var body map[string]any
				r.json(t, &body)
				if len(body) != 2 || body["reason"] != float64(c.reason) || !strings.Contains(body["message"].(string), c.msg) {
					t.Errorf("body %s, want reason %d and %q", r.body, c.reason, c.msg)
				}
			} else if !strings.Contains(string(r.body), c.msg) {
				t.Errorf("body %s lacks %q", r.body, c.msg)
			}
			e.assertNothingLeft(files)
		})
	}
	if n := len(e.visibleRecordings()); n != 0 {
		t.Errorf("%d recordings after only refused uploads", n)
	}
}

func jsonUnmarshal(s string, v any) error { return jsonDecoder(s).Decode(v) }

// TestUploadCutOff cuts the body off at many points (inside the JSON,
// inside the audio, before the end boundary) and checks that nothing is
// left behind and no recording stays open.
func TestUploadCutOff(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	body, ct := uploadBody(t, metaJSON("admin", e.clock.Now().Add(-time.Hour), "PT11S", ""), "a.wav", "audio/wave", readTestdata(t, "jfk_8k_ulaw.wav"))
	full := body.Bytes()
	for _, cut := range []int{10, 200, 400, 70 << 10, len(full) / 2, len(full) - 100, len(full) - 8} {
		req := httptest.NewRequest(http.MethodPost, imagicle, io.MultiReader(bytes.NewReader(full[:cut]), errReader{io.ErrUnexpectedEOF}))
		req.Header.Set("Content-Type", ct)
		r := e.do(basic(req, "admin"))
		if r.code != 400 || !strings.Contains(string(r.body), `"reason":0`) {
			t.Errorf("cut at %d of %d: %d %s", cut, len(full), r.code, r.body)
		}
		e.assertNothingLeft(0)
	}
	if n := e.counter("callvault_uploads_total", "result", "cut_off"); n < 5 {
		t.Errorf("uploads_total{cut_off} = %v", n)
	}
	// And the whole body still works.
	req := httptest.NewRequest(http.MethodPost, imagicle, bytes.NewReader(full))
	req.Header.Set("Content-Type", ct)
	if r := e.do(basic(req, "admin")); r.code != http.StatusCreated {
		t.Fatalf("whole body: %d %s", r.code, r.body)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// failingData makes the store fail at a chosen step.
type failingData struct {
	Recordings
	failWrite, failSeal bool
}

func (f failingData) CreateUpload(ctx context.Context, rec meta.Recording) (UploadWriter, error) {
	w, err := f.Recordings.CreateUpload(ctx, rec)
	if err != nil {
		return nil, err
	}
	return &failingUpload{UploadWriter: w, f: f}, nil
}

type failingUpload struct {
	UploadWriter
	f failingData
}

var errDiskOnFire = errors.New("disk on fire")

func (u *failingUpload) Write(p []byte) (int, error) {
	if u.f.failWrite {
		return 0, errDiskOnFire
	}
	return u.UploadWriter.Write(p)
}

func (u *failingUpload) Seal(ctx context.Context, f UploadFinal) error {
	if u.f.failSeal {
		_ = u.UploadWriter.Seal(ctx, f)
		return errDiskOnFire
	}
	return u.UploadWriter.Seal(ctx, f)
}

// TestUploadInternalError: a store failure answers 500 with a correlation
// ID that is in the log next to the real error, which is not in the
// response; and nothing is left behind.
func TestUploadInternalError(t *testing.T) {
	for _, step := range []string{"write", "seal"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, func(_ *Config, d *Data) {
				d.Recordings = failingData{Recordings: d.Recordings, failWrite: step == "write", failSeal: step == "seal"}
			})
			e.addUser("admin", meta.RoleAdmin)
			r := e.do(basic(uploadRequest(t, imagicle, metaJSON("admin", e.clock.Now().Add(-time.Hour), "PT11S", ""), "a.wav", "audio/wave", readTestdata(t, "jfk_8k_ulaw.wav")), "admin"))
			var body apiMessage
			r.json(t, &body)
			if r.code != 500 || len(body.CorrelationID) != 16 || strings.Contains(string(r.body), "fire") {
				t.Fatalf("%d %s", r.code, r.body)
			}
			if !strings.Contains(e.log.String(), body.CorrelationID) || !strings.Contains(e.log.String(), "disk on fire") {
				t.Errorf("log lacks the correlation ID or the cause:\n%s", e.log)
			}
			if step == "write" {
				e.assertNothingLeft(0)
			}
			if n := len(e.visibleRecordings()); n != 0 {
				t.Errorf("%d recordings visible after a failed upload", n)
			}
		})
	}
}
