package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hajimehoshi/go-mp3"
)

// MP3 decoding uses github.com/hajimehoshi/go-mp3 (pure Go). That decoder
// was written for trusted game assets: on hostile input it can index out of
// range. Uploads are not trusted, so this file is the boundary:
//   - before handing bytes to go-mp3 we find and check the first frame
//     ourselves (ID3v2 skipped, Layer III only, two consecutive valid frame
//     headers), so garbage gets ErrNotMP3/ErrUnsupportedFormat;
//   - every call into go-mp3 runs under recover, and a panic becomes an
//     ErrCorrupt error naming it, never a crashed server.
//
// go-mp3 always produces 16-bit stereo; for a mono file we return only the
// left channel. Seeking is sample-accurate: go-mp3 indexes frame offsets
// when opened (one pass over the headers, not a decode) and decodes from the
// frame before the target so the bit reservoir is primed.

// mp3SeekPreroll is how many samples before a seek target are decoded and
// thrown away (4 frames of 1152).
const mp3SeekPreroll = 4 * 1152

// mp3ScanLimit bounds the search for the first frame after the ID3 tag.
const mp3ScanLimit = 64 << 10

var (
	mp3BitrateV1 = [16]int{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0}
	mp3BitrateV2 = [16]int{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0}
	mp3Rates     = [4][3]int{{11025, 12000, 8000}, {}, {22050, 24000, 16000}, {44100, 48000, 32000}}
)

// mp3Header is the part of an MPEG audio frame header we check.
type mp3Header struct {
	version  int // 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
	layer    int // 1 = Layer III (bits value)
	rate     int
	channels int
	size     int // frame length in bytes
}

func parseMP3Header(b []byte) (mp3Header, bool) {
	if len(b) < 4 || b[0] != 0xFF || b[1]&0xE0 != 0xE0 {
		return mp3Header{}, false
	}
	h := mp3Header{version: int(b[1]>>3) & 3, layer: int(b[1]>>1) & 3}
	bri, sri, pad := int(b[2]>>4), int(b[2]>>2)&3, int(b[2]>>1)&1
	if h.version == 1 || h.layer == 0 || bri == 0 || bri == 15 || sri == 3 {
		return mp3Header{}, false
	}
	h.rate = mp3Rates[h.version][sri]
	h.channels = 2
	if b[3]>>6 == 3 {
		h.channels = 1
	}
	if h.layer == 1 { // Layer III
		if h.version == 3 {
			h.size = 144000*mp3BitrateV1[bri]/h.rate + pad
		} else {
			h.size = 72000*mp3BitrateV2[bri]/h.rate + pad
		}
	} else {
		h.size = 4 // not Layer III: size unused, rejected by the caller
	}
	return h, true
}

// findMP3 returns the first frame header of an MP3 file.
func findMP3(r io.ReaderAt, size int64) (mp3Header, error) {
	var start int64
	var id3 [10]byte
	if n, _ := r.ReadAt(id3[:], 0); n == 10 && string(id3[:3]) == "ID3" {
		tag := int64(id3[6]&0x7F)<<21 | int64(id3[7]&0x7F)<<14 | int64(id3[8]&0x7F)<<7 | int64(id3[9]&0x7F)
		start = 10 + tag
		if id3[5]&0x10 != 0 {
			start += 10 // footer
		}
	}
	buf := make([]byte, min(mp3ScanLimit, max(0, size-start)))
	n, _ := r.ReadAt(buf, start)
	buf = buf[:n]
	for i := 0; i+4 <= len(buf); i++ {
		h, ok := parseMP3Header(buf[i:])
		if !ok {
			continue
		}
		if h.layer != 1 {
			return h, fmt.Errorf("%w: MPEG audio layer %d (only Layer III)", ErrUnsupportedFormat, 4-h.layer)
		}
		if h.version == 0 {
			// go-mp3 does not decode MPEG-2.5 (8/11.025/12 kHz).
			return h, fmt.Errorf("%w: MPEG-2.5 audio at %d Hz", ErrUnsupportedFormat, h.rate)
		}
		// Require the next frame to follow, unless this one ends the file.
		next := start + int64(i) + int64(h.size)
		if next+4 <= size {
			var nb [4]byte
			if _, err := r.ReadAt(nb[:], next); err != nil {
				continue
			}
			if h2, ok := parseMP3Header(nb[:]); !ok || h2.layer != 1 || h2.rate != h.rate {
				continue
			}
		} else if next > size {
			continue
		}
		return h, nil
	}
	return mp3Header{}, fmt.Errorf("%w: no MPEG audio frame in the first %d bytes after offset %d", ErrNotMP3, len(buf), start)
}

// MP3Reader decodes an MP3 file to 16-bit PCM.
type MP3Reader struct {
	dec      *mp3.Decoder
	format   Format
	frames   int64
	pos      int64
	buf      []byte // go-mp3 output: stereo s16le
	finished bool
}

// NewMP3Reader opens the size-byte MP3 file in r.
func NewMP3Reader(r io.ReaderAt, size int64) (m *MP3Reader, err error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: size %d", ErrBadArgument, size)
	}
	h, err := findMP3(r, size)
	if err != nil {
		return nil, err
	}
	defer recoverMP3(&err, "open")
	dec, err := mp3.NewDecoder(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, fmt.Errorf("%w: go-mp3: %v", ErrCorrupt, err)
	}
	if dec.SampleRate() != h.rate || dec.Length() < 0 {
		return nil, fmt.Errorf("%w: go-mp3 sees %d Hz and %d bytes, header says %d Hz", ErrCorrupt, dec.SampleRate(), dec.Length(), h.rate)
	}
	return &MP3Reader{
		dec:    dec,
		format: Format{Codec: CodecMP3, SampleRate: h.rate, Channels: h.channels, BitsPerSample: 16},
		frames: dec.Length() / 4,
		buf:    make([]byte, 4*1152),
	}, nil
}

// recoverMP3 turns a panic inside go-mp3 into ErrCorrupt.
func recoverMP3(err *error, op string) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: MP3 decoder failed during %s: %v", ErrCorrupt, op, p)
	}
}

// Format returns the stream's format (Codec MP3, channels as coded).
func (m *MP3Reader) Format() Format { return m.format }

// NumFrames returns the decoded length in frames (samples per channel).
func (m *MP3Reader) NumFrames() int64 { return m.frames }

// Duration returns the decoded length.
func (m *MP3Reader) Duration() time.Duration { return framesToDuration(m.frames, m.format.SampleRate) }

// SeekFrame positions the reader at frame index frame (clamped to the end).
func (m *MP3Reader) SeekFrame(frame int64) (err error) {
	if frame < 0 {
		return fmt.Errorf("%w: frame %d", ErrBadArgument, frame)
	}
	frame = min(frame, m.frames)
	m.pos, m.finished = frame, frame == m.frames
	if m.finished {
		return nil
	}
	defer func() {
		if errors.Is(err, ErrCorrupt) {
			m.finished = true
		}
	}()
	defer recoverMP3(&err, "seek")
	// go-mp3 primes only one frame before the target, which is not enough:
	// a Layer III frame may take its main data from up to 511 bytes of
	// earlier frames (the bit reservoir). Starting mp3SeekPreroll samples
	// early and discarding them makes a seek give exactly the samples of a
	// straight decode.
	pre := min(frame, mp3SeekPreroll)
	if _, err := m.dec.Seek((frame-pre)*4, io.SeekStart); err != nil {
		m.finished = true
		return fmt.Errorf("%w: seeking to frame %d: %v", ErrCorrupt, frame, err)
	}
	for pre > 0 {
		n := min(pre*4, int64(len(m.buf)))
		if _, err := io.ReadFull(m.dec, m.buf[:n]); err != nil {
			m.finished = true
			return fmt.Errorf("%w: seeking to frame %d: %v", ErrCorrupt, frame, err)
		}
		pre -= n / 4
	}
	return nil
}

// ReadPCM16 fills dst with interleaved frames (Format().Channels per frame)
// and returns the number of samples written, or io.EOF at the end.
func (m *MP3Reader) ReadPCM16(dst []int16) (n int, err error) {
	ch := m.format.Channels
	frames := min(len(dst)/ch, len(m.buf)/4)
	if frames == 0 {
		return 0, fmt.Errorf("%w: buffer of %d samples holds no %d-channel frame", ErrBadArgument, len(dst), ch)
	}
	if m.finished {
		return 0, io.EOF
	}
	// Runs after recoverMP3: once go-mp3 has failed its state is unknown,
	// so the stream ends here.
	defer func() {
		if errors.Is(err, ErrCorrupt) {
			m.finished = true
		}
	}()
	defer recoverMP3(&err, "decode")
	got, rerr := io.ReadFull(m.dec, m.buf[:frames*4])
	got /= 4
	for i := 0; i < got; i++ {
		l := int16(binary.LittleEndian.Uint16(m.buf[4*i:]))
		if ch == 1 {
			dst[i] = l
			continue
		}
		dst[2*i] = l
		dst[2*i+1] = int16(binary.LittleEndian.Uint16(m.buf[4*i+2:]))
	}
	m.pos += int64(got)
	if rerr != nil {
		m.finished = true
		if !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			return got * ch, fmt.Errorf("%w: MP3 frame near sample %d: %v", ErrCorrupt, m.pos, rerr)
		}
		if got == 0 {
			return 0, io.EOF
		}
	}
	return got * ch, nil
}
