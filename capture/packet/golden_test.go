package packet

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "regenerate testdata/golden with tshark")

// summary renders what the decoder made of each frame, one line per frame:
//
//	frame kind src dst sport dport payload-length
//
// kind is udp, tcp, frag (a fragment that did not complete a datagram),
// other (IP without UDP/TCP) or nonip. The same format is produced from
// tshark's fields by tsharkSummary, so the two can be compared line by line.
func summary(tb testing.TB, path string) []string {
	tb.Helper()
	link, frames := readCapture(tb, path)
	d := &Decoder{Defrag: NewDefragmenter(DefragConfig{})}
	var out []string
	for i, f := range frames {
		var p Packet
		err := d.Decode(link, f.ts, f.data, &p)
		n := i + 1
		switch {
		case errors.Is(err, ErrUnsupported) && !p.Src.IsValid():
			out = append(out, fmt.Sprintf("%d nonip", n))
		case err != nil:
			out = append(out, fmt.Sprintf("%d error %v", n, err))
		case p.Flags&FlagFragment != 0:
			out = append(out, fmt.Sprintf("%d frag %v %v", n, p.Src, p.Dst))
		case p.Protocol == ProtoUDP:
			out = append(out, fmt.Sprintf("%d udp %v %v %d %d %d", n, p.Src, p.Dst, p.SrcPort, p.DstPort, len(p.Payload)))
		case p.Protocol == ProtoTCP:
			out = append(out, fmt.Sprintf("%d tcp %v %v %d %d %d", n, p.Src, p.Dst, p.SrcPort, p.DstPort, len(p.Payload)))
		default:
			out = append(out, fmt.Sprintf("%d other %v %v", n, p.Src, p.Dst))
		}
	}
	return out
}

// tsharkSummary produces summary's format from tshark's dissection. With
// -E occurrence=l, fields of tunnelled packets come from the innermost
// header, as in Packet.
func tsharkSummary(path string) ([]string, error) {
	fields := []string{"frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto",
		"udp.srcport", "udp.dstport", "udp.length", "tcp.srcport", "tcp.dstport", "tcp.len",
		"ip.flags.mf", "ip.frag_offset", "icmp.type", "icmpv6.type"}
	args := []string{"-r", path, "-n", "-T", "fields", "-E", "occurrence=l", "-E", "separator=|"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command("tshark", args...)
	cmd.Stderr = nil
	raw, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("tshark %s: %w", path, err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		v := strings.Split(line, "|")
		if len(v) != len(fields) {
			return nil, fmt.Errorf("tshark line %q: %d fields", line, len(v))
		}
		n, src, dst := v[0], v[1], v[2]
		if v[3] != "" && (src == "" || v[5] == "41") {
			src, dst = v[3], v[4]
		}
		icmp := v[14] != "" || v[15] != ""
		switch {
		case src == "":
			out = append(out, n+" nonip")
		case v[6] != "" && !icmp:
			var l int
			fmt.Sscan(v[8], &l)
			out = append(out, fmt.Sprintf("%s udp %s %s %s %s %d", n, src, dst, v[6], v[7], l-8))
		case v[9] != "" && !icmp:
			out = append(out, fmt.Sprintf("%s tcp %s %s %s %s %s", n, src, dst, v[9], v[10], v[11]))
		case v[12] == "1" || (v[13] != "" && v[13] != "0"):
			out = append(out, fmt.Sprintf("%s frag %s %s", n, src, dst))
		default:
			out = append(out, fmt.Sprintf("%s other %s %s", n, src, dst))
		}
	}
	return out, nil
}

// TestGolden compares the decoder with tshark on the committed captures,
// through golden files so that the test needs no tshark.
func TestGolden(t *testing.T) {
	captures, _ := filepath.Glob("testdata/*.pcap*")
	if len(captures) < 4 {
		t.Fatalf("testdata captures missing: %v", captures)
	}
	for _, c := range captures {
		name := filepath.Base(c)
		t.Run(name, func(t *testing.T) {
			golden := filepath.Join("testdata", "golden", name+".txt")
			if *update {
				lines, err := tsharkSummary(c)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			compareLines(t, summary(t, c), strings.Split(strings.TrimRight(string(want), "\n"), "\n"))
		})
	}
}

func compareLines(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d frames, want %d", len(got), len(want))
	}
	bad := 0
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			if bad++; bad <= 10 {
				t.Errorf("got  %s\nwant %s", got[i], want[i])
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d lines differ", bad)
	}
}
