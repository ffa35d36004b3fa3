package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/callvault/callvault/capture/packet"
)

// pcapReader reads classic pcap files (not pcapng, not gzipped: those go
// through gopacket's readers) in large blocks and hands out frames as
// slices of its block, without copying them.
//
// It exists for imports (issue 4): gopacket's reader copies every record
// header and frame out of a bufio.Reader, two copies and three calls per
// frame, about 6 % of an import's CPU. And the frames of a whole block are
// there at once, so the import can look a few frames ahead (pcapfile.go).
//
// The format (libpcap's savefile, draft-ietf-opsawg-pcap):
//
//	file header, 24 bytes:
//	 0  magic        a1b2c3d4 (µs timestamps) or a1b23c4d (ns), in the
//	                 writer's byte order, which the whole file uses
//	 4  version      major 2, minor 4
//	 8  reserved     (thiszone, sigfigs)
//	16  snaplen
//	20  link type
//	each record, 16 bytes then the frame:
//	 0  seconds
//	 4  µs or ns
//	 8  captured length (bytes that follow)
//	12  original length
type pcapReader struct {
	src   io.Reader
	order binary.ByteOrder
	nano  int64 // nanoseconds per unit of the fraction field
	link  packet.LinkType
	max   int // largest captured length accepted
	buf   []byte
	r, w  int   // unread bytes are buf[r:w]
	eof   bool  // src said io.EOF
	err   error // src's other error, returned once buf is used up
	n     int64 // records read, for error messages
}

const (
	pcapHeaderLen = 24
	pcapRecordLen = 16
	// pcapBlock is how much is read at a time: 256 KiB, about 1,200 frames
	// of RTP, one read system call for all of them. Small enough to stay in
	// a core's L2 (1 MiB on this build machine's EPYC) from the kernel's
	// copy into it until the reader has parsed its frames and copied their
	// payloads into rings: with 4 MiB blocks the start of a block had left
	// L2 by then, and imports took about a tenth more CPU per packet
	// (issue 4, seventh round: docs/PERFORMANCE.md).
	pcapBlock = 256 << 10
	// pcapMaxFrame bounds the captured length of one record: the larger of
	// the snap length and libpcap's MAXIMUM_SNAPLEN (256 KiB), at most
	// this, so a corrupt length cannot make the reader allocate gigabytes.
	pcapMaxFrame = 64 << 20
)

// newPcapReader reads the file header from src. It returns errNotPcap
// (wrapped) for anything that is not a classic pcap file of version 2.4.
func newPcapReader(src io.Reader) (*pcapReader, error) {
	return newPcapReaderSize(src, pcapBlock)
}

// newPcapReaderSize is newPcapReader with blocks of size bytes (tests use
// small ones, so frames straddle blocks).
func newPcapReaderSize(src io.Reader, size int) (*pcapReader, error) {
	pr := &pcapReader{src: src, buf: make([]byte, max(size, pcapHeaderLen))}
	if err := pr.fill(pcapHeaderLen); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d-byte file", errNotPcap, pr.w)
		}
		return nil, err
	}
	h := pr.buf[:pcapHeaderLen]
	switch binary.LittleEndian.Uint32(h) {
	case 0xa1b2c3d4:
		pr.order, pr.nano = binary.LittleEndian, 1000
	case 0xa1b23c4d:
		pr.order, pr.nano = binary.LittleEndian, 1
	case 0xd4c3b2a1:
		pr.order, pr.nano = binary.BigEndian, 1000
	case 0x4d3cb2a1:
		pr.order, pr.nano = binary.BigEndian, 1
	default:
		return nil, fmt.Errorf("%w: magic %08x", errNotPcap, binary.LittleEndian.Uint32(h))
	}
	if major, minor := pr.order.Uint16(h[4:]), pr.order.Uint16(h[6:]); major != 2 || minor != 4 {
		return nil, fmt.Errorf("%w: version %d.%d, want 2.4", errNotPcap, major, minor)
	}
	pr.max = int(min(max(pr.order.Uint32(h[16:]), 256<<10), pcapMaxFrame))
	pr.link = packet.LinkType(pr.order.Uint32(h[20:]))
	pr.r = pcapHeaderLen
	return pr, nil
}

// next returns the next frame if the block holds all of it, without
// reading: ok is false when the block is used up (call fill) or the record
// is bad (err says why). frame is valid until the next fill.
func (pr *pcapReader) next() (frame []byte, ts time.Time, ok bool, err error) {
	b := pr.buf[pr.r:pr.w]
	if len(b) < pcapRecordLen {
		return nil, time.Time{}, false, nil
	}
	caplen, origlen := pr.order.Uint32(b[8:]), pr.order.Uint32(b[12:])
	if int64(caplen) > int64(pr.max) {
		return nil, time.Time{}, false, fmt.Errorf("%w: frame %d: captured length %d exceeds the largest accepted, %d", errPcapRecord, pr.n+1, caplen, pr.max)
	}
	if caplen > origlen {
		return nil, time.Time{}, false, fmt.Errorf("%w: frame %d: captured length %d exceeds the original length %d", errPcapRecord, pr.n+1, caplen, origlen)
	}
	end := pcapRecordLen + int(caplen)
	if len(b) < end {
		return nil, time.Time{}, false, nil
	}
	ts = time.Unix(int64(pr.order.Uint32(b)), int64(pr.order.Uint32(b[4:]))*pr.nano).UTC()
	pr.r += end
	pr.n++
	return b[pcapRecordLen:end:end], ts, true, nil
}

// fill moves the unread bytes to the start of the block and reads until
// it holds at least need bytes (or the next record whole, if need is 0).
// It returns io.EOF when the file ended with nothing unread, and
// io.ErrUnexpectedEOF when it ended inside a record. Frames returned by
// next before are no longer valid.
func (pr *pcapReader) fill(need int) error {
	if need == 0 {
		need = pcapRecordLen
		if pr.w-pr.r >= pcapRecordLen {
			need += int(pr.order.Uint32(pr.buf[pr.r+8:])) // next checked it against max
		}
	}
	if need > len(pr.buf) {
		nb := make([]byte, need)
		copy(nb, pr.buf[pr.r:pr.w])
		pr.buf, pr.w, pr.r = nb, pr.w-pr.r, 0
	} else if pr.r > 0 {
		pr.w = copy(pr.buf, pr.buf[pr.r:pr.w])
		pr.r = 0
	}
	for pr.w < need {
		if pr.err != nil {
			return pr.err
		}
		if pr.eof {
			if pr.w == 0 {
				return io.EOF
			}
			return io.ErrUnexpectedEOF
		}
		n, err := pr.src.Read(pr.buf[pr.w:])
		pr.w += n
		switch {
		case errors.Is(err, io.EOF):
			pr.eof = true
		case err != nil:
			pr.err = err
		}
	}
	return nil
}
