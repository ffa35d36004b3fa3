package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// netLab is three network namespaces, one per node, each with a veth
// pair whose outer end is in a bridge in the test's own namespace. The
// nodes reach each other across the bridge, and the test reaches every
// node through the bridge's address, so it can still talk to a node that
// is cut off from its peers.
//
// A partition is made with blackhole routes: the cut-off node gets one
// for each peer's address and each peer one for the cut-off node's, so
// packets between them are dropped (both ways, silently, like a cable
// pulled between switches) while the test's own traffic to every node
// still flows. iptables and nft are not on every machine this runs on;
// routes need only iproute2.
type netLab struct {
	t      *testing.T
	prefix string // 10.X.Y
	bridge string
	ns     []string
	addrs  []string // node i's address, 10.X.Y.(i+1)
}

// ipCmd runs ip with args and returns its combined output.
func ipCmd(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// newNetLab makes the namespaces, the bridge and the links, or skips the
// test with the reason when it cannot (not root, no `ip netns`). All of
// it is removed at cleanup, also when the test fails.
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: network namespaces need root (run as root, as .ci/run does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: no `ip` command (Debian package iproute2)")
	}
	pid := os.Getpid()
	l := &netLab{t: t, prefix: fmt.Sprintf("10.%d.%d", 200+pid%50, (pid/50)%250), bridge: fmt.Sprintf("cvbr%d", pid)}
	probe := fmt.Sprintf("cvprobe%d", pid)
	if _, err := ipCmd("netns", "add", probe); err != nil {
		t.Skipf("skipped: cannot create a network namespace here: %v", err)
	}
	_, _ = ipCmd("netns", "del", probe)

	t.Cleanup(func() {
		for _, ns := range l.ns {
			if _, err := ipCmd("netns", "del", ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if _, err := ipCmd("link", "del", l.bridge); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// A kernel without bridge or veth support is a machine this test
	// cannot run on, not a failure of the appliance.
	must := func(args ...string) {
		t.Helper()
		if _, err := ipCmd(args...); err != nil {
			t.Skipf("skipped: cannot build the namespaces' network here: %v", err)
		}
	}
	must("link", "add", l.bridge, "type", "bridge")
	must("addr", "add", l.prefix+".254/24", "dev", l.bridge)
	must("link", "set", l.bridge, "up")
	for i := range n {
		ns := fmt.Sprintf("cv%dn%d", pid, i)
		must("netns", "add", ns)
		l.ns = append(l.ns, ns)
		outer, inner := fmt.Sprintf("cv%dv%d", pid, i), fmt.Sprintf("cv%dp%d", pid, i)
		must("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
		must("link", "set", outer, "master", l.bridge)
		must("link", "set", outer, "up")
		addr := fmt.Sprintf("%s.%d", l.prefix, i+1)
		l.addrs = append(l.addrs, addr)
		must("-n", ns, "addr", "add", addr+"/24", "dev", inner)
		must("-n", ns, "link", "set", inner, "up")
		must("-n", ns, "link", "set", "lo", "up")
	}
	return l
}

// partition cuts node i off from every other node (or heals the cut,
// with heal set).
func (l *netLab) partition(i int, heal bool) {
	l.t.Helper()
	op := "add"
	if heal {
		op = "del"
	}
	for j := range l.ns {
		if j == i {
			continue
		}
		for _, r := range [][2]int{{i, j}, {j, i}} {
			if _, err := ipCmd("-n", l.ns[r[0]], "route", op, "blackhole", l.addrs[r[1]]+"/32"); err != nil {
				l.t.Fatal(err)
			}
		}
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// raftState is n's callvault_raft_state metric: 0 follower, 1 candidate,
// 2 leader, 3 shutdown.
func raftState(c *clusterEnv, n *clusterNode) (int, error) {
	v, err := metric(c, n, "callvault_raft_state")
	return int(v), err
}

// metric reads one unlabelled metric from n's /metrics.
func metric(c *clusterEnv, n *clusterNode, name string) (float64, error) {
	code, body, err := c.req(http.MethodGet, "http://"+n.http+"/metrics", nil, "")
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("metrics on %s: %d", n.http, code)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("metrics on %s: no %s", n.http, name)
}

// searchCallID returns the IDs of the recordings with this call ID that
// n finds, after the latest commit.
func (c *clusterEnv) searchCallID(n *clusterNode, callID string) []string {
	c.t.Helper()
	if code, body, err := c.req(http.MethodGet, "http://"+n.http+"/api/v1/cluster/wait", nil, ""); err != nil || code != 200 {
		c.t.Fatalf("wait on %s: %d %s %v", n.http, code, body, err)
	}
	code, body, err := c.req(http.MethodGet, "http://"+n.http+"/api/v1/recordings?callId="+callID, nil, "")
	if err != nil || code != 200 {
		c.t.Fatalf("search on %s: %d %s %v", n.http, code, body, err)
	}
	var res struct {
		Recordings []struct {
			ID string `json:"id"`
		} `json:"recordings"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		c.t.Fatalf("search on %s: %v", n.http, err)
	}
	var out []string
	for _, r := range res.Recordings {
		out = append(out, r.ID)
	}
	return out
}

// TestClusterNetns runs the three nodes in their own network namespaces,
// HTTP and cluster ports on their namespace's address. A recording
// uploaded through every node is found and played (same audio bytes) on
// every other, its file on all three. Then the leader is cut off from
// both peers while it keeps taking uploads: the two others elect a leader
// and keep accepting uploads; the cut-off node keeps answering 201 (its
// Commands wait in the durable outbox). After the cut heals, every
// recording uploaded during the partition, on either side, is found by
// its call ID on every node exactly once, and its file is on all three
// with the same hash.
//
// The minority's side needs the durable outbox (cluster/outbox.go); with
// CALLVAULT_NETNS_MINORITY=0 it is left out.
func TestClusterNetns(t *testing.T) {
	lab := newNetLab(t, 3)
	minorityToo := os.Getenv("CALLVAULT_NETNS_MINORITY") != "0"
	c := newClusterEnv(t)
	for i := range 3 {
		c.nodes = append(c.nodes, &clusterNode{dir: t.TempDir(), http: lab.addrs[i] + ":8080", raft: lab.addrs[i] + ":7000", netns: lab.ns[i]})
	}
	c.start(c.nodes[0])
	for _, n := range c.nodes[1:] {
		tok := strings.TrimSpace(c.cli("cluster", "token", "--server", "http://"+c.nodes[0].http))
		c.start(n, "--join", "http://"+c.nodes[0].http, "--join-token", tok)
	}
	c.waitStable(30 * time.Second)

	// Upload through every node, read from every other.
	for i, n := range c.nodes {
		callID := fmt.Sprintf("netns-%d", i)
		code, id, err := c.upload(n, callID)
		if err != nil || code != 201 {
			t.Fatalf("upload on node %d: %d %v\n%s", i, code, err, tail(n.stderr.String(), 3000))
		}
		want := c.audio(n, id)
		for j, m := range c.nodes {
			if got := c.searchCallID(m, callID); len(got) != 1 || got[0] != id {
				t.Fatalf("call %s uploaded on node %d: node %d finds %v, want [%s]", callID, i, j, got, id)
			}
			if got := c.audio(m, id); !bytes.Equal(got, want) {
				t.Fatalf("audio of %s on node %d: %d bytes differ from the writer's %d", id, j, len(got), len(want))
			}
		}
		c.waitFileEverywhere(id, 30*time.Second)
	}
	t.Logf("an upload through each of the three namespaces plays alike on the other two; files on all three")

	// Cut the leader off.
	leader := c.waitStable(30 * time.Second)
	li := 0
	var majority []*clusterNode
	for i, n := range c.nodes {
		if n == leader {
			li = i
		} else {
			majority = append(majority, n)
		}
	}
	cut := time.Now()
	lab.partition(li, false)
	t.Logf("partitioned node %d (%s, the leader) from the other two", li, leader.http)

	type upload struct{ callID, id string }
	var during []upload
	// An upload sent to the majority at the moment of the cut: a
	// follower forwards it to the leader it knew, now unreachable.
	type atCutResult struct {
		code int
		id   string
		err  error
		took time.Duration
	}
	atCut := make(chan atCutResult, 1)
	go func() {
		sent := time.Now()
		code, id, err := c.upload(majority[0], "netns-maj-at-cut")
		atCut <- atCutResult{code, id, err, time.Since(sent)}
	}()
	// The majority elects a leader of its own.
	var newLeader *clusterNode
	for newLeader == nil {
		for _, n := range majority {
			if st, err := raftState(c, n); err == nil && st == 2 {
				newLeader = n
			}
		}
		if newLeader == nil && time.Since(cut) > 20*time.Second {
			t.Fatalf("the majority elected no leader within 20 s of the partition")
		}
		time.Sleep(20 * time.Millisecond)
	}
	elected := time.Since(cut)
	// ... and accepts every upload, on both of its nodes.
	for k := range 10 {
		n := majority[k%2]
		callID := fmt.Sprintf("netns-maj-%d", k)
		sent := time.Now()
		code, id, err := c.upload(n, callID)
		if err != nil || code != 201 {
			t.Fatalf("majority upload %d on %s during the partition: %d %v after %v\n%s", k, n.http, code, err,
				time.Since(sent).Round(time.Millisecond), tail(n.stderr.String(), 3000))
		}
		during = append(during, upload{callID, id})
	}
	t.Logf("majority elected %s %v after the cut and accepted 10 uploads by %v", newLeader.http,
		elected.Round(time.Millisecond), time.Since(cut).Round(time.Millisecond))
	// The upload sent at the cut may be refused (the forward to the old
	// leader timed out) or accepted (committed by the new leader, or
	// deferred to the outbox); if accepted, it is checked like the rest.
	ac := <-atCut
	t.Logf("the upload sent to the majority at the cut: %d %v after %v", ac.code, ac.err, ac.took.Round(time.Millisecond))
	if ac.err == nil && ac.code == 201 {
		during = append(during, upload{"netns-maj-at-cut", ac.id})
	}
	var minTook []time.Duration
	if minorityToo {
		for k := range 10 {
			callID := fmt.Sprintf("netns-min-%d", k)
			sent := time.Now()
			code, id, err := c.upload(leader, callID)
			took := time.Since(sent)
			if err != nil || code != 201 {
				t.Fatalf("the cut-off node refused upload %d during the partition: %d %v (after %v)\n%s",
					k, code, err, took.Round(time.Millisecond), tail(leader.stderr.String(), 3000))
			}
			minTook = append(minTook, took)
			during = append(during, upload{callID, id})
		}
		t.Logf("the cut-off node accepted 10 uploads during the partition, each answered in %v", roundAll(minTook))
	} else {
		t.Logf("CALLVAULT_NETNS_MINORITY=0: the cut-off node's uploads are not tested")
	}
	// The majority does not see the cut-off node's uploads yet, and
	// still serves reads.
	for _, u := range during {
		if strings.HasPrefix(u.callID, "netns-min-") {
			if got := c.searchCallID(majority[0], u.callID); len(got) != 0 {
				t.Fatalf("call %s seen on the majority during the partition: %v", u.callID, got)
			}
		}
	}

	healed := time.Now()
	lab.partition(li, true)
	t.Logf("healed after %v of partition", healed.Sub(cut).Round(time.Millisecond))
	c.waitStable(30 * time.Second)
	var all []string
	for _, u := range during {
		all = append(all, u.id)
	}
	took := c.waitEverywhere(all, 60*time.Second)
	for _, u := range during {
		for j, m := range c.nodes {
			if got := c.searchCallID(m, u.callID); len(got) != 1 || got[0] != u.id {
				t.Fatalf("after healing, node %d finds call %s as %v, want exactly [%s]", j, u.callID, got, u.id)
			}
		}
	}
	t.Logf("NETNS after healing: all %d uploads of the partition on every node exactly once, files verified, %v after the heal",
		len(during), took.Round(time.Millisecond))
	c.stopAll()
}
