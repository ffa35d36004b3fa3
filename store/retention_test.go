package store

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// TestRetentionPurge: a recording's delete-after date comes from the most
// specific policy when it is created; the purge deletes exactly the
// recordings that are due (crypto-shredded, file removed, audited) and
// keeps held ones, until their hold is released.
func TestRetentionPurge(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s := openStore(t, t.TempDir(), func(c *Config) { c.Now = func() time.Time { return now } })
	ctx := context.Background()
	must := func(cmd meta.Command) {
		t.Helper()
		if _, err := s.Apply(ctx, cmd); err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
	}
	must(&meta.CreateTenant{Tenant: meta.Tenant{ID: "t1", Name: "T1"}})
	must(&meta.CreateGroup{Group: meta.Group{ID: "g1", Tenant: "t1", Name: "Sales"}})
	must(&meta.CreateGroup{Group: meta.Group{ID: "g2", Tenant: "t1", Name: "Support"}})
	must(&meta.SetRetention{Days: 3650})                         // the installation: 10 years
	must(&meta.SetRetention{Tenant: "t1", Days: 90})             // the tenant: 90 days
	must(&meta.SetRetention{Tenant: "t1", Group: "g2", Days: 7}) // one group: a week

	type made struct {
		id   string
		path string
	}
	record := func(group string, start time.Time) made {
		t.Helper()
		rec := newRecording(start, meta.FormatWAV)
		rec.Group = group
		r, err := s.Create(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		r.Write(signal(1000))
		if _, err := r.Close(ctx, Final{}); err != nil {
			t.Fatal(err)
		}
		return made{r.ID(), r.path}
	}
	old := now.AddDate(0, -4, 0) // 4 months ago
	recent := now.AddDate(0, 0, -10)
	g1Old, g1Recent := record("g1", old), record("g1", recent)
	g2Recent := record("g2", recent)
	held, heldUntil := record("g1", old), record("g1", old)
	must(&meta.Preserve{ID: held.id, By: "auditor", At: now})
	must(&meta.Preserve{ID: heldUntil.id, By: "auditor", At: now, Until: now.AddDate(0, 0, 30)})

	for _, c := range []struct {
		m    made
		want time.Time
	}{{g1Old, old.AddDate(0, 0, 90)}, {g1Recent, recent.AddDate(0, 0, 90)}, {g2Recent, recent.AddDate(0, 0, 7)}} {
		r, _ := s.Meta().Recording(c.m.id)
		if !r.DeleteAfter.Equal(c.want.UTC().Truncate(time.Millisecond)) {
			t.Errorf("%s: delete after %v, want %v", c.m.id, r.DeleteAfter, c.want)
		}
	}

	n, err := s.Purge(ctx, now, 0)
	if err != nil || n != 2 {
		t.Fatalf("purge: %d %v, want 2 (the old g1 call and the recent g2 call)", n, err)
	}
	gone := func(m made) bool {
		r, err := s.Meta().Recording(m.id)
		_, statErr := os.Stat(m.path)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == meta.StatusDeleted {
			if r.File.WrappedDEK != nil || !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("%s deleted but key or file left", m.id)
			}
			return true
		}
		return false
	}
	for _, c := range []struct {
		m    made
		gone bool
	}{{g1Old, true}, {g2Recent, true}, {g1Recent, false}, {held, false}, {heldUntil, false}} {
		if gone(c.m) != c.gone {
			t.Errorf("%s: deleted %v, want %v", c.m.id, !c.gone, c.gone)
		}
	}
	page, err := s.Meta().SearchAudit(meta.AuditQuery{Action: meta.AuditPurge})
	if err != nil || len(page.Entries) != 2 || page.Entries[0].Actor != purgeActor {
		t.Fatalf("audit of the purge: %+v %v", page.Entries, err)
	}

	// A month and a half later the limited hold has ended: it goes too.
	later := now.AddDate(0, 1, 15)
	now = later // the store's clock: the deletion is checked against the hold at this time
	if n, err := s.Purge(ctx, later, 0); err != nil || n != 1 || !gone(heldUntil) {
		t.Fatalf("after the hold ended: %d %v", n, err)
	}
	// The indefinite hold stays until released.
	if gone(held) {
		t.Fatal("indefinitely held recording deleted")
	}
	must(&meta.RequestRelease{ID: held.id, By: "admin1", At: later})
	must(&meta.Release{ID: held.id, By: "admin2", At: later})
	if n, err := s.Purge(ctx, later, 0); err != nil || n != 1 || !gone(held) {
		t.Fatalf("after release: %d %v", n, err)
	}
	if s.Stats().Purged.Load() != 4 {
		t.Errorf("purged count %d", s.Stats().Purged.Load())
	}
}

// TestPurgeLoop: with a purge interval the store deletes due recordings by
// itself, and Close stops the loop.
func TestPurgeLoop(t *testing.T) {
	s := openStore(t, t.TempDir(), func(c *Config) { c.PurgeInterval = 20 * time.Millisecond })
	ctx := context.Background()
	if _, err := s.Apply(ctx, &meta.SetRetention{Days: 1}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Create(ctx, newRecording(time.Now().AddDate(0, 0, -2), meta.FormatWAV))
	if err != nil {
		t.Fatal(err)
	}
	r.Write(signal(100))
	if _, err := r.Close(ctx, Final{}); err != nil {
		t.Fatal(err)
	}
	// Wait for the deletion's audit entry, the purge's last write: the
	// cleanup's consistency check must not race a write transaction.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if p, _ := s.Meta().SearchAudit(meta.AuditQuery{Action: meta.AuditPurge}); len(p.Entries) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rec, _ := s.Meta().Recording(r.ID()); rec.Status != meta.StatusDeleted {
		t.Fatalf("purge loop did not delete the due recording: %s", rec.Status)
	}
}
