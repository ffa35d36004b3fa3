package rtp

import (
	"fmt"
	"math/bits"
	"time"
	"unsafe"

	"github.com/callvault/callvault/store/audio"
)

// Playout ("gridder") turns one stream's packets, drained from its ring in
// arrival order, into fixed ticks of codec bytes for the grid container
// (store/audio grid.go).
//
// The timeline is a bounded ring of ticks indexed by the recording's tick
// number. Positions are in RTP clock units from the recording's tick 0:
//
//	pos(packet) = anchorPos + (extTS - anchorTS)
//
// anchorPos comes from the arrival time of the packet that anchored the
// source ((arrival - Start) in clock units), so both directions of a call
// line up on the capture clock; after that, positions come from RTP
// timestamps, so network jitter does not stretch or squeeze the audio.
// extTS extends the 32-bit timestamp by signed differences, so wrap is
// invisible. A packet writes its payload at pos*bytesPerUnit (G.711/G.722:
// 1 byte per unit at 8000 Hz; L16: 2), so any ptime works and tick k holds
// units [k*U, (k+1)*U), U = clock*tickMs/1000 (160 for 20 ms at 8 kHz).
//
// A tick is emitted only once the playout delay has passed in packet time:
// tick k is ready when (k+1)*U + delay <= frontier, where the frontier is
// the end of the newest packet, extrapolated by capture time since that
// packet arrived (so silence, hold and the end of a stream still move
// time forward; extrapolating from the last packet, not from the anchor,
// keeps sender clock drift from accumulating). Packets that arrive within
// the delay are put in place whatever their order.
//
// Re-anchoring (the stream continues at the arrival-time position, never
// before the first tick not yet emitted) happens when:
//   - the SSRC changes (a new source: its timestamps mean nothing here);
//   - the newest packet's timestamp position and its arrival position
//     differ by more than Reanchor (a huge timestamp jump, a sender that
//     did not advance timestamps across silence): no hours of silence;
//   - the newest packet would land past the end of the timeline buffer (a
//     jump ahead too short for Reanchor but longer than the buffer);
//   - the newest packet (by sequence number) would land entirely before
//     the first unemitted tick: the whole stream stalled longer than the
//     delay, or its timestamps went backwards. Reordered packets (older
//     sequence number) that are too late are dropped and counted instead.
//
// Tick flags: ticks wholly before the stream's first packet (or after
// Close) are TickAbsent; ticks holding any received audio are
// TickPresent, with the units no packet covered set to codec silence;
// ticks without any are TickFilled. Flagging a partly covered tick
// TickPresent departs from "not fully covered = filled" on purpose: the
// grid writer stores silence for a filled tick, which would throw away
// the half of a 30 ms packet that did arrive. PartialTicks counts them.
// Comfort noise (PT 13) moves the frontier but writes nothing (its ticks
// are filled); telephone events go to the EventTracker and come back from
// Write as digits. Playout never allocates after NewPlayout and is not
// safe for concurrent use: the stream's flusher owns it.
type Playout struct {
	cfg        PlayoutConfig
	bpu        int   // bytes per RTP clock unit
	upt        int64 // clock units per tick
	tickBytes  int
	silence    byte
	delay      int64    // units
	reanchor   int64    // units
	nticks     int64    // timeline slots; tick k lives in slot k % nticks
	buf        []byte   // nticks ticks of tickBytes
	cover      []uint64 // one bit per unit per tick slot
	wordsPerTk int
	tags       []int64 // tick index held by each slot, -1 free

	next int64 // next tick to emit

	started     bool
	streamStart int64 // units
	closed      bool
	streamEnd   int64

	ssrc      uint32
	anchorPos int64
	anchorExt int64
	lastTS    uint32
	lastExt   int64
	maxSeq    uint16

	haveEnd       bool
	maxEnd        int64 // frontier, units
	maxEndArrival int64

	events EventTracker
	stats  PlayoutStats
}

// PlayoutConfig configures one stream's playout.
type PlayoutConfig struct {
	Codec       audio.Codec // CodecPCMU, CodecPCMA, CodecG722 or CodecL16 (mono)
	PayloadType uint8       // the audio payload type from SDP (or the first packet)
	// EventPT is the telephone-event payload type; 0 means none (it is
	// always dynamic, 96..127).
	EventPT uint8
	// ClockRate is the RTP clock in Hz; 0 means 8000 (G.711, and G.722,
	// whose RTP clock is 8000 for historic reasons, RFC 3551 §4.5.2). For
	// L16 it is the sample rate.
	ClockRate int
	TickMs    int   // 0 means audio.DefaultTickMs
	Start     int64 // capture time (ns) of the recording's tick 0
	// Delay is how long a tick waits for late and reordered packets,
	// in packet time; 0 means 120 ms.
	Delay time.Duration
	// Reanchor is how far the timestamp position of the newest packet may
	// stray from its arrival position before the stream is re-anchored;
	// 0 means 2 s.
	Reanchor time.Duration
	// BufferTicks is the timeline size in ticks; 0 sizes it for Delay +
	// 300 ms (23 ticks of 20 ms with the default delay). The newest packet never lands past the timeline:
	// one that would (a timestamp jump ahead of arrival shorter than
	// Reanchor but longer than the buffer) re-anchors the stream instead
	// of being dropped as Overrun. So the buffer is sized for the jitter
	// the delay absorbs, not for the re-anchor window: at 10,000 open
	// calls the timelines were the largest thing a call held (issue 4).
	// The caller pulls ticks at least every 300 ms of packet time.
	BufferTicks int
}

// PlayoutStats counts what playout did; copy it out with Stats.
type PlayoutStats struct {
	Packets      uint64 // all packets given to Write
	Audio        uint64 // audio packets placed (at least in part)
	ComfortNoise uint64 // PT 13 packets
	Events       uint64 // telephone-event packets
	BadEvents    uint64 // telephone-event payloads that did not parse
	OtherPT      uint64 // packets of another payload type, ignored
	Misaligned   uint64 // payload not a whole number of units (L16 odd byte); the rest was used
	Late         uint64 // reordered packets whose ticks were already emitted
	LateUnits    uint64 // clock units dropped because their tick was emitted
	BeforeStart  uint64 // packets wholly before the recording's tick 0
	Overrun      uint64 // packet parts dropped: their slot held a tick not yet pulled
	Duplicates   uint64 // packets that added no new unit
	AfterClose   uint64 // packets written after Close
	Reanchors    uint64 // re-anchors other than SSRC changes
	SSRCChanges  uint64
	TicksPresent uint64
	TicksFilled  uint64
	TicksAbsent  uint64
	PartialTicks uint64 // present ticks with some units filled with silence
}

const (
	ptComfortNoise    = 13 // RFC 3551 §6 / RFC 3389
	defaultDelay      = 120 * time.Millisecond
	defaultReanchor   = 2 * time.Second
	maxBufferTicks    = 1 << 14
	playoutExtraSlack = 300 * time.Millisecond
)

// NewPlayout validates cfg and allocates the timeline.
func NewPlayout(cfg PlayoutConfig) (*Playout, error) {
	if cfg.ClockRate == 0 {
		cfg.ClockRate = 8000
	}
	if cfg.TickMs == 0 {
		cfg.TickMs = audio.DefaultTickMs
	}
	if cfg.Delay == 0 {
		cfg.Delay = defaultDelay
	}
	if cfg.Reanchor == 0 {
		cfg.Reanchor = defaultReanchor
	}
	p := &Playout{cfg: cfg}
	switch cfg.Codec {
	case audio.CodecPCMU:
		p.bpu, p.silence = 1, audio.UlawSilence
	case audio.CodecPCMA:
		p.bpu, p.silence = 1, audio.AlawSilence
	case audio.CodecG722:
		p.bpu, p.silence = 1, audio.G722Silence
	case audio.CodecL16:
		p.bpu, p.silence = 2, 0
	default:
		return nil, fmt.Errorf("%w: playout codec %d (PCMU, PCMA, G722, L16)", ErrConfig, cfg.Codec)
	}
	if cfg.ClockRate < 8000 || cfg.ClockRate > 48000 {
		return nil, fmt.Errorf("%w: clock rate %d Hz (8000..48000)", ErrConfig, cfg.ClockRate)
	}
	if cfg.Codec != audio.CodecL16 && cfg.ClockRate != 8000 {
		return nil, fmt.Errorf("%w: %d Hz RTP clock for codec %d (needs 8000)", ErrConfig, cfg.ClockRate, cfg.Codec)
	}
	if cfg.TickMs < 1 || cfg.TickMs > 1000 || cfg.ClockRate*cfg.TickMs%1000 != 0 {
		return nil, fmt.Errorf("%w: tick of %d ms at %d Hz", ErrConfig, cfg.TickMs, cfg.ClockRate)
	}
	if cfg.Delay < 0 || cfg.Delay > 10*time.Second || cfg.Reanchor < 0 || cfg.Reanchor > time.Minute {
		return nil, fmt.Errorf("%w: delay %v (0..10s), reanchor %v (0..1m)", ErrConfig, cfg.Delay, cfg.Reanchor)
	}
	tick := time.Duration(cfg.TickMs) * time.Millisecond
	n := cfg.BufferTicks
	if n == 0 {
		n = int((cfg.Delay+playoutExtraSlack)/tick) + 2
	}
	if n < 2 || n > maxBufferTicks {
		return nil, fmt.Errorf("%w: buffer of %d ticks (2..%d)", ErrConfig, n, maxBufferTicks)
	}
	p.upt = int64(cfg.ClockRate * cfg.TickMs / 1000)
	p.tickBytes = int(p.upt) * p.bpu
	p.delay = nsToUnits(int64(cfg.Delay), int64(cfg.ClockRate))
	p.reanchor = nsToUnits(int64(cfg.Reanchor), int64(cfg.ClockRate))
	p.nticks = int64(n)
	p.buf = make([]byte, n*p.tickBytes)
	p.wordsPerTk = int(p.upt+63) / 64
	p.cover = make([]uint64, n*p.wordsPerTk)
	p.tags = make([]int64, n)
	for i := range p.tags {
		p.tags[i] = -1
	}
	return p, nil
}

// Memory reports the timeline's memory (slot tags, received-unit bits
// and tick bytes) to fn, for a consumer that wants it in its caches before
// it places packets and pulls ticks (prefetch hints, nothing more).
func (p *Playout) Memory(fn func(ptr unsafe.Pointer, n uintptr)) {
	if len(p.tags) > 0 {
		fn(unsafe.Pointer(&p.tags[0]), uintptr(len(p.tags))*8)
	}
	if len(p.cover) > 0 {
		fn(unsafe.Pointer(&p.cover[0]), uintptr(len(p.cover))*8)
	}
	if len(p.buf) > 0 {
		fn(unsafe.Pointer(&p.buf[0]), uintptr(len(p.buf)))
	}
}

// TickBytes is the size of one tick of this stream, the size NextTick's
// dst must have (the grid channel's BytesPerTick).
func (p *Playout) TickBytes() int { return p.tickBytes }

// NextIndex is the index of the tick NextTick returns next.
func (p *Playout) NextIndex() int64 { return p.next }

// Stats returns a copy of the counters.
func (p *Playout) Stats() PlayoutStats { return p.stats }

// EventStats returns the telephone-event tracker's counters.
func (p *Playout) EventStats() EventStats { return p.events.Stats }

func (p *Playout) arrivalPos(arrival int64) int64 {
	return nsToUnits(arrival-p.cfg.Start, int64(p.cfg.ClockRate))
}

func (p *Playout) writable() int64 { return p.next * p.upt }

func (p *Playout) anchor(s *Slot, pos int64) {
	p.ssrc = s.SSRC
	p.anchorPos = pos
	p.lastTS = s.TS
	p.lastExt = int64(s.TS)
	p.anchorExt = p.lastExt
	p.maxSeq = s.Seq
}

// Write places one packet on the timeline. The slot and payload are what
// Ring.Drain hands over (or any packet in arrival order). It returns the
// digits completed by a telephone-event packet; the slice is valid until
// the next call. Pull ready ticks (NextTick) before writing a packet
// whose arrival is later than the last pull: a packet landing on a slot
// whose tick has not been pulled is dropped as Overrun. Write never
// allocates.
func (p *Playout) Write(s *Slot, payload []byte) []Digit {
	p.stats.Packets++
	if p.closed {
		p.stats.AfterClose++
		return nil
	}
	var units int64
	switch {
	case s.PT == p.cfg.PayloadType:
		if len(payload)%p.bpu != 0 {
			p.stats.Misaligned++
			payload = payload[:len(payload)/p.bpu*p.bpu]
		}
		units = int64(len(payload) / p.bpu)
	case s.PT == ptComfortNoise:
		// Comfort noise says "silence here"; its timestamps are not
		// reliable (some senders freeze them across the silence), so it
		// neither anchors nor moves the frontier: extrapolation from the
		// last audio packet covers the silence, filled.
		p.stats.ComfortNoise++
		return nil
	case p.cfg.EventPT != 0 && s.PT == p.cfg.EventPT:
		return p.event(s, payload)
	default:
		p.stats.OtherPT++
		return nil
	}

	arrPos := p.arrivalPos(s.Arrival)
	var pos int64
	switch {
	case !p.started:
		p.started = true
		p.streamStart = arrPos
		p.anchor(s, arrPos)
		pos = arrPos
	case s.SSRC != p.ssrc:
		p.stats.SSRCChanges++
		pos = max(arrPos, p.writable())
		p.anchor(s, pos)
	default:
		ext := p.lastExt + int64(int32(s.TS-p.lastTS))
		pos = p.anchorPos + ext - p.anchorExt
		newest := int16(s.Seq-p.maxSeq) > 0
		if newest {
			drift := pos - arrPos
			late := pos+units <= p.writable() && pos+units > 0
			beyond := pos+units > p.writable()+p.nticks*p.upt
			if drift > p.reanchor || drift < -p.reanchor || late || beyond {
				p.stats.Reanchors++
				pos = max(arrPos, p.writable())
				p.anchor(s, pos)
			} else {
				p.lastTS, p.lastExt, p.maxSeq = s.TS, ext, s.Seq
			}
		}
	}

	if units == 0 {
		return nil
	}
	if pos+units <= 0 {
		p.stats.BeforeStart++
		return nil
	}
	if pos+units <= p.writable() {
		p.stats.Late++
		p.stats.LateUnits += uint64(units)
		return nil
	}
	p.place(pos, payload)
	p.stats.Audio++
	if pos < p.streamStart {
		// a reordered packet from before the first one seen: the
		// stream started earlier than we thought
		p.streamStart = max(pos, p.writable())
	}
	if end := pos + units; !p.haveEnd || end >= p.maxEnd {
		p.maxEnd, p.maxEndArrival, p.haveEnd = end, s.Arrival, true
	}
	return nil
}

// place copies payload to units [pos, pos+len/bpu), skipping the part
// before the first unemitted tick (and before tick 0).
func (p *Playout) place(pos int64, payload []byte) {
	start, end := pos, pos+int64(len(payload)/p.bpu)
	if w := p.writable(); start < w {
		p.stats.LateUnits += uint64(w - start)
		start = w
	}
	fresh := false
	for u := start; u < end; {
		k := u / p.upt
		tickEnd := (k + 1) * p.upt
		segEnd := min(end, tickEnd)
		slot := k % p.nticks
		if p.tags[slot] != k {
			if p.tags[slot] >= p.next {
				p.stats.Overrun++
				u = segEnd
				continue
			}
			p.resetSlot(slot, k)
		}
		off := int(u - k*p.upt)
		n := int(segEnd - u)
		dst := p.buf[int(slot)*p.tickBytes+off*p.bpu:]
		src := payload[int(u-pos)*p.bpu:]
		copy(dst[:n*p.bpu], src[:n*p.bpu])
		if p.setCover(slot, off, off+n) {
			fresh = true
		}
		u = segEnd
	}
	if !fresh {
		p.stats.Duplicates++
	}
}

// resetSlot gives a slot to tick k. Its bytes are not cleared: NextTick
// puts silence wherever no packet wrote (cover says where), so a tick
// that packets cover whole, the usual case, is written once, not twice.
func (p *Playout) resetSlot(slot, k int64) {
	clear(p.cover[int(slot)*p.wordsPerTk : int(slot+1)*p.wordsPerTk])
	p.tags[slot] = k
}

// copyTick copies a slot's bytes to dst with codec silence in every unit
// no packet covered.
func (p *Playout) copyTick(dst []byte, slot int64) {
	copy(dst, p.buf[int(slot)*p.tickBytes:int(slot+1)*p.tickBytes])
	if p.countCover(slot, 0, int(p.upt)) == int(p.upt) {
		return
	}
	w := p.cover[int(slot)*p.wordsPerTk : int(slot+1)*p.wordsPerTk]
	for u := 0; u < int(p.upt); u++ {
		if w[u/64]&(1<<(u%64)) == 0 {
			for i := u * p.bpu; i < (u+1)*p.bpu; i++ {
				dst[i] = p.silence
			}
		}
	}
}

// setCover marks units [from, to) of a slot as received and reports
// whether any of them was not yet marked.
func (p *Playout) setCover(slot int64, from, to int) bool {
	w := p.cover[int(slot)*p.wordsPerTk : int(slot+1)*p.wordsPerTk]
	fresh := false
	for from < to {
		i, b := from/64, from%64
		n := min(64-b, to-from)
		mask := ^uint64(0) >> (64 - n) << b
		if w[i]&mask != mask {
			fresh = true
		}
		w[i] |= mask
		from += n
	}
	return fresh
}

// countCover counts received units in [from, to) of a slot.
func (p *Playout) countCover(slot int64, from, to int) int {
	w := p.cover[int(slot)*p.wordsPerTk : int(slot+1)*p.wordsPerTk]
	c := 0
	for from < to {
		i, b := from/64, from%64
		n := min(64-b, to-from)
		mask := ^uint64(0) >> (64 - n) << b
		c += bits.OnesCount64(w[i] & mask)
		from += n
	}
	return c
}

func (p *Playout) event(s *Slot, payload []byte) []Digit {
	p.stats.Events++
	var e TelephoneEvent
	if e.Unmarshal(payload) != nil {
		p.stats.BadEvents++
		return nil
	}
	ds := p.events.Observe(s.TS, s.Marker, e, s.Arrival)
	for i := range ds {
		p.placeDigit(&ds[i], s.SSRC)
	}
	return ds
}

func (p *Playout) placeDigit(d *Digit, ssrc uint32) {
	var pos int64
	if p.started && ssrc == p.ssrc {
		pos = p.anchorPos + p.lastExt + int64(int32(d.StartTS-p.lastTS)) - p.anchorExt
	} else {
		pos = p.arrivalPos(d.Arrival)
	}
	d.Offset = time.Duration(pos * 1e9 / int64(p.cfg.ClockRate))
}

// Ready reports whether the next tick may be emitted at capture time now
// (ns): its end plus the playout delay lies behind the stream's frontier,
// or the stream is closed. A flusher writing several channels into one
// grid emits tick k when every channel is Ready.
func (p *Playout) Ready(now int64) bool {
	if p.closed {
		return true
	}
	var frontier int64
	if !p.haveEnd {
		frontier = p.arrivalPos(now)
	} else {
		frontier = p.maxEnd
		if now > p.maxEndArrival {
			frontier += nsToUnits(now-p.maxEndArrival, int64(p.cfg.ClockRate))
		}
	}
	return (p.next+1)*p.upt+p.delay <= frontier
}

// NextTick writes the next tick's bytes into dst (TickBytes long) and
// returns its flag, or returns false when the tick is not Ready at
// capture time now or dst is too short. Ticks come out strictly in order,
// one index after another. It never allocates.
func (p *Playout) NextTick(dst []byte, now int64) (audio.TickFlag, bool) {
	if len(dst) < p.tickBytes || !p.Ready(now) {
		return audio.TickAbsent, false
	}
	k := p.next
	p.next++
	dst = dst[:p.tickBytes]
	tickStart := k * p.upt
	from, to := tickStart, tickStart+p.upt
	if !p.started {
		to = from
	} else {
		from = max(from, p.streamStart)
		if p.closed {
			to = min(to, p.streamEnd)
		}
	}
	slot := k % p.nticks
	covered := 0
	if p.tags[slot] == k {
		p.copyTick(dst, slot)
		if from < to {
			covered = p.countCover(slot, int(from-tickStart), int(to-tickStart))
		}
		p.tags[slot] = -1
	} else {
		for i := range dst {
			dst[i] = p.silence
		}
	}
	if covered == 0 {
		// a slot may hold bytes outside the stream's span (a reordered
		// packet from before its first one): not audio of this tick
		for i := range dst {
			dst[i] = p.silence
		}
		if from >= to {
			p.stats.TicksAbsent++
			return audio.TickAbsent, true
		}
		p.stats.TicksFilled++
		return audio.TickFilled, true
	}
	if int64(covered) < to-from {
		p.stats.PartialTicks++
	}
	p.stats.TicksPresent++
	return audio.TickPresent, true
}

// Drained reports whether the stream is closed and every tick holding its
// audio has been pulled. After Close every tick is Ready (those past the
// stream are TickAbsent), so a flusher stops at the recording's end or
// when all its channels are drained.
func (p *Playout) Drained() bool {
	return p.closed && (!p.haveEnd || p.next*p.upt >= p.streamEnd)
}

// Close marks the end of the stream (BYE, timeout): every remaining tick
// becomes ready at once, ticks after the last packet are TickAbsent, and
// a telephone event whose end packets were lost is reported.
func (p *Playout) Close() []Digit {
	if p.closed {
		return nil
	}
	p.closed = true
	p.streamEnd = p.maxEnd
	ds := p.events.Flush()
	for i := range ds {
		p.placeDigit(&ds[i], p.ssrc)
	}
	return ds
}
