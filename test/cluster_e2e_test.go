package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// clusterNode is one `callvault serve` process of a three-node cluster.
type clusterNode struct {
	*server
	dir, http, raft string
	// netns, if set, is the network namespace the process runs in
	// (`ip netns exec`; cluster_netns_test.go).
	netns string
}

const clusterAdminPW = "cluster e2e admin pw"

type clusterEnv struct {
	t     *testing.T
	env   []string
	nodes []*clusterNode
	wav   []byte
	hc    *http.Client
}

func newClusterEnv(t *testing.T) *clusterEnv {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	wav, err := os.ReadFile(filepath.Join("testdata", "upload", "jfk_8k_ulaw.wav"))
	if err != nil {
		t.Fatal(err)
	}
	// Every node needs the same master key: the keyring is replicated
	// metadata, sealed by it.
	return &clusterEnv{t: t, wav: wav, hc: &http.Client{Timeout: 20 * time.Second},
		env: []string{"CALLVAULT_MASTER_KEY=" + hex.EncodeToString(key), "CALLVAULT_ADMIN_PASSWORD=" + clusterAdminPW}}
}

func (c *clusterEnv) start(n *clusterNode, args ...string) {
	c.t.Helper()
	full := append([]string{"--data-dir", n.dir, "--cluster-addr", n.raft}, args...)
	if n.netns != "" {
		// ip execs the binary in place, so the process (and its signals)
		// is callvault's own.
		full = append([]string{"netns", "exec", n.netns, binary, "serve", "--http", n.http}, full...)
		n.server = startBinary(c.t, "ip", n.dir, c.env, n.http, full...)
		return
	}
	n.server = startServerArgs(c.t, n.dir, c.env, n.http, full...)
}

func (c *clusterEnv) cli(args ...string) string {
	c.t.Helper()
	out, errOut, code := runCLI(c.t, c.t.TempDir(), append(c.env, "CALLVAULT_PASSWORD="+clusterAdminPW), args...)
	if code != 0 {
		c.t.Fatalf("callvault %v: exit %d\n%s", args, code, errOut)
	}
	return out
}

type statusJSON struct {
	Leader string `json:"leader"`
	Nodes  []struct {
		ID, Address, State string
		Voter              bool
		LastContact        string `json:"last_contact"`
	} `json:"nodes"`
}

func (c *clusterEnv) status(n *clusterNode) statusJSON {
	c.t.Helper()
	var st statusJSON
	out := c.cli("cluster", "status", "--server", "http://"+n.http, "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

func (c *clusterEnv) req(method, url string, body io.Reader, ctype string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth("admin", clusterAdminPW)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// upload sends one recording through the Imagicle route and returns its ID.
func (c *clusterEnv) upload(n *clusterNode, callID string) (int, string, error) {
	return c.uploadWAV(n, callID, c.wav)
}

func (c *clusterEnv) uploadWAV(n *clusterNode, callID string, wav []byte) (int, string, error) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	jd := `{"startDateTime":"` + time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04:05.0000000Z") +
		`","duration":"PT5S","direction":1,"localParty":{"username":"admin","phoneNumber":"201"},` +
		`"remoteParty":{"phoneNumber":"+41440000000"},"pbxCallId":"` + callID + `"}`
	_ = mw.WriteField("jsondata", jd)
	fw, _ := mw.CreateFormFile("attachment", "call.wav")
	_, _ = fw.Write(wav)
	_ = mw.Close()
	code, body, err := c.req(http.MethodPost, "http://"+n.http+uploadPath, &b, mw.FormDataContentType())
	if err != nil {
		return 0, "", err
	}
	var out struct{ ID string }
	_ = json.Unmarshal(body, &out)
	return code, out.ID, nil
}

// has reports whether n finds recording id (after the latest commit).
func (c *clusterEnv) has(n *clusterNode, id string) bool {
	c.t.Helper()
	if code, body, err := c.req(http.MethodGet, "http://"+n.http+"/api/v1/cluster/wait", nil, ""); err != nil || code != 200 {
		c.t.Fatalf("wait on %s: %d %s %v", n.http, code, body, err)
	}
	code, body, err := c.req(http.MethodGet, "http://"+n.http+"/api/v1/recordings/"+id, nil, "")
	if err != nil {
		c.t.Fatal(err)
	}
	if code != 200 && code != 404 {
		c.t.Fatalf("GET recording %s on %s: %d %s", id, n.http, code, body)
	}
	return code == 200
}

// audio plays recording id on n (GET .../audio) and returns the body.
func (c *clusterEnv) audio(n *clusterNode, id string) []byte {
	c.t.Helper()
	code, body, err := c.req(http.MethodGet, "http://"+n.http+"/api/v1/recordings/"+id+"/audio", nil, "")
	if err != nil || code != 200 {
		c.t.Fatalf("play %s on %s: %d %.200s %v", id, n.http, code, body, err)
	}
	return body
}

// fileHash is the SHA-256 of recording id's encrypted file in n's data
// directory, "" if it has none (never a partial one: those live in
// recordings/.incoming under another name).
func fileHash(t *testing.T, n *clusterNode, id string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(n.dir, "recordings", "*", "*", "*", id+".cvr"))
	if len(m) == 0 {
		return ""
	}
	b, err := os.ReadFile(m[0])
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// waitFileEverywhere waits until every running node holds id's file and
// all copies hash alike.
func (c *clusterEnv) waitFileEverywhere(id string, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var hs []string
		for _, n := range c.nodes {
			hs = append(hs, fileHash(c.t, n, id))
		}
		if hs[0] != "" && hs[0] == hs[1] && hs[1] == hs[2] {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("file of %s not on all nodes alike: %q", id, hs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// searchFinds looks id up through the search API (what the UI does).
func (c *clusterEnv) searchFinds(n *clusterNode, callID, id string) bool {
	c.t.Helper()
	code, body, err := c.req(http.MethodGet, "http://"+n.http+"/api/v1/recordings?callId="+callID, nil, "")
	if err != nil || code != 200 {
		c.t.Fatalf("search on %s: %d %s %v", n.http, code, body, err)
	}
	return strings.Contains(string(body), id)
}

// TestCluster: three real processes on loopback. Bootstrap, token, join
// two nodes; status shows three voters and one leader; a recording
// uploaded on each node is found on every other, plays the same audio on
// every node, and its encrypted file reaches all three data directories
// (hashes equal); kill -9 the leader during
// a stream of uploads: a new leader within 5 s and every upload that got a
// 201 is on both survivors; the killed node restarts with its data
// directory alone, rejoins and catches up on metadata and files.
func TestCluster(t *testing.T) {
	c := newClusterEnv(t)
	for i := range 3 {
		c.nodes = append(c.nodes, &clusterNode{dir: t.TempDir(), http: freeAddr(t), raft: freeAddr(t)})
		_ = i
	}
	a, b, d := c.nodes[0], c.nodes[1], c.nodes[2]
	c.start(a)
	for _, n := range []*clusterNode{b, d} {
		tok := strings.TrimSpace(c.cli("cluster", "token", "--server", "http://"+a.http))
		c.start(n, "--join", "http://"+a.http, "--join-token", tok)
	}
	var st statusJSON
	deadline := time.Now().Add(15 * time.Second)
	for {
		st = c.status(b)
		leaders, voters := 0, 0
		for _, n := range st.Nodes {
			if n.State == "Leader" {
				leaders++
			}
			if n.Voter && (n.State == "Leader" || n.State == "Follower") {
				voters++
			}
		}
		if len(st.Nodes) == 3 && leaders == 1 && voters == 3 && st.Leader != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed 3 voters and one leader: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// An upload on each node is found on every other.
	for i, n := range c.nodes {
		callID := fmt.Sprintf("cluster-e2e-%d", i)
		code, id, err := c.upload(n, callID)
		if err != nil || code != 201 {
			t.Fatalf("upload on node %d: %d %v\n%s", i, code, err, n.stderr)
		}
		for j, m := range c.nodes {
			if !c.has(m, id) || !c.searchFinds(m, callID, id) {
				t.Fatalf("recording %s uploaded on node %d not found on node %d", id, i, j)
			}
		}
		// The audio plays on every node, the same bytes as on the writer
		// (the others stream it from a peer or play their copy).
		want := c.audio(n, id)
		for j, m := range c.nodes {
			if got := c.audio(m, id); !bytes.Equal(got, want) {
				t.Fatalf("audio of %s on node %d: %d bytes differ from the writer's %d", id, j, len(got), len(want))
			}
		}
		// The encrypted file reaches all three data directories, verified.
		c.waitFileEverywhere(id, 20*time.Second)
	}

	// Kill -9 the leader during a stream of uploads to every node.
	byID := map[string]*clusterNode{}
	for _, n := range st.Nodes {
		for _, cn := range c.nodes {
			if n.Address == cn.raft {
				byID[n.ID] = cn
			}
		}
	}
	leader := byID[st.Leader]
	var survivors []*clusterNode
	for _, n := range c.nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	var (
		mu      sync.Mutex
		ok      []string
		killed  time.Time
		firstOK time.Time // first 201 after the kill
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				code, id, err := c.upload(n, fmt.Sprintf("stream-%d-%d", w, i))
				if err != nil || code != 201 {
					mu.Lock()
					down := n == leader && !killed.IsZero()
					mu.Unlock()
					if down {
						return
					}
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				ok = append(ok, id)
				if !killed.IsZero() && firstOK.IsZero() && n != leader {
					firstOK = time.Now()
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	killed = time.Now()
	mu.Unlock()
	_ = leader.cmd.Process.Signal(syscall.SIGKILL)
	<-leader.done

	newLeader := ""
	for time.Since(killed) < 5*time.Second && newLeader == "" {
		s := c.status(survivors[0])
		if s.Leader != "" && s.Leader != st.Leader {
			newLeader = s.Leader
		}
		time.Sleep(100 * time.Millisecond)
	}
	if newLeader == "" {
		t.Fatalf("no new leader within 5 s of killing %s", st.Leader)
	}
	time.Sleep(3 * time.Second) // uploads go on under the new leader
	cancel()
	wg.Wait()
	mu.Lock()
	failover := firstOK.Sub(killed)
	uploaded := append([]string(nil), ok...)
	mu.Unlock()
	if firstOK.IsZero() {
		t.Fatal("no upload succeeded after the leader was killed")
	}
	t.Logf("new leader %s; first upload accepted %v after kill -9; %d uploads got 201", newLeader, failover.Round(time.Millisecond), len(uploaded))
	for _, id := range uploaded {
		for _, n := range survivors {
			if !c.has(n, id) {
				t.Fatalf("upload %s got 201 but is missing on %s", id, n.http)
			}
		}
	}

	// Restart the killed node with its data directory: no --join, no token.
	c.start(leader)
	deadline = time.Now().Add(20 * time.Second)
	for _, id := range uploaded {
		for !c.has(leader, id) {
			if time.Now().After(deadline) {
				t.Fatalf("restarted node did not catch up: %s missing\n%s", id, leader.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// ... and on the files: every upload's file is on all three nodes.
	for _, id := range uploaded {
		c.waitFileEverywhere(id, 30*time.Second)
	}
	st = c.status(leader)
	ids := []string{}
	for _, n := range st.Nodes {
		ids = append(ids, n.ID+"="+n.State)
	}
	sort.Strings(ids)
	t.Logf("after restart: leader %s, %v", st.Leader, ids)
	for _, n := range c.nodes {
		if _, err := n.stop(syscall.SIGTERM, 20*time.Second); err != nil {
			t.Errorf("stop %s: %v\n%s", n.http, err, n.stderr)
		}
	}
}
