package capture

import (
	"bufio"
	"encoding/binary"
	"io"

	"github.com/callvault/callvault/capture/rtp"
)

// rawWriter keeps the RTP of a call whose codec the appliance cannot
// decode (G.729, Opus, GSM, ...) exactly as captured, so it is evidence
// that can be exported and decoded elsewhere, instead of being dropped.
//
//	header:  "CVRTP\x00" | version (1) | reserved (1) | start ns (int64)
//	record:  channel (1) | pt (1) | marker (1) | reserved (1) | seq (2) |
//	         timestamp (4) | ssrc (4) | arrival ns (8) | length (2) | payload
//
// All integers big-endian.
type rawWriter struct {
	w   *bufio.Writer
	hdr [24]byte
}

const rawMagic = "CVRTP\x00"

func newRawWriter(w io.Writer, start int64) (*rawWriter, error) {
	rw := &rawWriter{w: bufio.NewWriterSize(w, 16<<10)}
	var h [16]byte
	copy(h[:], rawMagic)
	h[6] = 1
	binary.BigEndian.PutUint64(h[8:], uint64(start))
	_, err := rw.w.Write(h[:])
	return rw, err
}

func (rw *rawWriter) write(ch int, s *rtp.Slot, payload []byte) error {
	h := rw.hdr[:]
	h[0], h[1] = byte(ch), s.PT
	h[2] = 0
	if s.Marker {
		h[2] = 1
	}
	h[3] = 0
	binary.BigEndian.PutUint16(h[4:], s.Seq)
	binary.BigEndian.PutUint32(h[6:], s.TS)
	binary.BigEndian.PutUint32(h[10:], s.SSRC)
	binary.BigEndian.PutUint64(h[14:], uint64(s.Arrival))
	binary.BigEndian.PutUint16(h[22:], uint16(len(payload)))
	if _, err := rw.w.Write(h); err != nil {
		return err
	}
	_, err := rw.w.Write(payload)
	return err
}

func (rw *rawWriter) flush() error { return rw.w.Flush() }
