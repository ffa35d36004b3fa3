package store

import (
	"errors"
	"sync"

	"github.com/callvault/callvault/store/meta"
)

// A cluster node without a quorum keeps the Commands that describe
// recordings in its durable outbox and answers meta.Result.Deferred: the
// audio is on the local disk, the metadata follows once the cluster is
// whole again. Until then the local metadata database does not know the
// recording, but its recorder still seals it and capture still appends its
// SIP messages. pendingRecs remembers such recordings as they were created,
// so those paths find what they need (the wrapped key, the file's place).

// maxPending bounds the memory of a long partition: past it the oldest
// entries are forgotten (their SIP messages then fail to store, logged and
// counted by capture, while the audio is kept).
const maxPending = 100_000

type pendingRecs struct {
	mu    sync.Mutex
	m     map[string]meta.Recording
	order []string
}

func (p *pendingRecs) add(rec meta.Recording) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]meta.Recording{}
	}
	if _, ok := p.m[rec.ID]; !ok {
		p.order = append(p.order, rec.ID)
	}
	if len(p.order) > 2*len(p.m)+1024 {
		// Dropped IDs linger in order; keep only the live ones.
		live := p.order[:0]
		for _, id := range p.order {
			if _, ok := p.m[id]; ok {
				live = append(live, id)
			}
		}
		p.order = live
	}
	p.m[rec.ID] = rec
	for len(p.m) > maxPending && len(p.order) > 0 {
		delete(p.m, p.order[0])
		p.order = p.order[1:]
	}
}

func (p *pendingRecs) get(id string) (meta.Recording, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.m[id]
	return r, ok
}

func (p *pendingRecs) drop(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[id]; !ok {
		return
	}
	delete(p.m, id)
	if len(p.m) == 0 {
		p.order = nil // the queue drained: release the slice
	}
}

// recording reads a recording's metadata, or, while its creation waits in
// a cluster node's outbox, what it was created with.
func (s *Store) recording(id string) (meta.Recording, error) {
	rec, err := s.meta.Recording(id)
	if err == nil {
		if rec.Status != meta.StatusRecording {
			// Sealed in the metadata: its queued Commands have committed.
			s.pending.drop(id)
		}
		return rec, nil
	}
	if errors.Is(err, meta.ErrNotFound) {
		if p, ok := s.pending.get(id); ok {
			return p, nil
		}
	}
	return rec, err
}
