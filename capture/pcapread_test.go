package capture

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/callvault/callvault/capture/rtp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"
)

func pcapCI(ts time.Time, n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: ts, CaptureLength: n, Length: n}
}

// choppyReader hands out at most n bytes a read, so the pcap reader's
// blocks end inside headers and frames.
type choppyReader struct {
	b []byte
	n int
}

func (c *choppyReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

type pcapFrame struct {
	data []byte
	ts   time.Time
}

// readAllPcap reads every frame with pcapReader, refilling as importPcap
// does, and returns them with the error that stopped it (nil at a clean
// end or a frame cut off by the end of the file).
func readAllPcap(src io.Reader, block int) ([]pcapFrame, *pcapReader, error) {
	if block == 0 {
		block = pcapBlock
	}
	pr, err := newPcapReaderSize(src, block)
	if err != nil {
		return nil, nil, err
	}
	var out []pcapFrame
	for {
		data, ts, ok, err := pr.next()
		if err != nil {
			return out, pr, err
		}
		if ok {
			out = append(out, pcapFrame{append([]byte(nil), data...), ts})
			continue
		}
		switch err := pr.fill(0); {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return out, pr, nil
		case err != nil:
			return out, pr, err
		}
	}
}

// readAllGopacket is the same with gopacket's reader, the reference.
func readAllGopacket(b []byte) ([]pcapFrame, error) {
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var out []pcapFrame
	for {
		data, ci, err := r.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, pcapFrame{append([]byte(nil), data...), ci.Timestamp})
	}
}

// comparePcapReaders checks that pcapReader, with blocks of several sizes
// and reads cut short, gives the frames and times gopacket gives, and
// fails where gopacket fails.
func comparePcapReaders(t *testing.T, b []byte, blocks ...int) {
	want, wantErr := readAllGopacket(b)
	for _, block := range blocks {
		for _, chop := range []int{1 << 30, 7} {
			got, pr, err := readAllPcap(&choppyReader{b: b, n: chop}, block)
			if pr == nil {
				if wantErr == nil && len(want) > 0 {
					t.Fatalf("block %d: header refused (%v), gopacket read %d frames", block, err, len(want))
				}
				return
			}
			if err != nil && wantErr == nil && errors.Is(err, errPcapRecord) && len(got) <= len(want) && frameOver(b, pr, len(got)) {
				// Where gopacket takes a frame of more than pcapMaxFrame
				// (the snap length allows it), or reads to the end of the
				// file looking for it, we refuse it: up to there the
				// frames must be the same.
				want, wantErr = want[:len(got)], err
			}
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("block %d chop %d: error %v, gopacket's %v", block, chop, err, wantErr)
			}
			if len(got) != len(want) {
				t.Fatalf("block %d chop %d: %d frames, gopacket %d", block, chop, len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i].data, want[i].data) {
					t.Fatalf("block %d chop %d: frame %d differs", block, chop, i)
				}
				// gopacket multiplies a microsecond field in 32 bits; past
				// 4,294,967 µs (not a valid fraction) it wraps, we do not.
				if !got[i].ts.Equal(want[i].ts) && (pr.nano == 1 || validMicros(b, pr, i)) {
					t.Fatalf("block %d chop %d: frame %d at %v, gopacket %v", block, chop, i, got[i].ts, want[i].ts)
				}
			}
		}
	}
}

// frameOver reports whether record i declares a captured length over
// pcapMaxFrame.
func frameOver(b []byte, pr *pcapReader, i int) bool {
	off := pcapHeaderLen
	for k := 0; ; k++ {
		if off+pcapRecordLen > len(b) {
			return false
		}
		caplen := int64(pr.order.Uint32(b[off+8:]))
		if k == i {
			return caplen > pcapMaxFrame
		}
		off += pcapRecordLen + int(caplen)
	}
}

// validMicros reports whether frame i's fraction field (microseconds) is
// below 4,294,967, where gopacket's 32-bit multiplication is exact.
func validMicros(b []byte, pr *pcapReader, i int) bool {
	off := pcapHeaderLen
	for k := 0; ; k++ {
		if off+pcapRecordLen > len(b) {
			return false
		}
		if k == i {
			return pr.order.Uint32(b[off+4:]) < 4294967
		}
		off += pcapRecordLen + int(pr.order.Uint32(b[off+8:]))
	}
}

// TestPcapReaderMatchesGopacket reads every corpus capture that is classic
// pcap both ways.
func TestPcapReaderMatchesGopacket(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/*.pcap")
	if len(files) == 0 {
		t.Fatal("no corpus captures")
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newPcapReader(bytes.NewReader(b)); err != nil {
			continue // pcapng
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) { comparePcapReaders(t, b, 0, 100, 4096) })
	}
	if n == 0 {
		t.Fatal("no classic pcap file in the corpus")
	}
}

// pcapBytes builds a classic little-endian microsecond pcap of frames.
func pcapBytes(frames ...[]byte) []byte {
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65535, 1); err != nil {
		panic(err)
	}
	for i, f := range frames {
		ci := pcapCI(time.Unix(1700000000, int64(i)*20e6), len(f))
		if err := w.WritePacket(ci, f); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}

func TestPcapReaderBadInput(t *testing.T) {
	good := pcapBytes(make([]byte, 60), make([]byte, 70))
	t.Run("cut inside the second frame", func(t *testing.T) {
		got, _, err := readAllPcap(bytes.NewReader(good[:len(good)-10]), 0)
		if err != nil || len(got) != 1 {
			t.Fatalf("%d frames, %v: want the first frame and a clean end", len(got), err)
		}
	})
	t.Run("captured length over the original", func(t *testing.T) {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint32(b[24+12:], 10)
		got, _, err := readAllPcap(bytes.NewReader(b), 0)
		if err == nil || len(got) != 0 {
			t.Fatalf("%d frames, %v: want an error", len(got), err)
		}
	})
	t.Run("captured length over the limit", func(t *testing.T) {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint32(b[24+8:], 1<<30)
		binary.LittleEndian.PutUint32(b[24+12:], 1<<30)
		if _, _, err := readAllPcap(bytes.NewReader(b), 0); err == nil {
			t.Fatal("a 1 GiB frame was accepted")
		}
	})
	t.Run("frame larger than the block", func(t *testing.T) {
		b := pcapBytes(make([]byte, 3000), make([]byte, 5000))
		got, _, err := readAllPcap(bytes.NewReader(b), 1024)
		if err != nil || len(got) != 2 || len(got[1].data) != 5000 {
			t.Fatalf("%d frames, %v", len(got), err)
		}
	})
	t.Run("version", func(t *testing.T) {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint16(b[4:], 3)
		if _, err := newPcapReader(bytes.NewReader(b)); !errors.Is(err, errNotPcap) {
			t.Fatalf("%v, want errNotPcap", err)
		}
	})
	// A file cut inside a frame imports every frame before the cut and
	// says so (ErrTruncated), read in blocks (classic pcap) or through
	// gopacket (gzip); a file that ends cleanly says nothing.
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		zw.Write(b)
		zw.Close()
		return out.Bytes()
	}
	for _, tc := range []struct {
		name  string
		b     []byte
		trunc bool
	}{
		{"pcap cut inside a frame", good[:len(good)-10], true},
		{"gzipped pcap cut inside a frame", gz(good[:len(good)-10]), true},
		{"pcap whole", good, false},
		{"gzipped pcap whole", gz(good), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(Config{}, nil)
			n, err := ImportStream(context.Background(), e.NewReader(), "cut.pcap", bytes.NewReader(tc.b))
			if tc.trunc && (!errors.Is(err, ErrTruncated) || n != 1 || !strings.Contains(err.Error(), "after frame 1")) {
				t.Fatalf("%d frames, %v: want the first frame, then ErrTruncated", n, err)
			}
			if !tc.trunc && (err != nil || n != 2) {
				t.Fatalf("%d frames, %v: want both and no error", n, err)
			}
		})
	}
	t.Run("not a capture", func(t *testing.T) {
		e := New(Config{}, nil)
		_, err := ImportStream(context.Background(), e.NewReader(), "notes.txt", strings.NewReader("hello, this is not a capture\n"))
		if !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), "not a pcap or pcapng file (it starts with 68 65 6c 6c)") {
			t.Fatalf("%v: want ErrSource naming what the file starts with", err)
		}
	})
	t.Run("import stops with ErrSource", func(t *testing.T) {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint32(b[24+16+60+8:], 1<<30)
		binary.LittleEndian.PutUint32(b[24+16+60+12:], 1<<30)
		e := New(Config{}, nil)
		n, err := ImportStream(context.Background(), e.NewReader(), "bad.pcap", bytes.NewReader(b))
		if !errors.Is(err, ErrSource) || n != 1 {
			t.Fatalf("%d frames, %v: want the first frame, then ErrSource", n, err)
		}
	})
}

// FuzzPcapReader: any input gives the frames gopacket's reader gives, or
// an error where it errs, and never a panic.
func FuzzPcapReader(f *testing.F) {
	f.Add(pcapBytes(make([]byte, 60), make([]byte, 214)))
	f.Add(pcapBytes())
	b, _ := os.ReadFile("testdata/corpus/one.pcap")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		// Blocks smaller than the real 4 MiB: as many refills, more
		// executions a second.
		comparePcapReaders(t, b, 1<<16, 100, 4096)
	})
}

// FuzzPeekFlow4: the prefetcher's look at a frame never reads out of
// bounds, and where it finds an IPv4 UDP flow, the decoder finds the same.
func FuzzPeekFlow4(f *testing.F) {
	f.Add(benchRTPFrame(0))
	f.Add(benchRTPFrame(1))
	f.Add(benchRTPFrame(2))
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, frame []byte) {
		addrs, ports, ok := peekFlow4(packet.LinkEthernet, frame)
		if !ok {
			return
		}
		var d packet.Decoder
		var p packet.Packet
		if err := d.Decode(packet.LinkEthernet, time.Unix(0, 0), frame, &p); err != nil ||
			p.Protocol != packet.ProtoUDP || p.Flags&(packet.FlagFragment|packet.FlagTunneled) != 0 {
			return // the decoder checks more (lengths, checksums): a hint may be wrong
		}
		a, pt, ok := flowKey4(&p)
		if !ok || a != addrs || pt != ports {
			t.Fatalf("peek %x/%x, decoder %v:%d → %v:%d", addrs, ports, p.Src, p.SrcPort, p.Dst, p.DstPort)
		}
	})
}

// benchRTPFrame is an Ethernet/IPv4/UDP frame with vlans 802.1Q tags.
func benchRTPFrame(vlans int) []byte {
	f := make([]byte, 0, 256)
	f = append(f, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
	for i := 0; i < vlans; i++ {
		f = append(f, 0x81, 0x00, 0, byte(10+i))
	}
	f = append(f, 0x08, 0x00)
	payload := make([]byte, 172)
	payload[0] = 0x80
	ip := []byte{0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	f = append(f, ip...)
	udp := []byte{0x4e, 0x20, 0x4e, 0x22, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	f = append(f, udp...)
	return append(f, payload...)
}

// TestFlowCacheFollowsTable: a cached flow follows the stream table when
// an endpoint is taken over by another call or removed, for the
// destination and the source address alike.
func TestFlowCacheFollowsTable(t *testing.T) {
	e := New(Config{}, nil)
	r := e.NewReader()
	mk := func() *call {
		c := &call{local: -1}
		for i := range c.streams {
			c.streams[i] = &stream{c: c, party: i}
		}
		return c
	}
	src := netip.MustParseAddrPort("10.0.0.1:20000")
	dst := netip.MustParseAddrPort("10.0.0.2:20002")
	r.pkt = packet.Packet{IPVersion: 4, Src: src.Addr(), Dst: dst.Addr(), SrcPort: src.Port(), DstPort: dst.Port(), Protocol: packet.ProtoUDP}
	look := func() (*stream, bool) {
		s, _, _, fe := r.lookupFlow(src, dst)
		if fe == nil && s != nil {
			t.Fatal("an IPv4 flow got no cache entry")
		}
		return s, fe != nil && fe.s == s
	}
	if s, _ := look(); s != nil {
		t.Fatalf("empty table: stream %p", s)
	}
	a := mk()
	epA := newEndpoint(a, 0, false)
	e.table.put(dst, epA)
	for i := 0; i < 3; i++ { // a miss, then hits
		if s, cached := look(); s != a.streams[1] || !cached {
			t.Fatalf("lookup %d: %p (cached %v), want call A's party 1 voice %p", i, s, cached, a.streams[1])
		}
	}
	b := mk()
	e.table.put(dst, newEndpoint(b, 0, false))
	if s, _ := look(); s != b.streams[1] {
		t.Fatalf("after call B took the endpoint: %p, want %p", s, b.streams[1])
	}
	e.table.remove(dst, e.table.get(dst))
	if s, _ := look(); s != nil {
		t.Fatalf("after the endpoint was removed: %p, want none", s)
	}
	// Sent from a party's endpoint: the source's own voice, until an
	// endpoint appears for the destination, which takes precedence.
	c := mk()
	e.table.put(src, newEndpoint(c, 1, false))
	if s, _ := look(); s != c.streams[1] {
		t.Fatalf("symmetric RTP: %p, want call C's party 1 voice %p", s, c.streams[1])
	}
	look()
	e.table.put(dst, newEndpoint(b, 1, false))
	if s, _ := look(); s != b.streams[0] {
		t.Fatalf("after the destination got an endpoint: %p, want %p", s, b.streams[0])
	}
}

// TestFlowCacheOverfullSet: more flows than ways in one set. Plain LRU
// evicted a cycle of three flows on two ways on every packet (6 % of the
// packets of 1,000 calls missed); with the second chance, the ways keep
// their flows and only the extra flow misses, and a way whose flow stops
// (its call ended) goes to the waiting one.
func TestFlowCacheOverfullSet(t *testing.T) {
	e := New(Config{}, nil)
	r := e.NewReader()
	ring, err := rtp.NewRing(2, 0)
	if err != nil {
		t.Fatal(err)
	}
	// flowWays+1 flows to distinct destinations that share one set.
	src := netip.MustParseAddrPort("10.0.0.1:20000")
	type flow struct {
		dst netip.AddrPort
		s   *stream
	}
	var flows []flow
	set := -1
	for port := uint16(30000); len(flows) < flowWays+1; port += 2 {
		dst := netip.AddrPortFrom(netip.MustParseAddr("10.0.1.2"), port)
		a, b := src.Addr().As4(), dst.Addr().As4()
		addrs := uint64(binary.BigEndian.Uint32(a[:]))<<32 | uint64(binary.BigEndian.Uint32(b[:]))
		if s := int(flowSet(addrs, uint32(src.Port())<<16|uint32(port))); set < 0 || s == set {
			set = s
			c := &call{local: -1}
			for i := range c.streams {
				c.streams[i] = &stream{c: c, party: i}
			}
			e.table.put(dst, newEndpoint(c, 0, false))
			flows = append(flows, flow{dst, c.streams[1]})
		}
	}
	look := func(f flow) bool {
		r.pkt = packet.Packet{IPVersion: 4, Src: src.Addr(), Dst: f.dst.Addr(), SrcPort: src.Port(), DstPort: f.dst.Port(), Protocol: packet.ProtoUDP}
		s, cached, _, fe := r.lookupFlow(src, f.dst)
		if s != f.s {
			t.Fatalf("flow to %v: stream %p, want %p", f.dst, s, f.s)
		}
		if fe != nil {
			fe.ring = ring // as the reader does once the packet is queued
		}
		return cached != nil
	}
	hits := 0
	const rounds = 50
	for i := 0; i < rounds; i++ {
		for _, f := range flows {
			if look(f) {
				hits++
			}
		}
	}
	// The first round misses every flow; after it, all but one flow hit.
	if want := (rounds - 1) * flowWays; hits < want {
		t.Fatalf("%d flows on %d ways, %d rounds: %d hits, want at least %d", len(flows), flowWays, rounds, hits, want)
	}
	// One flow stops: the flow left out takes its way.
	rest := flows[1:]
	for i := 0; i < 3; i++ {
		for _, f := range rest {
			look(f)
		}
	}
	for _, f := range rest {
		if !look(f) {
			t.Fatalf("after one of %d flows stopped, the flow to %v still misses", len(flows), f.dst)
		}
	}
}
