package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The grid container keeps a captured call on a fixed time grid, so that
// time → byte offset is arithmetic and seeking in a one-hour call costs one
// read. It stores the codec-native bytes as they arrived (the evidence),
// never a transcoding.
//
//	 0      6     7     8          10          12                20        24
//	+------+-----+-----+----------+-----------+-----------------+---------+
//	|CVGRID| ver | nch | hdr len  | tick ms   | start (Unix µs) | reserved|  fixed part, big-endian
//	+------+-----+-----+----------+-----------+-----------------+---------+
//	| channel descriptor 0 (40 bytes) ... channel descriptor nch-1        |
//	|   0 codec | 1 role | 2-3 bytes/tick | 4-7 sample rate | 8-11 RTP    |
//	|   clock rate | 12 label len | 13-39 label (UTF-8, zero padded)      |
//	+---------------------------------------------------------------------+
//	| (hdr len - 24 - 40*nch bytes a later version may add; skipped)      |
//	+=====================================================================+ offset hdr len
//	| tick 0: [flag0][bytes of ch 0] [flag1][bytes of ch 1] ...           |
//	| tick 1: same size                                                   |
//	| ...                                                                 |
//	| tick k starts at hdr len + k*tick size; a cut last tick is ignored  |
//	+---------------------------------------------------------------------+
//
// Flag values (TickFlag): 1 present (received audio), 2 filled (a gap inside
// the stream, padded with codec silence), 0 absent (the channel had not
// started yet or had already ended; also silence). The flags keep the
// timeline true while showing which audio was really received.
//
// Sizes per 20 ms tick: G.711 160 bytes (8 kHz, 1 byte/sample), G.722 160
// bytes (16 kHz, 4 bits/sample), L16 8 kHz 320 bytes. Silence: µ-law 0xFF,
// A-law 0xD5, G.722 G722Silence, L16 zeros.
//
// Integrity and confidentiality come from the recording file around this
// container (AES-GCM chunks), so the container carries no checksum.
const (
	gridMagic       = "CVGRID"
	gridVersion     = 1
	gridFixedSize   = 24
	gridChanSize    = 40
	gridMaxLabel    = 27
	gridMaxChannels = 8
	gridMaxHeader   = 4096
	// DefaultTickMs is the tick length used when GridConfig.TickMs is 0;
	// 20 ms is the usual RTP packetisation, so one packet fills one tick.
	DefaultTickMs = 20
)

// TickFlag tells how a channel's bytes in one tick came to be.
type TickFlag uint8

// Tick flags.
const (
	TickAbsent  TickFlag = 0 // channel not started yet or already ended: silence
	TickPresent TickFlag = 1 // audio received for this tick
	TickFilled  TickFlag = 2 // gap (loss, late packet): codec silence
)

// Role says whose voice a channel carries; rendering puts local on the
// left and remote on the right.
type Role uint8

// Roles.
const (
	RoleUnknown Role = 0
	RoleLocal   Role = 1 // our user / agent
	RoleRemote  Role = 2 // the other party
	RoleMixed   Role = 3 // both parties already mixed
)

// GridChannel describes one channel of a grid recording.
type GridChannel struct {
	Codec      Codec
	Role       Role
	SampleRate int    // of the decoded audio: 8000 for G.711, 16000 for G.722
	ClockRate  int    // RTP clock rate as signalled (8000 for G.722); 0 = SampleRate
	Label      string // short free text, at most 27 bytes (e.g. "caller", "sip:100")
	// BytesPerTick is filled in by NewGridWriter / NewGridReader.
	BytesPerTick int
}

// GridHeader is the parsed header of a grid container.
type GridHeader struct {
	TickMs   int
	Start    time.Time // zero if unknown
	Channels []GridChannel
}

// bytesPerTick returns the codec-native size of one tick, or an error if
// the channel cannot be put on a grid of tickMs.
func (c GridChannel) bytesPerTick(tickMs int) (int, error) {
	samples := c.SampleRate * tickMs
	if samples%1000 != 0 {
		return 0, fmt.Errorf("%w: %d Hz does not fill a %d ms tick with whole samples", ErrUnsupportedFormat, c.SampleRate, tickMs)
	}
	samples /= 1000
	switch c.Codec {
	case CodecPCMU, CodecPCMA:
		if c.SampleRate != 8000 {
			return 0, fmt.Errorf("%w: G.711 at %d Hz", ErrUnsupportedFormat, c.SampleRate)
		}
		return samples, nil
	case CodecG722:
		if c.SampleRate != 16000 {
			return 0, fmt.Errorf("%w: G.722 at %d Hz (the audio is 16000 Hz)", ErrUnsupportedFormat, c.SampleRate)
		}
		return samples / 2, nil
	case CodecL16:
		if c.SampleRate < 8000 || c.SampleRate > 48000 {
			return 0, fmt.Errorf("%w: L16 at %d Hz", ErrUnsupportedFormat, c.SampleRate)
		}
		return samples * 2, nil
	}
	return 0, fmt.Errorf("%w: grid codec %d", ErrUnsupportedFormat, uint8(c.Codec))
}

func (c GridChannel) silence() byte {
	switch c.Codec {
	case CodecPCMU:
		return UlawSilence
	case CodecPCMA:
		return AlawSilence
	case CodecG722:
		return G722Silence
	}
	return 0
}

func checkHeader(h *GridHeader) (tickSize int, err error) {
	if h.TickMs < 1 || h.TickMs > 1000 {
		return 0, fmt.Errorf("%w: tick of %d ms (1..1000)", ErrUnsupportedFormat, h.TickMs)
	}
	if len(h.Channels) < 1 || len(h.Channels) > gridMaxChannels {
		return 0, fmt.Errorf("%w: %d channels (1..%d)", ErrUnsupportedFormat, len(h.Channels), gridMaxChannels)
	}
	for i := range h.Channels {
		c := &h.Channels[i]
		if c.Role > RoleMixed {
			return 0, fmt.Errorf("%w: channel %d role %d", ErrUnsupportedFormat, i, c.Role)
		}
		if len(c.Label) > gridMaxLabel {
			return 0, fmt.Errorf("%w: channel %d label of %d bytes (max %d)", ErrBadArgument, i, len(c.Label), gridMaxLabel)
		}
		if c.ClockRate == 0 {
			c.ClockRate = c.SampleRate
		}
		if c.ClockRate < 0 || c.ClockRate > maxSampleRate {
			return 0, fmt.Errorf("%w: channel %d clock rate %d", ErrUnsupportedFormat, i, c.ClockRate)
		}
		n, err := c.bytesPerTick(h.TickMs)
		if err != nil {
			return 0, fmt.Errorf("channel %d: %w", i, err)
		}
		if c.BytesPerTick != 0 && c.BytesPerTick != n {
			return 0, fmt.Errorf("%w: channel %d has %d bytes per tick, its codec needs %d", ErrCorrupt, i, c.BytesPerTick, n)
		}
		c.BytesPerTick = n
		tickSize += 1 + n
	}
	return tickSize, nil
}

// GridConfig configures a new grid recording.
type GridConfig struct {
	TickMs   int       // 0 means DefaultTickMs
	Start    time.Time // wall-clock time of tick 0; zero if unknown
	Channels []GridChannel
}

// ChannelCounts counts ticks per flag for one channel.
type ChannelCounts struct {
	Present, Filled, Absent int64
}

// GridWriter appends ticks to a grid container. It is not safe for
// concurrent use; one flusher owns one recording.
//
// Ticks can be written two ways: WriteTick copies each channel's bytes in;
// TickBuffer and CommitTick let the caller produce them in place (one copy
// fewer per tick). BeginBatch gathers ticks in a caller's buffer and hands
// them to the io.Writer in one Write, for a caller that produces many ticks
// of one recording at once: a Write into an encrypting store writer costs
// far more than the 322 bytes of a stereo G.711 tick.
type GridWriter struct {
	w      io.Writer
	hdr    GridHeader
	offs   []int // offset of each channel's flag byte inside a tick
	tick   []byte
	cur    []byte // where the next tick is assembled: tick, or the batch's free space
	batch  []byte // BeginBatch: committed ticks not yet written (len), room for more (cap)
	counts []ChannelCounts
	ticks  int64
	err    error // sticky: after a failed write the file is cut mid-tick
}

// NewGridWriter validates cfg and writes the header to w.
func NewGridWriter(w io.Writer, cfg GridConfig) (*GridWriter, error) {
	h := GridHeader{TickMs: cfg.TickMs, Start: cfg.Start, Channels: append([]GridChannel(nil), cfg.Channels...)}
	if h.TickMs == 0 {
		h.TickMs = DefaultTickMs
	}
	for i := range h.Channels {
		h.Channels[i].BytesPerTick = 0 // computed, never trusted from the caller
	}
	tickSize, err := checkHeader(&h)
	if err != nil {
		return nil, err
	}
	g := &GridWriter{w: w, hdr: h, tick: make([]byte, tickSize), counts: make([]ChannelCounts, len(h.Channels))}
	g.cur = g.tick
	off := 0
	for _, c := range h.Channels {
		g.offs = append(g.offs, off)
		off += 1 + c.BytesPerTick
	}
	if _, err := w.Write(marshalGridHeader(&h)); err != nil {
		return nil, fmt.Errorf("audio: writing grid header: %w", err)
	}
	return g, nil
}

func marshalGridHeader(h *GridHeader) []byte {
	n := gridFixedSize + gridChanSize*len(h.Channels)
	b := make([]byte, n)
	copy(b, gridMagic)
	b[6] = gridVersion
	b[7] = byte(len(h.Channels))
	binary.BigEndian.PutUint16(b[8:], uint16(n))
	binary.BigEndian.PutUint16(b[10:], uint16(h.TickMs))
	if !h.Start.IsZero() {
		binary.BigEndian.PutUint64(b[12:], uint64(h.Start.UnixMicro()))
	}
	for i, c := range h.Channels {
		d := b[gridFixedSize+i*gridChanSize:]
		d[0] = byte(c.Codec)
		d[1] = byte(c.Role)
		binary.BigEndian.PutUint16(d[2:], uint16(c.BytesPerTick))
		binary.BigEndian.PutUint32(d[4:], uint32(c.SampleRate))
		binary.BigEndian.PutUint32(d[8:], uint32(c.ClockRate))
		d[12] = byte(len(c.Label))
		copy(d[13:13+gridMaxLabel], c.Label)
	}
	return b
}

// Header returns the header as written (with BytesPerTick filled in).
func (g *GridWriter) Header() GridHeader { return g.hdr }

// WriteTick appends one tick. For each channel i, flags[i] says what the
// tick holds; payload[i] must be exactly BytesPerTick long when the flag is
// TickPresent and is ignored otherwise (silence is written). The caller
// keeps ownership of the buffers; WriteTick does not allocate.
func (g *GridWriter) WriteTick(flags []TickFlag, payload [][]byte) error {
	if g.err != nil {
		return g.err
	}
	if len(flags) != len(g.offs) || len(payload) != len(g.offs) {
		return fmt.Errorf("%w: tick for %d/%d channels, grid has %d", ErrBadArgument, len(flags), len(payload), len(g.offs))
	}
	for i, off := range g.offs {
		if flags[i] != TickPresent {
			continue
		}
		c := &g.hdr.Channels[i]
		if len(payload[i]) != c.BytesPerTick {
			return fmt.Errorf("%w: channel %d payload of %d bytes, tick needs %d", ErrBadArgument, i, len(payload[i]), c.BytesPerTick)
		}
		copy(g.cur[off+1:off+1+c.BytesPerTick], payload[i])
	}
	return g.CommitTick(flags)
}

// TickBuffer returns where channel ch's bytes of the next tick go
// (BytesPerTick long), for a caller that produces them in place and then
// calls CommitTick. It is valid until the next CommitTick, WriteTick,
// BeginBatch or EndBatch; bytes left there without a commit are
// overwritten by the next tick. It panics if ch is out of range, like an
// index.
func (g *GridWriter) TickBuffer(ch int) []byte {
	off := g.offs[ch]
	return g.cur[off+1 : off+1+g.hdr.Channels[ch].BytesPerTick : off+1+g.hdr.Channels[ch].BytesPerTick]
}

// CommitTick appends the next tick: for each channel i with flags[i]
// TickPresent, the bytes the caller put in TickBuffer(i); for TickFilled
// and TickAbsent, codec silence (whatever the buffer holds). It does not
// allocate.
func (g *GridWriter) CommitTick(flags []TickFlag) error {
	if g.err != nil {
		return g.err
	}
	if len(flags) != len(g.offs) {
		return fmt.Errorf("%w: tick for %d channels, grid has %d", ErrBadArgument, len(flags), len(g.offs))
	}
	for i, off := range g.offs {
		c := &g.hdr.Channels[i]
		switch flags[i] {
		case TickPresent:
		case TickFilled, TickAbsent:
			s := c.silence()
			dst := g.cur[off+1 : off+1+c.BytesPerTick]
			for j := range dst {
				dst[j] = s
			}
		default:
			return fmt.Errorf("%w: channel %d flag %d", ErrBadArgument, i, flags[i])
		}
		g.cur[off] = byte(flags[i])
	}
	if g.batch != nil {
		g.batch = g.batch[:len(g.batch)+len(g.tick)]
		if cap(g.batch)-len(g.batch) < len(g.tick) {
			if err := g.writeBatch(); err != nil {
				return err
			}
		}
		g.cur = g.batch[len(g.batch) : len(g.batch)+len(g.tick)]
	} else if _, err := g.w.Write(g.tick); err != nil {
		g.err = fmt.Errorf("audio: writing grid tick %d: %w", g.ticks, err)
		return g.err
	}
	for i, f := range flags {
		switch f {
		case TickPresent:
			g.counts[i].Present++
		case TickFilled:
			g.counts[i].Filled++
		default:
			g.counts[i].Absent++
		}
	}
	g.ticks++
	return nil
}

// BeginBatch makes the writer gather committed ticks in buf's capacity and
// write them to its io.Writer in one Write when buf is full or at EndBatch,
// instead of one Write per tick. buf stays the caller's: after EndBatch the
// writer no longer refers to it, so one buffer can serve many writers in
// turn. A buf shorter than one tick leaves the writer unbatched. A batch
// already begun is written out first.
func (g *GridWriter) BeginBatch(buf []byte) error {
	if err := g.EndBatch(); err != nil {
		return err
	}
	if cap(buf) < len(g.tick) {
		return nil
	}
	g.batch = buf[:0]
	g.cur = buf[:len(g.tick)]
	return nil
}

// EndBatch writes the ticks gathered since BeginBatch and returns to one
// Write per tick. Without a batch it does nothing.
func (g *GridWriter) EndBatch() error {
	if g.batch == nil {
		return g.err
	}
	err := g.writeBatch()
	g.batch, g.cur = nil, g.tick
	return err
}

// writeBatch hands the gathered ticks to the io.Writer.
func (g *GridWriter) writeBatch() error {
	if len(g.batch) == 0 || g.err != nil {
		g.batch = g.batch[:0]
		return g.err
	}
	n := int64(len(g.batch) / len(g.tick))
	_, err := g.w.Write(g.batch)
	g.batch = g.batch[:0]
	if err != nil {
		g.err = fmt.Errorf("audio: writing grid ticks %d..%d: %w", g.ticks-n, g.ticks, err)
	}
	return g.err
}

// NumTicks returns how many ticks have been written.
func (g *GridWriter) NumTicks() int64 { return g.ticks }

// Counts returns per-channel tick counts so far, e.g. for the recording's
// metadata (how much audio was really received).
func (g *GridWriter) Counts() []ChannelCounts { return append([]ChannelCounts(nil), g.counts...) }

// GridReader reads a grid container through an io.ReaderAt.
type GridReader struct {
	r        io.ReaderAt
	hdr      GridHeader
	hdrLen   int64
	tickSize int
	offs     []int
	numTicks int64
}

// NewGridReader parses the header of a size-byte grid container.
func NewGridReader(r io.ReaderAt, size int64) (*GridReader, error) {
	var fixed [gridFixedSize]byte
	if size < gridFixedSize {
		return nil, fmt.Errorf("%w: %d-byte file", ErrNotGrid, size)
	}
	if _, err := r.ReadAt(fixed[:], 0); err != nil {
		return nil, fmt.Errorf("audio: reading grid header: %w", err)
	}
	if string(fixed[:6]) != gridMagic {
		return nil, fmt.Errorf("%w: starts with %q", ErrNotGrid, fixed[:6])
	}
	if fixed[6] != gridVersion {
		return nil, fmt.Errorf("%w: grid version %d", ErrUnsupportedFormat, fixed[6])
	}
	nch := int(fixed[7])
	hdrLen := int(binary.BigEndian.Uint16(fixed[8:]))
	if nch < 1 || nch > gridMaxChannels {
		return nil, fmt.Errorf("%w: %d channels", ErrCorrupt, nch)
	}
	if hdrLen < gridFixedSize+gridChanSize*nch || hdrLen > gridMaxHeader || int64(hdrLen) > size {
		return nil, fmt.Errorf("%w: header length %d for %d channels in a %d-byte file", ErrCorrupt, hdrLen, nch, size)
	}
	b := make([]byte, gridFixedSize+gridChanSize*nch)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("audio: reading grid header: %w", err)
	}
	h := GridHeader{TickMs: int(binary.BigEndian.Uint16(b[10:]))}
	if us := int64(binary.BigEndian.Uint64(b[12:])); us != 0 {
		h.Start = time.UnixMicro(us).UTC()
	}
	for i := 0; i < nch; i++ {
		d := b[gridFixedSize+i*gridChanSize:]
		ll := int(d[12])
		if ll > gridMaxLabel {
			return nil, fmt.Errorf("%w: channel %d label length %d", ErrCorrupt, i, ll)
		}
		h.Channels = append(h.Channels, GridChannel{
			Codec:        Codec(d[0]),
			Role:         Role(d[1]),
			BytesPerTick: int(binary.BigEndian.Uint16(d[2:])),
			SampleRate:   int(binary.BigEndian.Uint32(d[4:])),
			ClockRate:    int(binary.BigEndian.Uint32(d[8:])),
			Label:        string(d[13 : 13+ll]),
		})
		if h.Channels[i].BytesPerTick == 0 {
			return nil, fmt.Errorf("%w: channel %d has 0 bytes per tick", ErrCorrupt, i)
		}
	}
	tickSize, err := checkHeader(&h)
	if err != nil {
		return nil, err
	}
	g := &GridReader{r: r, hdr: h, hdrLen: int64(hdrLen), tickSize: tickSize}
	off := 0
	for _, c := range h.Channels {
		g.offs = append(g.offs, off)
		off += 1 + c.BytesPerTick
	}
	g.numTicks = (size - g.hdrLen) / int64(tickSize)
	return g, nil
}

// Header returns the parsed header. The Channels slice is shared; do not
// modify it.
func (g *GridReader) Header() GridHeader { return g.hdr }

// TickSize returns the size in bytes of one tick (all channels).
func (g *GridReader) TickSize() int { return g.tickSize }

// NumTicks returns the number of complete ticks.
func (g *GridReader) NumTicks() int64 { return g.numTicks }

// TickDuration returns the length of one tick.
func (g *GridReader) TickDuration() time.Duration {
	return time.Duration(g.hdr.TickMs) * time.Millisecond
}

// Duration returns the recording length: ticks × tick duration.
func (g *GridReader) Duration() time.Duration {
	return time.Duration(g.numTicks) * g.TickDuration()
}

// ReadTicks reads whole ticks starting at tick index from into buf (as
// many as fit, up to the end) and returns how many it read. At or past the
// end it returns 0, io.EOF. Use Channel to take a tick apart.
func (g *GridReader) ReadTicks(from int64, buf []byte) (int, error) {
	if from < 0 {
		return 0, fmt.Errorf("%w: tick %d", ErrBadArgument, from)
	}
	if from >= g.numTicks {
		return 0, io.EOF
	}
	n := int64(len(buf) / g.tickSize)
	if n == 0 {
		return 0, fmt.Errorf("%w: buffer of %d bytes is smaller than a %d-byte tick", ErrBadArgument, len(buf), g.tickSize)
	}
	n = min(n, g.numTicks-from)
	m, err := g.r.ReadAt(buf[:n*int64(g.tickSize)], g.hdrLen+from*int64(g.tickSize))
	if m == int(n)*g.tickSize {
		return int(n), nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return m / g.tickSize, fmt.Errorf("audio: reading ticks %d..%d: %w", from, from+n, err)
}

// Channel returns channel ch's flag and bytes inside one tick (a slice of
// ReadTicks' buffer of exactly TickSize bytes).
func (g *GridReader) Channel(tick []byte, ch int) (TickFlag, []byte) {
	off := g.offs[ch]
	return TickFlag(tick[off]), tick[off+1 : off+1+g.hdr.Channels[ch].BytesPerTick]
}

// Counts scans the whole container and counts flags per channel. It reads
// the file once in 64 KiB pieces; a flag value outside TickFlag is reported
// as ErrCorrupt with its tick index.
func (g *GridReader) Counts() ([]ChannelCounts, error) {
	counts := make([]ChannelCounts, len(g.offs))
	buf := make([]byte, max(g.tickSize, 64<<10/g.tickSize*g.tickSize))
	for from := int64(0); from < g.numTicks; {
		n, err := g.ReadTicks(from, buf)
		if err != nil {
			return nil, err
		}
		for t := 0; t < n; t++ {
			tick := buf[t*g.tickSize : (t+1)*g.tickSize]
			for ch, off := range g.offs {
				switch TickFlag(tick[off]) {
				case TickPresent:
					counts[ch].Present++
				case TickFilled:
					counts[ch].Filled++
				case TickAbsent:
					counts[ch].Absent++
				default:
					return nil, fmt.Errorf("%w: tick %d channel %d flag %d", ErrCorrupt, from+int64(t), ch, tick[off])
				}
			}
		}
		from += int64(n)
	}
	return counts, nil
}
