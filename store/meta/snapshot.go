package meta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Raft support: a cluster's FSM applies log entries with ApplyLog, which
// records the raft index of the last entry in the same transaction as the
// entries' effects. A node restarted with its database therefore knows
// exactly which entries it already holds, and skips them when raft hands
// them over again (raft replays from its last snapshot, but the database is
// newer than any snapshot, and replaying an AppendAudit twice would fork the
// audit chain).
//
// Snapshot and Restore move the whole database as a bbolt file: the
// snapshot is a consistent copy written from one read transaction
// (tx.WriteTo), so it needs no lock against concurrent applies; Restore
// copies every bucket of such a file into the open database in one write
// transaction, so readers see either the old state or the new one, the
// *DB handed out to the rest of the appliance stays valid, and a crash in
// the middle leaves the old state.

// ErrSnapshot: the snapshot stream is not a Callvault metadata database
// (wrong magic, schema, or a bbolt file that fails its own check).
var ErrSnapshot = errors.New("meta: invalid snapshot")

// keyApplied is the meta-bucket key of the last applied raft index (8 bytes BE).
var keyApplied = []byte("raft_applied")

// AppliedIndex returns the raft index of the last log entry applied with
// ApplyLog (0 for a database that never applied one).
func (db *DB) AppliedIndex() (uint64, error) {
	var idx uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		idx = appliedIn(tx)
		return nil
	})
	return idx, err
}

func appliedIn(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bMeta).Get(keyApplied)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// LogEntry is one raft log entry's command and index.
type LogEntry struct {
	Index uint64
	Cmd   []byte
}

// ApplyLog applies raft log entries in one transaction (one fsync) and
// records the last index. Entries at or below the recorded index were
// applied before (a replay after restart) and are skipped with a zero
// Result (no caller waits on a replayed entry). Entries must be in increasing index order. Like
// ApplyBatch, a rejected command does not stop the others (its error is in
// Result.Err: every replica rejects it the same way); the returned error
// is non-nil only when the transaction failed, and then nothing changed.
func (db *DB) ApplyLog(entries []LogEntry) ([]Result, error) {
	results := make([]Result, len(entries))
	if len(entries) == 0 {
		return results, nil
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		t := &txn{tx: tx, db: db}
		last := appliedIn(tx)
		applied, before := last, uint64(0)
		for i, e := range entries {
			if i > 0 && e.Index <= before {
				return fmt.Errorf("%w: raft index %d after %d", ErrInvalid, e.Index, before)
			}
			before = e.Index
			if e.Index <= last {
				continue
			}
			applied = e.Index
			res, err := t.applyKeepGoing(e.Cmd)
			if err != nil {
				return fmt.Errorf("raft index %d: %w", e.Index, err)
			}
			results[i] = res
		}
		if applied == last {
			return nil
		}
		return tx.Bucket(bMeta).Put(keyApplied, binary.BigEndian.AppendUint64(nil, applied))
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// SetAppliedIndex records idx as the last applied raft index without
// applying anything: raft entries that are not commands (configuration
// changes) still move the index forward, so a snapshot's index and the
// database agree.
func (db *DB) SetAppliedIndex(idx uint64) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if appliedIn(tx) >= idx {
			return nil
		}
		return tx.Bucket(bMeta).Put(keyApplied, binary.BigEndian.AppendUint64(nil, idx))
	})
}

// Snapshot is a consistent copy of the database being written.
type Snapshot struct {
	tx *bolt.Tx
}

// BeginSnapshot opens a read transaction that pins the current state. Apply
// may go on concurrently; WriteTo writes the pinned state. Release must be
// called (it ends the read transaction; while it is open, bbolt cannot grow
// its memory map, so a growing database's writers wait for it).
func (db *DB) BeginSnapshot() (*Snapshot, error) {
	tx, err := db.bolt.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("meta: snapshot: %w", err)
	}
	return &Snapshot{tx: tx}, nil
}

// AppliedIndex is the raft index the snapshot's state includes.
func (s *Snapshot) AppliedIndex() uint64 { return appliedIn(s.tx) }

// Size is the number of bytes WriteTo writes.
func (s *Snapshot) Size() int64 { return s.tx.Size() }

// WriteTo writes the pinned state as a bbolt file.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) { return s.tx.WriteTo(w) }

// Release ends the snapshot's read transaction. Safe to call twice.
func (s *Snapshot) Release() {
	if s.tx != nil {
		_ = s.tx.Rollback()
		s.tx = nil
	}
}

// WriteSnapshotFile writes the snapshot read from r to path (creating it
// 0600, synced) and checks that it is a metadata database of this schema.
// A joining node uses it to start from its cluster's state.
func WriteSnapshotFile(path string, r io.Reader) error {
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("meta: snapshot file: %w", err)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = checkSnapshotFile(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// checkSnapshotFile opens path read-only and checks its structure and schema.
func checkSnapshotFile(path string) error {
	src, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	defer src.Close()
	return src.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("%w: %w", ErrSnapshot, err)
		}
		return checkSnapshotSchema(tx)
	})
}

func checkSnapshotSchema(tx *bolt.Tx) error {
	m := tx.Bucket(bMeta)
	if m == nil {
		return fmt.Errorf("%w: no meta bucket", ErrSnapshot)
	}
	v := m.Get([]byte("schema"))
	if len(v) != 8 || binary.BigEndian.Uint64(v) != schemaVersion {
		return fmt.Errorf("%w: schema %x, want %d", ErrSnapshot, v, schemaVersion)
	}
	return nil
}

// Restore replaces the whole database with the snapshot read from r (a
// file written by Snapshot.WriteTo). The stream is first spooled to a
// temporary file in dir and checked, then copied in one write transaction:
// a bad snapshot changes nothing, and readers never see a half state.
func (db *DB) Restore(r io.Reader, dir string) error {
	f, err := os.CreateTemp(dir, "restore-*.db")
	if err != nil {
		return fmt.Errorf("meta: restore: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return fmt.Errorf("meta: restore: read snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("meta: restore: %w", err)
	}
	if err := checkSnapshotFile(tmp); err != nil {
		return err
	}
	src, err := bolt.Open(tmp, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	defer src.Close()
	return src.View(func(stx *bolt.Tx) error {
		return db.bolt.Update(func(tx *bolt.Tx) error {
			// Every recording may change: searches decode afresh.
			db.recs.reset(uint64(tx.ID()))
			db.sums.reset(uint64(tx.ID()))
			var names [][]byte
			if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				names = append(names, bytes.Clone(name))
				return nil
			}); err != nil {
				return err
			}
			for _, n := range names {
				if err := tx.DeleteBucket(n); err != nil {
					return fmt.Errorf("meta: restore: drop %s: %w", n, err)
				}
			}
			err := stx.ForEach(func(name []byte, sb *bolt.Bucket) error {
				b, err := tx.CreateBucket(name)
				if err != nil {
					return fmt.Errorf("meta: restore: create %s: %w", name, err)
				}
				// Keys arrive in order: pack pages full (the copy is an append).
				b.FillPercent = 1
				return sb.ForEach(func(k, v []byte) error {
					if v == nil {
						return fmt.Errorf("%w: nested bucket %s/%x", ErrSnapshot, name, k)
					}
					return b.Put(k, v)
				})
			})
			if err != nil {
				return err
			}
			// A snapshot from a version before a bucket existed.
			for _, name := range allBuckets() {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return fmt.Errorf("meta: restore: create %s: %w", name, err)
				}
			}
			return nil
		})
	})
}

// SnapshotDir is where Restore spools a snapshot: beside the database file.
func (db *DB) SnapshotDir() string { return filepath.Dir(db.bolt.Path()) }
