package webui

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/callvault/callvault/store/meta"
)

// FuzzUploadMetadata: any jsondata gives a valid UploadMetadata or an error
// wrapping exactly one of the two metadata sentinels; a valid one holds
// only what meta accepts (so it can never turn into a 500 later).
func FuzzUploadMetadata(f *testing.F) {
	for _, s := range []string{
		`{"startDateTime":"2018-09-25T13:00:00.0000000Z","duration":"PT1M30S","direction":1,"localParty":{"username":"alice","phoneNumber":"201"},"remoteParty":{"phoneNumber":"+41"},"pbxCallId":"x","notes":"n","preserved":true}`,
		`{"startDateTime":"2018-09-25T13:00:00","duration":"P1DT2H","direction":0,"localParty":{"username":"a","phoneNumber":"1"}}`,
		`{"startDateTime":"2018-09-25T13:00:00+02:00","duration":"PT0.5S","direction":2,"localParty":{"username":"a","phoneNumber":"1"},"extra":[1,2]}`,
		`{"startDateTime":1,"duration":"PT1S"}`,
		`{"direction":"1"}`,
		`[]`, `null`, ``, `{}`, `{"localParty":null}`, `{"a":1}{"b":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseUploadMetadata(data)
		if err != nil {
			if errors.Is(err, ErrInvalidData) == errors.Is(err, ErrInvalidMetadata) {
				t.Fatalf("error wraps neither or both sentinels: %v", err)
			}
			if !utf8.ValidString(err.Error()) && utf8.Valid(data) {
				t.Fatalf("error message is not UTF-8: %q", err.Error())
			}
			return
		}
		if m.LocalUsername == "" || m.LocalNumber == "" || m.Duration < 0 || m.Start.Year() < 1970 || m.Start.Year() > 9999 {
			t.Fatalf("invalid metadata accepted: %+v", m)
		}
		switch m.Direction {
		case meta.DirUnknown, meta.DirIncoming, meta.DirOutgoing:
		default:
			t.Fatalf("direction %q", m.Direction)
		}
		for _, s := range []string{m.LocalUsername, m.LocalNumber, m.RemoteNumber, m.PBXCallID} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("field %q would be refused by meta", s)
			}
		}
		if len(m.LocalNumber) > maxNumberLen || len(m.RemoteNumber) > maxNumberLen || len(m.PBXCallID) > maxCallIDLen || len(m.Notes) > maxNoteLen {
			t.Fatalf("over-long field accepted: %+v", m)
		}
	})
}

// FuzzISODuration: never panics; an accepted duration is non-negative,
// and rendering it back as PTnS parses to the same value.
func FuzzISODuration(f *testing.F) {
	for _, s := range []string{"PT1M30S", "PT90S", "P1DT2H3M4.5S", "P2W", "PT0S", "PT1,5S", "P1Y", "P1M", "PT", "P", "-PT1S", "PT1H1H", "PT1S1M", "P1DT", "PT9999999999999999999S", "pt1m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseISODuration(s)
		if err != nil {
			return
		}
		if d < 0 || d > 367*24*time.Hour {
			t.Fatalf("%q → %v", s, d)
		}
		back := "PT" + strings.TrimRight(strings.TrimRight(formatSeconds(d), "0"), ".") + "S"
		d2, err := ParseISODuration(back)
		if err != nil || d2 != d {
			t.Fatalf("%q → %v → %q → %v, %v", s, d, back, d2, err)
		}
	})
}

func formatSeconds(d time.Duration) string {
	return fmt.Sprintf("%d.%09d", d/time.Second, d%time.Second)
}

// FuzzUploadBody sends arbitrary bodies, with a fixed boundary, through
// the whole upload handler against a real store: the answer is always
// 201 or a well-formed 400 (never a 500 or a panic), and no recording is
// ever left open; a refused upload leaves no file behind.
func FuzzUploadBody(f *testing.F) {
	e := newEnv(f, func(c *Config, _ *Data) { c.MaxUploadBytes = 256 << 10 })
	e.addUser("admin", meta.RoleAdmin)
	wav := readTestdata(f, "jfk_8k_pcm8.wav")[:4000]
	mp3 := readTestdata(f, "jfk.mp3")[:3000]
	js := metaJSON("admin", e.clock.Now().Add(-time.Hour), "PT0.5S", `"notes":"x"`)
	seed := func(parts ...string) []byte { return []byte(strings.Join(parts, "")) }
	head := "--B\r\nContent-Disposition: form-data; name=jsondata\r\n\r\n" + js + "\r\n--B\r\nContent-Disposition: form-data; name=attachment; filename=a.wav\r\nContent-Type: audio/wave\r\n\r\n"
	f.Add(seed(head, string(wav), "\r\n--B--\r\n"))
	f.Add(seed(head, string(mp3), "\r\n--B--\r\n"))
	f.Add(seed(head, string(wav[:100]), "\r\n--B--\r\n"))
	f.Add(seed(head, "RIFF\x00\x00\x00\x00WAVEfmt ", "\r\n--B--\r\n"))
	f.Add(seed(head, string(wav)))
	f.Add(seed("--B\r\nContent-Disposition: form-data; name=other\r\n\r\nx\r\n", head[2:], string(wav), "\r\n--B--\r\n"))
	f.Add(seed("--B--\r\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, body []byte) {
		files := e.recordingFiles()
		req := httptest.NewRequest(http.MethodPost, imagicle, bytes.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
		req.SetBasicAuth("admin", testPassword)
		r := e.do(req)
		switch r.code {
		case http.StatusCreated:
			var out struct{ ID string }
			r.json(t, &out)
			if rec, err := e.st.Meta().Recording(out.ID); err != nil || rec.Status != meta.StatusComplete {
				t.Fatalf("201 but recording %+v %v", rec, err)
			}
		case http.StatusBadRequest:
			var ue map[string]any
			r.json(t, &ue)
			reason, ok := ue["reason"].(float64)
			if len(ue) != 2 || !ok || reason < 0 || reason > 2 || ue["message"] == "" {
				t.Fatalf("malformed 400 body %s", r.body)
			}
			if got := e.recordingFiles(); got != files {
				t.Fatalf("refused upload left %d files (was %d)", got, files)
			}
		default:
			t.Fatalf("status %d: %s", r.code, r.body)
		}
		if n := e.st.Stats().RecordingsOpen.Load(); n != 0 {
			t.Fatalf("%d recordings left open", n)
		}
	})
}
