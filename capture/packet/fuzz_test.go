package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"
)

var fuzzLinks = []LinkType{LinkEthernet, LinkLinuxSLL, LinkLinuxSLL2, LinkRaw, LinkRawDLT12,
	LinkRawDLT14, LinkIPv4, LinkIPv6, LinkNull, LinkLoop}

func linkIndex(l LinkType) byte {
	for i, x := range fuzzLinks {
		if x == l {
			return byte(i)
		}
	}
	panic(fmt.Sprint("no fuzz index for link ", l))
}

// within reports whether inner lies inside outer's memory.
func within(inner, outer []byte) bool {
	if len(inner) == 0 {
		return true
	}
	if len(outer) == 0 {
		return false
	}
	i, o := uintptr(unsafe.Pointer(unsafe.SliceData(inner))), uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	return i >= o && i+uintptr(len(inner)) <= o+uintptr(len(outer))
}

// FuzzDecode decodes arbitrary frames of every link type. Seeds: the first
// frames of each committed capture and synthetic frames of each feature.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"sip-i.pcap", "sip-tcp.pcap", "sip-body-large.pcap", "dtmf.pcap"} {
		link, frames := readCapture(f, "testdata/"+name)
		for _, fr := range frames[:min(len(frames), 6)] {
			f.Add(linkIndex(link), fr.data)
		}
	}
	u := udpHdr(5060, 5060, []byte("SIP/2.0 200 OK\r\n"))
	f.Add(linkIndex(LinkEthernet), cat(ether(0x0800, VLANTag{0x88a8, 1}, VLANTag{0x8100, 2}),
		ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoUDP}.build(u)))
	f.Add(linkIndex(LinkRaw), ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoIPIP}.build(
		ip4{src: "10.0.0.3", dst: "10.0.0.4", proto: ProtoUDP}.build(u)))
	f.Add(linkIndex(LinkRaw), ip6{src: "::1", dst: "::2", next: ProtoHopByHop}.build(
		cat(ext6(ProtoFragment, 0), frag6(ProtoUDP, 0, true, 7), u[:8])))
	f.Add(linkIndex(LinkRaw), ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoTCP, options: []byte{1, 1, 1, 0}}.build(
		tcpHdr(1, 2, 3, 4, TCPSyn, []byte{2, 4, 5, 0xb4}, nil)))

	f.Fuzz(func(t *testing.T, li byte, frame []byte) {
		link := fuzzLinks[int(li)%len(fuzzLinks)]
		d := &Decoder{Defrag: NewDefragmenter(DefragConfig{MaxDatagrams: 4, MaxMemory: 1 << 16})}
		var p Packet
		// Twice, so a fragment can meet itself (duplicate path).
		for range 2 {
			err := d.Decode(link, t0, frame, &p)
			if err != nil {
				if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrUnsupported) &&
					!errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFragmentOverlap) {
					t.Fatalf("error outside the sentinels: %v", err)
				}
				if err.Error() == "" {
					t.Fatal("empty error message")
				}
				continue
			}
			if p.Flags&FlagReassembled == 0 && !within(p.Payload, frame) {
				t.Fatal("payload does not point into the frame")
			}
			if p.IPVersion != 4 && p.IPVersion != 6 {
				t.Fatalf("decoded without an IP version: %+v", p)
			}
			if p.NumVLANs > MaxVLANTags {
				t.Fatalf("%d VLAN tags", p.NumVLANs)
			}
		}
	})
}

// FuzzDefrag feeds a sequence of IPv4 fragments described by the input:
// each 6-byte record is (datagram id, offset in 8-byte units (2 bytes),
// length, more-fragments flag, time step). Fragment bytes are a function of
// (id, absolute offset), so a completed datagram can be checked byte by
// byte wherever its pieces came from.
func FuzzDefrag(f *testing.F) {
	f.Add([]byte{1, 0, 0, 64, 1, 0, 1, 0, 8, 64, 0, 0})                     // two in order
	f.Add([]byte{1, 0, 8, 64, 0, 0, 1, 0, 0, 64, 1, 0})                     // reversed
	f.Add([]byte{1, 0, 0, 64, 1, 0, 1, 0, 0, 64, 1, 0, 1, 0, 8, 8, 0, 0})   // duplicate
	f.Add([]byte{1, 0, 0, 64, 1, 0, 1, 0, 4, 64, 0, 0})                     // overlap
	f.Add([]byte{1, 0, 0, 64, 1, 0, 2, 0, 0, 64, 1, 0, 1, 0, 8, 8, 0, 200}) // timeout
	pattern := func(id, off int) byte { return byte(id*31 + off*7 + off>>8) }
	f.Fuzz(func(t *testing.T, ops []byte) {
		cfg := DefragConfig{MaxDatagrams: 4, MaxMemory: 64 << 10, Timeout: time.Second}
		d := &Decoder{Defrag: NewDefragmenter(cfg)}
		now := t0
		data := make([]byte, 0, 256*8)
		for ; len(ops) >= 6; ops = ops[6:] {
			id := int(ops[0] % 8)
			off := int(binary.BigEndian.Uint16(ops[1:3])&0x1fff) * 8
			n := int(ops[3])
			more := ops[4]&1 != 0
			now = now.Add(time.Duration(ops[5]) * 10 * time.Millisecond)
			data = data[:0]
			for i := range n {
				data = append(data, pattern(id, off+i))
			}
			frame := ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: 253, id: id, off: off, more: more}.build(data)
			var p Packet
			if err := d.Decode(LinkRaw, now, frame, &p); err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFragmentOverlap) && !errors.Is(err, ErrUnsupported) {
					t.Fatalf("unexpected error: %v", err)
				}
				continue
			}
			if p.Flags&FlagReassembled != 0 {
				for i, b := range p.Payload {
					if b != pattern(id, i) {
						t.Fatalf("datagram %d byte %d = %d, want %d", id, i, b, pattern(id, i))
					}
				}
			}
			if m := d.Defrag.Memory(); m > cfg.MaxMemory {
				t.Fatalf("memory %d > %d", m, cfg.MaxMemory)
			}
			if n := d.Defrag.Stats().Pending.Load(); n < 0 || n > int64(cfg.MaxDatagrams) {
				t.Fatalf("pending %d", n)
			}
		}
	})
}

// posStream checks, call by call, that every delivered byte is the stream's
// byte at the position the sequence numbers say, with gaps advancing it.
type posStream struct {
	t        *testing.T
	stream   []byte
	pos      int
	started  bool
	gaps     int
	out      bytes.Buffer
	ended    bool
	startPos int
}

func (s *posStream) Data(b []byte) {
	if s.ended {
		s.t.Fatal("data after end")
	}
	if s.pos+len(b) > len(s.stream) || !bytes.Equal(b, s.stream[s.pos:s.pos+len(b)]) {
		s.t.Fatalf("data at %d (%d bytes) is not the stream's", s.pos, len(b))
	}
	s.pos += len(b)
	s.out.Write(b)
}
func (s *posStream) Gap(n int) {
	if n <= 0 {
		s.t.Fatalf("gap %d", n)
	}
	s.gaps++
	s.pos += n
}
func (s *posStream) End(EndReason) { s.ended = true }

type posFactory struct{ s *posStream }

func (f *posFactory) NewStream(Flow, bool) Stream {
	if f.s.started {
		f.s.t.Fatal("second stream for one connection")
	}
	f.s.started = true
	return f.s
}

// FuzzAssembler feeds segments of a known stream described by the input:
// the first byte picks the options (SYN or not, small buffers, time steps),
// then each 5-byte record is (offset (2 bytes), length (2 bytes), time step).
// Afterwards the whole stream is sent in order. Invariant: every delivered
// byte is at its stream position; with no gap reported the output is
// exactly the stream from where it started.
func FuzzAssembler(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 100, 0, 0, 100, 0, 100, 0})
	f.Add([]byte{1, 0, 100, 0, 100, 0, 0, 0, 0, 100, 0})
	f.Add([]byte{0, 0, 50, 0, 100, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{3, 1, 0, 4, 0, 0, 0, 10, 0, 50, 255})
	f.Fuzz(runAsm)
}

// runAsm is FuzzAssembler's body.
func runAsm(t *testing.T, ops []byte) {
	if len(ops) == 0 {
		return
	}
	stream := make([]byte, 8000)
	for i := range stream {
		stream[i] = byte(i*13 + i>>8)
	}
	opt := ops[0]
	ops = ops[1:]
	cfg := AssemblerConfig{GapTimeout: time.Second, MaxFlows: 4}
	if opt&2 != 0 {
		cfg.MaxBufferedPerFlow = 3000
		cfg.MaxBuffered = 5000
	}
	s := &posStream{t: t, stream: stream}
	a := NewAssembler(&posFactory{s: s}, cfg)
	const isn = 0xffffff00 // wraps within the stream
	now := t0
	syn := opt&1 != 0
	if syn {
		a.Add(now, seg(c2s, isn, TCPSyn, nil))
	}
	first := !syn
	for ; len(ops) >= 5; ops = ops[5:] {
		off := int(binary.BigEndian.Uint16(ops[0:2])) % len(stream)
		n := int(binary.BigEndian.Uint16(ops[2:4])) % 1500
		end := min(off+n, len(stream))
		now = now.Add(time.Duration(ops[4]) * 10 * time.Millisecond)
		if first && end > off {
			s.pos, s.startPos, first = off, off, false
		}
		a.Add(now, seg(c2s, isn+1+uint32(off), TCPAck, stream[off:end]))
	}
	if first {
		s.pos, s.startPos = 0, 0
	}
	for off := 0; off < len(stream); off += 1000 {
		a.Add(now, seg(c2s, isn+1+uint32(off), TCPAck, stream[off:min(off+1000, len(stream))]))
	}
	a.Flush()
	if !s.ended {
		t.Fatal("stream not ended by Flush")
	}
	if s.gaps == 0 && !bytes.Equal(s.out.Bytes(), stream[s.startPos:]) {
		t.Fatalf("no gap, but output (%d bytes from %d) is not the stream", s.out.Len(), s.startPos)
	}
	if a.Stats().Buffered.Load() != 0 {
		t.Fatalf("%d bytes still held after Flush", a.Stats().Buffered.Load())
	}
}
