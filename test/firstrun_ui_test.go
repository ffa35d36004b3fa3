package test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUIFirstRunAdminMustChangePassword: the first admin, created with a
// generated password (no CALLVAULT_ADMIN_PASSWORD), signs in in Chromium,
// is forced onto the account page until choosing a new password, and then
// reaches the recordings page; the generated password stops working.
func TestUIFirstRunAdminMustChangePassword(t *testing.T) {
	uiNeeds(t)
	dir := t.TempDir()
	s := startServer(t, dir, nil, "--data-dir", filepath.Join(dir, "data"))
	var generated string
	for deadline := time.Now().Add(5 * time.Second); generated == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		generated = firstMatch(strings.NewReader(s.stderr.String()), passwordLine)
	}
	if generated == "" {
		t.Fatalf("no generated admin password printed:\n%s", s.stderr)
	}
	rep := runUI(t, "firstrun.mjs", "BASE=http://"+s.addr, "GENERATED="+generated, "NEW_PASSWORD=the admin's own passphrase")
	t.Logf("after the change the admin landed on %v; the page said %q", rep["landed"], rep["reason"])
}
