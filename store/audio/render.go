package audio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// SourceKind says what a recording contains.
type SourceKind uint8

// Source kinds.
const (
	SourceGrid SourceKind = iota + 1 // captured call, grid container
	SourceWAV                        // uploaded WAV
	SourceMP3                        // uploaded MP3
)

// OutputFormat is what Render produces.
type OutputFormat uint8

// Output formats.
const (
	OutputPCM16 OutputFormat = iota // raw interleaved signed 16-bit little-endian
	OutputWAV                       // PCM16 WAV with exact sizes in the header
	OutputMP3                       // CBR MP3 (needs cgo / LAME)
)

// Layout is the channel arrangement of the output.
type Layout uint8

// Layouts.
const (
	// LayoutStereo: local party left, remote party right. Mixed or unknown
	// grid channels go to both sides, a single-channel source too. Uploads
	// keep their first two channels as they are (mono is doubled).
	LayoutStereo Layout = iota
	// LayoutMono: saturating sum of all channels.
	LayoutMono
)

// RenderOptions selects what Render produces.
type RenderOptions struct {
	Format OutputFormat
	Layout Layout
	// Start is where in the recording to begin; the output (including a WAV
	// header) describes only the audio from Start on.
	Start time.Duration
	// Rate is the output sample rate; 0 picks 8 kHz for narrowband grids,
	// 16 kHz when any grid channel is wideband, and an upload's own rate.
	// Otherwise only the source rate, twice it or half of it are possible.
	Rate int
	// Offset and Length cut the byte range [Offset, Offset+Length) out of
	// the output (Length 0 = to the end), for HTTP Range. MP3 output is cut
	// at segments (mp3seg.go); at rates whose MP3 frames vary in length it
	// cannot be cut (ErrSizeUnknown).
	Offset, Length int64
	// MP3Kbps is the MP3 bit rate; 0 = DefaultMP3Kbps.
	MP3Kbps int
}

// Source is a recording opened for rendering.
type Source struct {
	kind SourceKind
	r    io.ReaderAt
	size int64
	grid *GridReader
	// for uploads: format as opened (for MP3 the decoder is re-opened per
	// render so concurrent renders do not share state)
	upFormat Format
	upFrames int64
}

// Open recognises a recording's content (grid container, WAV or MP3) from
// its first bytes. r must stay valid while the Source is used; renders only
// call ReadAt, so one Source may serve several renders at once.
func Open(r io.ReaderAt, size int64) (*Source, error) {
	var magic [12]byte
	n, _ := r.ReadAt(magic[:], 0)
	s := &Source{r: r, size: size}
	switch {
	case n >= 6 && string(magic[:6]) == gridMagic:
		g, err := NewGridReader(r, size)
		if err != nil {
			return nil, err
		}
		s.kind, s.grid = SourceGrid, g
	case n >= 12 && string(magic[:4]) == "RIFF" && string(magic[8:12]) == "WAVE":
		w, err := NewWAVReaderAt(r, size)
		if err != nil {
			return nil, err
		}
		s.kind, s.upFormat, s.upFrames = SourceWAV, w.Format(), w.NumFrames()
	default:
		m, err := NewMP3Reader(r, size)
		if errors.Is(err, ErrNotMP3) {
			return nil, fmt.Errorf("%w: first bytes % x", ErrUnknownSource, magic[:n])
		}
		if err != nil {
			return nil, err
		}
		s.kind, s.upFormat, s.upFrames = SourceMP3, m.Format(), m.NumFrames()
	}
	return s, nil
}

// Kind returns what the recording contains.
func (s *Source) Kind() SourceKind { return s.kind }

// Grid returns the grid reader of a SourceGrid (nil otherwise).
func (s *Source) Grid() *GridReader { return s.grid }

// Duration returns the recording's length.
func (s *Source) Duration() time.Duration {
	if s.kind == SourceGrid {
		return s.grid.Duration()
	}
	return framesToDuration(s.upFrames, s.upFormat.SampleRate)
}

// nativeRate is the rate rendering would pick without Options.Rate.
func (s *Source) nativeRate() int {
	if s.kind != SourceGrid {
		return s.upFormat.SampleRate
	}
	rate := 8000
	for _, c := range s.grid.Header().Channels {
		rate = max(rate, c.SampleRate)
	}
	return min(rate, 16000)
}

// plan is one render worked out: rates, channels and frame counts.
type plan struct {
	rate, outCh int
	startFrame  int64 // first output frame (at rate) of this render
	frames      int64 // output frames from startFrame to the end
}

func (s *Source) plan(o RenderOptions) (plan, error) {
	if o.Start < 0 || o.Offset < 0 || o.Length < 0 {
		return plan{}, fmt.Errorf("%w: start %v, offset %d, length %d", ErrBadArgument, o.Start, o.Offset, o.Length)
	}
	if o.Layout > LayoutMono || o.Format > OutputMP3 {
		return plan{}, fmt.Errorf("%w: layout %d, format %d", ErrBadArgument, o.Layout, o.Format)
	}
	p := plan{rate: o.Rate, outCh: 2}
	if o.Layout == LayoutMono {
		p.outCh = 1
	}
	if p.rate == 0 {
		p.rate = s.nativeRate()
	}
	var total int64
	if s.kind == SourceGrid {
		h := s.grid.Header()
		for i, c := range h.Channels {
			if c.SampleRate != p.rate && c.SampleRate != 2*p.rate && 2*c.SampleRate != p.rate {
				return plan{}, fmt.Errorf("%w: channel %d at %d Hz cannot be rendered at %d Hz (only 2x conversion)", ErrBadArgument, i, c.SampleRate, p.rate)
			}
		}
		if p.rate*h.TickMs%1000 != 0 {
			return plan{}, fmt.Errorf("%w: %d Hz does not fill a %d ms tick", ErrBadArgument, p.rate, h.TickMs)
		}
		total = s.grid.NumTicks() * int64(p.rate*h.TickMs/1000)
	} else {
		in := s.upFormat.SampleRate
		switch p.rate {
		case in:
			total = s.upFrames
		case 2 * in:
			total = 2 * s.upFrames
		default:
			if 2*p.rate != in {
				return plan{}, fmt.Errorf("%w: a %d Hz upload cannot be rendered at %d Hz (only 2x conversion)", ErrBadArgument, in, p.rate)
			}
			total = s.upFrames / 2
		}
	}
	p.startFrame = min(total, int64(o.Start)*int64(p.rate)/int64(time.Second))
	p.frames = total - p.startFrame
	return p, nil
}

// OutputRate returns the sample rate a render with o would produce (for MP3
// output, see MP3OutputRate for the rate inside the MP3).
func (s *Source) OutputRate(o RenderOptions) (int, error) {
	p, err := s.plan(o)
	return p.rate, err
}

// RenderedSize returns the exact number of bytes Render writes, before
// Offset/Length are applied, so an HTTP layer can send Content-Length and
// answer Range requests. For MP3 it encodes the last segment (a few
// seconds of audio) to learn its length; an MP3 whose frames vary in
// length has no size known in advance (ErrSizeUnknown).
func (s *Source) RenderedSize(o RenderOptions) (int64, error) {
	p, err := s.plan(o)
	if err != nil {
		return 0, err
	}
	n := p.frames * int64(2*p.outCh)
	switch o.Format {
	case OutputPCM16:
		return n, nil
	case OutputWAV:
		return WAVHeaderSize + n, nil
	}
	return s.mp3Size(p, o.MP3Kbps)
}

// Render pieces: the first is one 20 ms tick so the first byte leaves at
// once; later pieces are 100 ms to keep per-write overhead low.
const (
	firstPieceMs = 20
	pieceMs      = 100
)

// Render writes the recording to w as o describes, in small pieces as it
// decodes, and returns when done, when w fails, or when ctx is cancelled.
// Memory use is a few pieces' worth, whatever the recording's length.
func (s *Source) Render(ctx context.Context, w io.Writer, o RenderOptions) error {
	p, err := s.plan(o)
	if err != nil {
		return err
	}
	if o.Format == OutputMP3 {
		return s.renderMP3(ctx, w, p, o)
	}
	frameBytes := int64(2 * p.outCh)
	var header []byte
	if o.Format == OutputWAV {
		if header, err = WAVHeader(p.rate, p.outCh, p.frames); err != nil {
			return err
		}
	}
	// Translate the byte range into header bytes and frames to render.
	off := o.Offset
	total := int64(len(header)) + p.frames*frameBytes
	end := total
	if o.Length > 0 {
		end = min(total, off+o.Length)
	}
	if off >= end {
		return nil
	}
	if off < int64(len(header)) {
		if _, err := w.Write(header[off:min(end, int64(len(header)))]); err != nil {
			return err
		}
		off = int64(len(header))
	}
	pcmOff := off - int64(len(header))
	pcmEnd := end - int64(len(header))
	firstFrame := p.startFrame + pcmOff/frameBytes
	lastFrame := p.startFrame + (pcmEnd+frameBytes-1)/frameBytes
	trimHead := pcmOff % frameBytes
	trimTail := lastFrame*frameBytes - (p.startFrame*frameBytes + pcmEnd)

	st, err := s.stream(p, firstFrame)
	if err != nil {
		return err
	}
	out := make([]byte, pieceMs*p.rate/1000*int(frameBytes)+64)
	piece := firstPieceMs * p.rate / 1000
	for pos := firstFrame; pos < lastFrame; {
		if err := ctx.Err(); err != nil {
			return err
		}
		pcm, err := st.pull(int(min(int64(piece), lastFrame-pos)))
		if err != nil {
			return err
		}
		n := int64(len(pcm) / p.outCh)
		if n == 0 {
			return fmt.Errorf("%w: recording ended at frame %d of %d", ErrCorrupt, pos, lastFrame)
		}
		pos += n
		piece = pieceMs * p.rate / 1000
		b := out[:0]
		for _, v := range pcm {
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		}
		if trimHead > 0 {
			b, trimHead = b[trimHead:], 0
		}
		if pos == lastFrame {
			b = b[:int64(len(b))-trimTail]
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// frameStream yields rendered frames (interleaved outCh channels at the
// output rate); the slice is valid until the next call.
type frameStream interface {
	pull(maxFrames int) ([]int16, error)
}

func (s *Source) stream(p plan, first int64) (frameStream, error) {
	if s.kind == SourceGrid {
		return newGridStream(s.grid, p, first)
	}
	return newUploadStream(s, p, first)
}

// mixInto adds src (mono) into channel ch of the interleaved dst with
// saturation.
func mixInto(dst []int16, outCh, ch int, src []int16) {
	for i, v := range src {
		k := i*outCh + ch
		sum := int32(dst[k]) + int32(v)
		dst[k] = int16(min(32767, max(-32768, sum)))
	}
}
