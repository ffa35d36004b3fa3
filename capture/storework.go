package capture

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/meta"
	"github.com/google/uuid"
)

// Store work: everything that waits for a bbolt commit (create a
// recording, seal it, abort it, add a bookmark, set call info, link
// transfers) runs on goroutines the engine owns, fed by FIFO queues,
// instead of on the flush pass. A store commit fsyncs; when a hundred
// calls start or end in the same second, doing that on the flush pass
// stalled it for seconds and the rings of every other call overflowed
// (issue 4, live loss). Now a flush pass only moves packets ring →
// playout → grid writer, and the grid writer writes into a
// pendingRecorder that buffers the first ticks until the store has
// created the recording.
//
// Ordering per call holds because every job of a recording goes to the
// same worker's FIFO queue: a call's create job is queued before its
// bookmarks, which are queued before its seal. The recording ID is decided when the create
// job is queued (a UUIDv7, what the store would pick), so bookmarks and
// links can name it at once.
//
// Imports run the same jobs inline on the reader (which is also the
// flusher there): an import has no packets to lose while it waits, and
// running inline keeps it deterministic. All but the seals: those go to
// the workers, so that the seals of calls ending together commit together
// (the store group-commits concurrent commands: one bbolt transaction and
// one fsync for several seals, where inline each took its own), and their
// file fsyncs overlap with the import. The import's summaries keep the
// order the calls ended in: a seal reserves its summary's place when it
// is queued, and Summaries waits for the seals queued before it.

// storeWorkers run store jobs side by side: the store group-commits
// concurrent commands (one bbolt transaction and one fsync for all of
// them), so eight workers get through a burst of calls starting and
// ending together in a fraction of the fsyncs one worker would wait for.
// A call's jobs all go to one worker (chosen by its recording ID), so they
// stay in order.
const storeWorkers = 8

// storeQueueLen bounds the jobs waiting for each worker. When the store
// falls this far behind, queuing blocks the flush pass (backpressure,
// seen as ring drops) rather than growing without bound.
const storeQueueLen = 1024

// maxPending bounds what a recording buffers while the store has not
// created it yet: 512 KiB is half a minute of stereo G.711 ticks. A store
// that far behind fails the recording (RecordErrors), it does not grow
// memory without limit.
const maxPending = 512 << 10

// storeJob is one unit of store work.
type storeJob struct {
	kind  jobKind
	rec   *pendingRecorder
	meta  meta.Recording        // jobCreate
	cmd   meta.Command          // jobApply
	final store.Final           // jobSeal
	sum   *CallSummary          // jobSeal
	sig   []store.SignalMessage // jobSignal; jobSeal of an import: its held messages
	slot  int                   // jobSeal of an import: 1 + its summary's index in Engine.summaries
}

type jobKind uint8

const (
	jobCreate jobKind = iota
	jobApply
	jobSeal
	jobAbort
	jobSignal
)

// storeWorker runs store jobs in order per recording on its own
// goroutines.
type storeWorker struct {
	mu      sync.Mutex // guards started, closed and the channels' life
	started bool
	closed  bool
	jobs    [storeWorkers]chan storeJob
	wg      sync.WaitGroup
}

// storeDo runs job: queued for a worker in live capture, inline in
// imports. Called by the flusher (flushMu held) and by Close.
func (e *Engine) storeDo(job storeJob) {
	if !e.cfg.Live {
		if job.kind != jobSeal {
			e.runJob(job)
			return
		}
		e.summaryMu.Lock()
		e.summaries = append(e.summaries, CallSummary{}) // filled by the seal
		job.slot = len(e.summaries)
		e.sealing++
		e.summaryMu.Unlock()
	}
	w := &e.work
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		// After Close nothing may be lost silently: run it here.
		e.runJob(job)
		return
	}
	if !w.started {
		w.started = true
		for i := range w.jobs {
			w.jobs[i] = make(chan storeJob, storeQueueLen)
			w.wg.Add(1)
			go e.storeLoop(w.jobs[i])
		}
	}
	jobs := w.jobs[job.rec.shard%storeWorkers]
	w.mu.Unlock()
	e.stats.StoreQueue.Add(1)
	jobs <- job // only the flusher and Close send, and Close closes after them
}

// stopStoreWork lets the workers finish every queued job and waits for
// them.
func (e *Engine) stopStoreWork() {
	w := &e.work
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	started := w.started
	w.mu.Unlock()
	if started {
		for _, ch := range w.jobs {
			close(ch)
		}
		w.wg.Wait()
	}
}

func (e *Engine) storeLoop(jobs <-chan storeJob) {
	defer e.work.wg.Done()
	for job := range jobs {
		e.stats.StoreQueue.Add(-1)
		e.runJob(job)
	}
}

// runJob does one job and notes how long the store took.
func (e *Engine) runJob(job storeJob) {
	start := time.Now()
	ctx := context.Background()
	p := job.rec
	switch job.kind {
	case jobCreate:
		r, err := e.sink.Create(ctx, job.meta, !e.cfg.Live)
		if err != nil {
			e.stats.RecordErrors.Add(1)
			e.cfg.Log.Error("start recording", "id", p.id, "err", err)
			p.fail(err)
			break
		}
		e.stats.Recordings.Add(1)
		p.ready(r)
	case jobApply:
		r := p.created()
		if r == nil {
			break // the recording was never created: nothing to annotate
		}
		if w, ok := r.(createWaiter); ok {
			// An import's recording commits its create while it is
			// written (store.Unflushed); a command naming it must follow.
			if err := w.WaitCreated(); err != nil {
				break // Close reports it, and the call's summary says failed
			}
		}
		if _, err := e.sink.Apply(ctx, job.cmd); err != nil {
			e.cfg.Log.Warn("update recording", "id", p.id, "command", fmt.Sprintf("%T", job.cmd), "err", err)
		}
	case jobAbort:
		if r := p.created(); r != nil {
			if err := r.Abort(ctx, "system:capture"); err != nil {
				e.cfg.Log.Warn("discard unanswered call's early media", "id", p.id, "err", err)
			}
		}
	case jobSeal:
		e.sealJob(ctx, p, job.final, job.sum, job.slot, job.sig)
	case jobSignal:
		if p.created() == nil {
			break // never created: its create job counted and logged why
		}
		if err := e.sink.AppendSignalling(p.id, job.sig...); err != nil {
			e.stats.RecordErrors.Add(1)
			e.cfg.Log.Error("store signalling", "id", p.id, "messages", len(job.sig), "err", err)
		}
	}
	d := time.Since(start).Nanoseconds()
	if d > e.stats.StoreMaxNanos.Load() {
		e.stats.StoreMaxNanos.Store(d)
	}
}

// sealJob writes what the recording buffered (if the flusher never saw
// it created), stores sig (an import's SIP messages, held until now) and
// seals it; the call's summary is filed afterwards, with the reference the
// store assigned.
func (e *Engine) sealJob(ctx context.Context, p *pendingRecorder, final store.Final, sum *CallSummary, slot int, sig []store.SignalMessage) {
	var m meta.Recording
	if r := p.created(); r == nil {
		// Never created: the create job counted and logged why.
		e.cfg.Log.Warn("call ended without a recording", "id", p.id, "err", p.failure())
	} else {
		if len(p.buf) > 0 {
			if _, werr := r.Write(p.buf); werr != nil {
				e.stats.RecordErrors.Add(1)
				e.cfg.Log.Error("write recording", "id", p.id, "err", werr)
			}
			p.buf = nil
		}
		// Before the seal: appended to an open recording, the store takes
		// its metadata and the side file's end from the Recorder.
		if len(sig) > 0 {
			if err := e.sink.AppendSignalling(p.id, sig...); err != nil {
				e.stats.RecordErrors.Add(1)
				e.cfg.Log.Error("store signalling", "id", p.id, "messages", len(sig), "err", err)
			}
		}
		var err error
		m, err = r.Close(ctx, final)
		switch {
		case err != nil && errors.Is(err, store.ErrDiskFull):
			e.stats.RecordErrors.Add(1)
			e.cfg.Log.Error("recording cut short: disk full", "id", p.id, "err", err)
		case err != nil:
			e.stats.RecordErrors.Add(1)
			e.cfg.Log.Error("seal recording", "id", p.id, "err", err)
		}
	}
	sum.Reference, sum.Status = m.Reference, string(m.Status)
	if sum.Status == "" {
		sum.Status = string(meta.StatusFailed)
	}
	e.addSummary(sum, slot)
}

// addSummary files a finished call's summary: at the place its seal job
// reserved (slot, 1-based), or at the end (slot 0).
func (e *Engine) addSummary(sum *CallSummary, slot int) {
	e.summaryMu.Lock()
	if slot > 0 {
		e.summaries[slot-1] = *sum
		if e.sealing--; e.sealing == 0 && e.sealed != nil {
			e.sealed.Broadcast()
		}
	} else {
		e.summaries = append(e.summaries, *sum)
	}
	e.summaryMu.Unlock()
	if e.onSummary != nil {
		e.onSummary(*sum)
	}
}

// newRecordingID decides a recording's ID before the store sees it
// (rule 1: what is not deterministic is decided before the Command), so
// jobs queued behind its creation can name it.
func newRecordingID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("recording ID: %w", err)
	}
	return u.String(), nil
}

// newPendingRecorder is the flusher's handle on recording id, assigned to
// a store worker by a hash of its ID.
func newPendingRecorder(id string) *pendingRecorder {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &pendingRecorder{id: id, shard: h.Sum32()}
}

// pendingRecorder is the flusher's side of a recording the store may not
// have created yet. Until it has, writes are buffered (at most
// maxPending); the first write after creation hands the buffer to the
// store's Recorder, and later writes go straight through. Write is the
// flusher's alone; the worker publishes the Recorder (ready) or the
// failure (fail), and after the seal job is queued the flusher no longer
// touches it.
type pendingRecorder struct {
	id    string
	shard uint32 // which store worker runs its jobs
	rec   atomic.Pointer[Recorder]
	err   atomic.Pointer[error]
	buf   []byte   // flusher-owned until the seal job is queued
	r     Recorder // flusher-owned: rec once the flusher has seen it
}

// createWaiter is a Recorder whose create may commit after Create returned
// (store.Recorder.WaitCreated, for an Unflushed recording).
type createWaiter interface{ WaitCreated() error }

func (p *pendingRecorder) ready(r Recorder) { p.rec.Store(&r) }
func (p *pendingRecorder) fail(err error)   { p.err.Store(&err) }

// created returns the store's Recorder, or nil while it is not (or will
// never be) created.
func (p *pendingRecorder) created() Recorder {
	if r := p.rec.Load(); r != nil {
		return *r
	}
	return nil
}

// failure returns why the store could not create the recording, or an
// error saying it was never created.
func (p *pendingRecorder) failure() error {
	if err := p.err.Load(); err != nil {
		return *err
	}
	return fmt.Errorf("recording %s was never created", p.id)
}

// ID returns the recording's ID, decided before it was created.
func (p *pendingRecorder) ID() string { return p.id }

// Write appends grid or raw bytes to the recording.
func (p *pendingRecorder) Write(b []byte) (int, error) {
	if p.r != nil {
		return p.r.Write(b)
	}
	if r := p.created(); r != nil {
		if len(p.buf) > 0 {
			if _, err := r.Write(p.buf); err != nil {
				return 0, err
			}
			p.buf = nil // the store holds it now; do not keep the memory
		}
		p.r = r
		return r.Write(b)
	}
	if err := p.err.Load(); err != nil {
		return 0, *err
	}
	if len(p.buf)+len(b) > maxPending {
		return 0, fmt.Errorf("%w: %d bytes waiting for recording %s (at most %d)", ErrStoreBehind, len(p.buf)+len(b), p.id, maxPending)
	}
	p.buf = append(p.buf, b...)
	return len(b), nil
}
