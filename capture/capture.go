// Package capture turns mirrored SIP and RTP into recordings.
//
//	frames ──Decoder──► packets ─┬─ SIP (UDP, TCP reassembled) ──► dialogs: Call-ID, tags, SDP offer/answer
//	                             │                                   │ registers media endpoints
//	                             └─ RTP/RTCP ──► stream table ◄──────┘
//	                                              │ lookup by destination, then source (symmetric RTP)
//	                                              ▼
//	                                   per-stream SPSC ring (preallocated)
//	                                              │ flusher: drain, playout (reorder, fill gaps)
//	                                              ▼
//	                                   grid ticks (local left, remote right) ──► store.Recorder
//
// Readers (one per source, or per AF_PACKET fanout member) decode frames,
// keep SIP dialog state under one mutex (SIP is a small share of packets),
// and push RTP into the ring of the stream its endpoint belongs to, without
// locks or allocation. Flushers own everything downstream of the rings:
// they drain them on a timer (live) or every 20 ms of capture time
// (import) through playout into the recording's grid, so a reader never
// waits for a disk or a commit. Imports run those passes in batches, a
// call at a time, with the same result (batch.go). What waits for a commit (create, seal,
// bookmarks) runs on the engine's store worker (storework.go), so a flush
// pass does not wait for one either.
//
// Time is capture time: packet timestamps drive playout, timeouts and
// offsets, so importing a file gives the same recording as capturing it
// live did.
//
// capture writes through store and knows nothing of bbolt, raft or HTTP;
// it counts in Stats (plain atomics) for the appliance to export.
package capture

import (
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// Sentinel errors.
var (
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("capture: closed")
	// ErrSource: a capture source could not be opened or read.
	ErrSource = errors.New("capture: source")
	// ErrTruncated: a capture file ends inside a frame (a tcpdump killed
	// hard, a copy cut short). Every frame before it was imported: callers
	// report it and carry on.
	ErrTruncated = errors.New("capture: file ends inside a frame")
	// ErrStoreBehind: a recording's first ticks outgrew their buffer
	// before the store had created it.
	ErrStoreBehind = errors.New("capture: store did not create the recording in time")

	// errNotPcap: a file does not start with a classic pcap header
	// (pcapread.go; ImportStream then tries pcapng and gzip).
	errNotPcap = errors.New("not a classic pcap file")
	// errPcapRecord: a pcap record header is impossible (captured length
	// over the original or over what the reader accepts).
	errPcapRecord = errors.New("bad pcap record")
)

// Config configures the engine. The appliance builds it from capture.* keys.
type Config struct {
	// SIPPorts are the UDP and TCP ports where SIP is expected; SIP on other
	// ports is found by its start line when DetectSIP is set.
	SIPPorts  []uint16
	DetectSIP bool
	// LocalNets, LocalNumbers (prefixes of user numbers) and TrunkAddrs (the
	// SBC's trunk-side addresses: whoever talks through them is remote)
	// decide which party of a call is local (left channel).
	LocalNets    []netip.Prefix
	LocalNumbers []string
	TrunkAddrs   []netip.Addr
	// RTPTimeout ends a call whose media stopped without a BYE; HoldTimeout
	// is used instead while the call is on hold; SetupTimeout ends a call
	// that was never answered and never sent media.
	RTPTimeout, HoldTimeout, SetupTimeout time.Duration
	// OrphanPackets is how many packets of consistent RTP on an unknown
	// flow make it a stream without signalling.
	OrphanPackets int
	// RingSlots per stream (power of two).
	RingSlots int
	// Live: rings drop when full and flushers run on the wall clock. Off
	// (import): the reader flushes inline every FlushEvery of capture time.
	Live       bool
	FlushEvery time.Duration
	// Node names this appliance in recordings.
	Node string
	Log  *slog.Logger
}

func (c *Config) setDefaults() {
	if len(c.SIPPorts) == 0 {
		c.SIPPorts = []uint16{5060, 5080}
	}
	if c.RTPTimeout <= 0 {
		c.RTPTimeout = 30 * time.Second
	}
	if c.HoldTimeout <= 0 {
		c.HoldTimeout = 2 * time.Hour
	}
	if c.SetupTimeout <= 0 {
		c.SetupTimeout = 3 * time.Minute
	}
	if c.OrphanPackets <= 0 {
		c.OrphanPackets = 8
	}
	if c.RingSlots <= 0 {
		// 64 slots are 1.3 s of 20 ms packets: flushers sweep every 20 ms,
		// the rest absorbs bursts (a replay faster than real time, a
		// flusher descheduled on a busy machine). With 32, a live replay
		// at 50,000 frames/s lost packets on a loaded 2-core machine; with
		// 64 it lost none at 100,000. The payloads are packed in an arena
		// (rtp.Ring), so 64 slots of G.711 take 12 KiB, not 18.
		c.RingSlots = 64
	}
	if c.FlushEvery <= 0 {
		// Also in imports: how often ticks are pulled decides whether a
		// reordered or resuming packet is late or re-anchors, and 100 ms
		// changed a corpus recording (sip_ipv4_tcp.pcap) against tshark.
		// Imports save the work per open call by running the passes in
		// batches instead (batch.go), with the same result.
		c.FlushEvery = 20 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Stats are the engine's counters (atomics: readers and flushers update
// them without locks; the appliance exports them).
type Stats struct {
	Packets        atomic.Int64
	Bytes          atomic.Int64
	DecodeErrors   atomic.Int64
	SIPMessages    atomic.Int64
	SIPErrors      atomic.Int64
	RTPPackets     atomic.Int64
	RTCPPackets    atomic.Int64
	RTPUnmatched   atomic.Int64 // RTP-looking packets on no known stream
	RingDrops      atomic.Int64 // packets dropped because a stream's ring was full
	SRTPErrors     atomic.Int64
	CallsActive    atomic.Int64
	CallsTotal     atomic.Int64
	CallsAnswered  atomic.Int64
	StreamsActive  atomic.Int64
	OrphanStreams  atomic.Int64 // streams found without signalling
	Recordings     atomic.Int64 // recordings created
	RecordErrors   atomic.Int64 // store errors while recording
	FlushNanos     atomic.Int64 // duration of the last flush pass
	FlushMaxNanos  atomic.Int64
	StoreQueue     atomic.Int64 // store jobs (create, seal, bookmark) waiting for the store worker
	StoreMaxNanos  atomic.Int64 // longest store job (a create or seal waits for a commit)
	RingOccupancy  atomic.Int64 // packets waiting in rings at the last flush pass
	KernelDrops    atomic.Int64 // drops the capture socket reported
	KernelPackets  atomic.Int64
	OneWayCalls    atomic.Int64
	NoMediaCalls   atomic.Int64 // answered calls with no RTP either way
	NotPlayable    atomic.Int64 // recordings kept as RTP packets (codec not decodable)
	TCPStreamGaps  atomic.Int64
	FragmentErrors atomic.Int64
	ClockJumps     atomic.Int64 // import: capture clock discontinuities skipped
	AfterEnd       atomic.Int64 // RTP for a call that had already ended
	SignalDropped  atomic.Int64 // SIP messages not stored: too many before the recording existed
}

// isLocalNumber reports whether num starts with one of the local prefixes.
func (c *Config) isLocalNumber(num string) bool {
	for _, p := range c.LocalNumbers {
		if p != "" && strings.HasPrefix(num, p) {
			return true
		}
	}
	return false
}

func (c *Config) isLocalAddr(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range c.LocalNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (c *Config) isTrunk(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, t := range c.TrunkAddrs {
		if t == a {
			return true
		}
	}
	return false
}
