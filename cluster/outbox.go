package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callvault/callvault/store/meta"
	bolt "go.etcd.io/bbolt"
)

// The durable outbox keeps a node recording while it cannot reach a
// quorum (ARCHITECTURE rule 4: capture never waits for the cluster).
//
// Commands that describe recordings (creating, sealing and annotating
// them, and their audit entries: deferrable) are wrapped in a meta.Once
// with a random key before their first attempt. If no leader commits one
// within Config.QuorumWait, it is written to <data>/cluster/outbox.db (fsynced)
// and the caller gets meta.Result{Deferred: true}: the audio is already
// on the local disk, and the metadata follows. Once a queue exists, later
// deferrable Commands join its tail without trying raft first, so they
// commit in the order they were made (a seal never overtakes its create).
//
// One goroutine drains the queue head first whenever a leader is known.
// A Command is removed only after it committed; a crash between the
// commit and the removal replays it, and the Once key makes the replay
// change nothing. The same key makes the first attempt safe to retry: a
// leader that dies after appending it may still commit it.
//
// Other Commands (accounts, settings, deletions, holds) still need a
// quorum and fail without one: they are decisions an admin should see
// take effect, not facts about audio already on disk.

// quorumWait is Config.QuorumWait's default: how long a deferrable Command
// waits for a leader before it goes to the outbox; longer than an election (1-3 s with raft's default
// timing), so a leader change alone never defers anything.
const quorumWait = 4 * time.Second

// outboxRetry is how often the drainer tries again while there is no quorum.
const outboxRetry = 250 * time.Millisecond

var bOutbox = []byte("outbox")

// outboxBatch is how many queued Commands one drain commits, in order,
// as one raft entry: a queue that commits one Command per round trip falls
// behind the uploads still arriving on a busy node.
const outboxBatch = 256

// outbox is the durable queue: seq (8 bytes BE) → encoded meta.Once.
type outbox struct {
	db   *bolt.DB
	mu   sync.Mutex // serialises push against the drainer's removals
	next uint64
	// waiters are callers waiting for their queued Command's outcome.
	waiters map[uint64]chan drained
	// depth is the number of queued Commands, for metrics and for the
	// "queue exists" decision without a transaction.
	depth atomic.Int64
	kick  chan struct{}

	drained, rejected atomic.Uint64
}

// drained is a queued Command's outcome, for a caller still waiting.
type drained struct {
	res meta.Result
	err error
}

func openOutbox(dataDir string) (*outbox, error) {
	path := filepath.Join(clusterDir(dataDir), "outbox.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("cluster: open outbox %s: %w", path, err)
	}
	o := &outbox{db: db, kick: make(chan struct{}, 1), waiters: map[uint64]chan drained{}}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bOutbox)
		if err != nil {
			return err
		}
		if k, _ := b.Cursor().Last(); k != nil {
			o.next = binary.BigEndian.Uint64(k) + 1
		}
		o.depth.Store(int64(b.Stats().KeyN))
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("cluster: open outbox %s: %w", path, err)
	}
	return o, nil
}

func (o *outbox) close() error { return o.db.Close() }

// push appends a wrapped Command durably (fsynced before it returns). With
// wait, the returned channel gets its outcome once the drainer has it;
// forget stops waiting.
func (o *outbox) push(cmd []byte, wait bool) (uint64, chan drained, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	seq := o.next
	err := o.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bOutbox).Put(binary.BigEndian.AppendUint64(nil, seq), cmd)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("cluster: outbox: %w", err)
	}
	o.next++
	o.depth.Add(1)
	var ch chan drained
	if wait {
		ch = make(chan drained, 1)
		o.waiters[seq] = ch
	}
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return seq, ch, nil
}

func (o *outbox) forget(seq uint64) {
	o.mu.Lock()
	delete(o.waiters, seq)
	o.mu.Unlock()
}

// heads returns up to n of the oldest queued Commands.
func (o *outbox) heads(n int) (seqs []uint64, cmds [][]byte, err error) {
	err = o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bOutbox).Cursor()
		for k, v := c.First(); k != nil && len(seqs) < n; k, v = c.Next() {
			seqs = append(seqs, binary.BigEndian.Uint64(k))
			cmds = append(cmds, append([]byte(nil), v...))
		}
		return nil
	})
	return seqs, cmds, err
}

// remove drops Commands that have committed (or were refused) and hands
// their outcomes to whoever still waits for them.
func (o *outbox) remove(seqs []uint64, outs []drained) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		for _, seq := range seqs {
			if err := b.Delete(binary.BigEndian.AppendUint64(nil, seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster: outbox: %w", err)
	}
	o.depth.Add(-int64(len(seqs)))
	for i, seq := range seqs {
		if ch, ok := o.waiters[seq]; ok {
			ch <- outs[i]
			delete(o.waiters, seq)
		}
	}
	return nil
}

// deferrable says whether a Command may wait in the outbox: it describes a
// recording this node made (or its audit trail), not an admin's decision.
func deferrable(cmd []byte) bool {
	switch meta.CommandType(cmd[0]) {
	case meta.TypeCreateRecording, meta.TypeUpdateRecording, meta.TypeDiscardRecording,
		meta.TypeSetCallInfo, meta.TypeAddBookmark, meta.TypeLinkRelated,
		meta.TypeAddNote, meta.TypePreserve, meta.TypeAppendAudit, meta.TypeAppendAudits,
		// The signature over the audit head this node saw: it names a
		// committed entry by sequence and hash, so it holds whenever it
		// commits (a stopping node signs one, with or without a quorum).
		meta.TypeAuditCheckpoint:
		return true
	}
	return false
}

// wrapOnce gives cmd an idempotency key.
func (n *Node) wrapOnce(cmd []byte) ([]byte, error) {
	var key [16]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	return meta.Encode(&meta.Once{Key: hex.EncodeToString(key[:]), At: n.now().UTC(), Cmd: cmd})
}

// rejected reports whether err is the metadata database refusing the
// Command (the same everywhere, so queuing it would not help) rather than
// the cluster failing to reach a leader.
func rejected(err error) bool {
	for _, e := range []error{meta.ErrInvalid, meta.ErrNotFound, meta.ErrExists, meta.ErrDeleted,
		meta.ErrPreserved, meta.ErrNeedsApproval, meta.ErrMalformed, meta.ErrUnknownCommand} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// commitDeferrable commits a deferrable Command, or queues it.
func (n *Node) commitDeferrable(ctx context.Context, cmd []byte) (meta.Result, error) {
	wrapped, err := n.wrapOnce(cmd)
	if err != nil {
		return meta.Result{}, fmt.Errorf("cluster: once key: %w", err)
	}
	if n.outbox.depth.Load() == 0 {
		tctx, cancel := context.WithTimeout(ctx, n.cfg.QuorumWait)
		res, err := n.commit(tctx, wrapped)
		cancel()
		if err == nil || rejected(err) || ctx.Err() != nil {
			return res, err
		}
		n.log.Warn("no quorum: command kept in the outbox", "type", meta.CommandType(cmd[0]), "err", err)
		_, _, err = n.outbox.push(wrapped, false)
		if err != nil {
			return meta.Result{}, err
		}
		return meta.Result{Deferred: true}, nil
	}
	// A queue exists: this Command goes behind it. With a leader known the
	// queue is draining, so wait for the outcome as a commit would; without
	// one (the minority side of a partition) answer at once: capture and
	// uploads must not wait on the cluster.
	_, addr := n.raft.LeaderWithID()
	seq, ch, err := n.outbox.push(wrapped, addr != "")
	if err != nil {
		return meta.Result{}, err
	}
	if ch == nil {
		return meta.Result{Deferred: true}, nil
	}
	t := time.NewTimer(n.cfg.QuorumWait)
	defer t.Stop()
	select {
	case d := <-ch:
		return d.res, d.err
	case <-t.C:
	case <-ctx.Done():
	case <-n.closed:
	}
	n.outbox.forget(seq)
	return meta.Result{Deferred: true}, nil
}

// drainOutbox commits queued Commands, oldest first, whenever there is a
// leader; it runs until the node closes.
func (n *Node) drainOutbox() {
	defer close(n.outboxDone)
	t := time.NewTicker(outboxRetry)
	defer t.Stop()
	for {
		drainedAny := false
		for n.outbox.depth.Load() > 0 && n.drain() {
			drainedAny = true
		}
		if drainedAny && n.outbox.depth.Load() == 0 && n.cfg.OnOutboxDrained != nil {
			n.cfg.OnOutboxDrained()
		}
		select {
		case <-n.closed:
			return
		case <-n.outbox.kick:
		case <-t.C:
		}
	}
}

// drain commits the oldest queued Commands, up to outboxBatch of them in
// one raft entry; false when it could not (no quorum yet, or the node is
// closing), so the caller waits and tries again.
func (n *Node) drain() bool {
	seqs, cmds, err := n.outbox.heads(outboxBatch)
	if err != nil || len(cmds) == 0 {
		if err != nil {
			n.log.Error("outbox read", "err", err)
		}
		return false
	}
	if _, addr := n.raft.LeaderWithID(); addr == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	go func() {
		select {
		case <-n.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	outs, ok := n.commitInOrder(ctx, cmds)
	if !ok && len(cmds) > 1 {
		// The batch as a whole failed or was refused: the head alone tells
		// a refused Command from a cluster not ready yet.
		seqs, cmds = seqs[:1], cmds[:1]
		outs, ok = n.commitInOrder(ctx, cmds)
	}
	if !ok {
		return false
	}
	for i, d := range outs {
		switch {
		case d.err == nil:
			n.outbox.drained.Add(1)
		default:
			// Refused by the metadata itself (a recording deleted
			// meanwhile): every replica refuses it alike. Logged,
			// counted, dropped.
			n.outbox.rejected.Add(1)
			n.log.Error("outbox: command refused", "seq", seqs[i], "err", d.err)
		}
	}
	if err := n.outbox.remove(seqs, outs); err != nil {
		n.log.Error("outbox remove", "err", err)
		return false
	}
	return true
}

// commitInOrder commits cmds as one raft entry (a meta.Batch, applied in
// order; a single Command as itself) and returns each outcome, once this
// node has applied them. ok is false when they did not commit: no leader,
// a transport failure, or the whole batch refused.
func (n *Node) commitInOrder(ctx context.Context, cmds [][]byte) ([]drained, bool) {
	outs := make([]drained, len(cmds))
	if len(cmds) == 1 {
		res, err := n.commit(ctx, cmds[0])
		if err != nil && !rejected(err) {
			return nil, false
		}
		outs[0] = drained{res, err}
		return outs, true
	}
	var index uint64
	err := n.withLeader(ctx, func(leader string) error {
		if leader == "" {
			ps := make([]*pending[indexedResult], len(cmds))
			for i, c := range cmds {
				ps[i] = &pending[indexedResult]{ctx: ctx, cmd: c}
			}
			n.applyBatch(ps)
			for i, p := range ps {
				outs[i] = drained{p.out.Result, p.err}
				index = max(index, p.out.index)
			}
		} else {
			ps := make([]*pending[rpcResponse], len(cmds))
			for i, c := range cmds {
				ps[i] = &pending[rpcResponse]{ctx: ctx, cmd: c}
			}
			n.forwardBatch(leader)(ps)
			for i, p := range ps {
				if p.err != nil {
					return p.err // a transport failure: the same for all
				}
				outs[i] = drained{meta.Result{ID: p.out.ID, Reference: p.out.Reference, AuditSeq: p.out.AuditSeq}, p.out.err()}
				outs[i].res.Err = outs[i].err
				index = max(index, p.out.Index)
			}
		}
		if whole := wholeFailure(outs); whole != nil {
			return whole
		}
		return nil
	})
	if err != nil {
		return nil, false
	}
	if err := n.waitApplied(ctx, index); err != nil {
		return nil, false
	}
	return outs, true
}

// wholeFailure reports the error that every outcome shares when none
// applied: the batch failed or was refused as a whole, not command by
// command.
func wholeFailure(outs []drained) error {
	first := outs[0].err
	if first == nil {
		return nil
	}
	for _, d := range outs[1:] {
		if d.err == nil || d.err.Error() != first.Error() {
			return nil
		}
	}
	// Not wrapped: a refusal stops withLeader's retries (the caller then
	// commits the head alone), a lost leadership still retries.
	return first
}

// OutboxStats is the outbox's state for metrics and status.
type OutboxStats struct {
	Queued   int64  `json:"queued"`
	Drained  uint64 `json:"drained"`
	Rejected uint64 `json:"rejected"`
}

// Outbox reads the outbox's counters.
func (n *Node) Outbox() OutboxStats {
	return OutboxStats{Queued: n.outbox.depth.Load(), Drained: n.outbox.drained.Load(), Rejected: n.outbox.rejected.Load()}
}
