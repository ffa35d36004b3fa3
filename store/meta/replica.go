package meta

import (
	"fmt"
	"slices"
)

// AddReplica records that Node now holds a verified copy of a sealed
// recording's file (the cluster's file replication). It is idempotent: the
// writer (Recording.Node) and a node already listed change nothing, so a
// copy retried after a lost answer cannot list a node twice. Only a sealed
// recording (complete or recovered, with a seal hash) has copies; a
// deleted one answers ErrDeleted, and its copier removes the file.
type AddReplica struct {
	ID   string `json:"id"`
	Node string `json:"node"`
}

// maxReplicas bounds the list: far more nodes than a raft cluster has voters.
const maxReplicas = 64

func (*AddReplica) commandType() CommandType { return TypeAddReplica }

func (c *AddReplica) apply(t *txn) (Result, error) {
	if err := checkID("node", c.Node); err != nil {
		return Result{}, err
	}
	r, u, err := t.loadRecording("id", c.ID)
	if err != nil {
		return Result{}, err
	}
	switch {
	case r.Status == StatusDeleted:
		return Result{}, fmt.Errorf("%w: %s", ErrDeleted, u)
	case r.Status != StatusComplete && r.Status != StatusRecovered, r.File.SHA256 == "":
		return Result{}, fmt.Errorf("%w: recording %s is %s without a seal hash; only sealed files are copied", ErrInvalid, u, r.Status)
	}
	i, found := slices.BinarySearch(r.Replicas, c.Node)
	if found || c.Node == r.Node {
		return Result{ID: r.ID, Reference: r.Reference}, nil
	}
	if len(r.Replicas) >= maxReplicas {
		return Result{}, fmt.Errorf("%w: recording %s already lists %d replicas", ErrInvalid, u, len(r.Replicas))
	}
	return t.modify(c.ID, func(r *Recording) error {
		r.Replicas = slices.Insert(slices.Clone(r.Replicas), i, c.Node)
		return nil
	})
}
