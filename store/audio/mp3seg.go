package audio

import (
	"context"
	"fmt"
	"io"
)

// Seekable MP3.
//
// An MP3 made by one encoder from the first sample to the last cannot be
// cut into byte ranges: the bytes at an offset exist only once everything
// before them is encoded, and a player seeking into a one-hour recording
// would wait for most of an hour's encoding. So MP3 output is made of
// segments of mp3SegmentFrames MP3 frames, each encoded by a fresh encoder
// on its own. A segment's encoder starts mp3PrimeFrames frames early and
// its output for them is dropped (that warm-up fills the encoder's filter
// bank and psychoacoustic memory and the resampler's), and it reads
// mp3LookaheadFrames frames past the segment's end before it is flushed.
// With every frame the same length (no bit reservoir and no padding, see
// mp3FrameLayout), a byte offset maps onto a segment by arithmetic, and a
// range costs at most a few segments' encoding however far into the
// recording it lies. The whole file is the same segments in order, so
// ranges stitch into exactly the bytes of a download.
//
// Rates whose frames vary in length (11.025, 22.05 and 44.1 kHz uploads)
// are encoded whole, as one segment, and their size is not known in
// advance (ErrSizeUnknown).
const (
	mp3SegmentFrames   = 256 // 9.2 s at 16 kHz
	mp3PrimeFrames     = 4
	mp3LookaheadFrames = 4
)

// mp3Plan is a render plan cut into MP3 segments.
type mp3Plan struct {
	plan
	kbps       int
	frameBytes int64 // bytes of every MP3 frame
	inFrames   int64 // output (PCM) frames each MP3 frame encodes
	segments   int64
}

// mp3Segments cuts p into segments, or reports false when its MP3 frames
// vary in length.
func mp3Segments(p plan, kbps int) (mp3Plan, bool) {
	fb, in, ok := mp3FrameLayout(p.rate, p.outCh, kbps)
	if !ok {
		return mp3Plan{}, false
	}
	seg := mp3SegmentFrames * in
	return mp3Plan{plan: p, kbps: kbps, frameBytes: fb, inFrames: in, segments: max(1, (p.frames+seg-1)/seg)}, true
}

// segmentBytes is the length of every segment but the last.
func (m *mp3Plan) segmentBytes() int64 { return mp3SegmentFrames * m.frameBytes }

// segment encodes segment j and writes its bytes [from, to) to w (to < 0:
// to its end). It returns the segment's length.
func (s *Source) segment(ctx context.Context, m *mp3Plan, j int64, w io.Writer, from, to int64) (int64, error) {
	seg := mp3SegmentFrames * m.inFrames
	first, drop := j*seg, int64(0)
	if j > 0 {
		first -= mp3PrimeFrames * m.inFrames
		drop = mp3PrimeFrames * m.frameBytes
	}
	end, keep := m.frames, int64(-1)
	if j < m.segments-1 {
		end, keep = min(m.frames, (j+1)*seg+mp3LookaheadFrames*m.inFrames), m.segmentBytes()
	}
	hi := int64(-1)
	switch {
	case to >= 0:
		hi = drop + to
	case keep >= 0:
		hi = drop + keep
	}
	made, err := s.encodeMP3(ctx, m.plan, m.kbps, first, end, w, drop+from, hi)
	if err != nil {
		return 0, err
	}
	if keep >= 0 {
		if made < drop+keep {
			return 0, fmt.Errorf("%w: MP3 segment %d made %d bytes, want at least %d", ErrCorrupt, j, made, drop+keep)
		}
		return keep, nil
	}
	return max(0, made-drop), nil
}

// encodeMP3 encodes the output frames [first, end) of p (counted from
// p.startFrame) with a fresh encoder, writes the bytes [lo, hi) of what it
// makes to w (hi < 0: all from lo), and returns how many bytes it made.
func (s *Source) encodeMP3(ctx context.Context, p plan, kbps int, first, end int64, w io.Writer, lo, hi int64) (int64, error) {
	cw := &cutWriter{w: w, lo: lo, hi: hi}
	enc, err := NewMP3Encoder(cw, p.rate, p.outCh, kbps)
	if err != nil {
		return 0, err
	}
	defer enc.Close()
	st, err := s.stream(p, p.startFrame+first)
	if err != nil {
		return 0, err
	}
	piece := int64(firstPieceMs * p.rate / 1000)
	for pos := first; pos < end; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		pcm, err := st.pull(int(min(piece, end-pos)))
		if err != nil {
			return 0, err
		}
		n := int64(len(pcm) / p.outCh)
		if n == 0 {
			return 0, fmt.Errorf("%w: recording ended at frame %d of %d", ErrCorrupt, p.startFrame+pos, p.startFrame+end)
		}
		pos += n
		piece = int64(pieceMs * p.rate / 1000)
		if err := enc.Write(pcm); err != nil {
			return 0, err
		}
	}
	if err := enc.Close(); err != nil {
		return 0, err
	}
	return cw.n, nil
}

// renderMP3 writes the bytes [o.Offset, o.Offset+o.Length) of p's MP3
// (o.Length 0: to the end), segment by segment.
func (s *Source) renderMP3(ctx context.Context, w io.Writer, p plan, o RenderOptions) error {
	m, ok := mp3Segments(p, o.MP3Kbps)
	if !ok {
		if o.Offset != 0 || o.Length != 0 {
			return fmt.Errorf("%w: MP3 at %d Hz cannot be cut into byte ranges", ErrSizeUnknown, p.rate)
		}
		_, err := s.encodeMP3(ctx, p, o.MP3Kbps, 0, p.frames, w, 0, -1)
		return err
	}
	sb := m.segmentBytes()
	off, end := o.Offset, int64(-1)
	if o.Length > 0 {
		end = off + o.Length
	}
	for j := off / sb; j < m.segments && (end < 0 || j*sb < end); j++ {
		to := int64(-1)
		if end >= 0 && end < (j+1)*sb {
			to = end - j*sb
		}
		if _, err := s.segment(ctx, &m, j, w, max(0, off-j*sb), to); err != nil {
			return err
		}
	}
	return nil
}

// mp3Size is the length of p's MP3: whole segments by arithmetic, the last
// one by encoding it (a few seconds of audio).
func (s *Source) mp3Size(p plan, kbps int) (int64, error) {
	m, ok := mp3Segments(p, kbps)
	if !ok {
		return 0, fmt.Errorf("%w: MP3 at %d Hz has frames of varying length", ErrSizeUnknown, p.rate)
	}
	last, err := s.segment(context.Background(), &m, m.segments-1, io.Discard, 0, -1)
	if err != nil {
		return 0, err
	}
	return (m.segments-1)*m.segmentBytes() + last, nil
}

// cutWriter passes on the bytes [lo, hi) of what is written to it (hi < 0:
// everything from lo) and counts all of them.
type cutWriter struct {
	w      io.Writer
	lo, hi int64
	n      int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	start, end := c.n, c.n+int64(len(p))
	c.n = end
	a, b := max(start, c.lo), end
	if c.hi >= 0 {
		b = min(b, c.hi)
	}
	if a >= b {
		return len(p), nil
	}
	if _, err := c.w.Write(p[a-start : b-start]); err != nil {
		return 0, err
	}
	return len(p), nil
}
