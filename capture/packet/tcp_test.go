package packet

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// recorder is a Stream and StreamFactory that writes down everything.
type recorder struct {
	streams map[Flow]*recStream
	order   []Flow
}

type recStream struct {
	fromSYN bool
	data    bytes.Buffer
	events  []string // "data N", "gap N", "end reason"
	ended   int
	reason  EndReason
}

func newRecorder() *recorder { return &recorder{streams: map[Flow]*recStream{}} }

func (r *recorder) NewStream(f Flow, fromSYN bool) Stream {
	s := &recStream{fromSYN: fromSYN}
	if old, ok := r.streams[f]; ok && old.ended == 0 {
		panic("new stream for a flow that did not end: " + f.String())
	}
	r.streams[f] = s
	r.order = append(r.order, f)
	return s
}

func (s *recStream) Data(b []byte) {
	if s.ended > 0 {
		panic("data after end")
	}
	if len(b) == 0 {
		panic("empty data")
	}
	s.data.Write(b)
	s.events = append(s.events, fmt.Sprintf("data %d", len(b)))
}
func (s *recStream) Gap(n int) {
	if n <= 0 {
		panic(fmt.Sprintf("gap %d", n))
	}
	s.events = append(s.events, fmt.Sprintf("gap %d", n))
}
func (s *recStream) End(r EndReason) {
	s.ended++
	s.reason = r
	s.events = append(s.events, "end "+r.String())
}

func (s *recStream) gaps() []string {
	var g []string
	for _, e := range s.events {
		if len(e) > 3 && e[:3] == "gap" {
			g = append(g, e)
		}
	}
	return g
}

var (
	cli = netip.MustParseAddrPort("192.0.2.10:40000")
	srv = netip.MustParseAddrPort("198.51.100.20:5060")
	c2s = Flow{Src: cli, Dst: srv}
	s2c = c2s.Reverse()
)

func seg(f Flow, seq uint32, flags uint8, data []byte) *Packet {
	return &Packet{Protocol: ProtoTCP, IPVersion: 4, Src: f.Src.Addr(), Dst: f.Dst.Addr(),
		SrcPort: f.Src.Port(), DstPort: f.Dst.Port(), TCPSeq: seq, TCPFlags: flags, Payload: data}
}

// sipStream is the client-to-server byte stream of nextcaller's sip-tcp.pcap
// (five calls' INVITE/ACK/BYE), used as the truth for segmentation tests.
func sipStream(t testing.TB) []byte {
	t.Helper()
	link, frames := readCapture(t, "testdata/sip-tcp.pcap")
	var d Decoder
	var p Packet
	var b []byte
	for _, f := range frames {
		if err := d.Decode(link, f.ts, f.data, &p); err != nil {
			t.Fatal(err)
		}
		if p.DstPort == 5060 {
			b = append(b, p.Payload...)
		}
	}
	if len(b) < 3000 || !bytes.HasPrefix(b, []byte("INVITE ")) {
		t.Fatalf("sip stream %d bytes %q", len(b), b[:min(len(b), 20)])
	}
	return b
}

func TestAssemblerRealCaptures(t *testing.T) {
	for _, name := range []string{"sip-tcp.pcap", "sip-body-large.pcap"} {
		t.Run(name, func(t *testing.T) {
			link, frames := readCapture(t, "testdata/"+name)
			rec := newRecorder()
			a := NewAssembler(rec, AssemblerConfig{})
			var d Decoder
			var p Packet
			// The expected stream per direction: distinct segments by
			// sequence number, in order (both captures are loss-free).
			want := map[Flow]map[uint32][]byte{}
			for _, f := range frames {
				if err := d.Decode(link, f.ts, f.data, &p); err != nil {
					t.Fatal(err)
				}
				fl := Flow{netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)}
				if len(p.Payload) > 0 {
					if want[fl] == nil {
						want[fl] = map[uint32][]byte{}
					}
					want[fl][p.TCPSeq] = bytes.Clone(p.Payload)
				}
				a.Add(f.ts, &p)
			}
			a.Flush()
			for fl, segs := range want {
				s := rec.streams[fl]
				if s == nil {
					t.Fatalf("no stream for %v", fl)
				}
				var exp []byte
				seq := uint32(0)
				first := true
				for len(segs) > 0 {
					if first {
						seq = minSeq(segs)
						first = false
					}
					b, ok := segs[seq]
					if !ok {
						t.Fatalf("%v: capture itself has a hole at %d", fl, seq)
					}
					exp = append(exp, b...)
					delete(segs, seq)
					seq += uint32(len(b))
				}
				if !bytes.Equal(s.data.Bytes(), exp) || s.ended != 1 || len(s.gaps()) != 0 {
					t.Fatalf("%v: %d bytes (want %d), ended %d, gaps %v", fl, s.data.Len(), len(exp), s.ended, s.gaps())
				}
			}
			if name == "sip-body-large.pcap" {
				// The ~67 KB INVITE arrives whole, from the SYN on.
				s := rec.streams[rec.order[0]]
				if !s.fromSYN || !bytes.HasPrefix(s.data.Bytes(), []byte("INVITE ")) || s.data.Len() < 60000 {
					t.Fatalf("large invite: fromSYN %v, %d bytes", s.fromSYN, s.data.Len())
				}
			}
		})
	}
}

func minSeq(m map[uint32][]byte) uint32 {
	first := true
	var lo uint32
	for s := range m {
		if first || int32(s-lo) < 0 {
			lo, first = s, false
		}
	}
	return lo
}

// TestAssemblerEverySplit splits the SIP stream into two segments at every
// boundary and delivers them in order, reversed and duplicated: the stream
// must come out whole every time.
func TestAssemblerEverySplit(t *testing.T) {
	stream := sipStream(t)[:1500]
	const isn = 0xfffffe00 // the sequence wraps inside the stream
	for i := 1; i < len(stream); i++ {
		a1, a2 := stream[:i], stream[i:]
		for _, order := range [][]int{{0, 1}, {1, 0}, {1, 0, 1, 0}, {0, 0, 1, 1}} {
			rec := newRecorder()
			a := NewAssembler(rec, AssemblerConfig{})
			a.Add(t0, seg(c2s, isn, TCPSyn, nil))
			for _, o := range order {
				if o == 0 {
					a.Add(t0, seg(c2s, isn+1, TCPAck, a1))
				} else {
					a.Add(t0, seg(c2s, isn+1+uint32(i), TCPAck, a2))
				}
			}
			s := rec.streams[c2s]
			if !bytes.Equal(s.data.Bytes(), stream) || len(s.gaps()) != 0 {
				t.Fatalf("split %d order %v: %d bytes, events %v", i, order, s.data.Len(), s.events)
			}
		}
	}
}

// TestAssemblerShuffled cuts the stream into random segments, then
// reorders, duplicates and re-cuts retransmissions (a retransmission may
// cover several original segments): the output is exactly the stream.
func TestAssemblerShuffled(t *testing.T) {
	stream := sipStream(t)
	rng := rand.New(rand.NewPCG(7, 8))
	for round := range 200 {
		isn := rng.Uint32()
		type piece struct{ off, end int }
		var pieces []piece
		for off := 0; off < len(stream); {
			n := 1 + rng.IntN(1400)
			end := min(off+n, len(stream))
			pieces = append(pieces, piece{off, end})
			off = end
		}
		// Retransmissions with different boundaries.
		for range len(pieces) / 3 {
			off := rng.IntN(len(stream))
			pieces = append(pieces, piece{off, min(len(stream), off+1+rng.IntN(3000))})
		}
		// Local reordering within a window of 8 (what a network does).
		for i := range pieces {
			j := min(len(pieces)-1, i+rng.IntN(8))
			pieces[i], pieces[j] = pieces[j], pieces[i]
		}
		rec := newRecorder()
		a := NewAssembler(rec, AssemblerConfig{})
		a.Add(t0, seg(c2s, isn, TCPSyn, nil))
		for _, pc := range pieces {
			a.Add(t0, seg(c2s, isn+1+uint32(pc.off), TCPAck, stream[pc.off:pc.end]))
		}
		a.Add(t0, seg(c2s, isn+1+uint32(len(stream)), TCPFin|TCPAck, nil))
		s := rec.streams[c2s]
		if !bytes.Equal(s.data.Bytes(), stream) || len(s.gaps()) != 0 || s.reason != EndFIN {
			t.Fatalf("round %d: %d of %d bytes, gaps %v, end %v", round, s.data.Len(), len(stream), s.gaps(), s.reason)
		}
		if a.Stats().Buffered.Load() != 0 || a.Stats().Flows.Load() != 1 {
			t.Fatalf("round %d: buffered %d flows %d after FIN", round, a.Stats().Buffered.Load(), a.Stats().Flows.Load())
		}
	}
}

func TestAssemblerMissingSYN(t *testing.T) {
	rec := newRecorder()
	a := NewAssembler(rec, AssemblerConfig{})
	a.Add(t0, seg(c2s, 5000, TCPAck, nil)) // bare ACK: no stream
	if len(rec.streams) != 0 {
		t.Fatal("stream made for a bare ACK")
	}
	a.Add(t0, seg(c2s, 5000, TCPAck, []byte("ACK sip:x SIP/2.0\r\n")))
	a.Add(t0, seg(c2s, 5019, TCPAck, []byte("\r\n\r\n")))
	s := rec.streams[c2s]
	if s == nil || s.fromSYN || s.data.String() != "ACK sip:x SIP/2.0\r\n\r\n\r\n" {
		t.Fatalf("stream %+v", s)
	}
}

func TestAssemblerGapByBufferLimit(t *testing.T) {
	rec := newRecorder()
	a := NewAssembler(rec, AssemblerConfig{MaxBufferedPerFlow: 1000})
	a.Add(t0, seg(c2s, 99, TCPSyn, nil))
	a.Add(t0, seg(c2s, 100, TCPAck, []byte("AAAA")))
	// 100 bytes at 104 are lost for ever; what follows is held...
	a.Add(t0, seg(c2s, 204, TCPAck, bytes.Repeat([]byte("B"), 600)))
	a.Add(t0, seg(c2s, 804, TCPAck, bytes.Repeat([]byte("C"), 300)))
	if s := rec.streams[c2s]; s.data.Len() != 4 || a.Stats().Buffered.Load() != 900 {
		t.Fatalf("before limit: %d delivered, %d held", s.data.Len(), a.Stats().Buffered.Load())
	}
	// ...until the limit: the hole is skipped and the consumer told.
	a.Add(t0, seg(c2s, 1104, TCPAck, bytes.Repeat([]byte("D"), 200)))
	s := rec.streams[c2s]
	want := "AAAA" + string(bytes.Repeat([]byte("B"), 600)) + string(bytes.Repeat([]byte("C"), 300)) + string(bytes.Repeat([]byte("D"), 200))
	if s.data.String() != want || fmt.Sprint(s.gaps()) != "[gap 100]" {
		t.Fatalf("after limit: %d bytes, events %v", s.data.Len(), s.events)
	}
	if a.Stats().Gaps.Load() != 1 || a.Stats().GapBytes.Load() != 100 || a.Stats().Buffered.Load() != 0 {
		t.Fatalf("stats gaps %d bytes %d held %d", a.Stats().Gaps.Load(), a.Stats().GapBytes.Load(), a.Stats().Buffered.Load())
	}
}

func TestAssemblerGapByTimeout(t *testing.T) {
	rec := newRecorder()
	a := NewAssembler(rec, AssemblerConfig{GapTimeout: 2 * time.Second})
	a.Add(t0, seg(c2s, 0, TCPAck, []byte("one ")))
	a.Add(t0, seg(c2s, 10, TCPAck, []byte("three ")))
	// Before the timeout the hole waits for a retransmission.
	a.Add(t0.Add(time.Second), seg(c2s, 16, TCPAck, []byte("four ")))
	s := rec.streams[c2s]
	if s.data.String() != "one " {
		t.Fatalf("before timeout: %q", s.data.String())
	}
	// The flow's own next packet after the timeout skips it.
	a.Add(t0.Add(2*time.Second+1), seg(c2s, 21, TCPAck, []byte("five")))
	if s.data.String() != "one three four five" || fmt.Sprint(s.gaps()) != "[gap 6]" {
		t.Fatalf("after timeout: %q %v", s.data.String(), s.events)
	}

	// A flow that goes quiet is swept by other flows' packets or Expire.
	a.Add(t0.Add(3*time.Second), seg(s2c, 0, TCPAck, []byte("x")))
	a.Add(t0.Add(3*time.Second), seg(s2c, 5, TCPAck, []byte("y")))
	a.Expire(t0.Add(6 * time.Second))
	if r := rec.streams[s2c]; r.data.String() != "xy" || fmt.Sprint(r.gaps()) != "[gap 4]" {
		t.Fatalf("quiet flow: %q %v", r.data.String(), r.events)
	}
}

func TestAssemblerRetransmissionWithNewData(t *testing.T) {
	rec := newRecorder()
	a := NewAssembler(rec, AssemblerConfig{})
	a.Add(t0, seg(c2s, 1, TCPAck, []byte("abcdef")))
	a.Add(t0, seg(c2s, 4, TCPAck, []byte("defghi"))) // 3 old bytes, 3 new
	a.Add(t0, seg(c2s, 1, TCPAck, []byte("abc")))    // pure duplicate
	if s := rec.streams[c2s]; s.data.String() != "abcdefghi" {
		t.Fatalf("%q", s.data.String())
	}
	if a.Stats().Duplicates.Load() != 1 {
		t.Fatalf("duplicates %d", a.Stats().Duplicates.Load())
	}
}

func TestAssemblerFINAndRetransmissionAfter(t *testing.T) {
	rec := newRecorder()
	a := NewAssembler(rec, AssemblerConfig{})
	a.Add(t0, seg(c2s, 999, TCPSyn, nil))
	a.Add(t0, seg(c2s, 1000, TCPAck|TCPFin, []byte("BYE")))
	s := rec.streams[c2s]
	if s.data.String() != "BYE" || s.ended != 1 || s.reason != EndFIN {
		t.Fatalf("events %v", s.events)
	}
	// A retransmission of the last segment must not start a new stream.
	a.Add(t0, seg(c2s, 1000, TCPAck|TCPFin, []byte("BYE")))
	if len(rec.order) != 1 {
		t.Fatalf("%d streams", len(rec.order))
	}
	// So does the ACK of the FIN, one past it.
	a.Add(t0, seg(c2s, 1004, TCPAck, nil))
	if len(rec.order) != 1 {
		t.Fatalf("%d streams", len(rec.order))
	}
	// Data far from the old FIN is a new connection whose SYN was missed.
	a.Add(t0, seg(c2s, 0x80000000, TCPAck, []byte("REGISTER")))
	if len(rec.order) != 2 || rec.streams[c2s].fromSYN || rec.streams[c2s].data.String() != "REGISTER" {
		t.Fatalf("missed-SYN connection: %d streams", len(rec.order))
	}
	// A new connection on the same tuple does.
	a.Add(t0, seg(c2s, 5000, TCPSyn, nil))
	a.Add(t0, seg(c2s, 5001, TCPAck, []byte("INVITE")))
	if len(rec.order) != 3 || rec.streams[c2s].data.String() != "INVITE" || !rec.streams[c2s].fromSYN {
		t.Fatalf("new connection: %d streams", len(rec.order))
	}
}

func TestAssemblerFINWaitsForHole(t *testing.T) {
	rec := newRecorder()
	a := NewAssembler(rec, AssemblerConfig{})
	a.Add(t0, seg(c2s, 0, TCPSyn, nil))
	a.Add(t0, seg(c2s, 4, TCPFin|TCPAck, []byte("def")))
	if rec.streams[c2s].ended != 0 {
		t.Fatal("ended before the hole filled")
	}
	a.Add(t0, seg(c2s, 1, TCPAck, []byte("abc")))
	if s := rec.streams[c2s]; s.data.String() != "abcdef" || s.reason != EndFIN {
		t.Fatalf("events %v", s.events)
	}
}

func TestAssemblerRSTEndsBothDirections(t *testing.T) {
	rec := newRecorder()
	a := NewAssembler(rec, AssemblerConfig{})
	a.Add(t0, seg(c2s, 0, TCPAck, []byte("req")))
	a.Add(t0, seg(c2s, 10, TCPAck, []byte("held"))) // behind a hole
	a.Add(t0, seg(s2c, 0, TCPAck, []byte("resp")))
	a.Add(t0, seg(s2c, 4, TCPRst, nil))
	c, s := rec.streams[c2s], rec.streams[s2c]
	if c.reason != EndRST || s.reason != EndRST {
		t.Fatalf("reasons %v %v", c.reason, s.reason)
	}
	// What was held is delivered after a gap, so SIP can still use it.
	if c.data.String() != "reqheld" || fmt.Sprint(c.gaps()) != "[gap 7]" {
		t.Fatalf("client %q %v", c.data.String(), c.events)
	}
	if a.Stats().Flows.Load() != 0 || a.Stats().Buffered.Load() != 0 {
		t.Fatalf("flows %d buffered %d", a.Stats().Flows.Load(), a.Stats().Buffered.Load())
	}
}

func TestAssemblerIdleAndEviction(t *testing.T) {
	rec := newRecorder()
	a := NewAssembler(rec, AssemblerConfig{MaxFlows: 2, IdleTimeout: time.Minute})
	f3 := Flow{Src: netip.MustParseAddrPort("192.0.2.99:1"), Dst: srv}
	a.Add(t0, seg(c2s, 0, TCPAck, []byte("a")))
	a.Add(t0.Add(time.Second), seg(s2c, 0, TCPAck, []byte("b")))
	a.Add(t0.Add(2*time.Second), seg(c2s, 1, TCPAck, []byte("c"))) // c2s is now the most recent
	a.Add(t0.Add(3*time.Second), seg(f3, 0, TCPAck, []byte("d")))  // evicts s2c
	if rec.streams[s2c].reason != EndEvicted || rec.streams[c2s].ended != 0 {
		t.Fatalf("eviction: s2c %v c2s ended %d", rec.streams[s2c].reason, rec.streams[c2s].ended)
	}
	a.Add(t0.Add(62*time.Second+1), seg(f3, 1, TCPAck, []byte("e")))
	if rec.streams[c2s].reason != EndIdle || rec.streams[f3].ended != 0 {
		t.Fatalf("idle: c2s %v f3 ended %d", rec.streams[c2s].reason, rec.streams[f3].ended)
	}
	a.Flush()
	if rec.streams[f3].reason != EndFlush || rec.streams[f3].data.String() != "de" {
		t.Fatalf("flush: %v", rec.streams[f3].events)
	}
	st := a.Stats()
	if st.FlowsEvicted.Load() != 1 || st.FlowsIdle.Load() != 1 || st.FlowsOpened.Load() != 3 || st.Flows.Load() != 0 {
		t.Fatalf("stats evicted %d idle %d opened %d flows %d", st.FlowsEvicted.Load(), st.FlowsIdle.Load(), st.FlowsOpened.Load(), st.Flows.Load())
	}
}

func TestAssemblerNewSYNReplacesFlow(t *testing.T) {
	rec := newRecorder()
	a := NewAssembler(rec, AssemblerConfig{})
	a.Add(t0, seg(c2s, 100, TCPSyn, nil))
	a.Add(t0, seg(c2s, 100, TCPSyn, nil)) // retransmitted SYN: same stream
	a.Add(t0, seg(c2s, 101, TCPAck, []byte("x")))
	if len(rec.order) != 1 {
		t.Fatalf("retransmitted SYN made %d streams", len(rec.order))
	}
	first := rec.streams[c2s]
	a.Add(t0, seg(c2s, 9000, TCPSyn, nil))
	if first.reason != EndNewSYN || len(rec.order) != 2 {
		t.Fatalf("reason %v, %d streams", first.reason, len(rec.order))
	}
}

func TestAssemblerIgnoresNonTCP(t *testing.T) {
	rec := newRecorder()
	a := NewAssembler(rec, AssemblerConfig{})
	p := seg(c2s, 0, 0, []byte("x"))
	p.Protocol = ProtoUDP
	a.Add(t0, p)
	p = seg(c2s, 0, 0, []byte("x"))
	p.Flags = FlagFragment
	a.Add(t0, p)
	if len(rec.order) != 0 || a.Stats().Segments.Load() != 0 {
		t.Fatal("non-TCP packet reached the assembler")
	}
}

func TestAssemblerMemoryBound(t *testing.T) {
	rec := newRecorder()
	const perFlow, total = 4096, 10000
	a := NewAssembler(rec, AssemblerConfig{MaxBufferedPerFlow: perFlow, MaxBuffered: total, MaxFlows: 16})
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 20000 {
		f := Flow{Src: netip.AddrPortFrom(cli.Addr(), uint16(rng.IntN(8))), Dst: srv}
		a.Add(t0, seg(f, rng.Uint32N(1<<16), TCPAck, make([]byte, 1+rng.IntN(1400))))
		if b := a.Stats().Buffered.Load(); b > total {
			t.Fatalf("segment %d: %d bytes held > %d", i, b, total)
		}
		for i := range a.flows {
			if a.flows[i].buffered > perFlow {
				t.Fatalf("flow %d holds %d > %d", i, a.flows[i].buffered, perFlow)
			}
		}
	}
}
