package test

import (
	"encoding/json"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestUserAddMadePasswordMustChange: `callvault user add` without a given
// password makes one up and prints it, so the account must change it at
// the first sign-in; a password given in CALLVAULT_NEW_PASSWORD was chosen
// and is kept as it is.
func TestUserAddMadePasswordMustChange(t *testing.T) {
	dir := t.TempDir()
	dd := []string{"--data-dir", filepath.Join(dir, "data")}
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=first-admin-password"}, dd...)
	if _, err := s.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI(t, dir, nil, append([]string{"user", "add", "made"}, dd...)...); code != 0 {
		t.Fatalf("user add made: %d %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, dir, []string{"CALLVAULT_NEW_PASSWORD=a-chosen-password"}, append([]string{"user", "add", "chosen"}, dd...)...); code != 0 {
		t.Fatalf("user add chosen: %d %s", code, stderr)
	}
	out, stderr, code := runCLI(t, dir, nil, append([]string{"user", "list", "--json"}, dd...)...)
	var users []struct {
		Username           string
		MustChangePassword *bool
	}
	if err := json.Unmarshal([]byte(out), &users); err != nil || code != 0 {
		t.Fatalf("user list --json: %v %d\n%s%s", err, code, out, stderr)
	}
	want := map[string]bool{"admin": false, "made": true, "chosen": false}
	for _, u := range users {
		if u.MustChangePassword == nil || *u.MustChangePassword != want[u.Username] {
			t.Errorf("%s: mustChangePassword %v, want %v", u.Username, u.MustChangePassword, want[u.Username])
		}
	}
	if len(users) != 3 {
		t.Fatalf("users %+v", users)
	}
}
