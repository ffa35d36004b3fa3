package test

import (
	"encoding/json"
	"strings"
	"testing"
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
	for _, cmd := range [][]string{{}, {"serve"}, {"version"}, {"config", "print"}} {
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
