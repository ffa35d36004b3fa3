package meta

import (
	"path/filepath"
	"strconv"
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

// TestRecomputeRetention: a changed policy reaches existing recordings on
// request, batch by batch: shorter and longer dates follow the policy,
// other tenants and groups are left alone, and a preserved recording's
// date never moves earlier (nor does an indefinite hold get one).
func TestRecomputeRetention(t *testing.T) {
	db := mustOpen(t)
	mustApply(t, db, &CreateTenant{Tenant: Tenant{ID: "t1", Name: "T1"}})
	mustApply(t, db, &CreateGroup{Group: Group{ID: "g1", Tenant: "t1", Name: "G1"}})
	mustApply(t, db, &SetRetention{Tenant: "t1", Days: 365})
	var ids []string
	create := func(tenant, group string) string {
		r := newRec(t, jan)
		r.Tenant, r.Group = tenant, group
		mustApply(t, db, &CreateRecording{Recording: r})
		ids = append(ids, r.ID)
		return r.ID
	}
	var plain []string
	for range 7 {
		plain = append(plain, create("t1", ""))
	}
	inGroup := create("t1", "g1")
	other := create("", "") // the installation's tenant: no policy, kept
	held := create("t1", "")
	mustApply(t, db, &Preserve{ID: held, By: "a", At: jan, Until: jan.AddDate(2, 0, 0)})
	forever := create("t1", "")
	mustApply(t, db, &Preserve{ID: forever, By: "a", At: jan})
	before, _ := db.Recording(forever)

	// Shorter: 30 days for the tenant, 10 for the group.
	mustApply(t, db, &SetRetention{Tenant: "t1", Days: 30})
	mustApply(t, db, &SetRetention{Tenant: "t1", Group: "g1", Days: 10})
	recompute := func(tenant, group string) int {
		t.Helper()
		changed, after, batches := 0, "", 0
		for {
			res := mustApply(t, db, &RecomputeRetention{Tenant: tenant, Group: group, After: after, Limit: 3})
			n, err := strconv.Atoi(res.Reference)
			if err != nil {
				t.Fatal(err)
			}
			changed += n
			batches++
			if after = res.ID; after == "" {
				break
			}
			if batches > 100 {
				t.Fatal("recompute does not end")
			}
		}
		if want := (len(ids) + 2) / 3; batches < want {
			t.Fatalf("%d batches of 3 for %d recordings", batches, len(ids))
		}
		return changed
	}
	if n := recompute("t1", ""); n != len(plain)+1 {
		t.Fatalf("changed %d, want %d (the plain ones and the group's)", n, len(plain)+1)
	}
	want := map[string]time.Time{inGroup: jan.AddDate(0, 0, 10), other: {}, held: jan.AddDate(2, 0, 0), forever: before.DeleteAfter}
	for _, id := range plain {
		want[id] = jan.AddDate(0, 0, 30)
	}
	for id, w := range want {
		got, _ := db.Recording(id)
		if !got.DeleteAfter.Equal(w) {
			t.Errorf("%s: delete after %v, want %v", id, got.DeleteAfter, w)
		}
	}
	// Longer than the holds: both held ones follow (later is allowed);
	// nothing changes twice.
	mustApply(t, db, &SetRetention{Tenant: "t1", Days: 3650})
	if n := recompute("t1", ""); n != len(plain)+2 {
		t.Fatalf("changed %d, want %d", n, len(plain)+2)
	}
	for _, id := range []string{held, forever} {
		if got, _ := db.Recording(id); !got.DeleteAfter.Equal(jan.AddDate(0, 0, 3650)) {
			t.Errorf("held %s: %v", id, got.DeleteAfter)
		}
	}
	if got, _ := db.Recording(inGroup); !got.DeleteAfter.Equal(jan.AddDate(0, 0, 10)) {
		t.Errorf("the group's own policy was overridden: %v", got.DeleteAfter)
	}
	if n := recompute("t1", ""); n != 0 {
		t.Fatalf("a second recompute changed %d", n)
	}
	if n := recompute("t1", "g1"); n != 0 {
		t.Fatalf("the group's recompute changed %d", n)
	}
	wantErr(t, db, &RecomputeRetention{Tenant: "t1", Limit: 0}, ErrInvalid)
	wantErr(t, db, &RecomputeRetention{Tenant: "t1", Limit: 1, After: "nope"}, ErrInvalid)
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}
