package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func TestDecodeLinkTypes(t *testing.T) {
	payload := []byte("INVITE sip:bob@example.com SIP/2.0\r\n")
	v4 := ip4{src: "192.0.2.1", dst: "198.51.100.2", proto: ProtoUDP}.build(udpHdr(5060, 5080, payload))
	v6 := ip6{src: "2001:db8::1", dst: "2001:db8::2", next: ProtoUDP}.build(udpHdr(5060, 5080, payload))
	le := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	bigE := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	sllHdr := func(proto int) []byte {
		return cat([]byte{0, 0, 0, 1, 0, 6}, macA, []byte{0, 0}, be16(proto))
	}
	sll2Hdr := func(proto int) []byte {
		return cat(be16(proto), []byte{0, 0}, []byte{0, 0, 0, 2}, []byte{0, 1, 0, 6}, macA, []byte{0, 0})
	}
	cases := []struct {
		name  string
		link  LinkType
		frame []byte
		v6    bool
	}{
		{"ethernet ipv4", LinkEthernet, cat(ether(0x0800), v4), false},
		{"ethernet ipv6", LinkEthernet, cat(ether(0x86dd), v6), true},
		{"ethernet padded", LinkEthernet, cat(ether(0x0800), v4, make([]byte, 30)), false},
		{"sll ipv4", LinkLinuxSLL, cat(sllHdr(0x0800), v4), false},
		{"sll ipv6", LinkLinuxSLL, cat(sllHdr(0x86dd), v6), true},
		{"sll vlan", LinkLinuxSLL, cat(sllHdr(0x8100), be16(7), be16(0x0800), v4), false},
		{"sll2 ipv4", LinkLinuxSLL2, cat(sll2Hdr(0x0800), v4), false},
		{"sll2 ipv6", LinkLinuxSLL2, cat(sll2Hdr(0x86dd), v6), true},
		{"raw 101 ipv4", LinkRaw, v4, false},
		{"raw 101 ipv6", LinkRaw, v6, true},
		{"raw dlt 12", LinkRawDLT12, v4, false},
		{"raw dlt 14", LinkRawDLT14, v6, true},
		{"linktype ipv4", LinkIPv4, v4, false},
		{"linktype ipv6", LinkIPv6, v6, true},
		{"null little-endian inet", LinkNull, cat(le(2), v4), false},
		{"null big-endian inet", LinkNull, cat(bigE(2), v4), false},
		{"null inet6 bsd", LinkNull, cat(le(24), v6), true},
		{"null inet6 freebsd", LinkNull, cat(le(28), v6), true},
		{"null inet6 darwin", LinkNull, cat(le(30), v6), true},
		{"loop inet", LinkLoop, cat(bigE(2), v4), false},
		{"loop inet6", LinkLoop, cat(bigE(24), v6), true},
	}
	var d Decoder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			if err := d.Decode(c.link, t0, c.frame, &p); err != nil {
				t.Fatal(err)
			}
			src, dst, ver := "192.0.2.1", "198.51.100.2", uint8(4)
			if c.v6 {
				src, dst, ver = "2001:db8::1", "2001:db8::2", 6
			}
			if p.IPVersion != ver || p.Src != netip.MustParseAddr(src) || p.Dst != netip.MustParseAddr(dst) {
				t.Errorf("ip %d %v -> %v, want %d %s -> %s", p.IPVersion, p.Src, p.Dst, ver, src, dst)
			}
			if p.Protocol != ProtoUDP || p.SrcPort != 5060 || p.DstPort != 5080 {
				t.Errorf("transport %d %d->%d", p.Protocol, p.SrcPort, p.DstPort)
			}
			if !bytes.Equal(p.Payload, payload) {
				t.Errorf("payload %q", p.Payload)
			}
		})
	}
}

func TestDecodeVLANs(t *testing.T) {
	v4 := ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoUDP}.build(udpHdr(1000, 2000, []byte("x")))
	tpids := []uint16{0x88a8, 0x9100, 0x8100, 0x8100}
	var d Decoder
	for n := 0; n <= MaxVLANTags; n++ {
		var tags []VLANTag
		for i := range n {
			tags = append(tags, VLANTag{TPID: tpids[i], TCI: uint16(i+1)<<13 | uint16(100+i)})
		}
		var p Packet
		if err := d.Decode(LinkEthernet, t0, cat(ether(0x0800, tags...), v4), &p); err != nil {
			t.Fatalf("%d tags: %v", n, err)
		}
		if p.NumVLANs != n {
			t.Fatalf("%d tags: NumVLANs %d", n, p.NumVLANs)
		}
		for i, tag := range tags {
			got := p.VLANs[i]
			if got != tag || got.ID() != uint16(100+i) || got.Priority() != uint8(i+1) {
				t.Errorf("%d tags: tag %d = %+v (id %d prio %d), want %+v", n, i, got, got.ID(), got.Priority(), tag)
			}
		}
		if p.SrcPort != 1000 || string(p.Payload) != "x" {
			t.Errorf("%d tags: port %d payload %q", n, p.SrcPort, p.Payload)
		}
	}
	five := []VLANTag{{0x88a8, 1}, {0x8100, 2}, {0x8100, 3}, {0x8100, 4}, {0x8100, 5}}
	var p Packet
	err := d.Decode(LinkEthernet, t0, cat(ether(0x0800, five...), v4), &p)
	if !errors.Is(err, ErrUnsupported) || err.Error() != "packet: unsupported: vlan tags 5 > 4" {
		t.Fatalf("5 tags: %v", err)
	}
}

func TestDecodeIPv4OptionsAndTCP(t *testing.T) {
	opts := []byte{0x94, 0x04, 0, 0}                // router alert (RFC 2113), 4 bytes
	tcpOpts := []byte{2, 4, 0x05, 0xb4, 1, 1, 4, 2} // MSS, NOP, NOP, SACK permitted
	data := []byte("SIP/2.0 200 OK\r\n")
	frame := cat(ether(0x0800), ip4{src: "10.1.1.1", dst: "10.2.2.2", proto: ProtoTCP, options: opts}.
		build(tcpHdr(5060, 40000, 0xfffffff0, 12345, TCPAck|TCPPsh, tcpOpts, data)))
	var d Decoder
	var p Packet
	if err := d.Decode(LinkEthernet, t0, frame, &p); err != nil {
		t.Fatal(err)
	}
	if p.Protocol != ProtoTCP || p.SrcPort != 5060 || p.DstPort != 40000 || p.TCPSeq != 0xfffffff0 ||
		p.TCPAck != 12345 || p.TCPFlags != TCPAck|TCPPsh || !bytes.Equal(p.Payload, data) {
		t.Fatalf("got %+v", p)
	}
}

func TestDecodeIPv6ExtensionHeaders(t *testing.T) {
	data := []byte("BYE sip:a@b SIP/2.0\r\n")
	u := udpHdr(5060, 5060, data)
	// Hop-by-Hop -> Routing -> Destination Options -> atomic Fragment -> UDP.
	chain := cat(ext6(ProtoRouting, 0), ext6(ProtoDstOpts, 2), ext6(ProtoFragment, 1),
		frag6(ProtoUDP, 0, false, 99), u)
	frame := cat(ether(0x86dd), ip6{src: "fe80::1", dst: "fe80::2", next: ProtoHopByHop}.build(chain))
	var d Decoder
	var p Packet
	if err := d.Decode(LinkEthernet, t0, frame, &p); err != nil {
		t.Fatal(err)
	}
	if p.Protocol != ProtoUDP || !bytes.Equal(p.Payload, data) || p.Flags&FlagFragment != 0 {
		t.Fatalf("got proto %d flags %b payload %q", p.Protocol, p.Flags, p.Payload)
	}
	// No Next Header: nothing above IPv6.
	frame = cat(ether(0x86dd), ip6{src: "fe80::1", dst: "fe80::2", next: ProtoDstOpts}.build(ext6(ProtoNoNext, 0)))
	if err := d.Decode(LinkEthernet, t0, frame, &p); err != nil || p.Protocol != ProtoNoNext || p.Payload != nil {
		t.Fatalf("no next header: %v %+v", err, p)
	}
	// AH counts its length in 4-octet units minus 2 (RFC 4302 §2.2).
	ah := make([]byte, 24)
	ah[0], ah[1] = ProtoUDP, 4
	frame = cat(ether(0x86dd), ip6{src: "fe80::1", dst: "fe80::2", next: ProtoAH}.build(cat(ah, u)))
	if err := d.Decode(LinkEthernet, t0, frame, &p); err != nil || !bytes.Equal(p.Payload, data) {
		t.Fatalf("ah: %v %q", err, p.Payload)
	}
}

func TestDecodeTunnels(t *testing.T) {
	data := []byte("OPTIONS sip:x SIP/2.0\r\n")
	inner4 := ip4{src: "10.15.196.229", dst: "10.15.194.19", proto: ProtoUDP}.build(udpHdr(5060, 5062, data))
	inner6 := ip6{src: "2001:db8::a", dst: "2001:db8::b", next: ProtoUDP}.build(udpHdr(5060, 5062, data))
	cases := []struct {
		name     string
		frame    []byte
		src, dst string
	}{
		{"ipip", cat(ether(0x0800), ip4{src: "10.15.193.31", dst: "10.15.197.103", proto: ProtoIPIP}.build(inner4)),
			"10.15.196.229", "10.15.194.19"},
		{"6in4", cat(ether(0x0800), ip4{src: "10.15.193.31", dst: "10.15.197.103", proto: ProtoIPv6}.build(inner6)),
			"2001:db8::a", "2001:db8::b"},
		{"4in4in4", cat(ether(0x0800), ip4{src: "10.15.193.31", dst: "10.15.197.103", proto: ProtoIPIP}.build(
			ip4{src: "172.16.0.1", dst: "172.16.0.2", proto: ProtoIPIP}.build(inner4))),
			"10.15.196.229", "10.15.194.19"},
	}
	var d Decoder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			if err := d.Decode(LinkEthernet, t0, c.frame, &p); err != nil {
				t.Fatal(err)
			}
			if p.Flags&FlagTunneled == 0 || p.Src.String() != c.src || p.Dst.String() != c.dst ||
				p.OuterSrc.String() != "10.15.193.31" || p.OuterDst.String() != "10.15.197.103" {
				t.Fatalf("flags %b %v->%v outer %v->%v", p.Flags, p.Src, p.Dst, p.OuterSrc, p.OuterDst)
			}
			if p.SrcPort != 5060 || !bytes.Equal(p.Payload, data) {
				t.Fatalf("port %d payload %q", p.SrcPort, p.Payload)
			}
		})
	}
	// Nesting beyond maxTunnels is refused, not followed.
	b := inner4
	for range maxTunnels + 1 {
		b = ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoIPIP}.build(b)
	}
	var p Packet
	if err := d.Decode(LinkRaw, t0, b, &p); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("deep nesting: %v", err)
	}
}

func TestDecodeOtherTransport(t *testing.T) {
	sctp := []byte{0x13, 0xc4, 0x13, 0xc4, 1, 2, 3, 4, 0, 0, 0, 0}
	var d Decoder
	var p Packet
	if err := d.Decode(LinkRaw, t0, ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: 132}.build(sctp), &p); err != nil {
		t.Fatal(err)
	}
	if p.Protocol != 132 || !bytes.Equal(p.Payload, sctp) || p.SrcPort != 0 {
		t.Fatalf("got %+v", p)
	}
}

// TestDecodeErrors checks that each kind of bad frame gets the right
// sentinel and a message with the numbers.
func TestDecodeErrors(t *testing.T) {
	v4 := ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoUDP}.build(udpHdr(1, 2, []byte("hello")))
	badUDPLen := bytes.Clone(v4)
	binary.BigEndian.PutUint16(badUDPLen[24:], 4)
	longUDPLen := bytes.Clone(v4)
	binary.BigEndian.PutUint16(longUDPLen[24:], 100)
	badIHL := bytes.Clone(v4)
	badIHL[0] = 0x44
	badVersion := bytes.Clone(v4)
	badVersion[0] = 0x55
	shortTotal := bytes.Clone(v4)
	binary.BigEndian.PutUint16(shortTotal[2:], 19)
	v6 := ip6{src: "::1", dst: "::2", next: ProtoTCP}.build(tcpHdr(1, 2, 0, 0, 0, nil, nil))
	badOff := bytes.Clone(v6)
	badOff[40+12] = 0x40
	longOff := bytes.Clone(v6)
	longOff[40+12] = 0xf0
	cases := []struct {
		name  string
		link  LinkType
		frame []byte
		want  error
		msg   string
	}{
		{"empty ethernet", LinkEthernet, nil, ErrTruncated, "packet: truncated: ethernet header 0 < 14"},
		{"arp", LinkEthernet, cat(ether(0x0806), make([]byte, 28)), ErrUnsupported, "packet: unsupported: ethertype 0x0806"},
		{"cut vlan", LinkEthernet, cat(ether(0x8100), []byte{0}), ErrTruncated, "packet: truncated: vlan tag 1 < 4"},
		{"short ipv4", LinkEthernet, cat(ether(0x0800), v4[:12]), ErrTruncated, "packet: truncated: ipv4 header 12 < 20"},
		{"ipv4 ihl", LinkRaw, badIHL, ErrMalformed, "packet: malformed: ipv4 header length 16 < 20"},
		{"ipv4 version in ipv4 link", LinkIPv4, badVersion, ErrMalformed, "packet: malformed: ipv4 version 5"},
		{"raw version", LinkRaw, badVersion, ErrMalformed, "packet: malformed: raw ip version 5"},
		{"ipv4 total < ihl", LinkRaw, shortTotal, ErrMalformed, "packet: malformed: ipv4 total length 19 < 20"},
		{"ipv4 cut", LinkRaw, v4[:len(v4)-1], ErrTruncated, "packet: truncated: ipv4 packet 32 < 33"},
		{"udp length", LinkRaw, badUDPLen, ErrMalformed, "packet: malformed: udp length 4 < 8"},
		{"udp beyond ip", LinkRaw, longUDPLen, ErrTruncated, "packet: truncated: udp datagram 13 < 100"},
		{"short ipv6", LinkRaw, v6[:39], ErrTruncated, "packet: truncated: ipv6 header 39 < 40"},
		{"tcp data offset", LinkRaw, badOff, ErrMalformed, "packet: malformed: tcp data offset 16 < 20"},
		{"tcp options cut", LinkRaw, longOff, ErrTruncated, "packet: truncated: tcp options 20 < 60"},
		{"short sll", LinkLinuxSLL, make([]byte, 15), ErrTruncated, "packet: truncated: sll header 15 < 16"},
		{"short sll2", LinkLinuxSLL2, make([]byte, 19), ErrTruncated, "packet: truncated: sll2 header 19 < 20"},
		{"null family", LinkNull, []byte{7, 0, 0, 0}, ErrUnsupported, "packet: unsupported: loopback address family 7"},
		{"unknown link", LinkType(147), []byte{1}, ErrUnsupported, "packet: unsupported: link type 147"},
		{"ipv6 ext cut", LinkRaw, ip6{src: "::1", dst: "::2", next: ProtoHopByHop}.build(ext6(ProtoUDP, 0)[:6]),
			ErrTruncated, "packet: truncated: ipv6 extension header 6 < 8"},
	}
	var d Decoder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			err := d.Decode(c.link, t0, c.frame, &p)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if err.Error() != c.msg {
				t.Fatalf("message %q, want %q", err.Error(), c.msg)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("not a *DecodeError: %T", err)
			}
		})
	}
	s := d.Stats()
	if s.Truncated.Load() == 0 || s.Malformed.Load() == 0 || s.Unsupported.Load() == 0 || s.Decoded.Load() != 0 {
		t.Fatalf("stats truncated %d malformed %d unsupported %d decoded %d",
			s.Truncated.Load(), s.Malformed.Load(), s.Unsupported.Load(), s.Decoded.Load())
	}
}

// TestDecodeTruncatedEverywhere cuts a valid frame at every length: each cut
// must give an error (never a panic), except cuts that leave a valid packet.
func TestDecodeTruncatedEverywhere(t *testing.T) {
	frames := map[string][]byte{
		"vlan udp": cat(ether(0x0800, VLANTag{0x8100, 5}), ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoUDP}.build(udpHdr(1, 2, rtpPayload()))),
		"v6 tcp": cat(ether(0x86dd), ip6{src: "::1", dst: "::2", next: ProtoHopByHop}.build(
			cat(ext6(ProtoTCP, 0), tcpHdr(1, 2, 3, 4, TCPAck, nil, []byte("abc"))))),
	}
	for name, f := range frames {
		var d Decoder
		var p Packet
		if err := d.Decode(LinkEthernet, t0, f, &p); err != nil {
			t.Fatalf("%s whole: %v", name, err)
		}
		for n := range len(f) {
			err := d.Decode(LinkEthernet, t0, f[:n], &p)
			if err == nil {
				t.Errorf("%s cut at %d of %d: no error", name, n, len(f))
			} else if !errors.Is(err, ErrTruncated) {
				t.Errorf("%s cut at %d: %v, want ErrTruncated", name, n, err)
			}
		}
	}
}

func TestDecodeResetsPacket(t *testing.T) {
	var d Decoder
	var p Packet
	tcp := cat(ether(0x0800, VLANTag{0x8100, 9}), ip4{src: "10.0.0.1", dst: "10.0.0.2", proto: ProtoTCP}.build(tcpHdr(1, 2, 3, 4, TCPSyn, nil, nil)))
	if err := d.Decode(LinkEthernet, t0, tcp, &p); err != nil {
		t.Fatal(err)
	}
	udp := ip6{src: "::1", dst: "::2", next: ProtoUDP}.build(udpHdr(7, 8, nil))
	if err := d.Decode(LinkRaw, t0, udp, &p); err != nil {
		t.Fatal(err)
	}
	if p.NumVLANs != 0 || p.TCPSeq != 0 || p.TCPFlags != 0 || p.IPVersion != 6 || p.SrcPort != 7 || len(p.Payload) != 0 {
		t.Fatalf("stale fields: %+v", p)
	}
}
