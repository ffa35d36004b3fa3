package rtp

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

// udpDatagram is one UDP payload read from a capture file with its
// capture time. The real decoder is package capture/packet; tests only
// need Ethernet (optionally VLAN-tagged) / IPv4 / UDP, skipped inline.
type udpDatagram struct {
	Arrival          int64 // ns since the epoch
	Src, Dst         string
	SrcPort, DstPort uint16
	Payload          []byte
}

// readUDP returns every unfragmented IPv4/UDP datagram of a pcap or
// pcapng file with an Ethernet or Linux cooked (SLL) link type.
func readUDP(t testing.TB, path string) []udpDatagram {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var next func() ([]byte, int64, error)
	var sll bool
	if binary.BigEndian.Uint32(magic[:]) == 0x0A0D0D0A {
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		sll = r.LinkType() == 113
		next = func() ([]byte, int64, error) {
			d, ci, err := r.ReadPacketData()
			return d, ci.Timestamp.UnixNano(), err
		}
	} else {
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		sll = r.LinkType() == 113
		next = func() ([]byte, int64, error) {
			d, ci, err := r.ReadPacketData()
			return d, ci.Timestamp.UnixNano(), err
		}
	}
	var out []udpDatagram
	for {
		data, ts, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := skipToUDP(data, sll); ok {
			d.Arrival = ts
			out = append(out, d)
		}
	}
	return out
}

// skipToUDP skips Ethernet (or Linux cooked, sll) and IPv4 headers.
func skipToUDP(b []byte, sll bool) (udpDatagram, bool) {
	if len(b) < 16 {
		return udpDatagram{}, false
	}
	et, off := binary.BigEndian.Uint16(b[12:]), 14
	if sll {
		et, off = binary.BigEndian.Uint16(b[14:]), 16
	}
	for et == 0x8100 || et == 0x88A8 {
		if len(b) < off+4 {
			return udpDatagram{}, false
		}
		et, off = binary.BigEndian.Uint16(b[off+2:]), off+4
	}
	if et != 0x0800 || len(b) < off+20 {
		return udpDatagram{}, false
	}
	ip := b[off:]
	ihl := int(ip[0]&0x0F) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[0]>>4 != 4 || ip[9] != 17 || ihl < 20 || total > len(ip) || total < ihl+8 {
		return udpDatagram{}, false
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3FFF != 0 { // MF or fragment offset
		return udpDatagram{}, false
	}
	udp := ip[ihl:total]
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if ulen < 8 || ulen > len(udp) {
		return udpDatagram{}, false
	}
	return udpDatagram{
		Src:     fmt.Sprintf("%d.%d.%d.%d", ip[12], ip[13], ip[14], ip[15]),
		Dst:     fmt.Sprintf("%d.%d.%d.%d", ip[16], ip[17], ip[18], ip[19]),
		SrcPort: binary.BigEndian.Uint16(udp),
		DstPort: binary.BigEndian.Uint16(udp[2:]),
		Payload: udp[8:ulen],
	}, true
}

// rtpOf returns the datagrams of one SSRC that parse as RTP, in capture
// order.
func rtpOf(t testing.TB, ds []udpDatagram, ssrc uint32) []udpDatagram {
	t.Helper()
	var out []udpDatagram
	for _, d := range ds {
		var p Packet
		if p.Unmarshal(d.Payload) == nil && !IsRTCP(d.Payload) && p.SSRC == ssrc {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no RTP packets with SSRC %#x", ssrc)
	}
	return out
}
