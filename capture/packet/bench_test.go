package packet

import "testing"

// Frames of the packet path, built once.
func rtpFrameVLAN() []byte {
	return cat(ether(0x0800, VLANTag{0x8100, 100}), ip4{src: "10.1.3.143", dst: "10.1.6.18", proto: ProtoUDP}.
		build(udpHdr(5000, 2006, rtpPayload())))
}

func rtpFrameIPv6() []byte {
	return cat(ether(0x86dd), ip6{src: "2001:db8::1", dst: "2001:db8::2", next: ProtoUDP}.
		build(udpHdr(5000, 2006, rtpPayload())))
}

// twoFragments returns the two fragments of a 1600-byte SIP datagram with
// IPv4 identification id.
func twoFragments(id int) [][]byte {
	h := ip4{src: "216.221.155.72", dst: "10.0.90.18", proto: ProtoUDP, id: id}
	return fragments4(h, udpHdr(5060, 5060, sipBody(1600)), 1480)
}

type nopStream struct{ n int }

func (s *nopStream) Data(b []byte)   { s.n += len(b) }
func (s *nopStream) Gap(int)         {}
func (s *nopStream) End(_ EndReason) {}

type nopFactory struct{ s nopStream }

func (f *nopFactory) NewStream(Flow, bool) Stream { return &f.s }

// TestNoAllocs asserts that the packet path does not allocate
// (ARCHITECTURE.md rule 3), in the manner of tailscale's tstest.CheckAllocs.
func TestNoAllocs(t *testing.T) {
	var d Decoder
	var p Packet
	vlan, v6 := rtpFrameVLAN(), rtpFrameIPv6()
	arp := cat(ether(0x0806), make([]byte, 28))
	short := vlan[:30]
	check := func(name string, fn func()) {
		t.Helper()
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
	check("ethernet vlan ipv4 udp", func() {
		if err := d.Decode(LinkEthernet, t0, vlan, &p); err != nil {
			t.Fatal(err)
		}
	})
	check("ethernet ipv6 udp", func() {
		if err := d.Decode(LinkEthernet, t0, v6, &p); err != nil {
			t.Fatal(err)
		}
	})
	check("unsupported ethertype", func() {
		if err := d.Decode(LinkEthernet, t0, arp, &p); err == nil {
			t.Fatal("arp decoded")
		}
	})
	check("truncated", func() {
		if err := d.Decode(LinkEthernet, t0, short, &p); err == nil {
			t.Fatal("short frame decoded")
		}
	})

	// Defragmentation, once the slot buffers are warm.
	dd := &Decoder{Defrag: NewDefragmenter(DefragConfig{})}
	frags := [2][][]byte{twoFragments(1), twoFragments(2)}
	i := 0
	run := func() {
		fr := frags[i%2]
		i++
		_ = dd.Decode(LinkRaw, t0, fr[0], &p)
		if err := dd.Decode(LinkRaw, t0, fr[1], &p); err != nil || p.Flags&FlagReassembled == 0 {
			t.Fatalf("not reassembled: %v", err)
		}
	}
	run()
	check("defrag 2 fragments", run)

	// In-order TCP segments.
	a := NewAssembler(&nopFactory{}, AssemblerConfig{})
	seq := uint32(1)
	data := make([]byte, 500)
	sp := seg(c2s, 0, TCPSyn, nil)
	a.Add(t0, sp)
	check("assembler in order", func() {
		sp.TCPSeq, sp.TCPFlags, sp.Payload = seq, TCPAck, data
		a.Add(t0, sp)
		seq += uint32(len(data))
	})
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"eth-vlan-ipv4-udp-rtp", rtpFrameVLAN()},
		{"eth-ipv6-udp-rtp", rtpFrameIPv6()},
	} {
		b.Run(c.name, func(b *testing.B) {
			var d Decoder
			var p Packet
			b.ReportAllocs()
			b.SetBytes(int64(len(c.frame)))
			for b.Loop() {
				if err := d.Decode(LinkEthernet, t0, c.frame, &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDefrag reassembles a 1600-byte SIP datagram from two fragments
// per operation (two Decode calls), against decoding the same two frames
// with no Defragmenter as the baseline.
func BenchmarkDefrag(b *testing.B) {
	frames := [2][][]byte{twoFragments(1), twoFragments(2)}
	for _, c := range []struct {
		name   string
		defrag bool
	}{{"2-fragments", true}, {"2-fragments-no-defrag-baseline", false}} {
		b.Run(c.name, func(b *testing.B) {
			d := &Decoder{}
			if c.defrag {
				d.Defrag = NewDefragmenter(DefragConfig{})
			}
			var p Packet
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				fr := frames[i&1]
				i++
				_ = d.Decode(LinkRaw, t0, fr[0], &p)
				_ = d.Decode(LinkRaw, t0, fr[1], &p)
			}
		})
	}
}

// BenchmarkAssembler feeds in-order 500-byte segments of one flow.
func BenchmarkAssembler(b *testing.B) {
	b.Run("in-order-500B", func(b *testing.B) {
		a := NewAssembler(&nopFactory{}, AssemblerConfig{})
		sp := seg(c2s, 0, TCPSyn, nil)
		a.Add(t0, sp)
		data := make([]byte, 500)
		seq := uint32(1)
		ts := t0
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			sp.TCPSeq, sp.TCPFlags, sp.Payload = seq, TCPAck, data
			a.Add(ts, sp)
			seq += uint32(len(data))
		}
	})
	b.Run("swapped-pairs-500B", func(b *testing.B) {
		// Every other segment arrives early and must be held, copied and
		// drained: the out-of-order path, which allocates its copy.
		a := NewAssembler(&nopFactory{}, AssemblerConfig{})
		sp := seg(c2s, 0, TCPSyn, nil)
		a.Add(t0, sp)
		data := make([]byte, 500)
		seq := uint32(1)
		b.ReportAllocs()
		b.SetBytes(2 * int64(len(data)))
		for b.Loop() {
			sp.TCPSeq, sp.TCPFlags, sp.Payload = seq+500, TCPAck, data
			a.Add(t0, sp)
			sp.TCPSeq = seq
			a.Add(t0, sp)
			seq += 1000
		}
	})
}
