package test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVerifyAudit: what the running appliance audits forms a chain that
// `callvault verify audit` finds whole (exit 0) after a stop, and an entry
// edited in the database file afterwards is named (exit 1).
func TestVerifyAudit(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=audit-admin-password"}, "--data-dir", data)
	for _, label := range []string{"first", "second", "third"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+"/api/v1/tokens", strings.NewReader(`{"label":"`+label+` token"}`))
		req.SetBasicAuth("admin", "audit-admin-password")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create token: %d", resp.StatusCode)
		}
	}
	if _, err := s.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	out, stderr, code := runCLI(t, dir, nil, "verify", "audit", "--data-dir", data)
	if code != 0 || !strings.Contains(out, "audit chain holds") || !strings.Contains(out, "signing key fingerprint") {
		t.Fatalf("verify audit on an untouched log: exit %d\n%s%s", code, out, stderr)
	}
	if strings.Contains(out, " 0 entries") || strings.Contains(out, " 0 signed checkpoints") {
		t.Fatalf("nothing was audited or signed:\n%s", out)
	}

	// Edit one entry in place (bbolt pages carry no checksum): the token
	// label of the second entry, same length, so the file stays readable.
	// Every copy: freed pages may still hold older ones.
	db := filepath.Join(data, "meta.db")
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("second token")) {
		t.Fatal("audit entry not found in meta.db")
	}
	raw = bytes.ReplaceAll(raw, []byte("second token"), []byte("forged token"))
	if err := os.WriteFile(db, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = runCLI(t, dir, nil, "verify", "audit", "--data-dir", data)
	if code != 1 || !strings.Contains(stderr, "audit chain broken at entry") {
		t.Fatalf("verify audit after an edit: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("%s", strings.TrimSpace(stderr))
}
