package meta

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// mustOpen opens a fresh database in a temp dir and, at cleanup, checks
// that every index still agrees with the primary data (like bbolt's btesting).
func mustOpen(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "meta.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("consistency check at cleanup: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// mustApply encodes and applies cmd, failing the test on any error.
func mustApply(t testing.TB, db *DB, cmd Command) Result {
	t.Helper()
	res, err := apply(db, cmd)
	if err != nil {
		t.Fatalf("apply %T: %v", cmd, err)
	}
	return res
}

func apply(db *DB, cmd Command) (Result, error) {
	b, err := Encode(cmd)
	if err != nil {
		return Result{}, err
	}
	return db.Apply(b)
}

// wantErr applies cmd and requires an error matching target.
func wantErr(t testing.TB, db *DB, cmd Command, target error) {
	t.Helper()
	_, err := apply(db, cmd)
	if !errors.Is(err, target) {
		t.Fatalf("apply %T: got error %v, want %v", cmd, err, target)
	}
}

type boltTx = bolt.Tx
