// Package synth generates deterministic SIP+RTP traffic as pcap files: N
// concurrent G.711 calls of a given length, the way a SPAN port on an SBC's
// trunk side would see them. Capture's tests and benchmarks import these
// files and check the recordings against what was generated.
//
// Each call is one UDP SIP dialog on port 5060 between a phone (10.1.x.y)
// and the trunk (10.2.x.y):
//
//	phone                      trunk
//	  │ INVITE (SDP: PCMU, telephone-event/8000 PT 101)
//	  │──────────────────────────►│
//	  │◄──────────── 100 Trying ──│
//	  │◄─────────── 180 Ringing ──│
//	  │◄─ 200 OK (SDP answer) ────│  ← answer: the recording's tick 0
//	  │ ACK ─────────────────────►│
//	  │◄════ RTP PCMU, 20 ms ════►│  both directions, own SSRC, seq, timestamp
//	  │ BYE (even calls) ────────►│  Config.Duration after the answer
//	  │◄──────────────── 200 OK ──│  (odd calls: the trunk sends BYE)
//
// Why it is built this way:
//
//   - Deterministic: every byte is a function of Config (Seed included), so
//     a test can regenerate the payloads that belong in each channel of each
//     recording (Call.Payload, Call.Timeline) instead of keeping them.
//   - Flat memory: packets are produced in capture-time order by a small
//     event heap (one entry per active stream and per pending SIP message,
//     plus packets held back by jitter or reordering) and streamed to the
//     writer; 1,000 calls × 60 s (6 million frames) need no more memory than
//     5 calls do.
//   - Every RTP slot (20 ms of the sender's clock) is exactly one packet:
//     audio, or an RFC 4733 event packet while a digit is pressed, so the
//     sequence number of slot k is always FirstSeq+k and a lost slot is a
//     visible gap. Slot 0 of each stream is never lost, delayed or
//     reordered: it anchors the stream on the recording's timeline, and a
//     test needs that anchor exact.
//   - The audio is a tone whose pitch depends on call and direction plus
//     low-level noise keyed by (seed, call, direction, sample), so no two
//     packets anywhere in a file carry the same payload: a packet put in the
//     wrong call, channel or place shows up in a byte comparison.
package synth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Sentinel errors.
var (
	// ErrConfig: the Config cannot be generated (counts, durations, digits).
	ErrConfig = errors.New("synth: bad configuration")
	// ErrWrite: the output writer failed.
	ErrWrite = errors.New("synth: write")
)

// Limits.
const (
	// MaxCalls is bounded by the address plan: call i's parties are
	// 10.1.a.b and 10.2.a.b with a.b = i+1 as 16 bits.
	MaxCalls = 65534
	// Ptime is the packetisation interval: 20 ms of G.711 (160 bytes).
	Ptime = 20 * time.Millisecond
	// FrameBytes is one slot's PCMU payload.
	FrameBytes = 160
	// PayloadPCMU and PayloadEvent are the RTP payload types the SDP uses.
	PayloadPCMU  = 0
	PayloadEvent = 101
	// SIPPort is where both parties send and receive SIP.
	SIPPort = 5060
)

// Config describes the traffic.
type Config struct {
	// Calls is the number of calls (1..MaxCalls).
	Calls int
	// Duration is each call's talk time, from the 200 OK to the BYE.
	Duration time.Duration
	// Stagger is the time between two calls' INVITEs; 0 picks
	// min(Duration/(2·Calls), 1 s), so every call is up at once for the
	// second half of the first call.
	Stagger time.Duration
	// RingTime is from INVITE to 200 OK; 0 means 1 s.
	RingTime time.Duration
	// Start is the capture time of the first INVITE; zero means
	// 2026-01-05 09:00:00 UTC.
	Start time.Time
	// Seed makes SSRCs, sequence numbers, timestamps, tags and audio.
	Seed uint64
	// DTMF digits pressed by the caller of every call, as RFC 4733 events
	// in the caller's RTP stream.
	DTMF []Digit
	// LossPct drops this percentage of audio packets (never slot 0, never
	// telephone events). Deterministic per Seed.
	LossPct float64
	// ReorderPct holds this percentage of audio packets back by
	// ReorderDelay (default 50 ms), so later packets overtake them.
	ReorderPct   float64
	ReorderDelay time.Duration
	// Jitter delays each audio packet by a deterministic 0..Jitter.
	Jitter time.Duration
}

// Digit is one key press.
type Digit struct {
	// Symbol is '0'-'9', '*', '#' or 'A'-'D' (RFC 4733 §3.2 events 0-15).
	Symbol byte
	// At is the press time after the answer; it is rounded to the
	// caller's next slot (Call.DTMF has the exact offsets).
	At time.Duration
	// Length is how long the key is held; 0 means 100 ms. It is rounded
	// up to whole slots; after it the end packet is sent three times
	// (RFC 4733 §2.5.1.4).
	Length time.Duration
}

// Direction of an RTP stream.
const (
	CallerToCallee = 0 // the caller's (phone's) voice
	CalleeToCaller = 1 // the callee's (trunk's) voice
)

// Summary is what Write generated.
type Summary struct {
	Calls []Call
	// Frames written, of which SIP messages and RTP packets.
	Frames, SIP, RTP int64
	// Lost are the audio packets LossPct dropped; Reordered those held
	// back by ReorderPct.
	Lost, Reordered int64
	// Bytes is the total of frame lengths.
	Bytes int64
	// First and Last are the capture times of the first and last frame.
	First, Last time.Time
}

// Party is one side of a call.
type Party struct {
	Number string
	SIP    netip.AddrPort
	RTP    netip.AddrPort
}

// Call describes one generated call.
type Call struct {
	Index  int
	CallID string
	// Caller is the phone (10.1.x.y), Callee the trunk (10.2.x.y).
	Caller, Callee Party
	// Invite, Answer (the 200 OK) and Bye are capture times.
	Invite, Answer, Bye time.Time
	// Streams by direction (CallerToCallee, CalleeToCaller).
	Streams [2]Stream
	// DTMF are the digits as sent, in the caller's stream.
	DTMF []SentDigit

	key  [2]uint64
	step [2]uint32
	// loss is Config.LossPct, kept so Kind and Timeline can regenerate
	// the loss pattern.
	loss float64
}

// Stream is one direction of a call's RTP.
type Stream struct {
	SSRC     uint32
	FirstSeq uint16
	FirstTS  uint32
	// First is the send time of slot 0 (never delayed); Slots is how many
	// slots the stream has (slot k is sent at First + k·Ptime).
	First time.Time
	Slots int
	// Packets sent (audio + events), Lost audio slots, Events packets.
	Packets, Lost, Events int
}

// SentDigit is a digit as it went on the wire.
type SentDigit struct {
	Symbol byte
	Event  uint8
	// Slot is the first event packet's slot; Slots counts update packets
	// (the last of them with the end bit, then two more copies of it);
	// Duration is the final duration in timestamp units.
	Slot, Slots int
	TS          uint32
	Duration    uint16
	// Offset is the digit's start from the answer (the recording's tick
	// 0): First - Answer + Slot·Ptime.
	Offset time.Duration
}

// Bytes µ-law silence uses (G.711 code for +0).
const ulawSilence = 0xFF

func (c *Config) normalize() error {
	if c.Calls < 1 || c.Calls > MaxCalls {
		return fmt.Errorf("%w: %d calls (1..%d)", ErrConfig, c.Calls, MaxCalls)
	}
	if c.Duration < 10*Ptime {
		return fmt.Errorf("%w: duration %v < %v", ErrConfig, c.Duration, 10*Ptime)
	}
	if c.Duration > 24*time.Hour {
		return fmt.Errorf("%w: duration %v > 24h", ErrConfig, c.Duration)
	}
	if c.Stagger < 0 || c.RingTime < 0 || c.Jitter < 0 || c.ReorderDelay < 0 {
		return fmt.Errorf("%w: negative stagger %v, ring time %v, jitter %v or reorder delay %v",
			ErrConfig, c.Stagger, c.RingTime, c.Jitter, c.ReorderDelay)
	}
	if c.Stagger == 0 {
		c.Stagger = min(c.Duration/time.Duration(2*c.Calls), time.Second)
	}
	if c.RingTime == 0 {
		c.RingTime = time.Second
	}
	if c.RingTime < 200*time.Millisecond {
		return fmt.Errorf("%w: ring time %v < 200ms (100 Trying and 180 Ringing come first)", ErrConfig, c.RingTime)
	}
	if c.ReorderDelay == 0 {
		c.ReorderDelay = 50 * time.Millisecond
	}
	if c.Jitter > time.Second || c.ReorderDelay > time.Second {
		return fmt.Errorf("%w: jitter %v or reorder delay %v > 1s", ErrConfig, c.Jitter, c.ReorderDelay)
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	}
	for _, p := range []float64{c.LossPct, c.ReorderPct} {
		if !(p >= 0 && p <= 50) { // also false for NaN
			return fmt.Errorf("%w: loss %v%% or reorder %v%% outside 0..50", ErrConfig, c.LossPct, c.ReorderPct)
		}
	}
	// pcap microsecond timestamps: keep every time a whole microsecond.
	c.Start = c.Start.Truncate(time.Microsecond)
	c.Stagger = c.Stagger.Truncate(time.Microsecond)
	if c.Stagger == 0 {
		c.Stagger = time.Microsecond
	}
	c.RingTime = c.RingTime.Truncate(time.Microsecond)
	c.Duration = c.Duration.Truncate(time.Microsecond)
	end := time.Duration(0)
	for i, d := range c.DTMF {
		if eventCode(d.Symbol) < 0 {
			return fmt.Errorf("%w: digit %d: symbol %q is not 0-9, *, #, A-D", ErrConfig, i, d.Symbol)
		}
		if d.Length == 0 {
			c.DTMF[i].Length = 100 * time.Millisecond
		}
		if d.Length < 0 || d.Length > 5*time.Second {
			return fmt.Errorf("%w: digit %d: length %v outside 0..5s", ErrConfig, i, d.Length)
		}
		// The caller's media starts up to 40 ms after the answer; the
		// digit and its three end packets must fit before the BYE.
		if d.At < end || d.At < 100*time.Millisecond {
			return fmt.Errorf("%w: digit %d at %v overlaps the previous one (ends %v) or comes before 100ms", ErrConfig, i, d.At, end)
		}
		end = d.At + c.DTMF[i].Length + 4*Ptime
		if end > c.Duration-100*time.Millisecond {
			return fmt.Errorf("%w: digit %d at %v + %v does not fit in %v", ErrConfig, i, d.At, c.DTMF[i].Length, c.Duration)
		}
	}
	return nil
}

// eventCode maps a DTMF symbol to its RFC 4733 §3.2 event code.
func eventCode(s byte) int {
	switch {
	case s >= '0' && s <= '9':
		return int(s - '0')
	case s == '*':
		return 10
	case s == '#':
		return 11
	case s >= 'A' && s <= 'D':
		return 12 + int(s-'A')
	}
	return -1
}

// Plan returns the calls cfg describes without writing anything (the
// counts in each Stream are those Write will produce).
func Plan(cfg Config) ([]Call, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	calls := make([]Call, cfg.Calls)
	for i := range calls {
		calls[i] = plan(&cfg, i)
	}
	return calls, nil
}

// Write generates the traffic cfg describes as a pcap file (Ethernet link
// type, microsecond timestamps) on w, frames in capture-time order across
// all calls. Memory does not grow with the number of packets.
func Write(w io.Writer, cfg Config) (Summary, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	var pw *pcapgo.Writer
	var ci gopacket.CaptureInfo
	sum, err := Generate(cfg, func(ts time.Time, frame []byte) error {
		if pw == nil {
			pw = pcapgo.NewWriter(bw)
			if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
				return fmt.Errorf("%w: file header: %w", ErrWrite, err)
			}
		}
		ci.Timestamp = ts
		ci.CaptureLength, ci.Length = len(frame), len(frame)
		if err := pw.WritePacket(ci, frame); err != nil {
			return fmt.Errorf("%w: %w", ErrWrite, err)
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	if err := bw.Flush(); err != nil {
		return Summary{}, fmt.Errorf("%w: flush: %w", ErrWrite, err)
	}
	return sum, nil
}

// Generate hands every frame (Ethernet II) cfg describes to emit, in
// capture-time order, without allocating per packet: a benchmark or test
// can feed a capture engine directly, with no file in between. frame is
// reused after emit returns. An error from emit stops the generation and
// is returned wrapped, with the Summary of what was emitted so far.
func Generate(cfg Config, emit func(ts time.Time, frame []byte) error) (Summary, error) {
	if err := cfg.normalize(); err != nil {
		return Summary{}, err
	}
	g := newGenerator(&cfg)
	var sum Summary
	err := g.run(func(t int64, frame []byte) error {
		ts := cfg.Start.Add(time.Duration(t))
		if sum.Frames == 0 {
			sum.First = ts
		}
		if err := emit(ts, frame); err != nil {
			return err
		}
		sum.Last = ts
		sum.Frames++
		sum.Bytes += int64(len(frame))
		return nil
	})
	sum.Calls = g.calls
	sum.SIP, sum.RTP, sum.Lost, sum.Reordered = g.sipN, g.rtp, g.lost, g.reordered
	if err != nil {
		return sum, fmt.Errorf("frame %d: %w", sum.Frames+1, err)
	}
	return sum, nil
}
