package capture

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Three corpus captures from different years: 2020-04-18 (SIP over TCP,
// five calls), 2005-09-09 (a PCMA call with DTMF) and 2016-11-26 (G.722).
var clockFiles = []string{"sip-tcp.pcap", "SIP_DTMF2.pcap", "sip-rtp-g722.pcap"}

// feedFiles imports files one after another: through a reader of their own
// each, as `callvault import a.pcap b.pcap` does, or all through one reader,
// as a capture made of them end to end (mergecap -a) would be.
func feedFiles(readerPerFile bool, files ...string) batchFeed {
	return func(t *testing.T, r *Reader) {
		for i, f := range files {
			if i > 0 && readerPerFile {
				r = r.e.NewReader()
			}
			if _, err := ImportFile(context.Background(), r, filepath.Join("testdata", "corpus", f)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestImportAcrossClockJumps imports captures whose clocks jump backwards
// by 15 years and forwards by 11 together, in both ways a user can: the
// recordings must be exactly those of importing each file on its own
// (summaries, start times, bookmarks, quality, every stored byte). Before,
// the 2005 call was closed at the 2020 clock: 15 years of silence, 55 GB
// written before the disk was full.
func TestImportAcrossClockJumps(t *testing.T) {
	var alone []string
	for _, f := range clockFiles {
		recs, _ := recordingsOf(t, Config{}, 0, feedFiles(true, f))
		alone = append(alone, recs...)
	}
	slices.Sort(alone)
	if len(alone) != 7 {
		t.Fatalf("%d recordings of the three files alone, want 7:\n%s", len(alone), lines(alone))
	}
	for _, perFile := range []bool{true, false} {
		for _, batch := range []int{1, 0} {
			together, st := recordingsOf(t, Config{}, batch, feedFiles(perFile, clockFiles...))
			// The 2005 capture ends before its call's BYE: alone, the
			// call ends when the import does; together, at the jump.
			for i, r := range together {
				together[i] = strings.Replace(r, `"endReason":"capture gap"`, `"endReason":"capture stopped"`, 1)
			}
			slices.Sort(together)
			if !slices.Equal(together, alone) {
				t.Errorf("reader per file %v, batch %d: the files imported together differ from each alone:\ntogether:\n%s\nalone:\n%s",
					perFile, batch, lines(together), lines(alone))
			}
			if n := st.ClockJumps.Load(); n != 2 {
				t.Errorf("reader per file %v, batch %d: %d clock jumps counted, want 2", perFile, batch, n)
			}
		}
	}
}

// feedCut feeds the frames of a corpus file up to a capture time.
func feedCut(file string, cut time.Time) batchFeed {
	return func(t *testing.T, r *Reader) {
		err := readCapture(filepath.Join("testdata", "corpus", file), func(link packet.LinkType, ts time.Time, frame []byte) error {
			if ts.After(cut) {
				return errStopFeed
			}
			r.Handle(link, ts, frame)
			return nil
		})
		if err != nil && !errors.Is(err, errStopFeed) {
			t.Fatal(err)
		}
	}
}

// TestImportCallOpenAtClockJump: a call still open when the clock jumps
// to another capture's (its own capture cut short) ends where its media
// ended, "capture gap", with exactly the recording the cut capture gives
// alone; the other capture's call is recorded as on its own. The jump is
// forward into the next file of an import, and back within one capture.
func TestImportCallOpenAtClockJump(t *testing.T) {
	cases := []struct {
		name          string
		cutFile, next string
		cut           time.Time
		callID        string
		dur           time.Duration // of the cut call's media
		nextReader    bool
	}{
		// 26 s into the 2005 call (12:03:19.66), before its DTMF digits.
		{"next file 11 years later", "SIP_DTMF2.pcap", "sip-rtp-g722.pcap", time.Date(2005, 9, 9, 12, 3, 45, 0, time.UTC),
			"25672@192.168.105.110", 25380 * time.Millisecond, true},
		// 3.8 s into the 2016 call (15:08:26.22), before its BYE.
		{"same capture 11 years back", "sip-rtp-g722.pcap", "SIP_DTMF2.pcap", time.Date(2016, 11, 26, 15, 8, 30, 0, time.UTC),
			"1-2161@10.0.2.20", 3780 * time.Millisecond, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs, st := recordingsOf(t, Config{}, 0, func(t *testing.T, r *Reader) {
				feedCut(tc.cutFile, tc.cut)(t, r)
				if tc.nextReader {
					r = r.e.NewReader()
				}
				feedFiles(false, tc.next)(t, r)
			})
			if len(recs) != 2 || st.ClockJumps.Load() != 1 {
				t.Fatalf("%d recordings, %d clock jumps; want 2 and 1:\n%s", len(recs), st.ClockJumps.Load(), lines(recs))
			}
			var cutCall struct{ Sum CallSummary }
			for i, r := range recs {
				if strings.Contains(r, tc.callID) {
					if err := json.Unmarshal([]byte(r), &cutCall); err != nil {
						t.Fatal(err)
					}
					recs[i] = strings.Replace(r, `"endReason":"capture gap"`, `"endReason":"capture stopped"`, 1)
				}
			}
			s := cutCall.Sum
			if s.EndReason != "capture gap" || s.Packets == 0 {
				t.Errorf("the call cut by the jump: %+v (want ended by \"capture gap\" with its media)", s)
			}
			if d := time.Duration(s.DurationMs) * time.Millisecond; d < tc.dur-time.Second || d > tc.dur+time.Second {
				t.Errorf("the call cut by the jump lasts %v, want its media up to the cut (%v)", d, tc.dur)
			}
			want, _ := recordingsOf(t, Config{}, 0, feedCut(tc.cutFile, tc.cut))
			other, _ := recordingsOf(t, Config{}, 0, feedFiles(true, tc.next))
			want = append(want, other...)
			slices.Sort(want)
			slices.Sort(recs)
			if !slices.Equal(recs, want) {
				t.Errorf("imported across the jump:\n%s\nwant the cut capture's and the other capture's recordings alone:\n%s", lines(recs), lines(want))
			}
		})
	}
}

var errStopFeed = errors.New("enough frames")

// readCapture hands each frame of a classic pcap file to fn, until fn
// returns an error.
func readCapture(path string, fn func(packet.LinkType, time.Time, []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, err := pcapgo.NewReader(f)
	if err != nil {
		return err
	}
	for {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(packet.LinkType(pr.LinkType()), ci.Timestamp, data); err != nil {
			return err
		}
	}
}

// TestImportRotatedFiles: a capture split in two files, as tcpdump -G or
// -C rotates them, imports as one: a reader per file, and the call that
// spans both is the same recording, byte for byte, as from the whole file.
func TestImportRotatedFiles(t *testing.T) {
	src := filepath.Join("testdata", "corpus", "SIP_DTMF2.pcap")
	const split = 700 // of its 1,360 frames: in the middle of the call's media
	dir := t.TempDir()
	parts := [2]string{filepath.Join(dir, "trunk-1.pcap"), filepath.Join(dir, "trunk-2.pcap")}
	var ws [2]*pcapgo.Writer
	for i, p := range parts {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ws[i] = pcapgo.NewWriter(f)
	}
	var n [2]int
	err := readCapture(src, func(link packet.LinkType, ts time.Time, frame []byte) error {
		i := 0
		if n[0] == split {
			i = 1
		}
		if n[i] == 0 {
			if err := ws[i].WriteFileHeader(65536, layers.LinkType(link)); err != nil {
				return err
			}
		}
		n[i]++
		return ws[i].WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(frame), Length: len(frame)}, frame)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n[0] < 100 || n[1] < 100 {
		t.Fatalf("split %d + %d frames: not both halves of the call", n[0], n[1])
	}
	whole, _ := recordingsOf(t, Config{}, 0, feedFiles(true, "SIP_DTMF2.pcap"))
	rotated, st := recordingsOf(t, Config{}, 0, func(t *testing.T, r *Reader) {
		for i, p := range parts {
			if i > 0 {
				r = r.e.NewReader()
			}
			if _, err := ImportFile(context.Background(), r, p); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !slices.Equal(rotated, whole) || st.ClockJumps.Load() != 0 {
		t.Errorf("%d clock jumps; the two files gave:\n%s\nthe whole capture:\n%s", st.ClockJumps.Load(), lines(rotated), lines(whole))
	}
}
