package rtp

// Receiver statistics per RFC 3550 Appendix A.1 (sequence validation and
// extended highest sequence number), A.3 (expected and lost packets) and
// A.8 (interarrival jitter). Two deliberate departures, both for a passive
// recorder that did not choose its sources:
//
//   - No probation (MIN_SEQUENTIAL): the stream was already identified by
//     SDP or by LooksLikeRTP, and the first packet counts.
//   - Received counts unique packets; duplicates are counted apart (a
//     1024-sequence window remembers what arrived), so Lost never goes
//     negative because of duplicates. RFC-style counts (duplicates
//     included, as in an RR's cumulative lost) are Received+Duplicates.
const (
	maxDropout  = 3000 // A.1 MAX_DROPOUT
	maxMisorder = 100  // A.1 MAX_MISORDER
	seqWindow   = 1024 // duplicate-detection window, sequence numbers
)

// StreamStats is the state and result of one stream's statistics. The
// zero value is not ready: use NewStreamStats. Not safe for concurrent use;
// the flusher that owns the stream updates it and copies a Snapshot out.
type StreamStats struct {
	clockRate int64

	started  bool
	ssrc     uint32
	maxExt   int64 // extended highest sequence number of the current source
	baseExt  int64 // extended sequence of the current source's first packet
	badSeq   int32 // A.1 bad_seq: a large jump waits for its successor; -1 none
	received int64 // unique packets of the current source
	window   [seqWindow / 64]uint64

	// totals of sources before an SSRC change
	priorExpected, priorReceived int64

	// A.8 jitter state (see jitterUpdate)
	haveTransit   bool
	haveArrival0  bool
	arrival0      int64 // capture times are taken relative to the first
	prevArrival16 int64
	prevTS        uint32
	jitter256     int64

	duplicates, outOfOrder, ssrcChanges, resyncs int64

	// A.3 interval state
	expectedPrior, receivedPrior int64
}

// NewStreamStats returns statistics for a stream whose RTP clock runs at
// clockRate Hz (8000 for G.711 and G.722, RFC 3551 §4.5.2).
func NewStreamStats(clockRate int) *StreamStats {
	if clockRate <= 0 {
		clockRate = 8000
	}
	return &StreamStats{clockRate: int64(clockRate), badSeq: -1}
}

// Update records one packet: sequence number, RTP timestamp, SSRC and the
// capture time in nanoseconds (packet time, not wall clock, so a pcap
// import gives the same jitter as live capture). jitterSample says whether
// the packet may feed the jitter estimate: pass false for packets whose
// timestamp is not their sampling instant (RFC 4733 events keep the
// event's start timestamp). It never allocates.
func (s *StreamStats) Update(seq uint16, ts, ssrc uint32, arrivalNs int64, jitterSample bool) {
	if !s.started || ssrc != s.ssrc {
		if s.started {
			s.ssrcChanges++
			s.priorExpected += s.maxExt - s.baseExt + 1
			s.priorReceived += s.received
		}
		s.started = true
		s.ssrc = ssrc
		s.initSeq(seq)
		s.haveTransit = false
		s.expectedPrior, s.receivedPrior = 0, 0
		s.jitterUpdate(ts, arrivalNs, jitterSample)
		return
	}
	maxSeq := uint16(s.maxExt)
	udelta := seq - maxSeq
	var ext int64
	switch {
	case udelta == 0:
		s.duplicates++
		return
	case udelta < maxDropout:
		// in order, with a permissible gap (A.1); the extended number
		// carries the wrap into the next 65536 cycle by itself.
		ext = s.maxExt + int64(udelta)
		s.advance(ext)
	case udelta <= 1<<16-maxMisorder:
		// a very large jump: re-sync only if the next packet follows it
		// (the sender restarted without telling us), A.1.
		if int32(seq) != s.badSeq {
			s.badSeq = int32(seq+1) & 0xFFFF
			return
		}
		s.resyncs++
		s.priorExpected += s.maxExt - s.baseExt + 1
		s.priorReceived += s.received
		s.initSeq(seq)
		s.haveTransit = false
		s.jitterUpdate(ts, arrivalNs, jitterSample)
		return
	default:
		// duplicate or reordered packet, behind the highest
		ext = s.maxExt - int64(1<<16-int(udelta))
		if s.maxExt-ext >= seqWindow {
			// older than the window can tell apart from a duplicate:
			// count as reordered but not received, so loss stays
			// conservative
			s.outOfOrder++
			return
		}
		if ext < s.baseExt {
			// reordered before the first packet we saw: the source
			// started earlier, expect it too
			s.baseExt = ext
		}
		if s.seen(ext) {
			s.duplicates++
			return
		}
		s.outOfOrder++
	}
	s.mark(ext)
	s.received++
	s.jitterUpdate(ts, arrivalNs, jitterSample)
}

func (s *StreamStats) initSeq(seq uint16) {
	s.baseExt = int64(seq)
	s.maxExt = int64(seq)
	s.badSeq = -1
	s.received = 1
	s.window = [seqWindow / 64]uint64{}
	s.mark(s.maxExt)
}

// advance moves the highest sequence to ext, clearing the window bits of
// the sequence numbers skipped so that they can still arrive late.
func (s *StreamStats) advance(ext int64) {
	if ext-s.maxExt >= seqWindow {
		s.window = [seqWindow / 64]uint64{}
	} else {
		for e := s.maxExt + 1; e <= ext; e++ {
			s.window[(e%seqWindow)/64] &^= 1 << (e % 64)
		}
	}
	s.maxExt = ext
	s.badSeq = -1
}

func (s *StreamStats) mark(ext int64) { s.window[(ext%seqWindow)/64] |= 1 << (ext % 64) }
func (s *StreamStats) seen(ext int64) bool {
	return s.window[(ext%seqWindow)/64]&(1<<(ext%64)) != 0
}

// jitterUpdate is RFC 3550 A.8: D = (Rj-Ri)-(Sj-Si), J += (|D|-J)/16,
// in the RFC's integer form J' += |D| - (J'+8)>>4. Arrival times are kept
// in 1/16 timestamp units (a 125 µs unit at 8 kHz would round sub-ms
// jitter away), so J' is J scaled by 256. The timestamp difference is
// taken modulo 2^32 as a signed number, so a wrap is not a 2^32 jump.
func (s *StreamStats) jitterUpdate(ts uint32, arrivalNs int64, sample bool) {
	if !sample {
		return
	}
	if !s.haveArrival0 {
		s.arrival0, s.haveArrival0 = arrivalNs, true
	}
	arrival16 := nsToUnits(arrivalNs-s.arrival0, 16*s.clockRate)
	if s.haveTransit {
		d := arrival16 - s.prevArrival16 - 16*int64(int32(ts-s.prevTS))
		if d < 0 {
			d = -d
		}
		s.jitter256 += d - (s.jitter256+8)>>4
	}
	s.prevArrival16, s.prevTS = arrival16, ts
	s.haveTransit = true
}

// Snapshot is a copy of a stream's statistics at one moment.
type Snapshot struct {
	SSRC uint32
	// HighestSeq is the extended highest sequence number of the current
	// source (cycles<<16 | max seq), as an RR reports it.
	HighestSeq uint32
	Expected   int64 // packets expected, all sources (A.3)
	Received   int64 // unique packets received, all sources
	Lost       int64 // Expected - Received
	Duplicates int64
	OutOfOrder int64   // arrived after a higher sequence number
	SSRCChange int64   // times the SSRC changed
	Resyncs    int64   // A.1 re-syncs after a large sequence jump
	Jitter     uint32  // interarrival jitter, timestamp units (A.8)
	JitterMs   float64 // the same in milliseconds
}

// Snapshot returns the current statistics.
func (s *StreamStats) Snapshot() Snapshot {
	if !s.started {
		return Snapshot{}
	}
	exp := s.priorExpected + s.maxExt - s.baseExt + 1
	rec := s.priorReceived + s.received
	j := uint32(s.jitter256 >> 8)
	return Snapshot{
		SSRC:       s.ssrc,
		HighestSeq: uint32(s.maxExt),
		Expected:   exp,
		Received:   rec,
		Lost:       exp - rec,
		Duplicates: s.duplicates,
		OutOfOrder: s.outOfOrder,
		SSRCChange: s.ssrcChanges,
		Resyncs:    s.resyncs,
		Jitter:     j,
		JitterMs:   float64(s.jitter256) / 256 * 1000 / float64(s.clockRate),
	}
}

// FractionLost returns the RR "fraction lost" (A.3) of the current source
// since the previous call: lost/expected in the interval as an 8-bit fixed
// point number, 0 when nothing was lost or more arrived than expected.
func (s *StreamStats) FractionLost() uint8 {
	if !s.started {
		return 0
	}
	expected := s.maxExt - s.baseExt + 1
	expInt := expected - s.expectedPrior
	recInt := s.received - s.receivedPrior
	s.expectedPrior, s.receivedPrior = expected, s.received
	lostInt := expInt - recInt
	if expInt == 0 || lostInt <= 0 {
		return 0
	}
	return uint8(lostInt << 8 / expInt)
}

// nsToUnits converts a duration in nanoseconds to clock units without
// overflowing int64 for any duration (a plain d*clock would overflow after
// 13 days at 8 kHz). It rounds toward negative infinity.
func nsToUnits(d, clock int64) int64 {
	sec, rem := d/1e9, d%1e9
	if rem < 0 {
		sec, rem = sec-1, rem+1e9
	}
	return sec*clock + rem*clock/1e9
}
