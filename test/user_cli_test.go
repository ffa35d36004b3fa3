package test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUserCommands drives `callvault user` as an admin at the console
// would: accounts made with the server stopped sign in once it runs; while
// it runs the command is refused naming the server's process; a disabled
// account cannot sign in; passwords come from the environment, standard
// input or are made and printed once.
func TestUserCommands(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dd := []string{"--data-dir", data}

	// The first server start makes the admin; stop it to use the console.
	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=first-admin-password"}, dd...)
	if _, err := s.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	out, stderr, code := runCLI(t, dir, []string{"CALLVAULT_NEW_PASSWORD=alice-password-1"}, append([]string{"user", "add", "alice", "--role", "supervisor", "--name", "Alice A."}, dd...)...)
	if code != 0 || !strings.Contains(out, `created supervisor "alice"`) || strings.Contains(out, "password:") {
		t.Fatalf("user add (password from the environment): %d\n%s%s", code, out, stderr)
	}
	out, _, code = runCLI(t, dir, nil, append([]string{"user", "add", "bob", "--role", "auditor"}, dd...)...)
	bobPassword := firstMatch(strings.NewReader(out), passwordLine)
	if code != 0 || len(bobPassword) < 16 {
		t.Fatalf("user add with a made password: %d\n%s", code, out)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "add", "alice", "--role", "user"}, `"alice" already exists`},
		{[]string{"user", "add", "carol", "--role", "boss"}, `unknown role "boss"`},
		{[]string{"user", "add", "carol", "--group", "nosuch"}, `group "nosuch" does not exist`},
		{[]string{"user", "add", "carol", "--allow", "play,fly"}, `unknown permission "fly"`},
		{[]string{"user", "passwd", "nobody"}, `no user "nobody"`},
		{[]string{"user", "disable", "admin"}, "last enabled admin"},
	} {
		_, stderr, code := runCLI(t, dir, []string{"CALLVAULT_NEW_PASSWORD=long-enough-password"}, append(bad.args, dd...)...)
		if code == 0 || !strings.Contains(stderr, bad.want) {
			t.Errorf("%v: exit %d, want an error with %q:\n%s", bad.args, code, bad.want, stderr)
		}
	}
	_, stderr, code = runCLI(t, dir, []string{"CALLVAULT_NEW_PASSWORD=short"}, append([]string{"user", "add", "dave"}, dd...)...)
	if code == 0 || !strings.Contains(stderr, "too short") {
		t.Errorf("short password accepted: %d %s", code, stderr)
	}

	// passwd from standard input.
	cmd := exec.Command(binary, append([]string{"user", "passwd", "bob", "--password-stdin"}, dd...)...)
	cmd.Dir, cmd.Env = dir, cleanEnv()
	cmd.Stdin = strings.NewReader("bob-new-password\n")
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), `password of "bob" changed`) {
		t.Fatalf("passwd --password-stdin: %v\n%s", err, b)
	}

	out, _, code = runCLI(t, dir, nil, append([]string{"user", "list", "--json"}, dd...)...)
	var users []map[string]any
	if err := json.Unmarshal([]byte(out), &users); err != nil || code != 0 {
		t.Fatalf("user list --json: %v\n%s", err, out)
	}
	roles := map[string]any{}
	for _, u := range users {
		roles[u["username"].(string)] = u["role"]
		if _, leaked := u["passwordHash"]; leaked {
			t.Errorf("user list --json shows password hashes: %v", u)
		}
	}
	if roles["admin"] != "admin" || roles["alice"] != "supervisor" || roles["bob"] != "auditor" || len(users) != 3 {
		t.Errorf("user list: %v", roles)
	}
	out, _, _ = runCLI(t, dir, nil, append([]string{"user", "list"}, dd...)...)
	if !strings.Contains(out, "USERNAME") || !strings.Contains(out, "play,download,preserve,notes") {
		t.Errorf("user list table:\n%s", out)
	}

	s = startServer(t, dir, nil, dd...)
	base := "http://" + s.addr
	signIn(t, base, "alice", "alice-password-1")
	signIn(t, base, "bob", "bob-new-password")
	_, stderr, code = runCLI(t, dir, nil, append([]string{"user", "disable", "bob"}, dd...)...)
	if code == 0 || !strings.Contains(stderr, "in use") || !strings.Contains(stderr, "--server") {
		t.Errorf("user disable while the server runs: exit %d\n%s", code, stderr)
	}

	// The same through the running server's API, as the admin.
	api := []string{"--server", base, "--user", "admin"}
	adminEnv := []string{"CALLVAULT_PASSWORD=first-admin-password"}
	if _, stderr, code := runCLI(t, dir, nil, append([]string{"user", "list"}, api...)...); code == 0 || !strings.Contains(stderr, "CALLVAULT_PASSWORD") {
		t.Errorf("--server without the admin's password: exit %d %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, dir, []string{"CALLVAULT_PASSWORD=wrong-password"}, append([]string{"user", "list"}, api...)...); code == 0 || !strings.Contains(stderr, "401") {
		t.Errorf("--server with a wrong password: exit %d %s", code, stderr)
	}
	out, stderr, code = runCLI(t, dir, append(adminEnv, "CALLVAULT_NEW_PASSWORD=carol-password-1"), append([]string{"user", "add", "carol", "--role", "user"}, api...)...)
	if code != 0 || !strings.Contains(out, `created user "carol"`) {
		t.Fatalf("user add --server: exit %d\n%s%s", code, out, stderr)
	}
	signIn(t, base, "carol", "carol-password-1")
	if _, stderr, code := runCLI(t, dir, append(adminEnv, "CALLVAULT_NEW_PASSWORD=carol-password-2"), append([]string{"user", "passwd", "carol"}, api...)...); code != 0 {
		t.Fatalf("user passwd --server: %s", stderr)
	}
	signIn(t, base, "carol", "carol-password-2")
	if _, stderr, code := runCLI(t, dir, adminEnv, append([]string{"user", "disable", "carol"}, api...)...); code != 0 {
		t.Fatalf("user disable --server: %s", stderr)
	}
	out, _, _ = runCLI(t, dir, adminEnv, append([]string{"user", "list", "--json"}, api...)...)
	if !strings.Contains(out, `"username": "carol"`) || !strings.Contains(out, `"disabled": true`) || strings.Contains(out, "passwordHash") {
		t.Errorf("user list --server:\n%s", out)
	}
	if _, stderr, code := runCLI(t, dir, adminEnv, append([]string{"user", "disable", "admin"}, api...)...); code == 0 {
		t.Errorf("the last admin disabled through the API: %s", stderr)
	}
	if _, err := s.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	if _, stderr, code := runCLI(t, dir, nil, append([]string{"user", "disable", "bob"}, dd...)...); code != 0 {
		t.Fatalf("disable: %s", stderr)
	}
	s = startServer(t, dir, nil, dd...)
	resp, err := http.PostForm("http://"+s.addr+"/login", url.Values{"username": {"bob"}, "password": {"bob-new-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("disabled account signed in: %d", resp.StatusCode)
	}
}
