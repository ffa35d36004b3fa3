package test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExportThroughServer: `callvault export --server` asks a running
// appliance for an export job as an auditor, shows its progress, and
// downloads a bundle that `callvault verify bundle` accepts and that holds
// exactly the preserved recordings; the job is gone afterwards. Then,
// with the server stopped, `export --query` selects with the API's search
// syntax on the data directory; a bad query is refused with the parser's
// message.
func TestExportThroughServer(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	const pass = "export e2e admin password"
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=" + pass}, "--data-dir", data)
	admin := e2eAPI{t: t, base: "http://" + s.addr, user: "admin", pass: pass}
	admin.json(http.MethodPost, "/api/v1/users", map[string]any{"username": "auditor", "password": "an auditor's long password", "role": "auditor"}, http.StatusCreated, nil)
	now := time.Now()
	var ids []string
	for i := range 3 {
		ids = append(ids, admin.upload(now.Add(-time.Duration(i+1)*time.Minute), i))
	}
	for _, id := range ids[:2] {
		admin.json(http.MethodPost, "/api/v1/recordings/"+id+"/preserve", nil, http.StatusOK, nil)
	}

	out := filepath.Join(dir, "case.zip")
	env := []string{"CALLVAULT_PASSWORD=an auditor's long password"}
	stdout, stderr, code := runCLI(t, dir, env, "export", "--server", "http://"+s.addr, "--user", "auditor", "--preserved", "--out", out)
	if code != 0 {
		t.Fatalf("export --server: exit %d\n%s%s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`export job \S+: 2 recordings queued`).MatchString(stderr) {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
	fp := regexp.MustCompile(`fingerprint ([0-9a-f]{64})`).FindStringSubmatch(stdout)
	if fp == nil {
		t.Fatalf("no fingerprint printed:\n%s", stdout)
	}
	vout, verr, code := runCLI(t, dir, nil, "verify", "bundle", out, "--fingerprint", fp[1])
	if code != 0 || !strings.Contains(vout, "bundle "+out+": 2 recordings") {
		t.Fatalf("verify bundle: exit %d\n%s%s", code, vout, verr)
	}
	raw, _ := os.ReadFile(out)
	names := strings.Join(unzipTo(t, raw, filepath.Join(dir, "unpacked")), "\n")
	if strings.Count(names, "/audio-captured.wav") != 2 {
		t.Errorf("bundle files:\n%s", names)
	}
	// The console removes the job once it has the bundle.
	aud := e2eAPI{t: t, base: admin.base, user: "auditor", pass: "an auditor's long password"}
	var jobs []map[string]any
	aud.json(http.MethodGet, "/api/v1/exports", nil, http.StatusOK, &jobs)
	if len(jobs) != 0 {
		t.Errorf("jobs left on the server: %v", jobs)
	}
	// The job is counted in the metrics.
	resp, err := http.Get(admin.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"callvault_export_jobs_done_total 1\n", "callvault_export_jobs_running 0\n", "callvault_export_bytes_total "} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// A wrong password is the server's answer, not a hang.
	if _, stderr, code := runCLI(t, dir, []string{"CALLVAULT_PASSWORD=wrong"}, "export", "--server", "http://"+s.addr, "--user", "auditor", "--preserved", "--out", out+"2"); code == 0 || !strings.Contains(stderr, "401") {
		t.Errorf("wrong password: exit %d\n%s", code, stderr)
	}
	if _, err := s.stop(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	// Offline, by search: the call with remote number ...2 (not preserved).
	q := filepath.Join(dir, "q.zip")
	stdout, stderr, code = runCLI(t, dir, nil, "export", "--data-dir", data, "--out", q, "--query", "remoteNumber=%2B41440000002")
	if code != 0 || !strings.Contains(stdout, "1 recordings") {
		t.Fatalf("export --query: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, _, code := runCLI(t, dir, nil, "verify", "bundle", q, "--fingerprint", fp[1]); code != 0 {
		t.Fatalf("the --query bundle does not verify")
	}
	if _, stderr, code := runCLI(t, dir, nil, "export", "--data-dir", data, "--out", q, "--query", "color=blue"); code == 0 || !strings.Contains(stderr, "color") {
		t.Errorf("a bad query: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := runCLI(t, dir, nil, "export", "--data-dir", data, "--out", q, "--query", "remoteNumber=%2B999"); code == 0 || !strings.Contains(stderr, "no recordings match") {
		t.Errorf("a query that finds nothing: exit %d\n%s", code, stderr)
	}
}
