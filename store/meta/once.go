package meta

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Once applies an inner command at most once however often it is
// committed. A cluster node wraps the Commands that could otherwise be
// committed twice: a forward retried after the leader died having already
// appended it, and a Command replayed from the durable outbox after a crash
// between its commit and its removal from the outbox. Apply records Key in
// the same transaction as the inner command's effect, so either both are
// there or neither; a Once whose Key is recorded already changes nothing and
// reports Result.Duplicate.
//
// Keys are kept for OnceKeep after At (the time the originating node wrapped
// the command), then pruned a few at a time by later Once commands. The
// pruning depends only on the log, so every replica prunes the same keys.
type Once struct {
	// Key is 16 random bytes in hex.
	Key string `json:"key"`
	// At is when the originating node wrapped the command.
	At time.Time `json:"at"`
	// Cmd is the encoded inner command; it may not be a Once itself.
	Cmd []byte `json:"cmd"`
}

// OnceKeep is how long a Once key is remembered: longer than any outbox
// should hold a command (a partition, a node down for a holiday).
const OnceKeep = 30 * 24 * time.Hour

// onceKeyLen is the decoded length of Once.Key.
const onceKeyLen = 16

// onceMaxPrune bounds the expired keys one Once removes, so an apply after
// a long quiet spell stays short; steady traffic prunes faster than it adds.
const onceMaxPrune = 8

// Buckets of Once: key (16 bytes) → At (unix ms BE), and At ‖ key → nil
// for pruning in time order.
var (
	bOnce     = []byte("once")
	bOnceTime = []byte("once_time")
)

func (*Once) commandType() CommandType { return TypeOnce }

func (c *Once) apply(t *txn) (Result, error) {
	key, err := hex.DecodeString(c.Key)
	if err != nil || len(key) != onceKeyLen {
		return Result{}, fmt.Errorf("%w: once key %q is not %d bytes of hex", ErrInvalid, c.Key, onceKeyLen)
	}
	if c.At.IsZero() {
		return Result{}, fmt.Errorf("%w: once at is zero", ErrInvalid)
	}
	if len(c.Cmd) == 0 {
		return Result{}, fmt.Errorf("%w: once without a command", ErrInvalid)
	}
	if CommandType(c.Cmd[0]) == TypeOnce {
		return Result{}, fmt.Errorf("%w: once inside once", ErrInvalid)
	}
	if t.b(bOnce).Get(key) != nil {
		return Result{Duplicate: true}, nil
	}
	res, err := t.applyInner(c.Cmd)
	if err != nil {
		// The inner command left no trace (commands validate before their
		// first write), and neither does its key: a later try may succeed.
		return res, err
	}
	ms := c.At.UnixMilli()
	if err := t.put(bOnce, key, binary.BigEndian.AppendUint64(nil, uint64(ms))); err != nil {
		return Result{}, err
	}
	if err := t.put(bOnceTime, append(binary.BigEndian.AppendUint64(nil, uint64(ms)), key...), nil); err != nil {
		return Result{}, err
	}
	return res, t.pruneOnce(ms - OnceKeep.Milliseconds())
}

// pruneOnce forgets up to onceMaxPrune keys made before cutoff (unix ms).
func (t *txn) pruneOnce(cutoff int64) error {
	if cutoff <= 0 {
		return nil
	}
	limit := binary.BigEndian.AppendUint64(nil, uint64(cutoff))
	var old [][]byte
	cur := t.b(bOnceTime).Cursor()
	for k, _ := cur.First(); k != nil && len(old) < onceMaxPrune && bytes.Compare(k[:8], limit) < 0; k, _ = cur.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := t.del(bOnceTime, k); err != nil {
			return err
		}
		if err := t.del(bOnce, k[8:]); err != nil {
			return err
		}
	}
	return nil
}

// OnceKnown reports whether a Once with this key was applied (and not yet
// pruned): the outbox asks it after a restart to learn which of its
// Commands committed before the crash.
func (db *DB) OnceKnown(key string) (bool, error) {
	k, err := hex.DecodeString(key)
	if err != nil || len(k) != onceKeyLen {
		return false, fmt.Errorf("%w: once key %q", ErrInvalid, key)
	}
	var found bool
	err = db.bolt.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bOnce).Get(k) != nil
		return nil
	})
	return found, err
}
