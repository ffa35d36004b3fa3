package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/callvault/callvault/store/meta"
)

// Committer puts an encoded metadata Command into effect. On one node it
// is LocalCommitter; in a cluster the raft node replicates the bytes and
// its FSM calls the same meta.DB.Apply on every member (ARCHITECTURE rule 1).
type Committer interface {
	Commit(ctx context.Context, cmd []byte) (meta.Result, error)
}

// LocalCommitter applies Commands to the local metadata database.
type LocalCommitter struct{ DB *meta.DB }

var _ Committer = LocalCommitter{}

// Commit applies cmd locally, group-committed with whatever other
// goroutines commit at the same moment (meta.DB.ApplyConcurrent).
func (c LocalCommitter) Commit(_ context.Context, cmd []byte) (meta.Result, error) {
	return c.DB.ApplyConcurrent(cmd)
}

// Apply encodes cmd and hands it to the store's Committer.
func (s *Store) Apply(ctx context.Context, cmd meta.Command) (meta.Result, error) {
	b, err := meta.Encode(cmd)
	if err != nil {
		return meta.Result{}, fmt.Errorf("encode command: %w", err)
	}
	// A discarded recording leaves no tombstone, so the place of its SIP
	// side file is read before the command removes it.
	var discarded meta.Recording
	if d, ok := cmd.(*meta.DiscardRecording); ok {
		discarded, _ = s.meta.Recording(d.ID)
	}
	res, err := s.committer.Commit(ctx, b)
	if err == nil {
		switch c := cmd.(type) {
		case *meta.AppendAudit:
			s.checkpointAfter(ctx, auditSeq(res), 1)
		case *meta.AppendAudits:
			s.checkpointAfter(ctx, auditSeq(res), len(c.Entries))
		case *meta.DiscardRecording:
			s.removeSignalling(discarded) // its key is gone with the metadata
		}
	}
	return res, err
}

// SetCommitter replaces the Committer (the cluster does this before serving).
func (s *Store) SetCommitter(c Committer) { s.committer = c }

// auditSeq is the number of the audit entry an AppendAudit(s) appended
// last, which its Result carries as the ID; 0 if none.
func auditSeq(res meta.Result) uint64 {
	seq, _ := strconv.ParseUint(res.ID, 10, 64)
	return seq
}
