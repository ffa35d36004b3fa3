package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestImportCLI runs `callvault import` on real captures, as an admin
// would, and checks its summary; then that an import into a data
// directory a server holds fails at once, naming the server.
func TestImportCLI(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d")
	corpus, _ := filepath.Abs("../capture/testdata/corpus")
	out, stderr, code := runCLI(t, dir, nil, "import", "--json", "--data-dir", data,
		filepath.Join(corpus, "SIP_DTMF2.pcap"), filepath.Join(corpus, "one.pcap"), filepath.Join(corpus, "sip-rtp-g729a.pcap"))
	if code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	var res struct {
		Files []struct {
			Path   string
			Frames int64
		}
		Calls []struct {
			CallID      string   `json:"callId"`
			RecordingID string   `json:"recordingId"`
			Reference   string   `json:"reference"`
			Status      string   `json:"status"`
			Streams     int      `json:"streams"`
			Codecs      []string `json:"codecs"`
			Packets     int64    `json:"packets"`
			LossPct     float64  `json:"lossPct"`
			DurationMs  int64    `json:"durationMs"`
			Playable    bool     `json:"playable"`
			Bookmarks   int      `json:"bookmarks"`
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("import --json: %v\n%s", err, out)
	}
	if len(res.Files) != 3 || res.Files[0].Frames != 1360 {
		t.Errorf("files: %+v", res.Files)
	}
	byID := map[string]int{}
	for i, c := range res.Calls {
		byID[c.CallID] = i
		if c.RecordingID == "" || c.Reference == "" || c.Status != "complete" || c.DurationMs <= 0 {
			t.Errorf("call %+v", c)
		}
	}
	if len(res.Calls) != 3 {
		t.Fatalf("%d calls, want 3: %s", len(res.Calls), out)
	}
	dtmf := res.Calls[byID["25672@192.168.105.110"]]
	if dtmf.Streams != 2 || dtmf.Packets < 1290 || dtmf.Codecs[0] != "PCMA" || dtmf.Bookmarks != 7 || !dtmf.Playable {
		t.Errorf("SIP_DTMF2 call: %+v (want 2 PCMA streams and the 7 digits 6,7,8,9,1,2,3 as bookmarks)", dtmf)
	}
	for _, c := range res.Calls {
		if strings.Contains(strings.Join(c.Codecs, ","), "G729") && c.Playable {
			t.Errorf("a G.729 call is marked playable: %+v", c)
		}
	}
	// The text summary names the same calls, how each ended, and what an
	// admin should look at: sip-tcp.pcap's five calls were answered but
	// the capture holds none of their RTP.
	out, _, code = runCLI(t, dir, nil, "import", "--data-dir", filepath.Join(dir, "d2"),
		filepath.Join(corpus, "SIP_DTMF2.pcap"), filepath.Join(corpus, "sip-tcp.pcap"))
	if code != 0 || !strings.Contains(out, "25672@192.168.105.110") || !strings.Contains(out, "PCMA") ||
		!strings.Contains(out, "END") || !strings.Contains(out, "NOTES") || strings.Count(out, "no media captured") != 5 {
		t.Errorf("text summary (want the DTMF call, and five calls flagged \"no media captured\"):\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "25672@192.168.105.110") && (!strings.Contains(l, "capture gap") || strings.Contains(l, "no media")) {
			t.Errorf("the 2005 call, followed by a 2020 capture, ends at the gap between them with its media: %q", l)
		}
	}

	// A capture cut short (a tcpdump killed hard): what is there is
	// imported, and the summary says the file is not whole.
	whole, err := os.ReadFile(filepath.Join(corpus, "SIP_DTMF2.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, whole[:len(whole)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = runCLI(t, dir, nil, "import", "--data-dir", filepath.Join(dir, "d3"), cut)
	if code != 0 || !strings.Contains(out, "25672@192.168.105.110") ||
		!strings.Contains(out, "warning: capture: file ends inside a frame: "+cut+": after frame ") {
		t.Errorf("a capture cut short: exit %d\n%s%s", code, out, stderr)
	}
	// A file that is not a capture says so.
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("hello, this is not a capture\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runCLI(t, dir, nil, "import", "--data-dir", filepath.Join(dir, "d3"), notes)
	if code == 0 || !strings.Contains(stderr, "not a pcap or pcapng file") {
		t.Errorf("a text file: exit %d\n%s", code, stderr)
	}

	s := startServer(t, dir, []string{"CALLVAULT_ADMIN_PASSWORD=a-long-admin-secret"}, "--data-dir", data)
	start := time.Now()
	_, stderr, code = runCLI(t, dir, nil, "import", "--data-dir", data, filepath.Join(corpus, "one.pcap"))
	if code == 0 || !strings.Contains(stderr, fmt.Sprintf("process %d", s.cmd.Process.Pid)) || time.Since(start) > 3*time.Second {
		t.Errorf("import into a data directory in use: exit %d after %v\n%s", code, time.Since(start), stderr)
	}
	if _, err := s.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runCLI(t, dir, nil, "import", "--data-dir", data, filepath.Join(dir, "missing.pcap"))
	if code == 0 || !strings.Contains(stderr, "missing.pcap") {
		t.Errorf("a missing file: exit %d\n%s", code, stderr)
	}
}
