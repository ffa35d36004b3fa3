package test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUIClusterAdmin (issue 8): the admin page's cluster section against
// the real binary started as a single-node cluster (--cluster-addr on a
// free loopback port). In Chromium the admin sees the node as leader and
// voter, watches the status refresh by itself, creates a join token with
// the keyboard and gets the command line for a new node (screenshots in
// English and Arabic). The test then runs that very command line: the new
// node joins, and the page shows two members and removes the follower.
func TestUIClusterAdmin(t *testing.T) {
	uiNeeds(t)
	const adminPW = "ui-cluster-admin-password"
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	// Both nodes need the same master key (the keyring is replicated).
	env := []string{"CALLVAULT_ADMIN_PASSWORD=" + adminPW, "CALLVAULT_MASTER_KEY=" + hex.EncodeToString(key)}
	dir := t.TempDir()
	s := startServer(t, dir, env, "--data-dir", filepath.Join(dir, "data"), "--cluster-addr", freeAddr(t))
	c := &uiClient{t: t, base: "http://" + s.addr, pass: adminPW}
	waitMembers(t, c, 1, 15*time.Second)

	shots, _ := filepath.Abs("screenshots")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	newDir := t.TempDir()
	newData, newHTTP, newCluster := filepath.Join(newDir, "data"), freeAddr(t), freeAddr(t)
	rep := runUI(t, "cluster.mjs", "BASE="+c.base, "ADMIN_PASSWORD="+adminPW, "SHOTS="+shots,
		"NEW_DATA="+newData, "NEW_HTTP="+newHTTP, "NEW_CLUSTER="+newCluster)
	cmd, _ := rep["command"].(string)
	t.Logf("the page's command line: %s", strings.Replace(cmd, tokenOf(cmd), "TOKEN", 1))

	// Run what the page said to run (no word needs shell quoting here: the
	// script checked the quoting with a data directory containing a space).
	words := strings.Fields(cmd)
	if len(words) < 2 || words[0] != "callvault" || words[1] != "serve" {
		t.Fatalf("not a serve command line: %q", cmd)
	}
	flags := map[string]string{}
	for i := 2; i+1 < len(words); i += 2 {
		flags[words[i]] = words[i+1]
	}
	want := map[string]string{"--data-dir": newData, "--http": newHTTP, "--cluster-addr": newCluster, "--join": c.base}
	for f, v := range want {
		if flags[f] != v {
			t.Fatalf("command line %s is %q, want %q (%q)", f, flags[f], v, cmd)
		}
	}
	startServerArgs(t, newDir, env, flags["--http"], "--data-dir", flags["--data-dir"], "--cluster-addr", flags["--cluster-addr"],
		"--join", flags["--join"], "--join-token", flags["--join-token"])
	waitMembers(t, c, 2, 20*time.Second)

	rep = runUI(t, "cluster.mjs", "BASE="+c.base, "ADMIN_PASSWORD="+adminPW, "SHOTS="+shots, "PHASE=remove")
	t.Logf("removed in the page: %v (confirm: %q)", rep["removed"], rep["confirm"])
	waitMembers(t, c, 1, 10*time.Second)
}

// tokenOf is the --join-token word of a command line, to keep it out of logs.
func tokenOf(cmd string) string {
	_, after, ok := strings.Cut(cmd, "--join-token ")
	if !ok || after == "" {
		return "\x00"
	}
	return strings.Fields(after)[0]
}

// waitMembers polls the API until the cluster has n voters that are leader
// or follower.
func waitMembers(t *testing.T, c *uiClient, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last []byte
	for time.Now().Before(deadline) {
		code, body := c.do(http.MethodGet, "/api/v1/cluster", "", nil)
		last = body
		var st statusJSON
		if code == http.StatusOK && json.Unmarshal(body, &st) == nil && st.Leader != "" && len(st.Nodes) == n {
			ok := 0
			for _, m := range st.Nodes {
				if m.Voter && (m.State == "Leader" || m.State == "Follower") {
					ok++
				}
			}
			if ok == n {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no cluster of %d voters within %v; last status %s", n, within, last)
}
