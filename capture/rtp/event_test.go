package rtp

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ev(event uint8, end bool, dur uint16) TelephoneEvent {
	return TelephoneEvent{Event: event, End: end, Volume: 10, Duration: dur}
}

func TestTelephoneEventUnmarshal(t *testing.T) {
	var e TelephoneEvent
	if err := e.Unmarshal([]byte{11, 0x8A, 0x03, 0xC0}); err != nil {
		t.Fatal(err)
	}
	if e.Event != 11 || !e.End || e.Volume != 10 || e.Duration != 960 {
		t.Fatalf("%+v", e)
	}
	if err := e.Unmarshal([]byte{1, 2, 3}); !errors.Is(err, ErrEventShort) {
		t.Fatalf("err = %v", err)
	}
	for ev, want := range map[uint8]byte{0: '0', 9: '9', 10: '*', 11: '#', 12: 'A', 15: 'D', 16: '!', 17: '?', 255: '?'} {
		if got := EventSymbol(ev); got != want {
			t.Errorf("EventSymbol(%d) = %c", ev, got)
		}
	}
}

type evPkt struct {
	ts     uint32
	marker bool
	e      TelephoneEvent
}

func runTracker(pkts []evPkt) []Digit {
	var tr EventTracker
	var out []Digit
	for i, p := range pkts {
		out = append(out, tr.Observe(p.ts, p.marker, p.e, int64(i))...)
	}
	return append(out, tr.Flush()...)
}

func TestEventTracker(t *testing.T) {
	press := func(ts uint32, event uint8, ends int) []evPkt {
		ps := []evPkt{{ts, true, ev(event, false, 160)}, {ts, false, ev(event, false, 320)}, {ts, false, ev(event, false, 480)}}
		for i := 0; i < ends; i++ {
			ps = append(ps, evPkt{ts, false, ev(event, true, 640)})
		}
		return ps
	}
	cat := func(parts ...[]evPkt) []evPkt {
		var out []evPkt
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cases := []struct {
		name string
		in   []evPkt
		want string // symbol:duration:end per digit
	}{
		{"three end packets, one digit", press(1000, 5, 3), "5:640:true"},
		{"two digits", cat(press(1000, 1, 3), press(5000, 2, 3)), "1:640:true 2:640:true"},
		{"same digit twice", cat(press(1000, 7, 3), press(5000, 7, 3)), "7:640:true 7:640:true"},
		{"all end packets lost, next event closes it", cat(press(1000, 1, 0), press(5000, 2, 3)), "1:480:false 2:640:true"},
		{"all end packets lost at stream end, Flush closes it", press(1000, 3, 0), "3:480:false"},
		{"start lost", press(1000, 4, 3)[2:], "4:640:true"},
		{"only one end packet", press(1000, 4, 3)[5:], "4:640:true"},
		{"late packet of the previous event", cat(press(1000, 1, 3), press(5000, 2, 1)[:1], press(1000, 1, 3)[4:5], press(5000, 2, 3)[1:]), "1:640:true 2:640:true"},
		{"end then a late update of the same event", cat(press(1000, 8, 3), []evPkt{{1000, false, ev(8, false, 480)}}), "8:640:true"},
		{"timestamp wraps", cat(press(0xFFFFFF00, 1, 3), press(0x100, 2, 3)), "1:640:true 2:640:true"},
		{"long event in segments", []evPkt{
			{1000, true, ev(0, false, 8000)}, {1000, false, ev(0, false, 0xFFFF)},
			{1000 + 0xFFFF, false, ev(0, false, 1000)}, {1000 + 0xFFFF, false, ev(0, true, 2000)}, {1000 + 0xFFFF, false, ev(0, true, 2000)},
		}, fmt.Sprintf("0:%d:true", 0xFFFF+2000)},
		{"conflicting event on the same timestamp ignored", cat(press(1000, 1, 0), []evPkt{{1000, false, ev(2, true, 640)}}, press(1000, 1, 3)[3:]), "1:640:true"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, d := range runTracker(c.in) {
				got = append(got, fmt.Sprintf("%c:%d:%v", d.Symbol, d.Duration, d.EndSeen))
			}
			if g := strings.Join(got, " "); g != c.want {
				t.Fatalf("got %q, want %q", g, c.want)
			}
		})
	}
}

// TestEventTrackerRealCapture feeds the telephone-event packets of real
// captures to the tracker and compares with what tshark saw
// (testdata/golden/*.events, from testdata/gen_golden.sh): one digit per
// event, same start timestamp, event and final duration.
func TestEventTrackerRealCapture(t *testing.T) {
	for _, c := range []struct {
		file string
		pt   uint8
	}{{"dtmf.pcap", 101}, {"SIP_DTMF2.pcap", 96}} {
		t.Run(c.file, func(t *testing.T) {
			got := map[uint32][]string{}
			trackers := map[uint32]*EventTracker{}
			for _, d := range readUDP(t, filepath.Join("testdata", c.file)) {
				var p Packet
				if !LooksLikeRTP(d.Payload) || p.Unmarshal(d.Payload) != nil || p.PayloadType != c.pt {
					continue
				}
				var e TelephoneEvent
				if err := e.Unmarshal(p.Payload); err != nil {
					t.Fatal(err)
				}
				tr := trackers[p.SSRC]
				if tr == nil {
					tr = &EventTracker{}
					trackers[p.SSRC] = tr
				}
				for _, dg := range tr.Observe(p.Timestamp, p.Marker, e, d.Arrival) {
					got[p.SSRC] = append(got[p.SSRC], fmt.Sprintf("%#x %d %d %d 1", p.SSRC, dg.StartTS, dg.Event, dg.Duration))
				}
			}
			for ssrc, tr := range trackers {
				if ds := tr.Flush(); len(ds) != 0 {
					t.Errorf("ssrc %#x: digit left open: %+v", ssrc, ds)
				}
			}
			f, err := os.Open(filepath.Join("testdata", "golden", strings.TrimSuffix(c.file, ".pcap")+".events"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want := map[uint32][]string{}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var ssrc uint32
				fmt.Sscanf(sc.Text(), "%v", &ssrc)
				want[ssrc] = append(want[ssrc], sc.Text())
			}
			if len(want) == 0 {
				t.Fatal("empty golden file")
			}
			for ssrc, w := range want {
				if g := strings.Join(got[ssrc], "\n"); g != strings.Join(w, "\n") {
					t.Errorf("ssrc %#x:\ngot\n%s\nwant\n%s", ssrc, g, strings.Join(w, "\n"))
				}
			}
		})
	}
}

// TestEventTrackerSIPp is a development check against the SIPp DTMF
// captures (GPL-2.0: read from the shared corpus, not copied): each file
// holds one key press whose digit is in its name.
func TestEventTrackerSIPp(t *testing.T) {
	files, _ := filepath.Glob("/work/shared/corpus/pcaps/sipp/dtmf_2833_*.pcap")
	if len(files) == 0 {
		t.Skip("SIPp corpus not present (dev check only, GPL-2.0 files are not copied)")
	}
	for _, file := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "dtmf_2833_"), ".pcap")
		want := map[string]byte{"pound": '#', "star": '*'}[name]
		if want == 0 {
			want = name[0]
		}
		var tr EventTracker
		var got []Digit
		for _, d := range readUDP(t, file) {
			var p Packet
			var e TelephoneEvent
			if p.Unmarshal(d.Payload) != nil || e.Unmarshal(p.Payload) != nil {
				continue
			}
			got = append(got, tr.Observe(p.Timestamp, p.Marker, e, d.Arrival)...)
		}
		got = append(got, tr.Flush()...)
		if len(got) != 1 || got[0].Symbol != want || !got[0].EndSeen {
			t.Errorf("%s: got %+v, want one %c", file, got, want)
		}
	}
}

func TestEventTrackerNoAllocs(t *testing.T) {
	var tr EventTracker
	ts := uint32(0)
	if n := testing.AllocsPerRun(1000, func() {
		ts += 2000
		tr.Observe(ts, true, ev(1, false, 160), 0)
		tr.Observe(ts, false, ev(1, true, 320), 0)
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// FuzzTelephoneEvent parses arbitrary payloads and feeds a packet sequence
// derived from the input to the tracker: no panic, at most two digits per
// packet, and never a digit reported twice (same start timestamp twice in
// a row).
func FuzzTelephoneEvent(f *testing.F) {
	f.Add([]byte{5, 0x0A, 0x00, 0xA0, 5, 0x8A, 0x01, 0x40, 5, 0x8A, 0x01, 0x40})
	f.Add([]byte{1, 0x0A, 0xFF, 0xFF, 1, 0x8A, 0x00, 0x10})
	f.Add([]byte{11, 0x80, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e TelephoneEvent
		if err := e.Unmarshal(b); err != nil {
			if len(b) >= 4 {
				t.Fatalf("rejected %d bytes: %v", len(b), err)
			}
			return
		}
		if e.Volume > 63 {
			t.Fatalf("volume %d", e.Volume)
		}
		var tr EventTracker
		var lastStart uint32
		have := false
		for i := 0; i+4 <= len(b); i += 4 {
			var pe TelephoneEvent
			_ = pe.Unmarshal(b[i:])
			// timestamps jump by the low bits of the next byte, so the
			// sequence mixes repeats, reordering and new events
			ts := uint32(b[i]&0x3) * 0x1000
			ds := tr.Observe(ts, b[i+1]&0x40 != 0, pe, int64(i))
			if len(ds) > 2 {
				t.Fatalf("%d digits from one packet", len(ds))
			}
			for _, d := range ds {
				if have && d.StartTS == lastStart && d.Event == pe.Event {
					t.Fatalf("digit at %d reported twice", d.StartTS)
				}
				lastStart, have = d.StartTS, true
			}
		}
		if len(tr.Flush()) > 1 {
			t.Fatal("flush reported more than one digit")
		}
	})
}
