package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// Retention: the purge deletes recordings whose retention has run out
// (meta.DB.Due lists them: DeleteAfter passed, not held, not deleted),
// oldest first, in small batches, each deletion crypto-shredding first
// (Store.Delete) and then written to the audit log. It never stalls
// capture: every deletion is its own small, group-committed command.

// purgeActor is who the audit log names for deletions by retention.
const purgeActor = "system:retention"

// purgeBatch is how many due recordings one pass reads at a time.
const purgeBatch = 100

// Purge deletes every recording due at now (up to max; 0: no limit) and
// reports how many it deleted. A recording put on hold or deleted by
// someone else meanwhile is skipped, not an error.
func (s *Store) Purge(ctx context.Context, now time.Time, max int) (int, error) {
	deleted := 0
	skip := map[string]bool{} // failed this pass: do not spin on them
	for max == 0 || deleted < max {
		due, err := s.meta.Due(now, purgeBatch+len(skip))
		if err != nil {
			return deleted, err
		}
		progress := false
		for _, r := range due {
			if skip[r.ID] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return deleted, err
			}
			err := s.Delete(ctx, r.ID, purgeActor)
			switch {
			case errors.Is(err, meta.ErrPreserved), errors.Is(err, meta.ErrDeleted), errors.Is(err, meta.ErrNotFound):
				skip[r.ID] = true
				continue
			case err != nil:
				s.log.Error("retention: delete", "id", r.ID, "err", err)
				s.stats.PurgeErrors.Add(1)
				skip[r.ID] = true
				continue
			}
			progress = true
			deleted++
			s.stats.Purged.Add(1)
			entry := meta.AuditEntry{Time: s.cfg.Now().UTC(), Actor: purgeActor, Tenant: r.Tenant, Action: meta.AuditPurge,
				Recording: r.ID, Detail: fmt.Sprintf("reference %s, retention ran out %s", r.Reference, r.DeleteAfter.UTC().Format(time.RFC3339))}
			if _, err := s.Apply(ctx, &meta.AppendAudit{Entry: entry}); err != nil {
				s.log.Error("retention: audit entry of a deletion", "id", r.ID, "err", err)
			}
			if max > 0 && deleted >= max {
				break
			}
		}
		if !progress {
			return deleted, nil
		}
	}
	return deleted, nil
}

// purgeLoop runs Purge every interval until the store closes.
func (s *Store) purgeLoop(interval time.Duration) {
	defer close(s.purgeDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			n, err := s.Purge(ctx, s.cfg.Now(), 0)
			if err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("retention purge", "deleted", n, "err", err)
			} else if n > 0 {
				s.log.Info("retention purge", "deleted", n)
			}
		}
	}
}
