package webui

import (
	"context"
	"log/slog"
	"net/http"
	"sync"

	"github.com/callvault/callvault/store/meta"
	"github.com/prometheus/client_golang/prometheus"
)

// auditQueue writes the audit entries of searches and detail views behind
// the request: the answer does not wait for the entry's fsync, which on a
// busy disk was most of a search's time under 50 concurrent clients. The
// queue is bounded and never drops: when it is full, the request waits
// (backpressure). A writer goroutine commits what is queued as one
// AppendAudits command. Reading the audit log through the API flushes the
// queue first, so the log always shows every search made before the read.
// What a crash can lose is what is queued at that moment (milliseconds of
// searches); entries about audio (play, download, export) are never
// queued: they are committed before the first byte goes out.
type auditQueue struct {
	commands Committer
	log      *slog.Logger
	failures prometheus.Counter

	mu     sync.RWMutex // held for reading while sending on in; closing takes it for writing
	closed bool
	in     chan queuedAudit
	done   chan struct{}
}

// queuedAudit is an entry, or (flushed != nil) a marker closed once
// everything queued before it is committed.
type queuedAudit struct {
	entry   meta.AuditEntry
	flushed chan struct{}
}

const (
	auditQueueDepth = 4096
	auditBatchMax   = 1000
)

func newAuditQueue(c Committer, log *slog.Logger, failures prometheus.Counter) *auditQueue {
	q := &auditQueue{commands: c, log: log, failures: failures, in: make(chan queuedAudit, auditQueueDepth), done: make(chan struct{})}
	go q.run()
	return q
}

// add queues e; after close it commits e at once instead.
func (q *auditQueue) add(e meta.AuditEntry) {
	q.mu.RLock()
	if !q.closed {
		q.in <- queuedAudit{entry: e}
		q.mu.RUnlock()
		return
	}
	q.mu.RUnlock()
	q.commit([]meta.AuditEntry{e})
}

// flush waits until every entry queued before it is committed.
func (q *auditQueue) flush(ctx context.Context) error {
	ch := make(chan struct{})
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return nil
	}
	select {
	case q.in <- queuedAudit{flushed: ch}:
		q.mu.RUnlock()
	case <-ctx.Done():
		q.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close commits what is queued and stops the writer.
func (q *auditQueue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.in)
	}
	q.mu.Unlock()
	<-q.done
}

func (q *auditQueue) run() {
	defer close(q.done)
	for first := range q.in {
		batch := []queuedAudit{first}
	drain:
		for len(batch) < auditBatchMax {
			select {
			case more, ok := <-q.in:
				if !ok {
					break drain
				}
				batch = append(batch, more)
			default:
				break drain
			}
		}
		var entries []meta.AuditEntry
		for _, b := range batch {
			if b.flushed == nil {
				entries = append(entries, b.entry)
			}
		}
		if len(entries) > 0 {
			q.commit(entries)
		}
		for _, b := range batch {
			if b.flushed != nil {
				close(b.flushed)
			}
		}
	}
}

// commit writes entries as one command; if that fails, one by one, so a
// bad entry cannot take the others with it. A failure is logged and
// counted (callvault_audit_queue_failures_total).
func (q *auditQueue) commit(entries []meta.AuditEntry) {
	ctx := context.Background()
	if _, err := q.commands.Apply(ctx, &meta.AppendAudits{Entries: entries}); err == nil {
		return
	} else if len(entries) == 1 {
		q.fail(entries[0], err)
		return
	}
	for _, e := range entries {
		if _, err := q.commands.Apply(ctx, &meta.AppendAudit{Entry: e}); err != nil {
			q.fail(e, err)
		}
	}
}

func (q *auditQueue) fail(e meta.AuditEntry, err error) {
	q.failures.Inc()
	q.log.Error("audit entry lost", "action", e.Action, "actor", e.Actor, "recording", e.Recording, "err", err)
}

// auditLater queues the entry of an event whose answer does not depend on
// it being on disk first (searches, detail views).
func (s *Server) auditLater(r *http.Request, p *Principal, ev auditEvent) {
	s.auditQ.add(s.auditEntry(r, p, ev))
}
