package test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// uiNeeds skips, saying why, unless node, Debian's Chromium and the
// playwright-core package of test/ui are there (.ci/run installs them).
func uiNeeds(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("browser tests need Node.js (Debian package nodejs; .ci/run installs it): %v", err)
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser tests need Debian's Chromium (package chromium; .ci/run installs it): %v", err)
	}
	if _, err := os.Stat(filepath.Join("ui", "node_modules", "playwright-core")); err != nil {
		t.Skipf("browser tests need playwright-core: run 'npm ci --prefix test/ui' (.ci/run does): %v", err)
	}
	return node
}

// runUI runs a page test script of test/ui against a server and returns its
// JSON report; a failed check fails the test with the script's message.
func runUI(t *testing.T, script string, env ...string) map[string]any {
	t.Helper()
	node := uiNeeds(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = "ui"
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	var rep map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(lastLine(out.Bytes())), &rep); err != nil {
		t.Fatalf("%s: no report (%v, %v)\nstdout:\n%s\nstderr:\n%s", script, runErr, err, out.String(), errOut.String())
	}
	if rep["ok"] != true || runErr != nil {
		t.Fatalf("%s: %v\n%s", script, rep["error"], errOut.String())
	}
	return rep
}

func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// TestUISignIn signs in and out through the real page in Chromium.
func TestUISignIn(t *testing.T) {
	uiNeeds(t)
	dir := t.TempDir()
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=ui-admin-password"}, "--data-dir", filepath.Join(dir, "data"))
	rep := runUI(t, "login.mjs", "BASE=http://"+s.addr, "USER_NAME=admin", "PASSWORD=ui-admin-password")
	if rep["user"] != "admin" {
		t.Fatalf("report %v", rep)
	}
}
