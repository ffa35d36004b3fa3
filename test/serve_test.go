package test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeOnBuiltInDefault runs `callvault serve` with no configuration
// at all, as `make run` does, and checks what the issue promises: data in
// ./callvault-data, HTTP on 127.0.0.1:8080, a first admin whose random
// password is printed once, metrics, health, sign-in, and a clean SIGTERM.
func TestServeOnBuiltInDefault(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.1:8080"); err != nil {
		t.Skipf("127.0.0.1:8080 is taken on this machine (%v); the default-port run cannot be tested here", err)
	} else {
		ln.Close()
	}
	dir := t.TempDir()
	s := startServerAt(t, dir, nil, "127.0.0.1:8080")
	base := "http://127.0.0.1:8080"

	if fi, err := os.Stat(filepath.Join(dir, "callvault-data", "meta.db")); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("data directory not created private in ./callvault-data: %v %v", fi, err)
	}
	if !strings.Contains(s.stderr.String(), "127.0.0.1:8080") {
		t.Errorf("serve does not print where it listens:\n%s", s.stderr)
	}
	password := firstMatch(strings.NewReader(s.stderr.String()), passwordLine)
	if len(password) < 16 {
		t.Fatalf("no random admin password on stderr:\n%s", s.stderr)
	}

	if code, body := get(t, http.DefaultClient, base+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, http.DefaultClient, base+"/readyz"); code != 200 || !strings.Contains(body, "ready") {
		t.Errorf("/readyz: %d %q", code, body)
	}
	code, body := get(t, http.DefaultClient, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, m := range []string{"callvault_go_goroutines", "callvault_process_resident_memory_bytes", "callvault_build_info", "callvault_http_requests_total"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "callvault_") {
			t.Errorf("metric without callvault_ prefix: %s", line)
			break
		}
	}

	signIn(t, base, "admin", password)

	took, err := s.stop(syscall.SIGTERM, 10*time.Second)
	if err != nil {
		t.Fatalf("SIGTERM: %v after %v\n%s", err, took, s.stderr)
	}
	t.Logf("SIGTERM to exit: %v", took)

	// Restart on the same data directory: the password is never printed again.
	s2 := startServerAt(t, dir, nil, "127.0.0.1:8080")
	if passwordLine.MatchString(s2.stderr.String()) {
		t.Errorf("admin password printed again on restart:\n%s", s2.stderr)
	}
	signIn(t, base, "admin", password)
	if _, err := s2.stop(syscall.SIGINT, 10*time.Second); err != nil {
		t.Fatalf("SIGINT: %v", err)
	}
}

func startServerAt(t *testing.T, dir string, env []string, addr string) *server {
	t.Helper()
	return startServerArgs(t, dir, env, addr)
}

// signIn signs in through the real sign-in form, checks the signed-in page,
// that sign-out needs the CSRF token, and signs out.
func signIn(t *testing.T, base, user, password string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if code, body := get(t, c, base+"/"); code != 200 || !strings.Contains(body, `action="/login"`) {
		t.Fatalf("anonymous / did not lead to the sign-in page: %d", code)
	}
	resp, err := c.PostForm(base+"/login", url.Values{"username": {user}, "password": {"wrong password!"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	resp, err = c.PostForm(base+"/login", url.Values{"username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `id="current-user">`+user+`<`) {
		t.Fatalf("sign-in: %d\n%s", resp.StatusCode, body)
	}
	for _, ck := range jar.Cookies(mustURL(base)) {
		if ck.Name == "callvault_session" && len(ck.Value) < 40 {
			t.Errorf("session ID too short: %q", ck.Value)
		}
	}
	resp, err = c.PostForm(base+"/logout", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF token: %d, want 403", resp.StatusCode)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(body))
	if csrf == nil {
		t.Fatal("no CSRF token on the page")
	}
	resp, err = c.PostForm(base+"/logout", url.Values{"csrf": {csrf[1]}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `action="/login"`) {
		t.Fatalf("sign-out did not end at the sign-in page: %d", resp.StatusCode)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestAdminPasswordFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=a-long-admin-secret"}, "--data-dir", filepath.Join(dir, "d"))
	if strings.Contains(s.stderr.String(), "a-long-admin-secret") {
		t.Fatal("the admin password from the environment was printed")
	}
	signIn(t, "http://"+s.addr, "admin", "a-long-admin-secret")
	if _, err := s.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigFailsNamingTheKey(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("http:\n  listen: 127.0.0.1:8080\n  tls_cert: /x\nstorage:\n  flush_interval: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, stderr, code := runCLI(t, dir, nil, "serve", "--config", bad)
	if code == 0 {
		t.Fatal("serve accepted a bad config")
	}
	if !strings.Contains(stderr, `"http.tls_cert"`) {
		t.Errorf("error does not name the unknown key:\n%s", stderr)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v to reject the config", time.Since(start))
	}
	if _, err := os.Stat(filepath.Join(dir, "callvault-data")); err == nil {
		t.Error("a rejected config still created the data directory")
	}

	if err := os.WriteFile(bad, []byte("storage:\n  flush_interval: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runCLI(t, dir, nil, "serve", "--config", bad)
	if code == 0 || !strings.Contains(stderr, "storage.flush_interval") {
		t.Errorf("impossible value: code %d\n%s", code, stderr)
	}
}

// TestSecondSignalExitsAtOnce holds a request half-sent, so the orderly
// shutdown waits for it; a second SIGTERM must end the process at once.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=a-long-admin-secret"}, "--data-dir", filepath.Join(dir, "d"))
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // headers never finished
	time.Sleep(200 * time.Millisecond)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-s.done:
		t.Fatalf("exited before the second signal (%v); the test needs a shutdown that waits", err)
	default:
	}
	took, err := s.stop(syscall.SIGTERM, 2*time.Second)
	if err == nil {
		t.Fatal("second signal: exit status 0, want a non-zero immediate exit")
	}
	if took > time.Second {
		t.Fatalf("second signal took %v to exit", took)
	}
	if !strings.Contains(s.stderr.String(), "exiting now") {
		t.Errorf("no word on the second signal:\n%s", s.stderr)
	}
}

// TestShutdownWithinTimeout: even with a client that never finishes its
// request, SIGTERM ends the process with status 0 inside 10 seconds.
func TestShutdownWithinTimeout(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=a-long-admin-secret"}, "--data-dir", filepath.Join(dir, "d"))
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	took, err := s.stop(syscall.SIGTERM, 11*time.Second)
	if err != nil || took > 10*time.Second {
		t.Fatalf("SIGTERM with a stuck client: %v after %v\n%s", err, took, s.stderr)
	}
	t.Logf("SIGTERM with a stuck client to exit: %v", took)
}

func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d")
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=a-long-admin-secret"}, "--data-dir", data)
	start := time.Now()
	_, stderr, code := runCLI(t, dir, nil, "serve", "--data-dir", data, "--http", freeAddr(t))
	if code == 0 {
		t.Fatal("a second serve opened a data directory in use")
	}
	want := fmt.Sprintf("process %d (%s serve", s.cmd.Process.Pid, filepath.Base(binary))
	if !strings.Contains(stderr, want) {
		t.Errorf("error does not name the holder (%s):\n%s", want, stderr)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v: want an error at once, not a wait", took)
	}
	if _, err := s.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}
