package synth

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTshark has Wireshark's dissectors judge a generated file: sip,stat
// must count every message of N answered calls, rtp,streams must list 2N
// PCMU streams with 0 packets lost, and no frame may carry a malformed or
// warning-level expert item (bad checksums included).
func TestTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed (apt-get install tshark): cannot cross-check the generated pcap")
	}
	const n = 12
	path, sum := writeFile(t, t.TempDir(), Config{Calls: n, Duration: 4 * time.Second, Seed: 99, DTMF: testDTMF})

	out := run(t, tshark, "-r", path, "-q", "-z", "sip,stat", "-z", "rtp,streams")
	counts := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(SIP \d+ [A-Za-z ]+?|INVITE|ACK|BYE)\s+:\s+(\d+) Packets`).FindAllStringSubmatch(out, -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	want := map[string]int{"INVITE": n, "ACK": n, "BYE": n, "SIP 100 Trying": n, "SIP 180 Ringing": n, "SIP 200 OK": 2 * n}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("sip,stat %s: %d, want %d", k, counts[k], v)
		}
	}
	if !strings.Contains(out, "Number of SIP messages: "+strconv.Itoa(7*n)) || !strings.Contains(out, "Number of resent SIP messages: 0") {
		t.Errorf("sip,stat totals wrong:\n%s", out)
	}
	// rtp,streams rows: start end src sport dst dport SSRC payload... pkts lost (pct)
	row := regexp.MustCompile(`(?m)^\s+[\d.]+\s+[\d.]+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+0x([0-9A-F]+)\s+(.+?)\s+(\d+)\s+(-?\d+) \(`)
	rows := row.FindAllStringSubmatch(out, -1)
	if len(rows) != 2*n {
		t.Fatalf("rtp,streams lists %d streams, want %d:\n%s", len(rows), 2*n, out)
	}
	bySSRC := map[uint32]Stream{}
	for _, c := range sum.Calls {
		for _, s := range c.Streams {
			bySSRC[s.SSRC] = s
		}
	}
	for _, r := range rows {
		ssrc, _ := strconv.ParseUint(r[5], 16, 32)
		pkts, _ := strconv.Atoi(r[7])
		s, ok := bySSRC[uint32(ssrc)]
		if !ok || !strings.Contains(r[6], "g711U") || r[8] != "0" || pkts != s.Packets {
			t.Errorf("stream %s: payload %q, %d packets (want %d), lost %s", r[5], r[6], pkts, s.Packets, r[8])
		}
	}

	// Answered calls: one 200 OK to an INVITE per Call-ID.
	ids := run(t, tshark, "-r", path, "-Y", `sip.Status-Code == 200 && sip.CSeq.method == "INVITE"`, "-T", "fields", "-e", "sip.Call-ID")
	answered := map[string]bool{}
	for _, id := range strings.Fields(ids) {
		answered[id] = true
	}
	for _, c := range sum.Calls {
		if !answered[c.CallID] {
			t.Errorf("call %s not answered per tshark", c.CallID)
		}
	}
	if len(answered) != n {
		t.Errorf("%d answered calls, want %d", len(answered), n)
	}

	// RFC 4733: every digit's packets decode as the right event, three
	// with the end bit.
	ev := run(t, tshark, "-r", path, "-Y", "rtpevent", "-T", "fields", "-e", "rtpevent.event_id", "-e", "rtpevent.end_of_event")
	ends := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(ev), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == "1" {
			ends[f[0]]++
		}
	}
	if ends["5"] != 3*n || ends["11"] != 3*n {
		t.Errorf("end packets per event: %v, want 3 per call for events 5 and 11", ends)
	}

	// Nothing malformed, no checksum errors, no expert warnings.
	bad := run(t, tshark, "-r", path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-Y", "_ws.malformed || _ws.expert.severity >= warning || ip.checksum.status == 2 || udp.checksum.status == 2")
	if strings.TrimSpace(bad) != "" {
		t.Errorf("tshark flags frames:\n%s", bad)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}
