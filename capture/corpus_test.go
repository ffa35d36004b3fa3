package capture

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
)

const testMasterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// testStore opens a store in a temp dir and checks the metadata's
// invariants when the test ends.
func testStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(store.Config{DataDir: t.TempDir(), Keys: store.KeySource{Env: testMasterKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Meta().Check(); err != nil {
			t.Errorf("metadata invariants: %v", err)
		}
		st.Close()
	})
	return st
}

// importInto imports capture files into a fresh store and returns it with
// the engine's call summaries.
func importInto(t *testing.T, cfg Config, files ...string) (*store.Store, []CallSummary, *Stats) {
	t.Helper()
	st := testStore(t)
	e := New(cfg, StoreSink(st))
	for _, f := range files {
		r := e.NewReader()
		if _, err := ImportFile(context.Background(), r, f); err != nil {
			t.Fatalf("import %s: %v", f, err)
		}
	}
	e.Close()
	return st, e.Summaries(), e.Stats()
}

func recordings(t *testing.T, st *store.Store) []meta.Recording {
	t.Helper()
	page, err := st.Meta().Search(meta.Query{Scope: meta.Scope{All: true}, Limit: 500, Ascending: true})
	if err != nil {
		t.Fatal(err)
	}
	return page.Recordings
}

// goldenPacket is one RTP packet as tshark decoded it.
type goldenPacket struct {
	src, dst string
	ssrc     string
	seq      uint16
	ts       uint32
	pt       int
	payload  []byte
}

func readGolden(t *testing.T, path string) []goldenPacket {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goldenPacket
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 {
			continue
		}
		seq, _ := strconv.Atoi(fs[3])
		ts, _ := strconv.ParseUint(fs[4], 10, 32)
		pt, _ := strconv.Atoi(fs[5])
		var pl []byte
		if len(fs) > 6 {
			pl, _ = hex.DecodeString(fs[6])
		}
		out = append(out, goldenPacket{src: fs[0], dst: fs[1], ssrc: fs[2], seq: uint16(seq), ts: uint32(ts), pt: pt, payload: pl})
	}
	return out
}

func readInt(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCorpusFidelity imports every capture in testdata/corpus and checks
// it against what tshark found in the same file: one recording per answered
// call (or per pair of RTP flows in captures without SIP), and every
// lossless G.711 stream's samples in a channel of a recording, sample for
// sample, at the offsets its RTP timestamps give.
func TestCorpusFidelity(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/*.pcap")
	if len(files) == 0 {
		t.Fatal("no captures in testdata/corpus")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			st, sums, stats := importInto(t, Config{}, f)
			recs := recordings(t, st)
			golden := readGolden(t, "testdata/corpus/golden/"+name+".rtp")
			answered := readInt(t, "testdata/corpus/golden/"+name+".answered")
			want := answered
			if stats.SIPMessages.Load() == 0 {
				want = rtpPairs(golden)
			}
			if len(recs) != want {
				t.Errorf("%d recordings, want %d (tshark: %d answered calls, %d RTP flow pairs); summaries: %+v", len(recs), want, answered, rtpPairs(golden), sums)
			}
			for _, r := range recs {
				if r.Status != meta.StatusComplete {
					t.Errorf("recording %s status %s", r.ID, r.Status)
				}
			}
			checkG711Streams(t, st, recs, golden, stats.AfterEnd.Load())
		})
	}
}

// rtpPairs counts the calls RTP flows make: a flow and its reverse are one.
func rtpPairs(g []goldenPacket) int {
	pairs := map[string]bool{}
	for _, p := range g {
		a, b := p.src, p.dst
		if a > b {
			a, b = b, a
		}
		pairs[a+" "+b] = true
	}
	return len(pairs)
}

type goldenStream struct {
	key     string
	pt      int
	packets []goldenPacket
}

func checkG711Streams(t *testing.T, st *store.Store, recs []meta.Recording, golden []goldenPacket, afterEnd int64) {
	t.Helper()
	streams := map[string]*goldenStream{}
	var keys []string
	// Continuity counts every packet of the SSRC (telephone events share
	// its sequence numbers); the samples compared are the G.711 ones.
	all := map[string][]goldenPacket{}
	for _, p := range golden {
		k := p.src + ">" + p.dst + "/" + p.ssrc
		all[k] = append(all[k], p)
	}
	for k, ps := range all {
		if !lossless(ps) {
			continue
		}
		for _, p := range ps {
			if p.pt != 0 && p.pt != 8 {
				continue
			}
			s := streams[k]
			if s == nil {
				s = &goldenStream{key: k, pt: p.pt}
				streams[k] = s
				keys = append(keys, k)
			}
			s.packets = append(s.packets, p)
		}
	}
	sort.Strings(keys)
	// Render every playable recording once.
	type rendered struct{ ch [2][]int16 }
	var pcm []rendered
	for _, r := range recs {
		if r.File.Format != meta.FormatGrid {
			continue
		}
		var b strings.Builder
		if err := st.Render(context.Background(), r.ID, &b, audio.RenderOptions{Format: audio.OutputPCM16, Layout: audio.LayoutStereo, Rate: 8000}); err != nil {
			t.Fatalf("render %s: %v", r.ID, err)
		}
		raw := []byte(b.String())
		var rr rendered
		for i := 0; i+4 <= len(raw); i += 4 {
			rr.ch[0] = append(rr.ch[0], int16(binary.LittleEndian.Uint16(raw[i:])))
			rr.ch[1] = append(rr.ch[1], int16(binary.LittleEndian.Uint16(raw[i+2:])))
		}
		pcm = append(pcm, rr)
	}
	checked := 0
	for _, k := range keys {
		s := streams[k]
		if len(s.packets) < 5 {
			continue
		}
		if !plainG711(s.packets) {
			t.Logf("stream %s: payload length differs from the timestamp step (SRTP tags or odd framing): not compared", k)
			continue
		}
		dec := func(p []byte) []int16 {
			out := make([]int16, len(p))
			if s.pt == 0 {
				audio.DecodeUlaw(out, p)
			} else {
				audio.DecodeAlaw(out, p)
			}
			return out
		}
		for _, seg := range segments(s.packets) {
			// Anchor on a packet whose samples are not all the same (silence
			// would match anywhere), not the first (it may straddle tick 0).
			anchor := -1
			for i := 1; i < len(seg); i++ {
				if !constant(dec(seg[i].payload)) {
					anchor = i
					break
				}
			}
			if anchor < 0 {
				continue
			}
			found, bad := false, 0
			for _, rr := range pcm {
				for ch := range rr.ch {
					at := indexOf(rr.ch[ch], dec(seg[anchor].payload))
					if at < 0 {
						continue
					}
					found = true
					base := at - int(seg[anchor].ts-seg[0].ts)
					for i, p := range seg {
						off := base + int(p.ts-seg[0].ts)
						want := dec(p.payload)
						if off < 0 && i == 0 {
							continue
						}
						if off < 0 || off+len(want) > len(rr.ch[ch]) || !equal(rr.ch[ch][off:off+len(want)], want) {
							if bad < 3 {
								t.Logf("stream %s packet seq %d ts %d at sample %d of %d differs", k, p.seq, p.ts, off, len(rr.ch[ch]))
							}
							bad++
						}
					}
					break
				}
				if found {
					break
				}
			}
			switch {
			case !found && afterEnd >= int64(len(seg)):
				t.Logf("stream %s (%d packets) is not recorded: it trailed a call that had ended (%d packets dropped as after-end)", k, len(seg), afterEnd)
			case !found:
				t.Errorf("stream %s (%d packets from seq %d, PT %d) is in no recording", k, len(seg), seg[0].seq, s.pt)
			case bad > 0:
				t.Errorf("stream %s: %d of %d packets do not match the recording sample for sample", k, bad, len(seg))
			}
			checked++
		}
	}
	t.Logf("%d lossless G.711 stream segments checked sample for sample", checked)
}

// plainG711 reports whether payload lengths match the timestamp steps, as
// plain G.711 (one byte per sample) must.
func plainG711(ps []goldenPacket) bool {
	bad := 0
	for i := 1; i < len(ps); i++ {
		if d := ps[i].ts - ps[i-1].ts; d < 2000 && int(d) != len(ps[i-1].payload) {
			bad++
		}
	}
	return bad*20 < len(ps)
}

// segments splits a stream where its timestamps jump (a sender that
// restarted its clock): each part is placed on its own.
func segments(ps []goldenPacket) [][]goldenPacket {
	var out [][]goldenPacket
	start := 0
	for i := 1; i < len(ps); i++ {
		if d := int32(ps[i].ts - ps[i-1].ts); d <= 0 || d > 8000*5 {
			out = append(out, ps[start:i])
			start = i
		}
	}
	return append(out, ps[start:])
}

func constant(s []int16) bool {
	for _, v := range s {
		if v != s[0] {
			return false
		}
	}
	return true
}

func lossless(ps []goldenPacket) bool {
	for i := 1; i < len(ps); i++ {
		if ps[i].seq != ps[i-1].seq+1 || ps[i].ssrc != ps[0].ssrc {
			return false
		}
	}
	return true
}

func indexOf(hay, needle []int16) int {
	if len(needle) == 0 {
		return -1
	}
outer:
	for i := 0; i+len(needle) <= len(hay); i++ {
		for j := range needle {
			if hay[i+j] != needle[j] {
				continue outer
			}
		}
		return i
	}
	return -1
}

func equal(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
