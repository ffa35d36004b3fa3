package capture

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sharedCorpus is the project's shared corpus beside the repository (CI
// has it; a clone alone does not).
const sharedCorpus = "../../shared/corpus/pcaps"

// TestSharedCorpus imports every capture of the shared corpus, including
// the copyleft ones that are not copied into this repository, and checks
// each against tshark run on the same file: recordings per answered call
// (or RTP flow pair), and lossless G.711 streams sample for sample.
func TestSharedCorpus(t *testing.T) {
	files, _ := filepath.Glob(sharedCorpus + "/*/*")
	if len(files) == 0 {
		t.Skipf("shared corpus not found at %s: testdata/corpus covers the permissively licensed captures", sharedCorpus)
	}
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skipf("tshark not installed (Debian package tshark): it is the reference the captures are checked against")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			answered := filepath.Join(dir, "answered")
			rtpFile := filepath.Join(dir, "rtp")
			script := `set -eu
tshark -r "$1" -d tcp.port==5060,sip -Y 'sip.CSeq.method == "INVITE" && sip.Status-Code >= 200 && sip.Status-Code < 300' -T fields -e sip.Call-ID 2>/dev/null | sort -u | grep -c . > "$2" || true
tshark -r "$1" -o rtp.heuristic_rtp:TRUE -Y 'rtp && !rtcp && !icmp' -T fields -E separator=' ' -e ip.src -e udp.srcport -e ip.dst -e udp.dstport -e rtp.ssrc -e rtp.seq -e rtp.timestamp -e rtp.p_type -e rtp.payload 2>/dev/null | awk '{print $1":"$2, $3":"$4, $5, $6, $7, $8, $9}' > "$3"`
			cmd := exec.Command("sh", "-c", script, "sh", f, answered, rtpFile)
			cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(tshark)+":"+os.Getenv("PATH"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("tshark: %v %s", err, out)
			}
			st, sums, stats := importInto(t, Config{}, f)
			recs := recordings(t, st)
			golden := readGolden(t, rtpFile)
			want := readInt(t, answered)
			if stats.SIPMessages.Load() == 0 {
				want = rtpPairs(golden)
			}
			// Calls over SCTP or WebSocket are not decoded (issue scope: UDP
			// and TCP), so tshark's answered calls there are not ours.
			if strings.Contains(name, "sctp") || strings.Contains(name, "websocket") {
				t.Logf("%d recordings; tshark %d answered (transport not captured by design)", len(recs), want)
			} else if len(recs) != want {
				t.Errorf("%d recordings, want %d; summaries %+v", len(recs), want, sums)
			}
			checkG711Streams(t, st, recs, golden, stats.AfterEnd.Load())
		})
	}
}
