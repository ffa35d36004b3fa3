package meta

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// encodeAll encodes a command log.
func encodeAll(t testing.TB, cmds []Command) [][]byte {
	t.Helper()
	out := make([][]byte, len(cmds))
	for i, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// entries numbers commands as raft log entries from first on.
func entries(cmds [][]byte, first uint64) []LogEntry {
	es := make([]LogEntry, len(cmds))
	for i, c := range cmds {
		es[i] = LogEntry{Index: first + uint64(i), Cmd: c}
	}
	return es
}

// TestApplyLogSkipsReplay: raft hands a restarted node entries it already
// applied; they must not be applied twice (an audit entry would be
// appended again, a reference number drawn again), and the result must be
// byte-identical to applying the log once.
func TestApplyLogSkipsReplay(t *testing.T) {
	cmds := encodeAll(t, newWorld(3, 20, 4, 2, 10*24*time.Hour).log(300, 1.5))
	once, twice := mustOpen(t), mustOpen(t)
	if _, err := once.ApplyLog(entries(cmds, 1)); err != nil {
		t.Fatal(err)
	}
	// twice: the first 200 entries, then a replay of 50..300 (as after a
	// restart from a snapshot at 49).
	if _, err := twice.ApplyLog(entries(cmds[:200], 1)); err != nil {
		t.Fatal(err)
	}
	res, err := twice.ApplyLog(entries(cmds[49:], 50))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res[:151] {
		if r.ID != "" || r.Reference != "" || r.Err != nil || r.Batch != nil {
			t.Fatalf("replayed entry %d got a result %+v; want it skipped", 50+i, r)
		}
	}
	if !bytes.Equal(dump(t, once), dump(t, twice)) {
		t.Fatal("replaying already-applied entries changed the database")
	}
	for _, db := range []*DB{once, twice} {
		if idx, err := db.AppliedIndex(); err != nil || idx != uint64(len(cmds)) {
			t.Fatalf("AppliedIndex = %d, %v; want %d", idx, err, len(cmds))
		}
	}
	// Out-of-order entries are refused and change nothing.
	before := dump(t, once)
	_, err = once.ApplyLog([]LogEntry{{Index: 1000, Cmd: cmds[0]}, {Index: 999, Cmd: cmds[1]}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("decreasing indexes: err = %v, want ErrInvalid", err)
	}
	if !bytes.Equal(before, dump(t, once)) {
		t.Fatal("a refused ApplyLog changed the database")
	}
}

// TestSnapshotRestore: a snapshot taken while commands keep coming holds
// exactly the state at BeginSnapshot; restoring it into a database with
// other contents gives a byte-identical database, which keeps working (the
// same *DB applies the rest of the log and matches a database that applied
// it all).
func TestSnapshotRestore(t *testing.T) {
	cmds := encodeAll(t, newWorld(5, 30, 5, 2, 20*24*time.Hour).log(600, 1.5))
	src, ref := mustOpen(t), mustOpen(t)
	if _, err := src.ApplyLog(entries(cmds[:400], 1)); err != nil {
		t.Fatal(err)
	}
	want := dump(t, src)
	snap, err := src.BeginSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes after the snapshot began do not reach it. They run
	// concurrently, as raft's applies do: a write that grows the file waits
	// for the snapshot's read transaction (bbolt cannot remap under it).
	applied := make(chan error, 1)
	go func() {
		_, err := src.ApplyLog(entries(cmds[400:], 401))
		applied <- err
	}()
	if snap.AppliedIndex() != 400 {
		t.Fatalf("snapshot AppliedIndex = %d, want 400", snap.AppliedIndex())
	}
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	snap.Release()
	snap.Release() // twice is harmless
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v (buffer %d)", n, err, buf.Len())
	}
	if err := <-applied; err != nil {
		t.Fatal(err)
	}

	dst := mustOpen(t)
	// Something the snapshot does not have: it must be gone after Restore.
	mustApply(t, dst, &CreateTenant{Tenant: Tenant{ID: "stale", Name: "Stale"}})
	if err := dst.Restore(bytes.NewReader(buf.Bytes()), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst); !bytes.Equal(got, want) {
		t.Fatal("restored database differs from the snapshot's state")
	}
	if _, err := dst.Tenant("stale"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("state from before the restore survived: %v", err)
	}
	// The same handle keeps working and converges with the others.
	if _, err := dst.ApplyLog(entries(cmds[400:], 401)); err != nil {
		t.Fatal(err)
	}
	if _, err := ref.ApplyLog(entries(cmds, 1)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dump(t, dst), dump(t, ref)) || !bytes.Equal(dump(t, src), dump(t, ref)) {
		t.Fatal("restored database diverged after applying the rest of the log")
	}
}

// TestRestoreRejectsGarbage: a stream that is not a metadata database is
// refused with ErrSnapshot and the database is untouched.
func TestRestoreRejectsGarbage(t *testing.T) {
	db := mustOpen(t)
	mustApply(t, db, &CreateTenant{Tenant: Tenant{ID: "t1", Name: "One"}})
	before := dump(t, db)
	// A valid bbolt file of another schema.
	other := filepath.Join(t.TempDir(), "other.db")
	odb, err := Open(other, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := odb.bolt.Update(func(tx *boltTx) error {
		return tx.Bucket(bMeta).Put([]byte("schema"), []byte{0, 0, 0, 0, 0, 0, 0, 99})
	}); err != nil {
		t.Fatal(err)
	}
	_ = odb.Close()
	otherBytes, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"empty":        nil,
		"text":         []byte("not a database"),
		"other schema": otherBytes,
		"truncated":    otherBytes[:len(otherBytes)/2],
	} {
		t.Run(name, func(t *testing.T) {
			err := db.Restore(bytes.NewReader(in), t.TempDir())
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("Restore(%s) = %v, want ErrSnapshot", name, err)
			}
			if !bytes.Equal(before, dump(t, db)) {
				t.Fatal("a refused restore changed the database")
			}
		})
	}
	// WriteSnapshotFile refuses the same and leaves no file behind.
	path := filepath.Join(t.TempDir(), "meta.db")
	if err := WriteSnapshotFile(path, strings.NewReader("junk")); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("WriteSnapshotFile(junk) = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a refused snapshot left %s: %v", path, err)
	}
}
