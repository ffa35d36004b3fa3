package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

const testMasterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// storeData wires a real store into the API the way appliance/web.go does
// (repeated here: webui's tests must not import the appliance).
type storeData struct{ st *store.Store }

func (d storeData) CreateUpload(ctx context.Context, rec meta.Recording) (UploadWriter, error) {
	r, err := d.st.Create(ctx, rec, store.Bulk())
	if err != nil {
		return nil, err
	}
	return &storeUpload{st: d.st, r: r}, nil
}

type storeUpload struct {
	st     *store.Store
	r      *store.Recorder
	sealed bool // Close was called: the recorder is gone, Delete removes it
}

func (u *storeUpload) ID() string                  { return u.r.ID() }
func (u *storeUpload) Write(p []byte) (int, error) { return u.r.Write(p) }

// ReadFrom lets the handler read the attachment straight into the store,
// as the appliance's adapter does.
func (u *storeUpload) ReadFrom(r io.Reader) (int64, error) { return u.r.ReadFrom(r) }
func (u *storeUpload) Audio(ctx context.Context) (AudioFile, error) {
	if err := u.r.Flush(); err != nil {
		return nil, err
	}
	a, err := u.st.OpenAudio(ctx, u.r.ID())
	if err != nil {
		return nil, err
	}
	return a, nil
}
func (u *storeUpload) Seal(ctx context.Context, f UploadFinal) error {
	u.sealed = true
	_, err := u.r.Close(ctx, store.Final{DurationMs: &f.DurationMs, Channels: &f.Channels, Codecs: f.Codecs, DurationFlagged: &f.DurationFlagged, Audit: f.Audit})
	return err
}
func (u *storeUpload) Abort(ctx context.Context, by string) error {
	if u.sealed {
		return u.st.Delete(ctx, u.r.ID(), by)
	}
	return u.r.Abort(ctx, by)
}

// OpenSource and Delete make storeData the Library too (as appliance/web.go).
func (d storeData) OpenSource(ctx context.Context, id string) (*audio.Source, io.Closer, error) {
	a, err := d.st.OpenAudio(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	src, err := a.Source()
	if err != nil {
		_ = a.Close()
		return nil, nil, err
	}
	return src, a, nil
}

func (d storeData) Delete(ctx context.Context, id, by string) error { return d.st.Delete(ctx, id, by) }

// accountsOf is the sign-in form's view of the store (as appliance/accounts.go).
type accountsOf struct{ st *store.Store }

func (a accountsOf) AccountByName(username string) (Account, error) {
	u, err := a.st.Meta().UserByName("", username)
	if err != nil {
		return Account{}, ErrNoAccount
	}
	return Account{ID: u.ID, Username: u.Username, Role: string(u.Role), PasswordHash: u.PasswordHash, Disabled: u.Disabled}, nil
}

// testClock is a settable clock shared by the server and the test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuf collects the server's log for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testEnv struct {
	t     testing.TB
	dir   string
	st    *store.Store
	srv   *Server
	h     http.Handler
	clock *testClock
	log   *logBuf
	reg   *prometheus.Registry
}

// newEnv opens a real store in a temp dir and a server over it. mod may
// change the server's Config or replace its Data.
func newEnv(t testing.TB, mod func(*Config, *Data)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(store.Config{DataDir: filepath.Join(dir, "data"), Keys: store.KeySource{Env: testMasterKey}, FlushInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Meta().Check(); err != nil {
			t.Errorf("metadata invariants: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	jobs, err := st.NewExportJobs(store.ExportJobsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = jobs.Close() }) // before the store closes (cleanups run last first)
	clock := &testClock{t: time.Now().UTC().Truncate(time.Second)}
	cfg := Config{Now: clock.Now, Version: "test"}
	data := Data{Users: st.Meta(), Commands: st, Recordings: storeData{st}, Catalog: st.Meta(), Library: storeData{st}, Admin: st.Meta(),
		Exports: jobs, Retention: st}
	if mod != nil {
		mod(&cfg, &data)
	}
	lb := &logBuf{}
	reg := prometheus.NewRegistry()
	srv, err := New(cfg, slog.New(slog.NewJSONHandler(lb, nil)), reg, reg, accountsOf{st}, st, data)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, dir: dir, st: st, srv: srv, h: srv.Handler(), clock: clock, log: lb, reg: reg}
}

// hashes caches argon2id hashes of test passwords: each costs 64 MiB and
// ~50 ms, and the tests create many users with the same password.
var hashes sync.Map

func testHash(t testing.TB, pw string) string {
	if h, ok := hashes.Load(pw); ok {
		return h.(string)
	}
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	hashes.Store(pw, h)
	return h
}

const testPassword = "correct horse battery"

var allPerms = meta.Permissions{Play: true, Download: true, Delete: true, Preserve: true, Notes: true, BulkDownload: true, Upload: true}

// addUser creates a user with testPassword and returns it.
func (e *testEnv) addUser(username string, role meta.Role, mod ...func(*meta.User)) meta.User {
	e.t.Helper()
	id, _ := uuid.NewV7()
	u := meta.User{ID: id.String(), Username: username, Role: role, Permissions: allPerms,
		PasswordHash: testHash(e.t, testPassword), Created: e.clock.Now()}
	for _, m := range mod {
		m(&u)
	}
	if _, err := e.st.Apply(context.Background(), &meta.CreateUser{User: u}); err != nil {
		e.t.Fatal(err)
	}
	return u
}

type response struct {
	code int
	hdr  http.Header
	body []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d %q is not JSON: %v", r.code, r.body, err)
	}
}

// do sends req to the handler.
func (e *testEnv) do(req *http.Request) response {
	if req.RemoteAddr == "" || req.RemoteAddr == "192.0.2.1:1234" {
		req.RemoteAddr = "192.0.2.1:1234"
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return response{code: rec.Code, hdr: rec.Header(), body: rec.Body.Bytes()}
}

func basic(req *http.Request, user string) *http.Request {
	req.SetBasicAuth(user, testPassword)
	return req
}

// uploadBody builds the Imagicle two-part body: jsondata, then attachment.
func uploadBody(t testing.TB, jsondata string, filename, ctype string, audio []byte) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if jsondata != "" {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="jsondata"`)
		h.Set("Content-Type", "application/json")
		pw, _ := mw.CreatePart(h)
		_, _ = pw.Write([]byte(jsondata))
	}
	if audio != nil {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="attachment"; filename="`+filename+`"`)
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		pw, _ := mw.CreatePart(h)
		_, _ = pw.Write(audio)
	}
	_ = mw.Close()
	return &b, mw.FormDataContentType()
}

func uploadRequest(t testing.TB, path, jsondata, filename, ctype string, audio []byte) *http.Request {
	body, ct := uploadBody(t, jsondata, filename, ctype, audio)
	req := httptest.NewRequest(http.MethodPost, path, body)
	req.Header.Set("Content-Type", ct)
	return req
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "audio", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// metaJSON is a valid jsondata for a call that started start ago.
func metaJSON(username string, start time.Time, dur string, extra string) string {
	s := `{"startDateTime":"` + start.UTC().Format("2006-01-02T15:04:05.0000000Z") + `","duration":"` + dur +
		`","direction":1,"localParty":{"username":"` + username + `","phoneNumber":"201"},"remoteParty":{"phoneNumber":"+41440000000"},"pbxCallId":"pbx-1"`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

// recordingFiles counts recording files on the hot tier.
func (e *testEnv) recordingFiles() int {
	n := 0
	_ = filepath.WalkDir(filepath.Join(e.dir, "data", "recordings"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".cvr") {
			n++
		}
		return nil
	})
	return n
}

// visibleRecordings counts recordings a global search finds (deleted
// tombstones excluded).
func (e *testEnv) visibleRecordings() []meta.Recording {
	e.t.Helper()
	page, err := e.st.Meta().Search(meta.Query{Scope: meta.Scope{All: true}, Limit: 500})
	if err != nil {
		e.t.Fatal(err)
	}
	return page.Recordings
}

// assertNothingLeft checks that no recording file, no visible recording and
// no open recorder is left, and that no tombstone holds a data key.
func (e *testEnv) assertNothingLeft(files int) {
	e.t.Helper()
	if got := e.recordingFiles(); got != files {
		e.t.Errorf("%d recording files on disk, want %d", got, files)
	}
	if got := e.st.Stats().RecordingsOpen.Load(); got != 0 {
		e.t.Errorf("%d recordings left open", got)
	}
	page, err := e.st.Meta().Search(meta.Query{Scope: meta.Scope{All: true}, Limit: 500, IncludeDeleted: true})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range page.Recordings {
		if r.Status == meta.StatusDeleted && len(r.File.WrappedDEK) != 0 {
			e.t.Errorf("tombstone %s keeps its data key", r.ID)
		}
	}
}

var _ io.Reader = (*bytes.Buffer)(nil)

// counter reads a counter from the server's registry ("" label: unlabelled).
func (e *testEnv) counter(name, label, value string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				match = match || (lp.GetName() == label && lp.GetValue() == value)
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func jsonDecoder(s string) *json.Decoder { return json.NewDecoder(strings.NewReader(s)) }

func jsonMarshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
