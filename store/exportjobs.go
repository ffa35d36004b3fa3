package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/recfile"
	"github.com/google/uuid"
)

// Export jobs write large bundles in the background (POST /api/v1/exports,
// `callvault export --server`). A bundle holds decrypted audio, so the
// finished zip must not lie on disk in clear: each job writes it through
// recfile's encrypting writer into <data>/exports/<job>.cvx under a fresh
// random key that lives only in this process's memory. Nothing at rest can
// open it: after a restart the jobs are gone and their files are noise,
// removed at the next start. The download decrypts as it streams (with
// random access, so HTTP ranges work).
//
// At most Workers jobs run at once (each renders audio: CPU), the rest
// wait in a bounded queue; finished files expire after Expire. The
// workers and the janitor are owned by ExportJobs and stopped by Close.

// Job states.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// Sentinel errors of export jobs.
var (
	// ErrJobNotFound: no such export job (never made, deleted or expired).
	ErrJobNotFound = errors.New("export job not found")
	// ErrJobNotDone: the job's bundle is not ready (queued, running, failed
	// or cancelled).
	ErrJobNotDone = errors.New("export job not done")
	// ErrJobQueueFull: too many jobs are waiting.
	ErrJobQueueFull = errors.New("export job queue full")
)

// ExportJobsConfig configures the export jobs.
type ExportJobsConfig struct {
	// Workers is how many jobs run at once; 0 means 2.
	Workers int
	// Queue is how many jobs may wait; 0 means 64.
	Queue int
	// Expire is how long a finished job and its file are kept; 0 means 24 h.
	Expire time.Duration
	// Sweep is how often expired jobs are removed; 0 means a minute.
	Sweep time.Duration
}

// ExportRequest is a job to do: the recordings (already resolved and
// checked against the caller's view) and who asked.
type ExportRequest struct {
	IDs     []string
	By      string // user ID: the job's owner and the audit entries' actor
	Tenant  string // the owner's tenant, for listings
	Address string // the client's address, for the audit entries
}

// ExportJob is a job's state as reported to its owner.
type ExportJob struct {
	ID          string     `json:"id"`
	State       string     `json:"state"`
	Total       int        `json:"total"`
	Done        int        `json:"done"`
	Bytes       int64      `json:"bytes"`
	Error       string     `json:"error,omitempty"`
	Fingerprint string     `json:"fingerprint,omitempty"`
	Created     time.Time  `json:"created"`
	Finished    *time.Time `json:"finished,omitempty"`
	Expires     *time.Time `json:"expires,omitempty"`
	By          string     `json:"by"`
	Tenant      string     `json:"tenant"`
}

// job is a job's private state; its fields are guarded by ExportJobs.mu.
type job struct {
	ExportJob
	ids     []string
	address string
	key     []byte // the bundle file's key; zeroed when the job is removed
	path    string
	cancel  context.CancelFunc
	removed bool // deleted or expired while running: the worker cleans up
}

// ExportJobs runs export jobs against a store.
type ExportJobs struct {
	s     *Store
	cfg   ExportJobsConfig
	dir   string
	queue chan *job

	mu   sync.Mutex
	jobs map[string]*job

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// NewExportJobs starts the export workers and the janitor. Files left by
// an earlier process (whose keys died with it) are removed first.
func (s *Store) NewExportJobs(cfg ExportJobsConfig) (*ExportJobs, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 64
	}
	if cfg.Expire <= 0 {
		cfg.Expire = 24 * time.Hour
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = time.Minute
	}
	dir := filepath.Join(s.cfg.DataDir, "exports")
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("remove old export files: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create export directory: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	j := &ExportJobs{s: s, cfg: cfg, dir: dir, queue: make(chan *job, cfg.Queue), jobs: map[string]*job{}, ctx: ctx, stop: stop}
	for range cfg.Workers {
		j.wg.Add(1)
		go j.worker()
	}
	j.wg.Add(1)
	go j.janitor()
	return j, nil
}

// Close cancels running jobs, stops the workers and the janitor, waits for
// them and removes every job's file.
func (j *ExportJobs) Close() error {
	j.stop()
	j.wg.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	for id, jb := range j.jobs {
		j.forget(jb)
		delete(j.jobs, id)
	}
	return os.RemoveAll(j.dir)
}

// Submit queues a job.
func (j *ExportJobs) Submit(req ExportRequest) (ExportJob, error) {
	if len(req.IDs) == 0 {
		return ExportJob{}, fmt.Errorf("%w: an export of no recordings", errInvalidExport)
	}
	if err := j.ctx.Err(); err != nil {
		return ExportJob{}, ErrClosed
	}
	u, err := uuid.NewV7()
	if err != nil {
		return ExportJob{}, err
	}
	jb := &job{
		ExportJob: ExportJob{ID: u.String(), State: JobQueued, Total: len(req.IDs), Created: j.s.cfg.Now().UTC(), By: req.By, Tenant: req.Tenant},
		ids:       slices.Clone(req.IDs), address: req.Address,
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	select {
	case j.queue <- jb:
	default:
		return ExportJob{}, fmt.Errorf("%w: %d jobs waiting", ErrJobQueueFull, cap(j.queue))
	}
	j.jobs[jb.ID] = jb
	j.s.stats.ExportJobsQueued.Add(1)
	return jb.ExportJob, nil
}

// errInvalidExport is wrapped with meta's sense of a bad request.
var errInvalidExport = errors.New("invalid export")

// Get reports a job.
func (j *ExportJobs) Get(id string) (ExportJob, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	jb, ok := j.jobs[id]
	if !ok {
		return ExportJob{}, fmt.Errorf("%w: %s", ErrJobNotFound, id)
	}
	return jb.ExportJob, nil
}

// List reports the jobs keep accepts, oldest first.
func (j *ExportJobs) List(keep func(ExportJob) bool) []ExportJob {
	j.mu.Lock()
	out := make([]ExportJob, 0, len(j.jobs))
	for _, jb := range j.jobs {
		if keep(jb.ExportJob) {
			out = append(out, jb.ExportJob)
		}
	}
	j.mu.Unlock()
	slices.SortFunc(out, func(a, b ExportJob) int { return a.Created.Compare(b.Created)*2 + cmpStr(a.ID, b.ID) })
	return out
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Delete cancels a job if it is queued or running, removes its file and
// forgets it.
func (j *ExportJobs) Delete(id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	jb, ok := j.jobs[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrJobNotFound, id)
	}
	delete(j.jobs, id)
	j.forget(jb)
	return nil
}

// forget cancels a job and removes its file; with j.mu held. A running
// job's worker sees removed and leaves the rest to nobody: its file is
// removed here, and again by the worker if it created it meanwhile.
func (j *ExportJobs) forget(jb *job) {
	jb.removed = true
	if jb.State == JobQueued || jb.State == JobRunning {
		jb.State = JobCancelled
		j.s.stats.ExportJobsCancelled.Add(1)
	}
	if jb.cancel != nil {
		jb.cancel()
	}
	if jb.path != "" {
		_ = os.Remove(jb.path)
	}
	keyring.Zero(jb.key)
}

// ExportFile is a finished job's bundle, decrypted as it is read.
type ExportFile struct {
	r *recfile.Reader
}

// ReadAt reads the bundle (zip) at off.
func (f *ExportFile) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }

// Size is the bundle's length.
func (f *ExportFile) Size() int64 { return f.r.Size() }

// Close closes the file.
func (f *ExportFile) Close() error { return f.r.Close() }

// Open opens a finished job's bundle for download.
func (j *ExportJobs) Open(id string) (*ExportFile, ExportJob, error) {
	j.mu.Lock()
	jb, ok := j.jobs[id]
	if !ok {
		j.mu.Unlock()
		return nil, ExportJob{}, fmt.Errorf("%w: %s", ErrJobNotFound, id)
	}
	if jb.State != JobDone {
		j.mu.Unlock()
		return nil, jb.ExportJob, fmt.Errorf("%w: job %s is %s", ErrJobNotDone, id, jb.State)
	}
	key := slices.Clone(jb.key)
	path, info := jb.path, jb.ExportJob
	j.mu.Unlock()
	defer keyring.Zero(key)
	r, err := recfile.Open(path, key)
	if err != nil {
		return nil, info, fmt.Errorf("open export file of job %s: %w", id, err)
	}
	return &ExportFile{r: r}, info, nil
}

func (j *ExportJobs) worker() {
	defer j.wg.Done()
	for {
		select {
		case <-j.ctx.Done():
			return
		case jb := <-j.queue:
			j.run(jb)
		}
	}
}

// run does one job: the bundle goes through the encrypting writer; progress
// is published after each recording.
func (j *ExportJobs) run(jb *job) {
	j.s.stats.ExportJobsQueued.Add(-1)
	ctx, cancel := context.WithCancel(j.ctx)
	defer cancel()
	key, err := keyring.NewDEK(rand.Reader)
	if err != nil {
		j.finish(jb, nil, "", err)
		return
	}
	uid, _ := uuid.Parse(jb.ID)
	path := filepath.Join(j.dir, jb.ID+".cvx")
	j.mu.Lock()
	if jb.removed {
		j.mu.Unlock()
		keyring.Zero(key)
		return
	}
	jb.State, jb.cancel, jb.key, jb.path = JobRunning, cancel, key, path
	ids, address, by := jb.ids, jb.address, jb.By
	j.mu.Unlock()
	j.s.stats.ExportJobsRunning.Add(1)
	defer j.s.stats.ExportJobsRunning.Add(-1)

	w, err := recfile.Create(path, recfile.Header{RecordingID: uid}, key, rand.Reader)
	if err != nil {
		j.finish(jb, nil, "", err)
		return
	}
	cw := &countWriter{w: w}
	m, err := j.s.export(ctx, cw, ids, by, address, func(done int) {
		j.mu.Lock()
		jb.Done, jb.Bytes = done, cw.n.Load()
		j.mu.Unlock()
	})
	if err == nil {
		_, err = w.Close()
	} else {
		_ = w.Abort()
	}
	j.finish(jb, cw, m.Fingerprint, err)
}

// finish records a job's end. A job deleted meanwhile is only cleaned up.
func (j *ExportJobs) finish(jb *job, cw *countWriter, fingerprint string, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if jb.removed {
		if jb.path != "" {
			_ = os.Remove(jb.path)
		}
		keyring.Zero(jb.key)
		return
	}
	now := j.s.cfg.Now().UTC()
	exp := now.Add(j.cfg.Expire)
	jb.Finished, jb.Expires = &now, &exp
	jb.cancel = nil
	switch {
	case err != nil:
		jb.State, jb.Error = JobFailed, err.Error()
		if errors.Is(err, context.Canceled) && j.ctx.Err() != nil {
			jb.Error = "the appliance shut down"
		}
		j.s.stats.ExportJobsFailed.Add(1)
		j.s.log.Error("export job failed", "job", jb.ID, "err", err)
		if jb.path != "" {
			_ = os.Remove(jb.path)
		}
		keyring.Zero(jb.key)
	default:
		jb.State, jb.Fingerprint, jb.Done = JobDone, fingerprint, jb.Total
		jb.Bytes = cw.n.Load()
		j.s.stats.ExportJobsDone.Add(1)
		j.s.stats.ExportBytes.Add(jb.Bytes)
	}
}

// janitor removes finished jobs whose time is up.
func (j *ExportJobs) janitor() {
	defer j.wg.Done()
	t := time.NewTicker(j.cfg.Sweep)
	defer t.Stop()
	for {
		select {
		case <-j.ctx.Done():
			return
		case <-t.C:
			j.Expire()
		}
	}
}

// Expire removes finished jobs past their expiry (the janitor calls it;
// tests call it with an advanced clock).
func (j *ExportJobs) Expire() int {
	now := j.s.cfg.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for id, jb := range j.jobs {
		if jb.Expires != nil && !now.Before(*jb.Expires) {
			j.forget(jb)
			delete(j.jobs, id)
			n++
		}
	}
	return n
}

// countWriter counts the bytes written through it (the bundle's size so
// far, for progress).
type countWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
