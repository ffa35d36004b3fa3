package meta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CommandType is the first byte of an encoded command. The numbers are part
// of the raft log format: never reuse or renumber one, only append.
type CommandType byte

// Command types. Zero is deliberately unused so that a zeroed buffer is rejected.
const (
	TypeCreateTenant CommandType = iota + 1
	TypeUpdateTenant
	TypeCreateGroup
	TypeUpdateGroup
	TypeCreateUser
	TypeUpdateUser
	TypeSetPassword
	TypeCreateToken
	TypeRevokeToken
	TypePutSetting
	TypeCreateRecording
	TypeUpdateRecording
	TypeSetLocation
	TypeAddNote
	TypeSetRating
	TypeSetCategory
	TypeSetCustomField
	TypeSetComplete
	TypeSetReviewMinutes
	TypeSetTranscript
	TypeAddBookmark
	TypeLinkRelated
	TypePreserve
	TypeRelease
	TypeSetDeleteAfter
	TypeRewrapDEKs
	TypeDeleteRecording
	// Appended, never inserted: the type byte is on disk and in raft logs.
	TypeSetCallInfo
	TypeAppendAudit
	TypeDiscardRecording
	TypeSetRetention
	TypeAuditCheckpoint
	TypeAppendAudits
	TypeRequestRelease
	TypeAddReplica
	TypeRecomputeRetention
	TypeOnce // 37; 38 is TypeBatch (batch.go)
)

// Command is a metadata change. Only the types in this package implement it;
// build one, Encode it, and hand the bytes to Apply (single node) or to the
// raft log (cluster).
type Command interface {
	commandType() CommandType
}

// applier is implemented by every *Command; apply validates everything
// before its first write, so a failed command leaves no trace even inside
// an ApplyBatch transaction.
type applier interface {
	apply(t *txn) (Result, error)
}

// Result is what a successfully applied command reports back.
type Result struct {
	// ID of the object the command created or changed.
	ID string
	// Reference is set by CreateRecording: the number assigned inside Apply.
	Reference string
	// Err is the command's own error in ApplyBatch (nil on success).
	Err error
	// Duplicate is set by Once when its key was applied before: the
	// inner command changed nothing this time.
	Duplicate bool
	// Deferred is never set by Apply: a cluster node that cannot reach a
	// quorum and keeps the command in its durable outbox says so with it
	// (the command is not applied anywhere yet, ID and Reference are empty).
	Deferred bool
	// Batch holds a Batch command's inner results, one per inner command
	// in order, each with its own Err (batch.go).
	Batch []Result
	// AuditSeq is the number of the last audit entry an UpdateRecording
	// appended with its change (0 when it appended none).
	AuditSeq uint64
}

// Encode returns the wire form of cmd: [type byte][JSON payload], or for
// the commands that carry others (Once, Batch) their own framing (frame.go).
// encoding/json writes struct fields in declaration order and map keys
// sorted, so the same command always encodes to the same bytes.
func Encode(cmd Command) ([]byte, error) {
	if cmd == nil {
		return nil, fmt.Errorf("%w: nil command", ErrInvalid)
	}
	if f, ok := cmd.(framed); ok {
		return f.appendFrame([]byte{byte(cmd.commandType())})
	}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("meta: encode %T: %w", cmd, err)
	}
	return append([]byte{byte(cmd.commandType())}, payload...), nil
}

// handler decodes one payload and applies it.
type handler func(t *txn, payload []byte) (Result, error)

// handle builds the handler for command type C: decode into a fresh C, apply.
func handle[C any, P interface {
	*C
	applier
}]() handler {
	return func(t *txn, payload []byte) (Result, error) {
		var c C
		if err := json.Unmarshal(payload, &c); err != nil {
			return Result{}, fmt.Errorf("%w: %T: %w", ErrMalformed, c, err)
		}
		return P(&c).apply(t)
	}
}

// newHandlerTable is the dispatch table, indexed by type byte (consul's fsm
// does the same with a map; an array needs no hashing and no lock).
func newHandlerTable() [256]handler {
	var h [256]handler
	h[TypeCreateTenant] = handle[CreateTenant]()
	h[TypeUpdateTenant] = handle[UpdateTenant]()
	h[TypeCreateGroup] = handle[CreateGroup]()
	h[TypeUpdateGroup] = handle[UpdateGroup]()
	h[TypeCreateUser] = handle[CreateUser]()
	h[TypeUpdateUser] = handle[UpdateUser]()
	h[TypeSetPassword] = handle[SetPassword]()
	h[TypeCreateToken] = handle[CreateToken]()
	h[TypeRevokeToken] = handle[RevokeToken]()
	h[TypePutSetting] = handle[PutSetting]()
	h[TypeAppendAudit] = handle[AppendAudit]()
	h[TypeAuditCheckpoint] = handle[AuditCheckpoint]()
	h[TypeAppendAudits] = handle[AppendAudits]()
	h[TypeAddReplica] = handle[AddReplica]()
	h[TypeRecomputeRetention] = handle[RecomputeRetention]()
	h[TypeOnce] = frameHandler[Once](decodeOnce)
	h[TypeBatch] = frameHandler[Batch](decodeBatch)
	registerRecordingHandlers(&h)
	return h
}

// storageError marks a failure of bbolt itself (as opposed to a rejected
// command). ApplyBatch aborts the whole transaction on one, because the
// command may have been half written.
type storageError struct{ err error }

func (e storageError) Error() string { return "meta: storage: " + e.err.Error() }
func (e storageError) Unwrap() error { return e.err }

// txn is the write context handed to commands. db is there for commands
// that carry other commands (Once): they apply their inner command through
// the same dispatch table, in the same transaction.
type txn struct {
	tx *bolt.Tx
	db *DB
}

// applyInner applies an encoded command carried inside another, in t.
func (t *txn) applyInner(b []byte) (Result, error) { return t.db.applyOne(t, b) }

func (t *txn) b(name []byte) *bolt.Bucket { return t.tx.Bucket(name) }

// fillPercent is how full bbolt packs a page before it splits it. Its
// default (half) suits random inserts; ours are appends (the time-ordered
// recordings, their sort keys, references) or appends within one index
// value's run, where a half-full page stays half full for ever. At 0.9 the
// 1,000,000-recording benchmark database shrinks from 3.2 GiB to 2.0, and a
// cold search reads about half as many pages. Call IDs and remote numbers
// are random keys: packed pages there would split again at once.
const fillPercent = 0.9

// put and del wrap bbolt errors as storageError.
func (t *txn) put(bucket, k, v []byte) error {
	b := t.tx.Bucket(bucket)
	if !bytes.Equal(bucket, bCallID) && !bytes.Equal(bucket, bRemNum) {
		b.FillPercent = fillPercent
	}
	t.written(bucket, k, b.Get(k) != nil)
	if err := b.Put(k, v); err != nil {
		return storageError{fmt.Errorf("put %s: %w", bucket, err)}
	}
	return nil
}

// written tells the search caches (reccache.go) that this transaction
// writes k of bucket, so they stop serving what searches read of it. A key
// that did not exist needs nothing: no view before this transaction has it.
func (t *txn) written(bucket, k []byte, existed bool) {
	if !existed {
		return
	}
	switch {
	case bytes.Equal(bucket, bRec):
		t.db.recs.written(k, uint64(t.tx.ID()))
	case bytes.Equal(bucket, bTime):
		t.db.sums.written(k, uint64(t.tx.ID()))
	}
}

func (t *txn) del(bucket, k []byte) error {
	t.written(bucket, k, true)
	if err := t.tx.Bucket(bucket).Delete(k); err != nil {
		return storageError{fmt.Errorf("delete %s: %w", bucket, err)}
	}
	return nil
}

func (db *DB) applyOne(t *txn, b []byte) (Result, error) {
	if len(b) == 0 {
		return Result{}, fmt.Errorf("%w: empty command", ErrMalformed)
	}
	h := db.handlers[b[0]]
	if h == nil {
		return Result{}, fmt.Errorf("%w: %d", ErrUnknownCommand, b[0])
	}
	return h(t, b[1:])
}

// Apply applies one encoded command in its own transaction. A rejected
// command (ErrInvalid, ErrNotFound, ...) changes nothing. Apply is a pure
// function of the database state and b: every replica that applies the same
// log reaches the same state.
func (db *DB) Apply(b []byte) (Result, error) {
	return db.applyIn(db.bolt.Update, b)
}

// ApplyConcurrent applies one command like Apply, but commits it together
// with the commands other goroutines apply at the same moment: one
// transaction and one fsync for all of them (bbolt's Batch). The HTTP
// handlers that each append an audit entry or a note use it, so fifty
// concurrent clients do not queue for fifty fsyncs. A lone caller waits up
// to maxBatchDelay longer than with Apply. The result is the same as
// applying the commands one after another in the order they were queued.
func (db *DB) ApplyConcurrent(b []byte) (Result, error) {
	// Batch may run the function more than once (after another command of
	// the batch failed); each run starts from a rolled-back transaction.
	return db.applyIn(db.bolt.Batch, b)
}

// applyIn applies b in a write transaction that run (Update or Batch) opens.
func (db *DB) applyIn(run func(func(*bolt.Tx) error) error, b []byte) (Result, error) {
	var res Result
	err := run(func(tx *bolt.Tx) error {
		var err error
		res, err = db.applyOne(&txn{tx: tx, db: db}, b)
		return err
	})
	if err != nil {
		return Result{Err: err}, err
	}
	return res, nil
}

// maxBatchDelay is how long ApplyConcurrent waits for company.
const maxBatchDelay = time.Millisecond

// ApplyBatch applies many commands in one transaction (one fsync): bulk
// imports and raft batches. Each command's outcome is in its Result.Err; a
// rejected command does not stop the others. The returned error is non-nil
// only when the transaction itself failed, in which case nothing was applied.
func (db *DB) ApplyBatch(cmds [][]byte) ([]Result, error) {
	results := make([]Result, len(cmds))
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		t := &txn{tx: tx, db: db}
		for i, b := range cmds {
			res, err := t.applyKeepGoing(b)
			if err != nil {
				return fmt.Errorf("command %d: %w", i, err)
			}
			results[i] = res
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}
