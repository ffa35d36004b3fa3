package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMinorityKeepsRecording: three real processes; the two others are
// frozen (SIGSTOP: to the third they are a partition, their sockets accept
// but nothing answers). The node left alone has no quorum, yet keeps
// answering uploads with 201 and recording the calls of a capture
// imported through it: their audio is on its disk and their metadata
// waits in its durable outbox. Thawed, the cluster is whole
// again: every one of those uploads is found on every node exactly once
// (searched by its Call-ID), plays the same audio everywhere, and its file
// is on all three data directories.
func TestMinorityKeepsRecording(t *testing.T) {
	c := newClusterEnv(t)
	t0 := time.Now()
	newThreeNodes(t, c)
	t.Logf("three nodes up in %v", time.Since(t0).Round(time.Millisecond))
	st := c.status(c.nodes[0])
	var alone *clusterNode
	var frozen []*clusterNode
	for _, n := range c.nodes {
		if alone == nil && !leads(st, n) {
			alone = n
		} else {
			frozen = append(frozen, n)
		}
	}
	for _, n := range frozen {
		if err := n.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	thawed := false
	thaw := func() {
		if thawed {
			return
		}
		thawed = true
		for _, n := range frozen {
			_ = n.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw)

	const uploads = 4
	ids := map[string]string{} // call ID → recording ID
	for i := range uploads {
		callID := fmt.Sprintf("minority-%d-%d", time.Now().UnixNano(), i)
		start := time.Now()
		code, id, err := c.upload(alone, callID)
		if err != nil || code != http.StatusCreated || id == "" {
			t.Fatalf("upload %d to the node without quorum: %d %q %v\n%s", i, code, id, err, alone.stderr.String())
		}
		t.Logf("upload %d without quorum: 201 after %v", i, time.Since(start).Round(time.Millisecond))
		ids[callID] = id
	}
	// It keeps capturing too: a capture imported through it while it is
	// cut off becomes a recording like the uploads.
	pcap, err := filepath.Abs(filepath.Join("testdata", "capture", "SIP_DTMF2.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	var imported struct {
		Calls []struct {
			CallID      string `json:"callId"`
			RecordingID string `json:"recordingId"`
			Status      string `json:"status"`
		} `json:"calls"`
	}
	out := c.cli("import", "--server", "http://"+alone.http, "--json", pcap)
	if err := json.Unmarshal([]byte(out), &imported); err != nil || len(imported.Calls) == 0 {
		t.Fatalf("import without quorum: %v\n%s", err, out)
	}
	for _, call := range imported.Calls {
		if call.Status != "complete" || call.RecordingID == "" {
			t.Fatalf("captured call without quorum: %+v", call)
		}
		ids[call.CallID] = call.RecordingID
	}
	metrics := c.metric(alone, "callvault_cluster_outbox_queued")
	if metrics < 2*uploads {
		t.Fatalf("callvault_cluster_outbox_queued = %v, want at least %d (create and seal of each upload)", metrics, 2*uploads)
	}

	thaw()
	healed := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for c.metric(alone, "callvault_cluster_outbox_queued") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the outbox did not drain\n%s", alone.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("outbox drained %v after the thaw", time.Since(healed).Round(time.Millisecond))
	for callID, id := range ids {
		c.waitFileEverywhere(id, 30*time.Second)
		for _, n := range c.nodes {
			if got := len(c.searchCallID(n, callID)); got != 1 {
				t.Fatalf("node %s finds %d recordings for %s, want exactly 1", n.http, got, callID)
			}
		}
	}
	t.Logf("every upload on every node once, files everywhere, %v after the thaw", time.Since(healed).Round(time.Millisecond))
	for callID, id := range ids {
		want := c.audio(alone, id)
		for _, n := range frozen {
			if got := c.audio(n, id); string(got) != string(want) {
				t.Fatalf("node %s plays %d bytes of %s (%s), the minority node %d", n.http, len(got), id, callID, len(want))
			}
		}
	}
}

func leads(st statusJSON, n *clusterNode) bool {
	for _, m := range st.Nodes {
		if m.ID == st.Leader && m.Address == n.raft {
			return true
		}
	}
	return false
}

// metric reads one unlabelled value from n's /metrics.
func (c *clusterEnv) metric(n *clusterNode, name string) float64 {
	c.t.Helper()
	code, body, err := c.req(http.MethodGet, "http://"+n.http+"/metrics", nil, "")
	if err != nil || code != 200 {
		c.t.Fatalf("metrics of %s: %d %v", n.http, code, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	c.t.Fatalf("no %s in the metrics of %s", name, n.http)
	return 0
}
