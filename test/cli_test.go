package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	out, _, code := runCLI(t, t.TempDir(), nil, "version")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{"callvault ", "commit ", "built ", "go "} {
		if !strings.Contains(out, w) {
			t.Errorf("version output lacks %q:\n%s", w, out)
		}
	}
	out, _, _ = runCLI(t, t.TempDir(), nil, "version", "--json")
	var b struct{ Version, Commit, Date, Go string }
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("version --json: %v\n%s", err, out)
	}
	if b.Version == "" || b.Commit == "" || b.Date == "" || !strings.HasPrefix(b.Go, "go") {
		t.Errorf("version --json incomplete: %+v", b)
	}
}

// TestHelpHasExamples checks that every command's --help says what it does
// and shows an example.
func TestHelpHasExamples(t *testing.T) {
	for _, cmd := range [][]string{{}, {"serve"}, {"version"}, {"config"}, {"config", "print"}, {"keys"}, {"keys", "rotate"}} {
		out, _, code := runCLI(t, t.TempDir(), nil, append(cmd, "--help")...)
		name := strings.Join(append([]string{"callvault"}, cmd...), " ")
		if code != 0 {
			t.Errorf("%s --help: exit %d", name, code)
		}
		if !strings.Contains(out, "Examples:") {
			t.Errorf("%s --help has no example:\n%s", name, out)
		}
		if !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help has no usage:\n%s", name, out)
		}
	}
}

func TestConfigPrint(t *testing.T) {
	env := []string{"CALLVAULT_KEYS_PASSPHRASE=hunter2hunter2", "CALLVAULT_HTTP_LISTEN=0.0.0.0:9443"}
	out, stderr, code := runCLI(t, t.TempDir(), env, "config", "print", "--data-dir", "/srv/cv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(out, "hunter2") {
		t.Fatalf("config print shows a secret:\n%s", out)
	}
	for _, w := range []string{"data_dir: /srv/cv", "listen: 0.0.0.0:9443", "passphrase: '********'", "flush_interval: 1s"} {
		if !strings.Contains(out, w) {
			t.Errorf("config print lacks %q:\n%s", w, out)
		}
	}
}

// TestMasterKeyAndRotation: a first start creates the master key file
// beside the data directory and says so; `keys rotate` refuses a data
// directory in use, and with the server stopped adds a key term.
func TestMasterKeyAndRotation(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d")
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=a-long-admin-secret"}, "--data-dir", data)
	if !strings.Contains(s.stderr.String(), "Created the master key file "+data+".key") {
		t.Errorf("serve did not announce the new master key file:\n%s", s.stderr)
	}
	if fi, err := os.Stat(data + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v %v", fi, err)
	}
	_, stderr, code := runCLI(t, dir, nil, "keys", "rotate", "--data-dir", data)
	if code == 0 || !strings.Contains(stderr, fmt.Sprintf("process %d (%s serve", s.cmd.Process.Pid, filepath.Base(binary))) {
		t.Errorf("keys rotate on a data directory in use: exit %d\n%s", code, stderr)
	}
	if _, err := s.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for term := 2; term <= 3; term++ {
		out, stderr, code := runCLI(t, dir, nil, "keys", "rotate", "--data-dir", data)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("active key term %d", term)) {
			t.Fatalf("keys rotate: exit %d\n%s%s", code, out, stderr)
		}
	}
	// Without the key file the data directory does not open.
	if err := os.Rename(data+".key", filepath.Join(dir, "elsewhere.key")); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runCLI(t, dir, []string{"CALLVAULT_MASTER_KEY=" + strings.Repeat("ab", 32)}, "keys", "rotate", "--data-dir", data)
	if code == 0 || !strings.Contains(stderr, "master key") {
		t.Errorf("wrong master key: exit %d\n%s", code, stderr)
	}
}
