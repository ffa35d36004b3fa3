package synth

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/callvault/callvault/capture/rtp"
	"github.com/callvault/callvault/capture/sip"
	"github.com/gopacket/gopacket/pcapgo"
)

var testDTMF = []Digit{{Symbol: '5', At: 500 * time.Millisecond}, {Symbol: '#', At: 1200 * time.Millisecond, Length: 160 * time.Millisecond}}

func generate(t testing.TB, cfg Config) ([]byte, Summary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := Write(&buf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), sum
}

// frameRec is one decoded frame of a generated file.
type frameRec struct {
	ts       time.Time
	src, dst netip.AddrPort
	sip      bool
	method   string
	status   int
	callID   string
	rtp      rtp.Packet
}

// decodeAll reads a generated pcap back with gopacket's pcap reader and our
// own decoders (Ethernet/IPv4/UDP, SIP, RTP), checking what every decoder
// can check on its own.
func decodeAll(t testing.TB, file []byte) []frameRec {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != 1 {
		t.Fatalf("link type %d, want Ethernet", r.LinkType())
	}
	var dec packet.Decoder
	var p packet.Packet
	var msg sip.Message
	var out []frameRec
	var last time.Time
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ci.Timestamp.Before(last) {
			t.Fatalf("frame %d at %v before the previous one (%v)", len(out)+1, ci.Timestamp, last)
		}
		last = ci.Timestamp
		if err := dec.Decode(packet.LinkType(r.LinkType()), ci.Timestamp, data, &p); err != nil {
			t.Fatalf("frame %d: %v", len(out)+1, err)
		}
		if p.Protocol != packet.ProtoUDP || p.IPVersion != 4 {
			t.Fatalf("frame %d: protocol %d IPv%d", len(out)+1, p.Protocol, p.IPVersion)
		}
		if !checksumOK(data) {
			t.Fatalf("frame %d: bad IPv4 or UDP checksum", len(out)+1)
		}
		f := frameRec{ts: ci.Timestamp, src: netip.AddrPortFrom(p.Src, p.SrcPort), dst: netip.AddrPortFrom(p.Dst, p.DstPort)}
		if p.SrcPort == SIPPort || p.DstPort == SIPPort {
			n, err := sip.Parse(p.Payload, &msg)
			if err != nil || n != len(p.Payload) {
				t.Fatalf("frame %d: SIP parse: %d of %d bytes, %v", len(out)+1, n, len(p.Payload), err)
			}
			f.sip, f.method, f.status, f.callID = true, string(msg.Method), msg.StatusCode, string(msg.CallID())
			if body, ok := msg.SDPBody(); ok {
				var s sip.SDP
				if err := sip.ParseSDP(body, &s); err != nil {
					t.Fatalf("frame %d: SDP: %v", len(out)+1, err)
				}
			}
		} else {
			pl := append([]byte(nil), p.Payload...)
			if err := f.rtp.Unmarshal(pl); err != nil {
				t.Fatalf("frame %d: RTP: %v", len(out)+1, err)
			}
		}
		out = append(out, f)
	}
	return out
}

// checksumOK verifies the IPv4 header checksum and the UDP checksum of an
// Ethernet frame the way a receiver does (RFC 1071: the sum including the
// checksum folds to 0xffff).
func checksumOK(f []byte) bool {
	ip := f[ethLen : ethLen+ipLen]
	if fold(sum(0, ip)) != 0xffff {
		return false
	}
	u := f[ethLen+ipLen:]
	return fold(sum(sum(0, ip[12:20])+17+uint32(len(u)), u)) == 0xffff
}

// TestWriteMatchesPlan reads a generated file back and checks every frame
// against the plan: SIP dialogs in order, and each RTP packet's SSRC,
// sequence number, timestamp and payload (audio or RFC 4733 event) for its
// slot, with no packet missing or extra.
func TestWriteMatchesPlan(t *testing.T) {
	cfg := Config{Calls: 7, Duration: 3 * time.Second, Seed: 42, DTMF: testDTMF}
	file, sum := generate(t, cfg)
	calls, err := Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	frames := decodeAll(t, file)
	if int64(len(frames)) != sum.Frames || sum.Frames != sum.SIP+sum.RTP {
		t.Fatalf("%d frames read, summary %+v", len(frames), sum)
	}
	if sum.SIP != 7*7 {
		t.Errorf("SIP messages %d, want 49", sum.SIP)
	}
	streams := map[uint32][2]int{} // ssrc → call, dir
	byID := map[string]int{}
	for i, c := range calls {
		if c.CallID != sum.Calls[i].CallID || c.Streams != sum.Calls[i].Streams {
			t.Fatalf("call %d: Plan and Write disagree", i)
		}
		for d := range c.Streams {
			streams[c.Streams[d].SSRC] = [2]int{i, d}
		}
		byID[c.CallID] = i
	}
	if len(streams) != 14 || len(byID) != 7 {
		t.Fatalf("SSRCs or Call-IDs not distinct: %d, %d", len(streams), len(byID))
	}
	seen := map[[3]int]bool{}
	sipSeq := map[string][]string{}
	payload := make([]byte, FrameBytes)
	var te rtp.TelephoneEvent
	for n, f := range frames {
		if f.sip {
			what := f.method
			if what == "" {
				what = itoa(f.status)
			}
			sipSeq[f.callID] = append(sipSeq[f.callID], what)
			continue
		}
		id, ok := streams[f.rtp.SSRC]
		if !ok {
			t.Fatalf("frame %d: unknown SSRC %#x", n+1, f.rtp.SSRC)
		}
		c, d := &calls[id[0]], id[1]
		s := &c.Streams[d]
		k := int(f.rtp.SequenceNumber - s.FirstSeq)
		key := [3]int{id[0], d, k}
		if seen[key] || k >= s.Slots {
			t.Fatalf("frame %d: call %d dir %d slot %d repeated or past %d slots", n+1, id[0], d, k, s.Slots)
		}
		seen[key] = true
		src, dst := c.Caller.RTP, c.Callee.RTP
		if d == CalleeToCaller {
			src, dst = dst, src
		}
		if f.src != src || f.dst != dst {
			t.Fatalf("frame %d: %v→%v, want %v→%v", n+1, f.src, f.dst, src, dst)
		}
		if want := s.First.Add(time.Duration(k) * Ptime); !f.ts.Equal(want) {
			t.Fatalf("frame %d: sent at %v, slot time %v", n+1, f.ts, want)
		}
		switch c.Kind(d, k) {
		case SlotAudio:
			c.Payload(d, k, payload)
			if f.rtp.PayloadType != PayloadPCMU || f.rtp.Timestamp != s.FirstTS+uint32(k*FrameBytes) ||
				!bytes.Equal(f.rtp.Payload, payload) || f.rtp.Marker != (k == 0) {
				t.Fatalf("frame %d: audio slot %d: PT %d ts %d marker %v, payload equal %v", n+1, k,
					f.rtp.PayloadType, f.rtp.Timestamp, f.rtp.Marker, bytes.Equal(f.rtp.Payload, payload))
			}
		case SlotEvent:
			i, _ := c.digitAt(d, k)
			dg := c.DTMF[i]
			if err := te.Unmarshal(f.rtp.Payload); err != nil {
				t.Fatalf("frame %d: %v", n+1, err)
			}
			j := k - dg.Slot
			wantEnd := j >= dg.Slots-1
			wantDur := uint16(min(j+1, dg.Slots) * FrameBytes)
			if f.rtp.PayloadType != PayloadEvent || f.rtp.Timestamp != dg.TS || te.Event != dg.Event ||
				te.End != wantEnd || te.Duration != wantDur || f.rtp.Marker != (j == 0) {
				t.Fatalf("frame %d: event packet %d of %q: %+v marker %v, want end %v duration %d",
					n+1, j, dg.Symbol, te, f.rtp.Marker, wantEnd, wantDur)
			}
		default:
			t.Fatalf("frame %d: slot %d should have been lost", n+1, k)
		}
	}
	want := []string{"INVITE", "100", "180", "200", "ACK", "BYE", "200"}
	for i, c := range calls {
		if got := sipSeq[c.CallID]; !equalStrings(got, want) {
			t.Errorf("call %d SIP: %v, want %v", i, got, want)
		}
		for d := range c.Streams {
			for k := 0; k < c.Streams[d].Slots; k++ {
				if !seen[[3]int{i, d, k}] {
					t.Fatalf("call %d dir %d slot %d never sent", i, d, k)
				}
			}
		}
		if len(c.DTMF) != 2 || c.Streams[CallerToCallee].Events != 5+2+8+2 {
			t.Errorf("call %d: digits %+v, events %d", i, c.DTMF, c.Streams[CallerToCallee].Events)
		}
		for _, dg := range c.DTMF {
			// Offset is the digit's start on the recording's timeline.
			if got := c.Streams[CallerToCallee].First.Add(time.Duration(dg.Slot) * Ptime).Sub(c.Answer); got != dg.Offset {
				t.Errorf("call %d digit %q: offset %v, slot says %v", i, dg.Symbol, dg.Offset, got)
			}
		}
	}
	// Calls overlap: the last INVITE comes before the first BYE.
	if !calls[len(calls)-1].Invite.Before(calls[0].Bye) {
		t.Errorf("calls do not overlap: last INVITE %v, first BYE %v", calls[len(calls)-1].Invite, calls[0].Bye)
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func equalStrings(a, b []string) bool {
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

// TestDeterministic: the same Config gives the same bytes; another seed
// changes SSRCs, Call-IDs and audio.
func TestDeterministic(t *testing.T) {
	cfg := Config{Calls: 3, Duration: time.Second, Seed: 7, DTMF: testDTMF[:1], LossPct: 3, Jitter: 3 * time.Millisecond}
	a, sa := generate(t, cfg)
	b, _ := generate(t, cfg)
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of one Config differ")
	}
	cfg.Seed = 8
	c, sc := generate(t, cfg)
	if bytes.Equal(a, c) || sa.Calls[0].CallID == sc.Calls[0].CallID || sa.Calls[0].Streams[0].SSRC == sc.Calls[0].Streams[0].SSRC {
		t.Fatal("another seed gave the same traffic")
	}
	// No two audio payloads are equal across calls and directions.
	seen := map[string]bool{}
	p := make([]byte, FrameBytes)
	for _, call := range sa.Calls {
		for d := range call.Streams {
			for k := 0; k < call.Streams[d].Slots; k++ {
				call.Payload(d, k, p)
				if seen[string(p)] {
					t.Fatalf("call %d dir %d slot %d repeats a payload", call.Index, d, k)
				}
				seen[string(p)] = true
			}
		}
	}
}

// TestImpairments: loss, reordering and jitter do what they say, stay
// deterministic, and keep the file in capture-time order (decodeAll).
func TestImpairments(t *testing.T) {
	cfg := Config{Calls: 4, Duration: 4 * time.Second, Seed: 3, LossPct: 5, ReorderPct: 5, Jitter: 8 * time.Millisecond, DTMF: testDTMF}
	file, sum := generate(t, cfg)
	frames := decodeAll(t, file)
	slots, lost := 0, 0
	for _, c := range sum.Calls {
		for d, s := range c.Streams {
			slots += s.Slots
			lost += s.Lost
			for k := 0; k < s.Slots; k++ {
				if c.Kind(d, k) == SlotLost {
					if k == 0 {
						t.Fatal("slot 0 lost")
					}
				}
			}
		}
	}
	if int64(lost) != sum.Lost || int64(slots-lost) != sum.RTP {
		t.Fatalf("lost %d (summary %d), sent %d (summary %d)", lost, sum.Lost, slots-lost, sum.RTP)
	}
	if p := 100 * float64(lost) / float64(slots); math.Abs(p-5) > 2 {
		t.Errorf("loss %.2f%%, want about 5%%", p)
	}
	// Reordering: some packet arrives after one with a higher sequence
	// number of the same stream; jitter: arrivals off the 20 ms grid.
	lastSeq := map[uint32]uint16{}
	inversions, offGrid := 0, 0
	for _, f := range frames {
		if f.sip {
			continue
		}
		if l, ok := lastSeq[f.rtp.SSRC]; ok && int16(f.rtp.SequenceNumber-l) < 0 {
			inversions++
		} else {
			lastSeq[f.rtp.SSRC] = f.rtp.SequenceNumber
		}
		if f.ts.Sub(sum.First)%Ptime != 0 {
			offGrid++
		}
	}
	if sum.Reordered == 0 || inversions == 0 || offGrid == 0 {
		t.Errorf("reordered %d, inversions %d, off-grid %d", sum.Reordered, inversions, offGrid)
	}
	t.Logf("%d slots, %d lost, %d reordered (%d inversions seen)", slots, lost, sum.Reordered, inversions)
}

// TestFlatMemory: RTP packets are generated without allocating, so memory
// depends on the number of calls, never on their length.
func TestFlatMemory(t *testing.T) {
	allocs := func(d time.Duration) float64 {
		return testing.AllocsPerRun(2, func() {
			if _, err := Write(io.Discard, Config{Calls: 20, Duration: d, Seed: 1, DTMF: testDTMF}); err != nil {
				t.Fatal(err)
			}
		})
	}
	short, long := allocs(3*time.Second), allocs(60*time.Second)
	// 20 calls × 57 s more = 114,000 more packets. Without -race the
	// counts are equal; the race runtime adds a few dozen of its own.
	// Anything per packet would add at least 114,000.
	if long-short > 1000 {
		t.Fatalf("allocations grew from %.0f (3 s calls) to %.0f (60 s calls)", short, long)
	}
	t.Logf("allocs: %.0f for 20×3 s, %.0f for 20×60 s", short, long)
}

func TestConfigErrors(t *testing.T) {
	ok := Config{Calls: 1, Duration: time.Second}
	cases := map[string]func(c *Config){
		"no calls":         func(c *Config) { c.Calls = 0 },
		"too many calls":   func(c *Config) { c.Calls = MaxCalls + 1 },
		"short":            func(c *Config) { c.Duration = 100 * time.Millisecond },
		"long":             func(c *Config) { c.Duration = 25 * time.Hour },
		"negative stagger": func(c *Config) { c.Stagger = -1 },
		"short ring":       func(c *Config) { c.RingTime = time.Millisecond },
		"loss NaN":         func(c *Config) { c.LossPct = math.NaN() },
		"loss 60":          func(c *Config) { c.LossPct = 60 },
		"reorder -1":       func(c *Config) { c.ReorderPct = -1 },
		"jitter 2s":        func(c *Config) { c.Jitter = 2 * time.Second },
		"bad digit":        func(c *Config) { c.DTMF = []Digit{{Symbol: 'x', At: 200 * time.Millisecond}} },
		"digit too early":  func(c *Config) { c.DTMF = []Digit{{Symbol: '1', At: 10 * time.Millisecond}} },
		"digit too late":   func(c *Config) { c.DTMF = []Digit{{Symbol: '1', At: 900 * time.Millisecond}} },
		"digits overlap": func(c *Config) {
			c.DTMF = []Digit{{Symbol: '1', At: 200 * time.Millisecond}, {Symbol: '2', At: 250 * time.Millisecond}}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := ok
			mutate(&c)
			if _, err := Write(io.Discard, c); !errors.Is(err, ErrConfig) {
				t.Fatalf("err %v, want ErrConfig", err)
			}
		})
	}
	if _, err := Write(io.Discard, ok); err != nil {
		t.Fatal(err)
	}
	// A failing writer is reported with ErrWrite.
	if _, err := Write(failWriter{}, ok); !errors.Is(err, ErrWrite) {
		t.Fatalf("err %v, want ErrWrite", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk on fire") }

// writeFile generates cfg into dir and returns the path.
func writeFile(t testing.TB, dir string, cfg Config) (string, Summary) {
	t.Helper()
	path := filepath.Join(dir, "calls.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Write(f, cfg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return path, sum
}

// TestGenerate: the callback sees the frames Write puts in the file, in the
// same order with the same times, and an error from it stops generation.
func TestGenerate(t *testing.T) {
	cfg := Config{Calls: 3, Duration: time.Second, Seed: 11, DTMF: testDTMF[:1], Jitter: 2 * time.Millisecond}
	file, _ := generate(t, cfg)
	r, err := pcapgo.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sum, err := Generate(cfg, func(ts time.Time, frame []byte) error {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			return err
		}
		if !ci.Timestamp.Equal(ts) || !bytes.Equal(data, frame) {
			t.Fatalf("frame %d differs from the file's", n+1)
		}
		n++
		return nil
	})
	if err != nil || int64(n) != sum.Frames {
		t.Fatalf("%d frames, summary %d, err %v", n, sum.Frames, err)
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Fatalf("file has more frames than Generate emitted: %v", err)
	}
	stop := errors.New("enough")
	sum, err = Generate(cfg, func(time.Time, []byte) error {
		if n--; n < 100 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || sum.Frames != sum.SIP+sum.RTP || sum.Frames == 0 {
		t.Fatalf("stopped generation: %v, %+v", err, sum)
	}
}
