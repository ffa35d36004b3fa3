package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/store/recfile"
)

// recover finds recordings a crash left in status "recording" and makes
// each one whole: the file is cut back to its last complete chunk (at most
// one flush interval of audio lost), sealed with a last chunk, and marked
// "recovered" with its new size and seal hash. An upload cut off by the
// crash is removed instead, since its sender got no 201 and will retry.
// A file that cannot be recovered is marked failed and said so in the log.
//
// Store.Open runs it, unless Config.DeferRecovery: a cluster node runs it
// through Recover once its Committer is in place, so the recovery is
// committed through raft like every other change (not applied to this
// node's metadata alone), and again whenever its outbox has drained (a
// recording created without a quorum is known to the metadata only then).
func (s *Store) recover(ctx context.Context) error {
	var open []meta.Recording
	q := meta.Query{Status: meta.StatusRecording, Scope: meta.Scope{All: true}, Limit: 500, Ascending: true}
	for {
		page, err := s.meta.Search(q)
		if err != nil {
			return err
		}
		open = append(open, page.Recordings...)
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	for _, rec := range open {
		s.mu.Lock()
		_, running := s.open[rec.ID]
		s.mu.Unlock()
		if _, queued := s.pending.get(rec.ID); running || queued {
			// Being written now, or sealed with its seal still in the
			// cluster's outbox: not left open by a crash.
			continue
		}
		if rec.Node != "" && s.cfg.Node != "" && rec.Node != s.cfg.Node {
			// In a cluster, another node is writing this recording: our
			// copy of its metadata may only be behind (issue 8). Its
			// writer recovers it, not us.
			continue
		}
		if rec.Source == meta.SourceUpload {
			if err := s.discardUpload(ctx, rec); err != nil {
				if refusedNow(err) {
					// A cluster sealed (or removed) it meanwhile and this
					// node had not applied that yet: the cluster is right.
					s.log.Warn("cut-off upload is no longer open in the cluster; kept", "id", rec.ID, "err", err)
					continue
				}
				return err
			}
			continue
		}
		res, err := s.recoverFile(rec)
		if err != nil {
			s.log.Error("recording left open by a crash cannot be recovered", "id", rec.ID, "err", err)
			s.stats.RecordingsFailed.Add(1)
			if _, err := s.Apply(ctx, &meta.UpdateRecording{ID: rec.ID, Status: meta.StatusFailed}); err != nil {
				return err
			}
			continue
		}
		size := res.KeptBytes
		upd := &meta.UpdateRecording{ID: rec.ID, Status: meta.StatusRecovered, Size: &size, SealHash: hex.EncodeToString(res.SealHash[:])}
		if rec.File.Format == meta.FormatGrid {
			if d, ok := s.gridDuration(ctx, rec.ID); ok {
				upd.Duration = &d
			}
		}
		if _, err := s.Apply(ctx, upd); err != nil {
			if refusedNow(err) {
				s.log.Warn("recording left open is no longer open in the cluster", "id", rec.ID, "err", err)
				continue
			}
			return err
		}
		if h := s.audioHash(ctx, rec.ID); h != "" {
			if _, err := s.Apply(ctx, &meta.UpdateRecording{ID: rec.ID, AudioHash: h}); err != nil {
				return err
			}
		}
		if sealed, err := s.meta.Recording(rec.ID); err == nil {
			s.auditSeal(ctx, sealed)
		}
		s.stats.Recovered.Add(1)
		s.log.Warn("recovered recording left open by a crash", "id", rec.ID, "kept_bytes", res.KeptBytes,
			"dropped_bytes", res.DroppedBytes, "already_complete", res.AlreadyComplete)
	}
	return nil
}

// refusedNow reports whether the metadata refused a recovery's Command:
// in a cluster, this node's copy of the metadata was behind.
func refusedNow(err error) bool {
	return errors.Is(err, meta.ErrInvalid) || errors.Is(err, meta.ErrNotFound) || errors.Is(err, meta.ErrDeleted)
}

// Recover runs the crash recovery that Config.DeferRecovery postponed (see
// recover); recordings being written are left alone, so it is safe at any
// time.
func (s *Store) Recover(ctx context.Context) error {
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	return s.recover(ctx)
}

func (s *Store) recoverFile(rec meta.Recording) (recfile.RecoverResult, error) {
	uid, err := parseID(rec.ID)
	if err != nil {
		return recfile.RecoverResult{}, err
	}
	dek, err := s.keys.Load().UnwrapDEK(rec.File.WrappedDEK, uid[:])
	if err != nil {
		return recfile.RecoverResult{}, err
	}
	defer keyring.Zero(dek)
	return recfile.Recover(filepath.Join(s.hotRoot, rec.File.Path), dek)
}

func (s *Store) discardUpload(ctx context.Context, rec meta.Recording) error {
	s.log.Warn("removing upload cut off by a crash", "id", rec.ID)
	if _, err := s.Apply(ctx, &meta.DiscardRecording{ID: rec.ID}); err != nil {
		return fmt.Errorf("discard cut-off upload %s: %w", rec.ID, err)
	}
	if err := os.Remove(filepath.Join(s.hotRoot, rec.File.Path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove cut-off upload file", "id", rec.ID, "err", err)
	}
	return nil
}
