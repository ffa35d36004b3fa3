package webui

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callvault/callvault/store/meta"
)

// TestStorageTiers: GET /api/v1/storage lists each tier the appliance
// wired with its file system's usage, a tier whose directory is missing
// (an unmounted archive) with its error instead of sizes, and a count
// only where the wiring has one.
func TestStorageTiers(t *testing.T) {
	hot := t.TempDir()
	missing := filepath.Join(t.TempDir(), "nas-not-mounted")
	counted := t.TempDir()
	e := newEnv(t, func(_ *Config, d *Data) {
		d.Storage = TierPaths{
			{Name: "hot", Path: hot},
			{Name: "archive", Path: missing},
			{Name: "counted", Path: counted, Count: func() (int64, error) { return 42, nil }},
			{Name: "broken-count", Path: counted, Count: func() (int64, error) { return 0, errors.New("no count") }},
		}
	})
	e.addUser("admin", meta.RoleAdmin)
	r := e.page(e.signIn("admin"), "/api/v1/storage")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	var tiers []storageTierJSON
	r.json(t, &tiers)
	if len(tiers) != 4 {
		t.Fatalf("%d tiers: %s", len(tiers), r.body)
	}
	h := tiers[0]
	if h.Name != "hot" || h.Path != hot || h.Error != "" || h.BytesTotal == 0 || h.BytesUsed > h.BytesTotal || h.BytesFree > h.BytesTotal || h.Recordings != nil {
		t.Errorf("hot tier: %+v", h)
	}
	a := tiers[1]
	if a.Name != "archive" || !strings.Contains(a.Error, "no such file") || a.BytesTotal != 0 || a.BytesUsed != 0 {
		t.Errorf("unmounted archive: %+v", a)
	}
	if c := tiers[2]; c.Recordings == nil || *c.Recordings != 42 {
		t.Errorf("counted tier: %+v", c)
	}
	if c := tiers[3]; c.Recordings != nil || c.Error != "" {
		t.Errorf("a failed count is left out, the usage kept: %+v", c)
	}
	// A file where a directory belongs is an error, not a usage figure of
	// whatever file system the file lies on.
	file := filepath.Join(hot, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := storageOf(TierPaths{{Name: "hot", Path: file}}); got[0].Error == "" || got[0].BytesTotal != 0 {
		t.Errorf("file as tier: %+v", got[0])
	}
}

// TestStorageUnwired: without Data.Storage the route lists no tiers (the
// page says the appliance did not name them), rather than failing.
func TestStorageUnwired(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	r := e.page(e.signIn("admin"), "/api/v1/storage")
	if r.code != 200 || strings.TrimSpace(string(r.body)) != "[]" {
		t.Fatalf("%d %s", r.code, r.body)
	}
}
