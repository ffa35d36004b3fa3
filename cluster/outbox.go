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

// outbox is the durable queue: seq (8 bytes BE) → encoded meta.Once.
type outbox struct {
	db   *bolt.DB
	mu   sync.Mutex // serialises push against the drainer's reads of the tail
	next uint64
	// depth is the number of queued Commands, for metrics and for the
	// "queue exists" decision without a transaction.
	depth atomic.Int64
	kick  chan struct{}

	drained, rejected atomic.Uint64
}

func openOutbox(dataDir string) (*outbox, error) {
	path := filepath.Join(clusterDir(dataDir), "outbox.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("cluster: open outbox %s: %w", path, err)
	}
	o := &outbox{db: db, kick: make(chan struct{}, 1)}
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

// push appends a wrapped Command durably (fsynced before it returns).
func (o *outbox) push(cmd []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	err := o.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bOutbox).Put(binary.BigEndian.AppendUint64(nil, o.next), cmd)
	})
	if err != nil {
		return fmt.Errorf("cluster: outbox: %w", err)
	}
	o.next++
	o.depth.Add(1)
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return nil
}

// head returns the oldest queued Command, or nil.
func (o *outbox) head() (seq uint64, cmd []byte, err error) {
	err = o.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bOutbox).Cursor().First()
		if k != nil {
			seq, cmd = binary.BigEndian.Uint64(k), append([]byte(nil), v...)
		}
		return nil
	})
	return seq, cmd, err
}

// remove drops the Command at seq once it has committed.
func (o *outbox) remove(seq uint64) error {
	err := o.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bOutbox).Delete(binary.BigEndian.AppendUint64(nil, seq))
	})
	if err != nil {
		return fmt.Errorf("cluster: outbox: %w", err)
	}
	o.depth.Add(-1)
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
	}
	if err := n.outbox.push(wrapped); err != nil {
		return meta.Result{}, err
	}
	return meta.Result{Deferred: true}, nil
}

// drainOutbox commits queued Commands, oldest first, whenever there is a
// leader; it runs until the node closes.
func (n *Node) drainOutbox() {
	defer close(n.outboxDone)
	t := time.NewTicker(outboxRetry)
	defer t.Stop()
	for {
		drained := false
		for n.outbox.depth.Load() > 0 && n.drainOne() {
			drained = true
		}
		if drained && n.outbox.depth.Load() == 0 && n.cfg.OnOutboxDrained != nil {
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

// drainOne commits the head of the queue; false when it could not (no
// quorum yet, or the node is closing), so the caller waits and tries again.
func (n *Node) drainOne() bool {
	seq, cmd, err := n.outbox.head()
	if err != nil || cmd == nil {
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
	res, err := n.commit(ctx, cmd)
	switch {
	case err == nil:
		n.outbox.drained.Add(1)
		if res.Duplicate {
			n.log.Info("outbox: command had committed before", "seq", seq)
		}
	case rejected(err):
		// Refused by the metadata itself (a recording deleted meanwhile):
		// every replica would refuse it the same way. Logged, counted, dropped.
		n.outbox.rejected.Add(1)
		n.log.Error("outbox: command refused", "seq", seq, "err", err)
	default:
		return false
	}
	if err := n.outbox.remove(seq); err != nil {
		n.log.Error("outbox remove", "seq", seq, "err", err)
		return false
	}
	return true
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
