package packet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
)

// Builders for synthetic frames. They write headers the way the RFCs lay
// them out, independently of the decoder's code, so a test that builds and
// decodes checks both against the diagrams.

func be16(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	macA = []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}
	macB = []byte{0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb}
)

// ether builds an Ethernet header with the given VLAN tags (TPID, TCI pairs)
// before etherType.
func ether(etherType int, tags ...VLANTag) []byte {
	b := cat(macA, macB)
	for _, t := range tags {
		b = cat(b, be16(int(t.TPID)), be16(int(t.TCI)))
	}
	return cat(b, be16(etherType))
}

type ip4 struct {
	src, dst string
	proto    uint8
	id       int
	off      int // bytes
	more     bool
	options  []byte // multiple of 4
	totalLen int    // 0: computed
}

func (h ip4) build(payload []byte) []byte {
	ihl := 20 + len(h.options)
	total := ihl + len(payload)
	if h.totalLen != 0 {
		total = h.totalLen
	}
	frag := h.off / 8
	if h.more {
		frag |= 0x2000
	}
	s, d := netip.MustParseAddr(h.src).As4(), netip.MustParseAddr(h.dst).As4()
	b := cat([]byte{0x40 | byte(ihl/4), 0}, be16(total), be16(h.id), be16(frag),
		[]byte{64, h.proto, 0, 0}, s[:], d[:], h.options, payload)
	return b
}

type ip6 struct {
	src, dst string
	next     uint8
}

func (h ip6) build(payload []byte) []byte {
	s, d := netip.MustParseAddr(h.src).As16(), netip.MustParseAddr(h.dst).As16()
	return cat([]byte{0x60, 0, 0, 0}, be16(len(payload)), []byte{h.next, 64}, s[:], d[:], payload)
}

// ext6 builds an IPv6 Hop-by-Hop/Routing/Destination Options header of
// 8*(units+1) bytes.
func ext6(next uint8, units int) []byte {
	b := make([]byte, 8*(units+1))
	b[0], b[1] = next, byte(units)
	return b
}

// frag6 builds an IPv6 Fragment header.
func frag6(next uint8, off int, more bool, id uint32) []byte {
	om := (off / 8) << 3
	if more {
		om |= 1
	}
	return cat([]byte{next, 0}, be16(om), binary.BigEndian.AppendUint32(nil, id))
}

func udpHdr(sport, dport int, payload []byte) []byte {
	return cat(be16(sport), be16(dport), be16(8+len(payload)), be16(0), payload)
}

func tcpHdr(sport, dport int, seq, ack uint32, flags uint8, options []byte, payload []byte) []byte {
	off := (20 + len(options)) / 4
	return cat(be16(sport), be16(dport), binary.BigEndian.AppendUint32(nil, seq),
		binary.BigEndian.AppendUint32(nil, ack), []byte{byte(off << 4), flags}, be16(65535),
		be16(0), be16(0), options, payload)
}

// rtpPayload is a 12-byte RTP header and 160 bytes of G.711: the packet the
// capture path sees fifty times a second per direction of every call.
func rtpPayload() []byte {
	b := make([]byte, 172)
	b[0], b[1] = 0x80, 8
	for i := 12; i < len(b); i++ {
		b[i] = 0xd5
	}
	return b
}

// frame is one record of a capture file.
type frame struct {
	ts   time.Time
	data []byte
}

// readCapture reads a pcap or pcapng file with gopacket's pcapgo.
func readCapture(tb testing.TB, path string) (LinkType, []frame) {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var (
		link   LinkType
		frames []frame
	)
	if bytes.HasPrefix(raw, []byte{0x0a, 0x0d, 0x0d, 0x0a}) { // pcapng section header block
		r, err := pcapgo.NewNgReader(bytes.NewReader(raw), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		link = LinkType(r.LinkType())
		for {
			data, ci, err := r.ReadPacketData()
			if err != nil {
				break
			}
			frames = append(frames, frame{ci.Timestamp, data})
		}
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(raw))
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		link = LinkType(r.LinkType())
		for {
			data, ci, err := r.ReadPacketData()
			if err != nil {
				break
			}
			frames = append(frames, frame{ci.Timestamp, data})
		}
	}
	return link, frames
}

// corpusDir is the shared developer corpus; tests that need it say so
// when it is missing (a fresh clone runs on testdata/ alone).
const corpusDir = "/work/shared/corpus/pcaps"

func corpusFiles(tb testing.TB) []string {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*", "*.pcap*"))
	if len(files) == 0 {
		tb.Skipf("shared corpus %s not present; the committed testdata captures are tested elsewhere", corpusDir)
	}
	return files
}
