package audio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Codec names how samples are coded.
type Codec uint8

// Codecs. The numeric values are stored in grid headers, so never renumber.
const (
	CodecUnknown Codec = 0
	CodecPCMU    Codec = 1 // G.711 µ-law, 8 bits per sample
	CodecPCMA    Codec = 2 // G.711 A-law, 8 bits per sample
	CodecG722    Codec = 3 // G.722 64 kbit/s, 16 kHz audio, 4 bits per sample
	CodecL16     Codec = 4 // 16-bit big-endian signed PCM (RFC 3551)
	CodecLinear  Codec = 5 // little-endian PCM as in WAV: 8-bit unsigned, 16/24/32-bit signed
	CodecMP3     Codec = 6 // MPEG-1/2/2.5 Layer III
)

func (c Codec) String() string {
	switch c {
	case CodecPCMU:
		return "PCMU"
	case CodecPCMA:
		return "PCMA"
	case CodecG722:
		return "G722"
	case CodecL16:
		return "L16"
	case CodecLinear:
		return "PCM"
	case CodecMP3:
		return "MP3"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// Format describes a stream of audio.
type Format struct {
	Codec         Codec
	SampleRate    int // audio samples per second per channel
	Channels      int
	BitsPerSample int // as stored; 8 for G.711
}

// WAV format codes we understand (mmreg.h).
const (
	wavFormatPCM        = 0x0001
	wavFormatALaw       = 0x0006
	wavFormatMULaw      = 0x0007
	wavFormatExtensible = 0xFFFE
)

// The tail shared by all KSDATAFORMAT_SUBTYPE_* GUIDs; the first two bytes
// carry the plain format code.
var wavSubtypeTail = [14]byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

const (
	maxWAVChannels = 8
	maxSampleRate  = 384000
	wavReadFrames  = 2048 // frames per internal read: bounds memory, not file size
)

// WAVReader decodes a RIFF/WAVE file to interleaved 16-bit samples.
//
//	offset  size  field
//	0       4     "RIFF"
//	4       4     RIFF size (file size - 8; often wrong, not trusted)
//	8       4     "WAVE"
//	12      ...   chunks: id[4] size[4, LE] body[size] pad[size&1]
//	              "fmt " (before "data"): format code, channels, rate,
//	                     byte rate, block align, bits (+ extensible part)
//	              "data": the samples; size 0 or 0xFFFFFFFF = up to EOF
//	              anything else (LIST, bext, fact, JUNK, ...): skipped
//
// Built over an io.Reader it streams once from the start; built over an
// io.ReaderAt it can also Seek. Either way it holds one buffer of
// wavReadFrames frames.
type WAVReader struct {
	format    Format
	frameSize int   // bytes per frame
	numFrames int64 // -1 when the data runs to an unknown EOF
	dataOff   int64

	ra  io.ReaderAt // nil for streaming readers
	src io.Reader   // where the next frame comes from
	pos int64       // next frame index
	buf []byte
}

// NewWAVReader parses the header from r and leaves r positioned at the
// first sample. It cannot seek; if the data size is 0 or 0xFFFFFFFF
// (streamed WAV) NumFrames reports -1 and reading goes to EOF.
func NewWAVReader(r io.Reader) (*WAVReader, error) {
	br := bufio.NewReaderSize(r, 2048)
	w, dataLen, err := parseWAVHeader(br)
	if err != nil {
		return nil, err
	}
	if dataLen < 0 {
		w.src = br
		w.numFrames = -1
	} else {
		w.src = io.LimitReader(br, dataLen)
		w.numFrames = dataLen / int64(w.frameSize)
	}
	return w, nil
}

// NewWAVReaderAt parses the header of the size-byte file in r. Sizes are
// checked against the file: a data chunk claiming more than the file holds
// (a cut upload) is shortened to what is there.
func NewWAVReaderAt(r io.ReaderAt, size int64) (*WAVReader, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: size %d", ErrBadArgument, size)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 2048)
	w, dataLen, err := parseWAVHeader(br)
	if err != nil {
		return nil, err
	}
	if avail := size - w.dataOff; dataLen < 0 || dataLen > avail {
		dataLen = avail
	}
	w.ra = r
	w.numFrames = dataLen / int64(w.frameSize)
	w.src = io.NewSectionReader(r, w.dataOff, w.numFrames*int64(w.frameSize))
	return w, nil
}

// countingReader is the bufio reader plus the offset consumed so far.
type countingReader struct {
	*bufio.Reader
	off int64
}

func (c *countingReader) read(n int) ([]byte, error) {
	b, err := c.Peek(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	c.off += int64(n)
	_, _ = c.Discard(n) // cannot fail after a successful Peek
	return b, nil
}

func (c *countingReader) skip(n int64) error {
	for n > 0 {
		step := int(min(n, 1<<20))
		d, err := c.Discard(step)
		c.off += int64(d)
		n -= int64(d)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

func isChunkID(b []byte) bool {
	for _, c := range b[:4] {
		if c < 0x20 || c > 0x7E {
			return false
		}
	}
	return true
}

// parseWAVHeader reads up to the start of the data chunk. dataLen is -1
// when the chunk says its size is unknown.
func parseWAVHeader(br *bufio.Reader) (w *WAVReader, dataLen int64, err error) {
	cr := &countingReader{Reader: br}
	hdr, err := cr.read(12)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %d-byte file", ErrNotWAV, len(hdr))
	}
	switch {
	case string(hdr[0:4]) == "RF64" || string(hdr[0:4]) == "BW64":
		return nil, 0, fmt.Errorf("%w: %q (64-bit RIFF) files", ErrUnsupportedFormat, hdr[0:4])
	case string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE":
		return nil, 0, fmt.Errorf("%w: starts with %q", ErrNotWAV, hdr[:12])
	}
	var (
		f         Format
		haveFmt   bool
		frameSize int
		prevOdd   bool // the previous chunk had an odd size
	)
	for {
		// Some writers forget the pad byte after an odd-sized chunk. When
		// the padded position does not hold a chunk ID but the unpadded one
		// does, accept the unpadded one instead of failing.
		if prevOdd {
			b, err := cr.Peek(5)
			unpadded := err == nil && isChunkID(b[0:4]) && !isChunkID(b[1:5])
			if !unpadded {
				if _, err := cr.read(1); err != nil {
					return nil, 0, fmt.Errorf("%w: no data chunk before end of file at %d", ErrCorrupt, cr.off)
				}
			}
		}
		ch, err := cr.read(8)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: no data chunk before end of file at %d", ErrCorrupt, cr.off)
		}
		id := string(ch[0:4])
		size := int64(binary.LittleEndian.Uint32(ch[4:8]))
		switch id {
		case "fmt ":
			if size < 16 || size > 1024 {
				return nil, 0, fmt.Errorf("%w: fmt chunk of %d bytes", ErrCorrupt, size)
			}
			body, err := cr.read(int(size))
			if err != nil {
				return nil, 0, fmt.Errorf("%w: fmt chunk of %d bytes cut short", ErrCorrupt, size)
			}
			f, frameSize, err = parseWAVFmt(body)
			if err != nil {
				return nil, 0, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, 0, fmt.Errorf("%w: data chunk at %d before fmt chunk", ErrCorrupt, cr.off-8)
			}
			w := &WAVReader{format: f, frameSize: frameSize, dataOff: cr.off}
			w.buf = make([]byte, wavReadFrames*frameSize)
			if size == 0 || size == 0xFFFFFFFF {
				return w, -1, nil
			}
			return w, size, nil
		default:
			if err := cr.skip(size); err != nil {
				return nil, 0, fmt.Errorf("%w: %q chunk of %d bytes runs past end of file", ErrCorrupt, id, size)
			}
		}
		prevOdd = size&1 == 1
	}
}

func parseWAVFmt(b []byte) (Format, int, error) {
	code := binary.LittleEndian.Uint16(b[0:2])
	channels := int(binary.LittleEndian.Uint16(b[2:4]))
	rate := int(binary.LittleEndian.Uint32(b[4:8]))
	blockAlign := int(binary.LittleEndian.Uint16(b[12:14]))
	bits := int(binary.LittleEndian.Uint16(b[14:16]))
	if code == wavFormatExtensible {
		if len(b) < 40 {
			return Format{}, 0, fmt.Errorf("%w: extensible fmt chunk of %d bytes, need 40", ErrCorrupt, len(b))
		}
		if [14]byte(b[26:40]) != wavSubtypeTail {
			return Format{}, 0, fmt.Errorf("%w: extensible sub-format GUID % x", ErrUnsupportedFormat, b[24:40])
		}
		code = binary.LittleEndian.Uint16(b[24:26])
	}
	if channels < 1 || channels > maxWAVChannels {
		return Format{}, 0, fmt.Errorf("%w: %d channels (1..%d)", ErrUnsupportedFormat, channels, maxWAVChannels)
	}
	if rate < 1 || rate > maxSampleRate {
		return Format{}, 0, fmt.Errorf("%w: sample rate %d Hz", ErrUnsupportedFormat, rate)
	}
	f := Format{SampleRate: rate, Channels: channels, BitsPerSample: bits}
	switch code {
	case wavFormatPCM:
		if bits != 8 && bits != 16 && bits != 24 && bits != 32 {
			return Format{}, 0, fmt.Errorf("%w: %d-bit PCM", ErrUnsupportedFormat, bits)
		}
		f.Codec = CodecLinear
	case wavFormatALaw, wavFormatMULaw:
		if bits != 8 {
			return Format{}, 0, fmt.Errorf("%w: %d-bit G.711", ErrUnsupportedFormat, bits)
		}
		f.Codec = CodecPCMA
		if code == wavFormatMULaw {
			f.Codec = CodecPCMU
		}
	default:
		return Format{}, 0, fmt.Errorf("%w: WAV format code %#04x", ErrUnsupportedFormat, code)
	}
	frameSize := channels * bits / 8
	if blockAlign != frameSize {
		return Format{}, 0, fmt.Errorf("%w: block align %d, want %d for %d channels of %d bits",
			ErrCorrupt, blockAlign, frameSize, channels, bits)
	}
	return f, frameSize, nil
}

// Format returns the stored format.
func (w *WAVReader) Format() Format { return w.format }

// NumFrames returns the number of frames (samples per channel), or -1 for
// a streamed WAV read through NewWAVReader whose length is unknown.
func (w *WAVReader) NumFrames() int64 { return w.numFrames }

// Duration returns the length computed from the sizes (0 if unknown).
func (w *WAVReader) Duration() time.Duration {
	if w.numFrames < 0 {
		return 0
	}
	return framesToDuration(w.numFrames, w.format.SampleRate)
}

func framesToDuration(frames int64, rate int) time.Duration {
	sec := frames / int64(rate)
	rem := frames % int64(rate)
	return time.Duration(sec)*time.Second + time.Duration(rem)*time.Second/time.Duration(rate)
}

// SeekFrame positions the reader at frame index frame (clamped to the end).
// Only readers made by NewWAVReaderAt can seek.
func (w *WAVReader) SeekFrame(frame int64) error {
	if w.ra == nil {
		return fmt.Errorf("%w: seek on a streaming WAV reader", ErrBadArgument)
	}
	if frame < 0 {
		return fmt.Errorf("%w: frame %d", ErrBadArgument, frame)
	}
	frame = min(frame, w.numFrames)
	fs := int64(w.frameSize)
	w.src = io.NewSectionReader(w.ra, w.dataOff+frame*fs, (w.numFrames-frame)*fs)
	w.pos = frame
	return nil
}

// ReadPCM16 fills dst with whole interleaved frames converted to 16 bits
// and returns the number of samples (not frames) written. It returns io.EOF
// when no frame is left; a partial trailing frame is dropped.
func (w *WAVReader) ReadPCM16(dst []int16) (int, error) {
	ch := w.format.Channels
	frames := min(len(dst)/ch, wavReadFrames)
	if frames == 0 {
		return 0, fmt.Errorf("%w: buffer of %d samples holds no %d-channel frame", ErrBadArgument, len(dst), ch)
	}
	n, err := io.ReadFull(w.src, w.buf[:frames*w.frameSize])
	got := n / w.frameSize
	if got == 0 {
		if err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		return 0, err
	}
	w.pos += int64(got)
	samples := got * ch
	convertToPCM16(dst[:samples], w.buf[:got*w.frameSize], w.format)
	return samples, nil
}

// convertToPCM16 converts little-endian WAV sample bytes to int16. 24- and
// 32-bit samples are rounded to 16 bits the way sox does without dither.
func convertToPCM16(dst []int16, src []byte, f Format) {
	switch {
	case f.Codec == CodecPCMU:
		DecodeUlaw(dst, src)
	case f.Codec == CodecPCMA:
		DecodeAlaw(dst, src)
	case f.BitsPerSample == 8:
		for i := range dst {
			dst[i] = int16(int8(src[i]^0x80)) << 8
		}
	case f.BitsPerSample == 16:
		for i := range dst {
			dst[i] = int16(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case f.BitsPerSample == 24:
		for i := range dst {
			v := int32(uint32(src[3*i])<<8|uint32(src[3*i+1])<<16|uint32(src[3*i+2])<<24) >> 8
			dst[i] = roundTo16(int64(v) << 8)
		}
	case f.BitsPerSample == 32:
		for i := range dst {
			dst[i] = roundTo16(int64(int32(binary.LittleEndian.Uint32(src[4*i:]))))
		}
	}
}

func roundTo16(v32 int64) int16 {
	v := (v32 + 0x8000) >> 16
	if v > 32767 {
		v = 32767
	}
	return int16(v)
}

// WAVHeaderSize is the size of the header WAVHeader writes.
const WAVHeaderSize = 44

// WAVHeader returns the 44-byte canonical header of a PCM16 WAV file with
// the given number of frames. Because every size is known up front, an HTTP
// layer can send Content-Length and answer Range requests before a single
// sample is rendered.
func WAVHeader(rate, channels int, numFrames int64) ([]byte, error) {
	if rate < 1 || rate > maxSampleRate || channels < 1 || channels > 2 || numFrames < 0 {
		return nil, fmt.Errorf("%w: WAV header for %d Hz, %d channels, %d frames", ErrBadArgument, rate, channels, numFrames)
	}
	block := int64(2 * channels)
	data := numFrames * block
	if data > 0xFFFFFFFF-36 {
		return nil, fmt.Errorf("%w: %d bytes of PCM do not fit a RIFF file", ErrBadArgument, data)
	}
	h := make([]byte, WAVHeaderSize)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+data))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], wavFormatPCM)
	binary.LittleEndian.PutUint16(h[22:], uint16(channels))
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(int64(rate)*block))
	binary.LittleEndian.PutUint16(h[32:], uint16(block))
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(data))
	return h, nil
}
