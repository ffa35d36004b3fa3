package audio

import (
	"errors"
	"fmt"
	"io"
)

// Warm-up before a seek target. The resampler's memory is 2*hbTaps input
// samples, so one tick (or 32 frames of an upload) makes a seek produce
// exactly the bytes of a render from the start. G.722 is ADPCM: its state
// depends on all past input and only converges, so for G.722 channels we
// decode g722WarmMs before the target. The result then differs from a
// straight decode by at most a few dozen LSB (-55 dBFS; measured in
// TestRenderSeekMatchesFull), so an HTTP client stitching Range responses
// of a G.722 recording may see such a step at a range boundary. Decoding
// from the start instead would make a seek cost O(position).
const (
	g722WarmMs    = 200
	uploadWarm    = 32
	renderBatchMs = 100
)

type gridChan struct {
	c           GridChannel
	g722        *G722Decoder
	dec, rs     []int16 // one tick at the channel rate / at the output rate
	up          *upsampler2
	down        *downsampler2
	left, right bool
}

type gridStream struct {
	g       *GridReader
	p       plan
	fpt     int // output frames per tick
	tick    int64
	batch   int // ticks per read
	buf     []byte
	chans   []*gridChan
	out     []int16
	pending []int16
	skip    int
}

func newGridStream(g *GridReader, p plan, first int64) (*gridStream, error) {
	h := g.Header()
	s := &gridStream{g: g, p: p, fpt: p.rate * h.TickMs / 1000}
	s.batch = max(1, renderBatchMs/h.TickMs)
	s.buf = make([]byte, s.batch*g.TickSize())
	s.out = make([]int16, s.batch*s.fpt*p.outCh)
	warm := 1
	for _, c := range h.Channels {
		samples := c.SampleRate * h.TickMs / 1000
		gc := &gridChan{c: c, dec: make([]int16, samples), rs: make([]int16, s.fpt)}
		switch {
		case c.SampleRate == 2*p.rate:
			gc.down = newDownsampler2(samples)
		case 2*c.SampleRate == p.rate:
			gc.up = newUpsampler2(samples)
		}
		if c.Codec == CodecG722 {
			gc.g722 = NewG722Decoder()
			warm = max(warm, (g722WarmMs+h.TickMs-1)/h.TickMs)
		}
		switch {
		case p.outCh == 1:
			gc.left = true
		case len(h.Channels) == 1 || c.Role == RoleMixed || c.Role == RoleUnknown:
			gc.left, gc.right = true, true
		case c.Role == RoleLocal:
			gc.left = true
		default:
			gc.right = true
		}
		s.chans = append(s.chans, gc)
	}
	firstTick := first / int64(s.fpt)
	s.tick = max(0, firstTick-int64(warm))
	s.skip = int((firstTick-s.tick)*int64(s.fpt) + first%int64(s.fpt))
	return s, nil
}

func (s *gridStream) pull(maxFrames int) ([]int16, error) {
	return pullFrames(&s.pending, &s.skip, s.p.outCh, maxFrames, func() bool { return false }, s.fill)
}

// pullFrames hands out up to maxFrames interleaved frames of pending,
// refilling it with fill and first dropping skip frames (the part of the
// first block before the start a seek asked for). It returns nil, nil
// once done reports the source exhausted.
func pullFrames(pending *[]int16, skip *int, outCh, maxFrames int, done func() bool, fill func() error) ([]int16, error) {
	for len(*pending) == 0 {
		if done() {
			return nil, nil
		}
		if err := fill(); err != nil {
			return nil, err
		}
		if *skip > 0 {
			drop := min(*skip, len(*pending)/outCh)
			*pending = (*pending)[drop*outCh:]
			*skip -= drop
		}
	}
	n := min(maxFrames*outCh, len(*pending))
	out := (*pending)[:n]
	*pending = (*pending)[n:]
	return out, nil
}

// fill decodes the next batch of ticks into s.out.
func (s *gridStream) fill() error {
	n, err := s.g.ReadTicks(s.tick, s.buf)
	if err != nil {
		return err
	}
	ts := s.g.TickSize()
	per := s.fpt * s.p.outCh
	out := s.out[:n*per]
	clear(out)
	for k := 0; k < n; k++ {
		tick := s.buf[k*ts : (k+1)*ts]
		dst := out[k*per : (k+1)*per]
		for i, gc := range s.chans {
			flag, data := s.g.Channel(tick, i)
			if flag > TickFilled {
				return fmt.Errorf("%w: tick %d channel %d flag %d", ErrCorrupt, s.tick+int64(k), i, flag)
			}
			switch gc.c.Codec {
			case CodecPCMU:
				DecodeUlaw(gc.dec, data)
			case CodecPCMA:
				DecodeAlaw(gc.dec, data)
			case CodecG722:
				gc.g722.Decode(gc.dec, data)
			case CodecL16:
				DecodeL16(gc.dec, data)
			}
			rs := gc.dec
			switch {
			case gc.up != nil:
				gc.up.process(gc.rs, gc.dec)
				rs = gc.rs
			case gc.down != nil:
				gc.down.process(gc.rs, gc.dec)
				rs = gc.rs
			}
			if gc.left {
				mixInto(dst, s.p.outCh, 0, rs)
			}
			if gc.right {
				mixInto(dst, s.p.outCh, 1, rs)
			}
		}
	}
	s.tick += int64(n)
	s.pending = out
	return nil
}

// pcmReader is what WAVReader and MP3Reader have in common.
type pcmReader interface {
	Format() Format
	SeekFrame(frame int64) error
	ReadPCM16(dst []int16) (int, error)
}

type uploadStream struct {
	rd      pcmReader
	p       plan
	inCh    int
	in      []int16    // interleaved input block
	mono    [2][]int16 // per output channel, input rate (plus carry)
	carry   int        // samples carried in mono[] for the down-sampler
	rs      [2][]int16
	up      [2]*upsampler2
	down    [2]*downsampler2
	out     []int16
	pending []int16
	skip    int
	eof     bool
}

func newUploadStream(src *Source, p plan, first int64) (*uploadStream, error) {
	var rd pcmReader
	var err error
	if src.kind == SourceWAV {
		rd, err = NewWAVReaderAt(src.r, src.size)
	} else {
		rd, err = NewMP3Reader(src.r, src.size)
	}
	if err != nil {
		return nil, err
	}
	f := rd.Format()
	s := &uploadStream{rd: rd, p: p, inCh: f.Channels}
	block := max(2, f.SampleRate*renderBatchMs/1000) &^ 1
	s.in = make([]int16, block*f.Channels)
	var inStart int64
	switch {
	case p.rate == f.SampleRate:
		inStart = first
	case p.rate == 2*f.SampleRate:
		inStart = max(0, first/2-uploadWarm)
		s.skip = int(first - 2*inStart)
	default:
		inStart = max(0, 2*(first-uploadWarm))
		s.skip = int(first - inStart/2)
	}
	for c := 0; c < p.outCh; c++ {
		s.mono[c] = make([]int16, 0, block+1)
		s.rs[c] = make([]int16, 2*block+2)
		switch {
		case p.rate == 2*f.SampleRate:
			s.up[c] = newUpsampler2(block)
		case 2*p.rate == f.SampleRate:
			s.down[c] = newDownsampler2(block + 1)
		}
	}
	s.out = make([]int16, (2*block+2)*p.outCh)
	if err := rd.SeekFrame(inStart); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *uploadStream) pull(maxFrames int) ([]int16, error) {
	return pullFrames(&s.pending, &s.skip, s.p.outCh, maxFrames, func() bool { return s.eof }, s.fill)
}

func (s *uploadStream) fill() error {
	n, err := s.rd.ReadPCM16(s.in)
	if errors.Is(err, io.EOF) {
		s.eof = true
		return nil
	}
	if err != nil {
		return err
	}
	frames := n / s.inCh
	// Channel layout at the input rate.
	for c := 0; c < s.p.outCh; c++ {
		s.mono[c] = s.mono[c][:s.carry]
	}
	for i := 0; i < frames; i++ {
		fr := s.in[i*s.inCh : (i+1)*s.inCh]
		if s.p.outCh == 1 {
			var sum int32
			for _, v := range fr {
				sum += int32(v)
			}
			s.mono[0] = append(s.mono[0], int16(min(32767, max(-32768, sum))))
			continue
		}
		r := fr[0]
		if s.inCh > 1 {
			r = fr[1]
		}
		s.mono[0] = append(s.mono[0], fr[0])
		s.mono[1] = append(s.mono[1], r)
	}
	// Rate conversion per output channel, then interleave.
	var outFrames int
	for c := 0; c < s.p.outCh; c++ {
		m := s.mono[c]
		res := m
		switch {
		case s.up[c] != nil:
			res = s.rs[c][:2*len(m)]
			s.up[c].process(res, m)
		case s.down[c] != nil:
			even := len(m) &^ 1
			res = s.rs[c][:even/2]
			s.down[c].process(res, m[:even])
		}
		outFrames = len(res)
		for i, v := range res {
			s.out[i*s.p.outCh+c] = v
		}
	}
	s.carry = 0
	if s.down[0] != nil && len(s.mono[0])%2 == 1 {
		for c := 0; c < s.p.outCh; c++ {
			m := s.mono[c]
			m[0] = m[len(m)-1]
		}
		s.carry = 1
	}
	s.pending = s.out[:outFrames*s.p.outCh]
	return nil
}
