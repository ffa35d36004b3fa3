package test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterImport: a capture imported through one member of a
// three-node cluster (`callvault import --server`) becomes recordings
// every member has: each plays the same audio on the other two, its file
// reaches all three data directories, and a bundle exported on another
// member carries the call's SIP messages. Importing into a member's data
// directory offline is refused (it would commit on that member alone).
func TestClusterImport(t *testing.T) {
	c := newClusterEnv(t)
	newThreeNodes(t, c)
	a, b := c.nodes[0], c.nodes[1]
	pcap, err := filepath.Abs(filepath.Join("testdata", "capture", "SIP_DTMF2.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	out := c.cli("import", "--server", "http://"+a.http, "--json", pcap)
	var res struct {
		Files []struct {
			Frames int64  `json:"frames"`
			Error  string `json:"error"`
		} `json:"files"`
		Calls []struct {
			CallID      string `json:"callId"`
			RecordingID string `json:"recordingId"`
			Status      string `json:"status"`
		} `json:"calls"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("import --server --json: %v\n%s", err, out)
	}
	if len(res.Files) != 1 || res.Files[0].Error != "" || res.Files[0].Frames == 0 || len(res.Calls) == 0 {
		t.Fatalf("import answered %s", out)
	}
	for _, call := range res.Calls {
		if call.RecordingID == "" || call.Status != "complete" {
			t.Fatalf("call %+v was not recorded whole", call)
		}
		c.waitFileEverywhere(call.RecordingID, 30*time.Second)
		want := c.audio(a, call.RecordingID)
		for _, n := range c.nodes[1:] {
			if got := c.audio(n, call.RecordingID); !bytes.Equal(got, want) {
				t.Fatalf("%s plays %d bytes of %s, %s %d", n.http, len(got), call.RecordingID, a.http, len(want))
			}
		}
	}
	t.Logf("%d calls imported on %s, played alike on all three", len(res.Calls), a.http)

	// The SIP messages travel too: a bundle made on b has them.
	zipPath := filepath.Join(t.TempDir(), "case.zip")
	c.cli("export", "--server", "http://"+b.http, "--id", res.Calls[0].RecordingID, "--out", zipPath)
	raw, err := os.ReadFile(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var sip string
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/sip.txt") {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(rc)
			rc.Close()
			sip = buf.String()
		}
	}
	if !strings.Contains(sip, "INVITE sip:") || !strings.Contains(sip, res.Calls[0].CallID) {
		t.Fatalf("the bundle exported on %s has no SIP of call %s (sip.txt: %.300q)", b.http, res.Calls[0].CallID, sip)
	}

	// Offline into a member's data directory: refused, nothing touched.
	_, errOut, code := runCLI(t, t.TempDir(), c.env, "import", "--data-dir", c.nodes[2].dir, pcap)
	if code == 0 || !strings.Contains(errOut, "cluster member") || !strings.Contains(errOut, "--server") {
		t.Fatalf("offline import into a member's data directory: exit %d\n%s", code, errOut)
	}
}
