package test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// storageTier is one row of GET /api/v1/storage.
type storageTier struct {
	Name       string
	Path       string
	BytesUsed  uint64
	BytesTotal uint64
	Error      string
}

func getStorage(t *testing.T, c *uiClient) []storageTier {
	t.Helper()
	code, b := c.do(http.MethodGet, "/api/v1/storage", "", nil)
	var tiers []storageTier
	if code != http.StatusOK || json.Unmarshal(b, &tiers) != nil {
		t.Fatalf("GET /api/v1/storage: %d %s", code, b)
	}
	return tiers
}

// TestStorageTiersOfTheBinary: the real binary fills the admin page's
// storage panel (it was empty before the appliance wired webui.Data.Storage):
// the hot tier is the data directory's recordings folder with its file
// system's usage, and the archive tier appears only when
// storage.archive_dir is configured.
func TestStorageTiersOfTheBinary(t *testing.T) {
	const pw = "storage-admin-password"
	t.Run("hot only", func(t *testing.T) {
		dir := t.TempDir()
		data := filepath.Join(dir, "data")
		s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=" + pw}, "--data-dir", data)
		c := &uiClient{t: t, base: "http://" + s.addr, pass: pw}
		short, err := os.ReadFile(filepath.Join("testdata", "upload", "jfk_8k_pcm16.wav"))
		if err != nil {
			t.Fatal(err)
		}
		c.upload("admin", time.Now().Add(-time.Hour), "PT11S", 1, "+41440000001", "", short)
		tiers := getStorage(t, c)
		if len(tiers) != 1 {
			t.Fatalf("tiers without an archive: %+v, want the hot tier only", tiers)
		}
		h := tiers[0]
		if h.Name != "hot" || h.Path != filepath.Join(data, "recordings") || h.Error != "" {
			t.Fatalf("hot tier %+v, want %s", h, filepath.Join(data, "recordings"))
		}
		if h.BytesUsed == 0 || h.BytesTotal < h.BytesUsed {
			t.Fatalf("hot tier usage %+v: want bytes used > 0 and <= total", h)
		}
	})
	t.Run("with archive", func(t *testing.T) {
		dir := t.TempDir()
		data, archive := filepath.Join(dir, "data"), filepath.Join(dir, "nas")
		if err := os.Mkdir(archive, 0o700); err != nil {
			t.Fatal(err)
		}
		s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=" + pw, "CALLVAULT_STORAGE_ARCHIVE_DIR=" + archive}, "--data-dir", data)
		c := &uiClient{t: t, base: "http://" + s.addr, pass: pw}
		tiers := getStorage(t, c)
		if len(tiers) != 2 || tiers[0].Name != "hot" || tiers[1].Name != "archive" {
			t.Fatalf("tiers %+v, want hot and archive", tiers)
		}
		if a := tiers[1]; a.Path != archive || a.Error != "" || a.BytesTotal == 0 {
			t.Fatalf("archive tier %+v, want %s with its usage", a, archive)
		}
	})
}
