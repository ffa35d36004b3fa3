package meta

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Sentinel errors. Every error returned by this package wraps one of these
// (test with errors.Is); the wrapping message carries the field, ID or numbers.
var (
	// ErrLocked: another process holds the database file; Open gave up after
	// Options.Timeout instead of hanging. The caller adds who holds it.
	ErrLocked = errors.New("meta: database file is locked by another process")
	// ErrSchema: the file was written by an incompatible version of this package.
	ErrSchema = errors.New("meta: unsupported schema version")
	// ErrUnknownCommand: the command's type byte has no handler. The cluster FSM
	// decides whether that is fatal.
	ErrUnknownCommand = errors.New("meta: unknown command type")
	// ErrMalformed: the command bytes could not be decoded.
	ErrMalformed = errors.New("meta: malformed command")
	// ErrInvalid: a field of a command or query is out of range; the message names the field.
	ErrInvalid = errors.New("meta: invalid value")
	// ErrNotFound: the user, group, tenant, token, setting or recording does not exist.
	ErrNotFound = errors.New("meta: not found")
	// ErrExists: the ID, username, group or tenant name is already taken.
	ErrExists = errors.New("meta: already exists")
	// ErrDeleted: the recording was deleted (only its tombstone is left).
	ErrDeleted = errors.New("meta: recording is deleted")
	// ErrPreserved: the recording is under legal hold and cannot be deleted.
	ErrPreserved = errors.New("meta: recording is preserved")
	// ErrNeedsApproval: lifting an indefinite hold needs a request and a
	// second person's approval.
	ErrNeedsApproval = errors.New("meta: needs a second person's approval")
	// ErrTooManyToSort: a search sorted by anything but the start time
	// matches more than SortLimit recordings. It wraps ErrInvalid too.
	ErrTooManyToSort = errors.New("meta: too many matches to sort")
	// ErrCorrupt: Check found an index that disagrees with the primary data.
	ErrCorrupt = errors.New("meta: index inconsistent with primary data")
)

// schemaVersion is stored in the meta bucket; bump it when the on-disk layout changes.
const schemaVersion = 1

// Bucket names. One flat level of buckets keeps Dump and Check simple.
var (
	bMeta        = []byte("meta")         // "schema" → version
	bCounters    = []byte("counters")     // "ref/2026" → last sequence (uint64 BE)
	bSettings    = []byte("settings")     // key → value
	bTenants     = []byte("tenants")      // id → JSON Tenant
	bTenantNames = []byte("tenants_name") // lower(name) → id
	bGroups      = []byte("groups")       // id → JSON Group
	bGroupNames  = []byte("groups_name")  // tenant 0x00 lower(name) → id
	bUsers       = []byte("users")        // id → JSON User
	bUserNames   = []byte("users_name")   // tenant 0x00 lower(username) → id
	bTokens      = []byte("tokens")       // id → JSON Token
	bTokenHashes = []byte("tokens_hash")  // sha256 (32 bytes) → id

	bRec  = []byte("rec")      // id (16 bytes) → JSON Recording
	bTime = []byte("rec_time") // skey (start ms BE ‖ id) → summary
	bRef  = []byte("idx_ref")  // reference → skey
	// Secondary indexes: value 0x00 skey → empty. Each value's run is time-ordered.
	bCallID  = []byte("idx_callid")
	bUser    = []byte("idx_user")
	bGroup   = []byte("idx_group")
	bLocNum  = []byte("idx_localnum")
	bRemNum  = []byte("idx_remotenum")
	bRemName = []byte("idx_remotename")
	bNote    = []byte("idx_note")
	bAttr    = []byte("idx_attr")
	// Recordings due for deletion: DeleteAfter ms (8 bytes BE) 0x00 skey.
	bExpiry = []byte("idx_expiry")
)

// indexBuckets are the value‖0x00‖skey indexes derived from a recording by indexKeys.
var indexBuckets = [][]byte{bCallID, bUser, bGroup, bLocNum, bRemNum, bRemName, bNote, bAttr, bExpiry}

// Options tune Open. The zero value is fine for production.
type Options struct {
	// Timeout bounds the wait for the file lock; default 1s. A second process
	// opening the same file gets ErrLocked instead of hanging.
	Timeout time.Duration
	// NoSync skips fsync after each commit: only for tests and bulk benchmarks,
	// since a crash can then lose committed transactions.
	NoSync bool
}

// DB is the metadata store: one bbolt file. All writes go through Apply or
// ApplyBatch; reads are methods on DB. Safe for concurrent use (bbolt allows
// one writer and many readers).
type DB struct {
	bolt     *bolt.DB
	handlers [256]handler
	// collectLimit bounds prefix-index walks in Search (see collectIter);
	// a field so that tests can make the fallback happen on small data.
	collectLimit int
	// sortLimit is SortLimit; a field so that tests can reach it.
	sortLimit int
	// recs and sums keep what searches read (reccache.go): decoded
	// recordings by ID, summaries by time key.
	recs *viewCache[Recording]
	sums *viewCache[[]byte]
}

// Open opens or creates the database file at path.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, opts.Timeout)
		}
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	bdb.MaxBatchDelay = maxBatchDelay
	db := &DB{bolt: bdb, handlers: newHandlerTable(), collectLimit: defaultCollectLimit, sortLimit: SortLimit, recs: newViewCache(recCacheEntries, func(r *Recording) Recording { return r.clone() }),
		sums: newViewCache[[]byte](sumCacheEntries, nil)}
	if err := db.bolt.Update(initBuckets); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("meta: init %s: %w", path, err)
	}
	return db, nil
}

func allBuckets() [][]byte {
	b := [][]byte{bMeta, bCounters, bSettings, bTenants, bTenantNames, bGroups, bGroupNames,
		bUsers, bUserNames, bTokens, bTokenHashes, bRec, bTime, bRef, bAudit, bAuditIdx, bAuditCheckpoints, bOnce, bOnceTime}
	return append(b, indexBuckets...)
}

func initBuckets(tx *bolt.Tx) error {
	newExpiry := tx.Bucket(bExpiry) == nil
	for _, name := range allBuckets() {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if newExpiry {
		// A database from before the expiry index: build it.
		if err := buildIndex(tx, ixExpiry); err != nil {
			return err
		}
	}
	m := tx.Bucket(bMeta)
	if v := m.Get([]byte("schema")); v != nil {
		if len(v) != 8 || binary.BigEndian.Uint64(v) != schemaVersion {
			return fmt.Errorf("%w: file has %x, want %d", ErrSchema, v, schemaVersion)
		}
		return nil
	}
	return m.Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, schemaVersion))
}

// Close closes the file. Pending read transactions finish first.
func (db *DB) Close() error {
	return db.bolt.Close()
}

// Dump writes every bucket, key and value in byte order, one line per key:
// "bucket<TAB>hex(key)<TAB>hex(value)". Two databases that applied the same
// command log produce identical dumps; that is how determinism is tested.
func (db *DB) Dump(w io.Writer) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			line := make([]byte, 0, 256)
			return b.ForEach(func(k, v []byte) error {
				line = append(line[:0], name...)
				line = append(line, '\t')
				line = hex.AppendEncode(line, k)
				line = append(line, '\t')
				line = hex.AppendEncode(line, v)
				line = append(line, '\n')
				_, err := w.Write(line)
				return err
			})
		})
	})
}

// Check verifies bbolt's page structure and that every name index, token
// index and recording index agrees with the primary records, both ways.
// It reads everything, so it is for tests, fuzzing and `callvault verify`.
//
// It runs in a write transaction that it rolls back, never commits: bbolt's
// page check compares the transaction's pages with the database's live
// freelist, which in a read transaction already holds pages that commits
// made meanwhile freed but this snapshot still reaches ("reachable freed"
// under a busy audit queue, a false alarm). Holding the writer lock keeps
// the two in step.
func (db *DB) Check() error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("%w: bbolt: %w", ErrCorrupt, err)
		}
		if err := checkAccounts(tx); err != nil {
			return err
		}
		if err := checkRecordings(tx); err != nil {
			return err
		}
		return errCheckDone
	})
	if errors.Is(err, errCheckDone) {
		return nil
	}
	return err
}

// errCheckDone rolls Check's write transaction back.
var errCheckDone = errors.New("meta: check done")

// checkUnique verifies that the name index idx holds exactly the keys
// derived by keyOf from the primary bucket, each pointing back at its ID.
func checkUnique(tx *bolt.Tx, primary, idx []byte, keyOf func(v []byte) ([]byte, error)) error {
	want := 0
	err := tx.Bucket(primary).ForEach(func(id, v []byte) error {
		k, err := keyOf(v)
		if err != nil {
			return fmt.Errorf("%w: %s %q: %w", ErrCorrupt, primary, id, err)
		}
		if k == nil {
			return nil
		}
		want++
		if got := tx.Bucket(idx).Get(k); !bytes.Equal(got, id) {
			return fmt.Errorf("%w: %s key %q points to %q, want %q", ErrCorrupt, idx, k, got, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n := tx.Bucket(idx).Stats().KeyN; n != want {
		return fmt.Errorf("%w: %s has %d keys, want %d", ErrCorrupt, idx, n, want)
	}
	return nil
}

// buildIndex adds every recording's entries of one index.
func buildIndex(tx *bolt.Tx, ix int) error {
	return tx.Bucket(bRec).ForEach(func(k, v []byte) error {
		var r Recording
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("%w: recording %x: %w", ErrCorrupt, k, err)
		}
		u, err := uuid.FromBytes(k)
		if err != nil {
			return fmt.Errorf("%w: recording key %x", ErrCorrupt, k)
		}
		for _, e := range indexEntries(&r, makeSkey(r.Start, u)) {
			if e.bucket == ix {
				if err := tx.Bucket(indexBuckets[ix]).Put([]byte(e.key), nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
