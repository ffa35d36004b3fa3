package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/callvault/callvault/store/bundle"
	"github.com/callvault/callvault/store/meta"
)

// jobClock is a clock tests move by hand.
type jobClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *jobClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *jobClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func waitJob(t *testing.T, j *ExportJobs, id string, states ...string) ExportJob {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := j.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range states {
			if got.State == s {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s after 20 s, want %v", id, got.State, states)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestExportJobs: a job writes a bundle that verifies, never in clear on
// disk; progress reaches the total; a deleted job's file is gone; finished
// jobs expire; Close stops every goroutine and removes the files.
func TestExportJobs(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	clock := &jobClock{now: time.Now().UTC()}
	s := openStore(t, dir, func(c *Config) { c.Now = clock.Now })
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		r, err := s.Create(ctx, newRecording(clock.Now().Add(time.Duration(-i)*time.Minute), meta.FormatWAV))
		if err != nil {
			t.Fatal(err)
		}
		r.Write(testWAV(8000, 16000))
		if _, err := r.Close(ctx, Final{}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID())
	}
	j, err := s.NewExportJobs(ExportJobsConfig{Workers: 1, Queue: 2, Sweep: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	job, err := j.Submit(ExportRequest{IDs: ids, By: "u-aud", Tenant: "t1", Address: "192.0.2.7"})
	if err != nil || job.State != JobQueued || job.Total != 3 {
		t.Fatalf("submit: %+v, %v", job, err)
	}
	done := waitJob(t, j, job.ID, JobDone, JobFailed)
	if done.State != JobDone || done.Done != 3 || done.Bytes == 0 || done.Fingerprint != Fingerprint(s.PublicKey()) || done.Expires == nil {
		t.Fatalf("finished job: %+v", done)
	}
	// On disk: only ciphertext. A zip's local header magic or the WAV's
	// RIFF would show through if the bundle were stored in clear.
	files, _ := filepath.Glob(filepath.Join(dir, "exports", "*"))
	if len(files) != 1 {
		t.Fatalf("export files %v", files)
	}
	raw, _ := os.ReadFile(files[0])
	for _, clear := range [][]byte{[]byte("PK\x03\x04"), []byte("manifest.json"), []byte("RIFF")} {
		if bytes.Contains(raw, clear) {
			t.Fatalf("the export file holds %q in clear", clear)
		}
	}
	f, info, err := j.Open(job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != info.Bytes {
		t.Errorf("file of %d bytes, the job says %d", f.Size(), info.Bytes)
	}
	rep, err := bundle.Verify(f, f.Size(), Fingerprint(s.PublicKey()))
	f.Close()
	if err != nil || !rep.OK() || len(rep.Manifest.Recordings) != 3 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	p, _ := s.Meta().SearchAudit(meta.AuditQuery{Action: meta.AuditExport, Recording: ids[0]})
	if len(p.Entries) != 1 || p.Entries[0].Actor != "u-aud" || p.Entries[0].Address != "192.0.2.7" {
		t.Fatalf("export audit: %+v", p.Entries)
	}
	if l := j.List(func(e ExportJob) bool { return e.By == "u-aud" }); len(l) != 1 || l[0].ID != job.ID {
		t.Fatalf("List: %+v", l)
	}
	if l := j.List(func(e ExportJob) bool { return e.By == "someone-else" }); len(l) != 0 {
		t.Fatalf("List of another user: %+v", l)
	}

	// A job that fails (a deleted recording) says why and leaves no file.
	if err := s.Delete(ctx, ids[2], "admin"); err != nil {
		t.Fatal(err)
	}
	bad, err := j.Submit(ExportRequest{IDs: ids, By: "u-aud"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitJob(t, j, bad.ID, JobDone, JobFailed); got.State != JobFailed || got.Error == "" {
		t.Fatalf("job with a deleted recording: %+v", got)
	}
	if _, _, err := j.Open(bad.ID); !errors.Is(err, ErrJobNotDone) {
		t.Fatalf("Open of a failed job: %v", err)
	}

	// Delete removes the file and the job.
	if err := j.Delete(job.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(files[0]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted job's file: %v", err)
	}
	if _, err := j.Get(job.ID); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}

	// Expiry: nothing before the time, the finished ones after it.
	again, _ := j.Submit(ExportRequest{IDs: ids[:1], By: "u-aud"})
	waitJob(t, j, again.ID, JobDone)
	if n := j.Expire(); n != 0 {
		t.Fatalf("expired %d jobs early", n)
	}
	clock.Add(24*time.Hour + time.Second)
	if n := j.Expire(); n != 2 {
		t.Fatalf("expired %d jobs, want 2 (the done and the failed one)", n)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "exports", "*")); len(files) != 0 {
		t.Fatalf("files after expiry: %v", files)
	}
	if s.Stats().ExportJobsDone.Load() != 2 || s.Stats().ExportJobsFailed.Load() != 1 {
		t.Errorf("stats: done %d failed %d", s.Stats().ExportJobsDone.Load(), s.Stats().ExportJobsFailed.Load())
	}

	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Submit(ExportRequest{IDs: ids[:1]}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: %v", err)
	}
	waitGoroutines(t, before+3) // the store's own flusher and test runtime
}

func waitGoroutines(t *testing.T, max int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > max {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), max, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExportJobsQueueAndCancel: one job runs at a time, the queue is
// bounded, and deleting a running job cancels it and removes its file.
func TestExportJobsQueueAndCancel(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	// Long recordings, so a job runs long enough to be caught running.
	var ids []string
	for i := range 4 {
		r, err := s.Create(ctx, newRecording(time.Now().Add(time.Duration(-i)*time.Hour), meta.FormatWAV))
		if err != nil {
			t.Fatal(err)
		}
		r.Write(testWAV(8000, 8000*300))
		if _, err := r.Close(ctx, Final{}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID())
	}
	j, err := s.NewExportJobs(ExportJobsConfig{Workers: 1, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	first, err := j.Submit(ExportRequest{IDs: ids, By: "a"})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, j, first.ID, JobRunning)
	second, err := j.Submit(ExportRequest{IDs: ids, By: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Submit(ExportRequest{IDs: ids, By: "a"}); !errors.Is(err, ErrJobQueueFull) {
		t.Fatalf("third job with a queue of one: %v", err)
	}
	if got, _ := j.Get(second.ID); got.State != JobQueued {
		t.Fatalf("second job is %s while the first runs, want queued", got.State)
	}
	if err := j.Delete(first.ID); err != nil {
		t.Fatal(err)
	}
	// The second starts once the first has stopped; the first's file is gone.
	waitJob(t, j, second.ID, JobRunning, JobDone)
	if err := j.Delete(second.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "exports", "*"))
		if len(files) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("files of deleted jobs stay: %v", files)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.Stats().ExportJobsCancelled.Load() < 1 {
		t.Errorf("no cancelled job counted")
	}
}

var _ io.ReaderAt = (*ExportFile)(nil)
