package packet

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// sipBody is a SIP INVITE big enough to need fragments.
func sipBody(n int) []byte {
	b := []byte("INVITE sip:bob@example.com SIP/2.0\r\nContent-Type: application/sdp\r\n\r\n")
	for i := 0; len(b) < n; i++ {
		b = append(b, fmt.Sprintf("a=x-filler:%d\r\n", i)...)
	}
	return b[:n]
}

// fragments4 splits an IPv4 datagram's payload into raw-IP fragments of at
// most size bytes (a multiple of 8).
func fragments4(h ip4, payload []byte, size int) [][]byte {
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		f := h
		f.off, f.more = off, end < len(payload)
		out = append(out, f.build(payload[off:end]))
	}
	return out
}

// fragments6 does the same for IPv6 with a Fragment header; unfrag is put
// between the IPv6 header and the Fragment header, fragNext is the first
// header of the fragmentable part.
func fragments6(src, dst string, id uint32, fragNext uint8, unfragNext uint8, unfrag, payload []byte, size int) [][]byte {
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		next := unfragNext
		if len(unfrag) == 0 {
			next = ProtoFragment
		}
		out = append(out, ip6{src: src, dst: dst, next: next}.build(
			cat(unfrag, frag6(fragNext, off, end < len(payload), id), payload[off:end])))
	}
	return out
}

func newDefragDecoder(cfg DefragConfig) *Decoder {
	return &Decoder{Defrag: NewDefragmenter(cfg)}
}

// feed decodes raw-IP frames in order at t0 and returns the index and packet
// of the last one that produced a transport payload.
func feed(t *testing.T, d *Decoder, frames [][]byte, ts time.Time) (int, Packet) {
	t.Helper()
	done, last := -1, Packet{}
	for i, f := range frames {
		var p Packet
		if err := d.Decode(LinkRaw, ts, f, &p); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if p.Flags&FlagFragment == 0 {
			done, last = i, p
			last.Payload = bytes.Clone(p.Payload)
		}
	}
	return done, last
}

func TestDefragIPv4AllOrders(t *testing.T) {
	body := sipBody(3000)
	h := ip4{src: "216.221.155.72", dst: "10.0.90.18", proto: ProtoUDP, id: 0x1234}
	frags := fragments4(h, udpHdr(5060, 5060, body), 1000) // 4 fragments
	if len(frags) != 4 {
		t.Fatalf("%d fragments", len(frags))
	}
	d := newDefragDecoder(DefragConfig{})
	perms := 0
	permute(len(frags), func(order []int) {
		perms++
		in := make([][]byte, len(order))
		for i, o := range order {
			in[i] = frags[o]
		}
		at, p := feed(t, d, in, t0)
		if at != len(in)-1 {
			t.Fatalf("order %v: completed at %d", order, at)
		}
		if p.Flags&FlagReassembled == 0 || p.SrcPort != 5060 || p.DstPort != 5060 || !bytes.Equal(p.Payload, body) {
			t.Fatalf("order %v: flags %b ports %d/%d payload %d bytes", order, p.Flags, p.SrcPort, p.DstPort, len(p.Payload))
		}
	})
	s := d.Defrag.Stats()
	if s.Completed.Load() != uint64(perms) || s.Pending.Load() != 0 || perms != 24 {
		t.Fatalf("completed %d of %d, pending %d", s.Completed.Load(), perms, s.Pending.Load())
	}
}

// permute calls fn with every permutation of 0..n-1 (Heap's algorithm).
func permute(n int, fn func([]int)) {
	a := make([]int, n)
	for i := range a {
		a[i] = i
	}
	var gen func(k int)
	gen = func(k int) {
		if k == 1 {
			fn(a)
			return
		}
		for i := range k {
			gen(k - 1)
			if k%2 == 0 {
				a[i], a[k-1] = a[k-1], a[i]
			} else {
				a[0], a[k-1] = a[k-1], a[0]
			}
		}
	}
	gen(n)
}

func TestDefragIPv6(t *testing.T) {
	body := sipBody(4000)
	// The fragmentable part starts with a Destination Options header, which
	// must be walked after reassembly; a Hop-by-Hop header stays in front.
	fragmentable := cat(ext6(ProtoUDP, 0), udpHdr(5060, 5062, body))
	frags := fragments6("2001:db8::1", "2001:db8::2", 0xdeadbeef, ProtoDstOpts, ProtoHopByHop,
		ext6(ProtoFragment, 0), fragmentable, 1232)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(frags), func(i, j int) { frags[i], frags[j] = frags[j], frags[i] })
	d := newDefragDecoder(DefragConfig{})
	at, p := feed(t, d, frags, t0)
	if at != len(frags)-1 || p.IPVersion != 6 || p.Protocol != ProtoUDP || p.DstPort != 5062 || !bytes.Equal(p.Payload, body) {
		t.Fatalf("at %d: %+v", at, p)
	}
	// Without a Defragmenter the fragments come back marked.
	var plain Decoder
	var q Packet
	if err := plain.Decode(LinkRaw, t0, frags[0], &q); err != nil {
		t.Fatal(err)
	}
	if q.Flags&FlagFragment == 0 || q.FragID != 0xdeadbeef || q.Protocol != ProtoDstOpts {
		t.Fatalf("unreassembled: %+v", q)
	}
}

// TestDefragTunnel reassembles a fragmented IP-in-IP packet: the payload
// then lies in the Defragmenter's buffer, which the flags must say.
func TestDefragTunnel(t *testing.T) {
	body := sipBody(2500)
	inner := ip4{src: "10.15.196.229", dst: "10.15.194.19", proto: ProtoUDP}.build(udpHdr(5060, 5060, body))
	outer := ip4{src: "10.15.193.31", dst: "10.15.197.103", proto: ProtoIPIP, id: 3}
	d := newDefragDecoder(DefragConfig{})
	at, p := feed(t, d, fragments4(outer, inner, 1480), t0)
	if at != 1 || p.Flags&(FlagReassembled|FlagTunneled) != FlagReassembled|FlagTunneled ||
		p.Src.String() != "10.15.196.229" || p.OuterSrc.String() != "10.15.193.31" || !bytes.Equal(p.Payload, body) {
		t.Fatalf("at %d flags %b %v (outer %v) %d bytes", at, p.Flags, p.Src, p.OuterSrc, len(p.Payload))
	}
}

func TestDefragNoDefragmenter(t *testing.T) {
	h := ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoUDP, id: 77}
	frags := fragments4(h, udpHdr(1, 2, sipBody(100)), 64)
	var d Decoder
	for i, f := range frags {
		var p Packet
		if err := d.Decode(LinkRaw, t0, f, &p); err != nil {
			t.Fatal(err)
		}
		more := i < len(frags)-1
		if p.Flags&FlagFragment == 0 || p.FragID != 77 || int(p.FragOffset) != 64*i ||
			(p.Flags&FlagMoreFragments != 0) != more || p.SrcPort != 0 {
			t.Fatalf("fragment %d: %+v", i, p)
		}
	}
	if d.Stats().Fragments.Load() != uint64(len(frags)) {
		t.Fatalf("fragments counted %d", d.Stats().Fragments.Load())
	}
}

func TestDefragDuplicateAndOverlap(t *testing.T) {
	h := ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoUDP, id: 5}
	body := sipBody(2000)
	frags := fragments4(h, udpHdr(1, 2, body), 800) // 3 fragments
	d := newDefragDecoder(DefragConfig{})

	// An exact duplicate (a SPAN port seeing both sides) is dropped alone.
	at, p := feed(t, d, [][]byte{frags[0], frags[0], frags[1], frags[1], frags[2]}, t0)
	if at != 4 || !bytes.Equal(p.Payload, body) {
		t.Fatalf("duplicates: completed at %d", at)
	}
	if d.Defrag.Stats().Duplicates.Load() != 2 {
		t.Fatalf("duplicates counted %d", d.Defrag.Stats().Duplicates.Load())
	}

	// An overlap with other bounds drops the whole datagram (RFC 5722).
	h.id = 6
	frags = fragments4(h, udpHdr(1, 2, body), 800)
	overlap := h
	overlap.off, overlap.more = 400, true
	evil := overlap.build(make([]byte, 800)) // covers 400..1200, across fragments 0 and 1
	var q Packet
	if err := d.Decode(LinkRaw, t0, frags[0], &q); err != nil {
		t.Fatal(err)
	}
	err := d.Decode(LinkRaw, t0, evil, &q)
	if !errors.Is(err, ErrFragmentOverlap) {
		t.Fatalf("overlap: %v", err)
	}
	// The rest now starts a new reassembly that lacks offset 0.
	if at, _ := feed(t, d, frags[1:], t0); at != -1 {
		t.Fatalf("dropped datagram completed at %d", at)
	}
	if d.Defrag.Stats().Overlaps.Load() != 1 {
		t.Fatalf("overlaps %d", d.Defrag.Stats().Overlaps.Load())
	}
}

func TestDefragMalformed(t *testing.T) {
	h := ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoUDP, id: 9}
	withOff := func(off int, more bool, n int) []byte {
		f := h
		f.off, f.more = off, more
		return f.build(make([]byte, n))
	}
	cases := []struct {
		name   string
		frames [][]byte
		want   error
		msg    string
	}{
		{"unaligned", [][]byte{withOff(0, true, 100)}, ErrMalformed,
			"packet: malformed: ip fragment length not a multiple of 8 100"},
		{"empty with more", [][]byte{withOff(8, true, 0)}, ErrMalformed,
			"packet: malformed: ip fragment length with more fragments 0"},
		{"ping of death", [][]byte{withOff(65528, false, 100)}, ErrMalformed,
			"packet: malformed: ip fragment end 65628 > 65535"},
		{"two ends", [][]byte{withOff(800, false, 100), withOff(1600, false, 8)}, ErrMalformed,
			"packet: malformed: ip last fragment end 1608"},
		{"data past end", [][]byte{withOff(800, false, 100), withOff(1600, true, 8)}, ErrMalformed,
			"packet: malformed: ip last fragment end 1608"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDefragDecoder(DefragConfig{})
			var p Packet
			var err error
			for _, f := range c.frames {
				err = d.Decode(LinkRaw, t0, f, &p)
			}
			if !errors.Is(err, c.want) || err.Error() != c.msg {
				t.Fatalf("got %v, want %q", err, c.msg)
			}
			if d.Defrag.Stats().Malformed.Load() != 1 || d.Defrag.Stats().Pending.Load() != 0 {
				t.Fatalf("malformed %d pending %d", d.Defrag.Stats().Malformed.Load(), d.Defrag.Stats().Pending.Load())
			}
		})
	}
	// More than maxFragments pieces of one datagram.
	d := newDefragDecoder(DefragConfig{})
	var p Packet
	var err error
	for i := 0; i <= maxFragments && err == nil; i++ {
		err = d.Decode(LinkRaw, t0, withOff(8*i, true, 8), &p)
	}
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("too many fragments: %v", err)
	}
}

func TestDefragTimeout(t *testing.T) {
	h := ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoUDP, id: 1}
	frags := fragments4(h, udpHdr(1, 2, sipBody(1000)), 512)
	d := newDefragDecoder(DefragConfig{Timeout: 30 * time.Second})
	feed(t, d, frags[:1], t0)
	// Within the timeout the datagram completes...
	if at, _ := feed(t, d, frags[1:], t0.Add(30*time.Second)); at != 0 {
		t.Fatalf("within timeout: at %d", at)
	}
	// ...past it, the first fragment is forgotten, judged by capture time.
	h.id = 2
	frags = fragments4(h, udpHdr(1, 2, sipBody(1000)), 512)
	feed(t, d, frags[:1], t0)
	if at, _ := feed(t, d, frags[1:], t0.Add(30*time.Second+time.Nanosecond)); at != -1 {
		t.Fatalf("after timeout: completed at %d", at)
	}
	s := d.Defrag.Stats()
	if s.TimedOut.Load() != 1 || s.Pending.Load() != 1 {
		t.Fatalf("timed out %d pending %d", s.TimedOut.Load(), s.Pending.Load())
	}
}

func TestDefragEviction(t *testing.T) {
	d := newDefragDecoder(DefragConfig{MaxDatagrams: 2})
	var firsts, rests [][]byte
	for id := range 3 {
		h := ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoUDP, id: id}
		fr := fragments4(h, udpHdr(1, 2, sipBody(600)), 512)
		firsts, rests = append(firsts, fr[0]), append(rests, fr[1])
	}
	feed(t, d, firsts, t0) // the third evicts the first (oldest)
	if at, _ := feed(t, d, rests[:1], t0); at != -1 {
		t.Fatal("evicted datagram completed")
	}
	if d.Defrag.Stats().Evicted.Load() < 1 {
		t.Fatal("no eviction counted")
	}
	if at, _ := feed(t, d, rests[2:], t0); at != 0 {
		t.Fatal("newest datagram did not complete")
	}
}

func TestDefragMemoryBound(t *testing.T) {
	const limit = 16 << 10
	d := newDefragDecoder(DefragConfig{MaxMemory: limit, MaxDatagrams: 64})
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		// Fragments far into big datagrams, never completed.
		h := ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoUDP, id: i, off: 8 * rng.IntN(6000), more: true}
		var p Packet
		if err := d.Decode(LinkRaw, t0, h.build(make([]byte, 512)), &p); err != nil && !errors.Is(err, ErrUnsupported) {
			t.Fatal(err)
		}
		if m := d.Defrag.Memory(); m > limit {
			t.Fatalf("after %d fragments memory %d > %d", i, m, limit)
		}
	}
	// And a datagram that fits still completes.
	h := ip4{src: "10.9.9.9", dst: "10.0.0.2", proto: ProtoUDP, id: 1}
	if at, _ := feed(t, d, fragments4(h, udpHdr(1, 2, sipBody(4000)), 1480), t0); at < 0 {
		t.Fatal("datagram within the memory bound did not complete")
	}
}

// TestDefragRealCapture reassembles the SIP-I INVITE of nextcaller's
// sip-i.pcap (MIT, see testdata/MANIFEST.md): two IPv4 fragments.
func TestDefragRealCapture(t *testing.T) {
	link, frames := readCapture(t, "testdata/sip-i.pcap")
	d := newDefragDecoder(DefragConfig{})
	var p Packet
	if err := d.Decode(link, frames[0].ts, frames[0].data, &p); err != nil || p.Flags&FlagFragment == 0 {
		t.Fatalf("frame 1: %v flags %b", err, p.Flags)
	}
	if err := d.Decode(link, frames[1].ts, frames[1].data, &p); err != nil {
		t.Fatal(err)
	}
	// tshark: frame 2 reassembles to UDP 5060->5060, udp.length 1547.
	if p.Flags&FlagReassembled == 0 || p.SrcPort != 5060 || len(p.Payload) != 1547-8 ||
		!bytes.HasPrefix(p.Payload, []byte("INVITE sip:")) {
		t.Fatalf("flags %b port %d len %d %q", p.Flags, p.SrcPort, len(p.Payload), p.Payload[:min(20, len(p.Payload))])
	}
}
