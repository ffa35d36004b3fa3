package webui

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// BenchmarkUpload100MB uploads a 100 MB WAV through the upload handler
// (multipart parsing, the encrypted store's pipelined writer, fsync, the
// duration read back from the stored file) and, in the same iteration,
// writes the same bytes to a plain file on the same disk (64 KiB writes,
// fsync), and reports both throughputs and their ratio
// (upload-vs-plain-ratio; the goal is ≥ 0.70). A third variant
// writes the same bytes straight into the store (Create with Bulk, Write,
// Seal: no HTTP, no multipart, no read-back), so the report can tell the
// handler's own cost (upload-vs-store-ratio) from the encrypted store's
// (store-vs-plain-ratio). The three run in one loop in rotating order, so
// a noisy neighbour slows all of them alike.
func BenchmarkUpload100MB(b *testing.B) {
	e, wav, viaHandler, plain := upload100MB(b)
	// One upload first, so the password check's cache is warm and argon2id
	// (about 65 ms of CPU, once per client) is not counted in the first of
	// only three timed uploads, as for an integrator that uploads all day.
	if err := e.st.Delete(context.Background(), viaHandler(), "bench"); err != nil {
		b.Fatal(err)
	}

	var upload, base, direct time.Duration
	viaStore := func() string {
		uw, err := e.srv.data.Recordings.CreateUpload(context.Background(), meta.Recording{
			Start: e.clock.Now().Add(-time.Hour), Direction: meta.DirIncoming, Source: meta.SourceUpload, File: meta.FileInfo{Format: meta.FormatWAV}})
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < uploadBenchSize; off += 64 << 10 {
			if _, err := uw.Write(wav[off:min(off+64<<10, uploadBenchSize)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := uw.Seal(context.Background(), UploadFinal{DurationMs: 1, Channels: 1}); err != nil {
			b.Fatal(err)
		}
		return uw.ID()
	}
	b.SetBytes(uploadBenchSize)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		var ids []string
		for k := range 3 {
			t0 := time.Now()
			switch (i + k) % 3 {
			case 0:
				ids = append(ids, viaHandler())
				upload += time.Since(t0)
			case 1:
				if err := writePlain(plain, wav); err != nil {
					b.Fatal(err)
				}
				base += time.Since(t0)
			case 2:
				ids = append(ids, viaStore())
				direct += time.Since(t0)
			}
		}
		i++
		b.StopTimer()
		for _, id := range ids {
			if err := e.st.Delete(context.Background(), id, "bench"); err != nil {
				b.Fatal(err)
			}
		}
		_ = os.Remove(plain)
		b.StartTimer()
	}
	n := float64(b.N)
	mb := float64(uploadBenchSize) / (1 << 20)
	b.ReportMetric(mb*n/upload.Seconds(), "upload-MB/s")
	b.ReportMetric(mb*n/base.Seconds(), "plain-MB/s")
	b.ReportMetric(mb*n/direct.Seconds(), "store-MB/s")
	b.ReportMetric(base.Seconds()/upload.Seconds(), "upload-vs-plain-ratio")
	b.ReportMetric(direct.Seconds()/upload.Seconds(), "upload-vs-store-ratio")
	b.ReportMetric(base.Seconds()/direct.Seconds(), "store-vs-plain-ratio")
}

// writePlain is the baseline: the same bytes to a plain file, 64 KiB at a
// time as the handler copies, then fsync.
func writePlain(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); off += 64 << 10 {
		if _, err := f.Write(data[off:min(off+64<<10, len(data))]); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BenchmarkSearchAPI answers GET /api/v1/recordings (the default search: an
// admin's last 7 days, the first page of 50) through the whole handler with
// CALLVAULT_SEARCH_N recordings in the store (default 20,000), from
// GOMAXPROCS goroutines at once, and reports the server time and
// allocations per page: the CPU one search costs, which is what bounds the
// search API's latency under many clients (test/search_load_test.go).
func BenchmarkSearchAPI(b *testing.B) {
	n := 20_000
	if s := os.Getenv("CALLVAULT_SEARCH_N"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil {
			b.Fatal(err)
		}
	}
	e := newEnv(b, nil)
	e.addUser("admin", meta.RoleAdmin)
	agents := make([]meta.User, 40)
	for i := range agents {
		agents[i] = e.addUser(fmt.Sprintf("agent%02d", i), meta.RoleUser, func(u *meta.User) { u.DisplayName = fmt.Sprintf("Agent %02d", i) })
	}
	now := e.clock.Now()
	span := 30 * 24 * time.Hour
	cmds := make([]meta.Command, 0, n)
	for i := range n {
		u := agents[i%len(agents)]
		at := now.Add(-time.Duration(int64(span) / int64(n) * int64(n-i)))
		cmds = append(cmds, &meta.CreateRecording{Recording: meta.Recording{
			ID: fmt.Sprintf("%08x-0000-7000-9000-%012x", at.UnixMilli()>>16, i), Start: at, Duration: int64(20_000 + i%400_000),
			Direction: [2]meta.Direction{meta.DirIncoming, meta.DirOutgoing}[i%2], Source: meta.SourceMirror, SIPCallIDIngress: fmt.Sprintf("%x@sbc.example.com", i*7919),
			LocalParty:  meta.LocalParty{User: u.ID, Username: u.Username, Name: u.DisplayName, Number: fmt.Sprintf("2%03d", i%1000)},
			RemoteParty: meta.RemoteParty{Number: fmt.Sprintf("+4144%07d", i%9_999_999), Name: "Customer Name"},
			Status:      meta.StatusComplete, Channels: 2, Codecs: []string{"PCMU"},
		}})
	}
	if err := applyAll(context.Background(), e, cmds); err != nil {
		b.Fatal(err)
	}
	req := basic(httptest.NewRequest(http.MethodPost, "/api/v1/tokens", strings.NewReader(`{"label":"bench"}`)), "admin")
	var created createTokenResponse
	e.do(req).json(b, &created)
	tok := created.Token
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/recordings", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || rec.Body.Len() < 50*200 {
				b.Errorf("%d, %d bytes", rec.Code, rec.Body.Len())
				return
			}
		}
	})
}

// uploadBenchSize is the upload benchmarks' WAV: 100 MB.
const uploadBenchSize = 100 << 20

// upload100MB prepares the 100 MB upload benchmarks: an environment with
// an admin, the WAV, a function that uploads it through the handler (the
// multipart framing is split around an empty attachment, so each request
// streams the 100 MB from memory without a 100 MB body copy) and returns
// the new recording's ID, and the plain file's path.
func upload100MB(b *testing.B) (e *testEnv, wav []byte, upload func() string, plain string) {
	e = newEnv(b, nil)
	e.addUser("admin", meta.RoleAdmin)
	wav = pcmWAV(8000, 1, (uploadBenchSize-44)/2)
	for i := 44; i+1 < uploadBenchSize; i += 2 {
		binary.LittleEndian.PutUint16(wav[i:], uint16(i*7))
	}
	js := metaJSON("admin", e.clock.Now().Add(-time.Hour), "PT6553.5S", "")
	body, ct := uploadBody(b, js, "big.wav", "audio/wave", []byte{})
	raw := body.Bytes()
	cut := bytes.LastIndex(raw, []byte("\r\n--"))
	prefix, suffix := raw[:cut], raw[cut:]
	upload = func() string {
		req := httptest.NewRequest(http.MethodPost, imagicle, io.MultiReader(bytes.NewReader(prefix), bytes.NewReader(wav), bytes.NewReader(suffix)))
		req.Header.Set("Content-Type", ct)
		req.ContentLength = int64(len(prefix) + uploadBenchSize + len(suffix))
		req.SetBasicAuth("admin", testPassword)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
		var out struct{ ID string }
		response{code: rec.Code, body: rec.Body.Bytes()}.json(b, &out)
		return out.ID
	}
	return e, wav, upload, filepath.Join(e.dir, "plain.bin")
}
