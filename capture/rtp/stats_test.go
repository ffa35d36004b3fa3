package rtp

import (
	"math"
	"testing"
)

func feedSeqs(s *StreamStats, ssrc uint32, seqs ...uint16) {
	for i, q := range seqs {
		// 20 ms apart, timestamps matching: no jitter
		s.Update(q, uint32(q)*160, ssrc, int64(i)*20e6, true)
	}
}

func TestStreamStatsSequence(t *testing.T) {
	seq := func(from, n int) []uint16 {
		var out []uint16
		for i := 0; i < n; i++ {
			out = append(out, uint16(from+i))
		}
		return out
	}
	cases := []struct {
		name                               string
		seqs                               []uint16
		expected, received, lost, dup, ooo int64
		highest                            uint32
	}{
		{"in order", seq(100, 50), 50, 50, 0, 0, 0, 149},
		{"wrap", seq(65530, 17), 17, 17, 0, 0, 0, 1<<16 + 10},
		{"loss", []uint16{1, 2, 3, 7, 8}, 8, 5, 3, 0, 0, 8},
		{"loss across wrap", []uint16{65534, 65535, 2, 3}, 6, 4, 2, 0, 0, 1<<16 + 3},
		{"duplicate", []uint16{1, 2, 2, 3, 2}, 3, 3, 0, 2, 0, 3},
		{"reorder", []uint16{1, 2, 4, 3, 5}, 5, 5, 0, 0, 1, 5},
		{"reorder across wrap", []uint16{65534, 0, 65535, 1}, 4, 4, 0, 0, 1, 1<<16 + 1},
		{"reordered before the first", []uint16{10, 11, 9, 12}, 4, 4, 0, 0, 1, 12},
		{"large jump ignored once", []uint16{1, 2, 20000, 3}, 3, 3, 0, 0, 0, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewStreamStats(8000)
			feedSeqs(s, 1, c.seqs...)
			g := s.Snapshot()
			if g.Expected != c.expected || g.Received != c.received || g.Lost != c.lost || g.Duplicates != c.dup || g.OutOfOrder != c.ooo || g.HighestSeq != c.highest {
				t.Fatalf("got %+v", g)
			}
		})
	}
}

func TestStreamStatsResyncAndSSRC(t *testing.T) {
	s := NewStreamStats(8000)
	feedSeqs(s, 1, 1, 2, 3, 20000, 20001, 20002) // sender restarted: A.1 re-sync on the second packet
	g := s.Snapshot()
	if g.Resyncs != 1 || g.HighestSeq != 20002 || g.Expected != 3+2 || g.Received != 5 {
		t.Fatalf("after resync %+v", g)
	}
	feedSeqs(s, 2, 500, 501, 503)
	g = s.Snapshot()
	if g.SSRCChange != 1 || g.SSRC != 2 || g.Expected != 5+4 || g.Received != 5+3 || g.Lost != 1 {
		t.Fatalf("after SSRC change %+v", g)
	}
}

func TestStreamStatsFractionLost(t *testing.T) {
	s := NewStreamStats(8000)
	feedSeqs(s, 1, 1, 2, 3, 4)
	if f := s.FractionLost(); f != 0 {
		t.Fatalf("no loss: %d", f)
	}
	feedSeqs(s, 1, 6, 8) // interval expected 4 (5..8), received 2
	if f := s.FractionLost(); f != 128 {
		t.Fatalf("half lost: %d", f)
	}
	if f := s.FractionLost(); f != 0 {
		t.Fatalf("empty interval: %d", f)
	}
}

// TestStreamStatsJitter compares with a floating-point transcription of
// RFC 3550 A.8 on a sequence with known arrival deviations.
func TestStreamStatsJitter(t *testing.T) {
	s := NewStreamStats(8000)
	var ref float64
	var prevTransit float64
	base := int64(1_700_000_000_000_000_000) // a real epoch: must not overflow
	ts := uint32(0xFFFFF000)                 // and wrap the timestamp on the way
	for i := 0; i < 500; i++ {
		dev := int64((i*7919)%11-5) * 1e6 // -5..+5 ms
		arr := base + int64(i)*20e6 + dev
		s.Update(uint16(i), ts, 9, arr, true)
		transit := float64(arr-base)/1e9*8000 - float64(int64(ts)+int64(i/(1<<30)))
		if i > 0 {
			d := transit - prevTransit
			// undo the 2^32 wrap in the reference
			if d > 1<<31 {
				d -= 1 << 32
			} else if d < -(1 << 31) {
				d += 1 << 32
			}
			ref += (math.Abs(d) - ref) / 16
		}
		prevTransit = transit
		ts += 160
	}
	g := s.Snapshot()
	if math.Abs(float64(g.Jitter)-ref) > 1 || math.Abs(g.JitterMs-ref/8) > 0.05 {
		t.Fatalf("jitter %d units %.3f ms, reference %.3f units", g.Jitter, g.JitterMs, ref)
	}
	if g.JitterMs < 1 {
		t.Fatalf("jitter %.3f ms is implausibly small for ±5 ms deviations", g.JitterMs)
	}
	// event packets keep their start timestamp: excluded, they must not move it
	before := s.Snapshot().Jitter
	for i := 0; i < 10; i++ {
		s.Update(uint16(500+i), 12345, 9, base+int64(500+i)*20e6, false)
	}
	if s.Snapshot().Jitter != before {
		t.Fatal("non-sample packets changed jitter")
	}
}

// TestStreamStatsRealCapture: tshark's rtp,streams on SIP_DTMF2.pcap says
// 0x9A7B5382 has 665 packets, 2 lost, max jitter 0.019 ms; 0x5711BF84
// 666 packets, 0 lost, max jitter 15.767 ms (the event packets).
func TestStreamStatsRealCapture(t *testing.T) {
	ds := readUDP(t, "testdata/SIP_DTMF2.pcap")
	for _, c := range []struct {
		ssrc           uint32
		received, lost int64
		maxJitterMs    float64
	}{{0x9A7B5382, 665, 2, 0.019}, {0x5711BF84, 666, 0, 15.767}} {
		s := NewStreamStats(8000)
		for _, d := range rtpOf(t, ds, c.ssrc) {
			var p Packet
			_ = p.Unmarshal(d.Payload)
			// like tshark, feed every packet to the jitter estimate
			s.Update(p.SequenceNumber, p.Timestamp, p.SSRC, d.Arrival, true)
		}
		g := s.Snapshot()
		if g.Received != c.received || g.Lost != c.lost || g.Duplicates != 0 || g.JitterMs > c.maxJitterMs || g.JitterMs <= 0 {
			t.Errorf("%#x: %+v", c.ssrc, g)
		}
		t.Logf("%#x: %+v", c.ssrc, g)
	}
}

func TestStreamStatsNoAllocs(t *testing.T) {
	s := NewStreamStats(8000)
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		s.Update(uint16(i), uint32(i*160), 1, int64(i)*20e6, true)
		_ = s.Snapshot()
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
