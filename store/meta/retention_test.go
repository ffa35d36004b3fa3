package meta

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestRetentionPolicies(t *testing.T) {
	db := mustOpen(t)
	mustApply(t, db, &CreateTenant{Tenant: Tenant{ID: "t1", Name: "T1"}})
	mustApply(t, db, &CreateTenant{Tenant: Tenant{ID: "t2", Name: "T2"}})
	mustApply(t, db, &CreateGroup{Group: Group{ID: "g1", Tenant: "t1", Name: "G1"}})
	wantErr(t, db, &SetRetention{Tenant: "t2", Group: "g1", Days: 5}, ErrInvalid)
	wantErr(t, db, &SetRetention{Tenant: "t1", Group: "nosuch", Days: 5}, ErrNotFound)
	wantErr(t, db, &SetRetention{Days: -2}, ErrInvalid)
	wantErr(t, db, &SetRetention{Days: maxRetentionDays + 1}, ErrInvalid)

	for _, c := range []struct {
		set           *SetRetention
		tenant, group string
		days          int
		ok            bool
	}{
		{nil, "t1", "g1", 0, false},
		{&SetRetention{Days: 1000}, "t1", "g1", 1000, true},
		{&SetRetention{Tenant: "t1", Days: 90}, "t1", "g1", 90, true},
		{nil, "t2", "", 1000, true},
		{&SetRetention{Tenant: "t1", Group: "g1", Days: 0}, "t1", "g1", 0, true}, // kept for ever, explicitly
		{nil, "t1", "", 90, true},
		{&SetRetention{Tenant: "t1", Group: "g1", Days: -1}, "t1", "g1", 90, true}, // removed: the tenant's again
		{&SetRetention{Days: -1}, "t2", "", 0, false},
	} {
		if c.set != nil {
			mustApply(t, db, c.set)
		}
		days, ok, err := db.RetentionFor(c.tenant, c.group)
		if err != nil || days != c.days || ok != c.ok {
			t.Fatalf("after %+v: %s/%s → %d %v %v, want %d %v", c.set, c.tenant, c.group, days, ok, err, c.days, c.ok)
		}
	}
	ps, err := db.RetentionPolicies()
	if err != nil || len(ps) != 1 || ps[0] != (RetentionPolicy{Tenant: "t1", Days: 90}) {
		t.Fatalf("policies %+v %v", ps, err)
	}
	// A recording created now gets its date from the policy; one that
	// brings its own keeps it.
	r := newRec(t, jan)
	r.Tenant, r.Group = "t1", "g1"
	mustApply(t, db, &CreateRecording{Recording: r})
	own := newRec(t, jan)
	own.Tenant, own.DeleteAfter = "t1", jan.AddDate(5, 0, 0)
	mustApply(t, db, &CreateRecording{Recording: own})
	for id, want := range map[string]time.Time{r.ID: jan.AddDate(0, 0, 90), own.ID: jan.AddDate(5, 0, 0)} {
		got, _ := db.Recording(id)
		if !got.DeleteAfter.Equal(want) {
			t.Errorf("%s: delete after %v, want %v", id, got.DeleteAfter, want)
		}
	}
	// Still being written: not due, whatever the date.
	if due, err := db.Due(jan.AddDate(10, 0, 0), 10); err != nil || len(due) != 0 {
		t.Fatalf("recordings being written are due: %v %v", due, err)
	}
	mustApply(t, db, &UpdateRecording{ID: r.ID, Status: StatusComplete, SealHash: strings.Repeat("ab", 32)})
	if due, _ := db.Due(jan.AddDate(0, 0, 89), 10); len(due) != 0 {
		t.Fatalf("due a day early: %v", due)
	}
	if due, _ := db.Due(jan.AddDate(0, 0, 90), 10); len(due) != 1 || due[0].ID != r.ID {
		t.Fatalf("not due on the day: %v", due)
	}
}

// TestExpiryIndexBuiltForOldDatabases: a database from before the expiry
// index gets it built when opened.
func TestExpiryIndexBuiltForOldDatabases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r := newRec(t, jan)
	r.Status, r.DeleteAfter = StatusComplete, jan.AddDate(0, 0, 1)
	mustApply(t, db, &CreateRecording{Recording: r})
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bExpiry) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	if due, err := db.Due(jan.AddDate(0, 0, 2), 10); err != nil || len(due) != 1 {
		t.Fatalf("due after rebuild: %v %v", due, err)
	}
}
