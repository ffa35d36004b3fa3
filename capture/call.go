package capture

import (
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/callvault/callvault/capture/rtp"
)

// maxLanes bounds the readers that may feed one stream. Each reader has
// its own ring (lane) in a stream, so every ring keeps exactly one
// producer even when one direction of a call reaches two fanout members
// (an address change after a re-INVITE, NAT rebinding).
const maxLanes = 16

// endpoint is a stream table entry: the call party that owns a media
// address. It points at both streams of the call, so the packet path
// goes from the table to the stream without touching the call (one cache
// miss less per packet at 1,000 calls).
type endpoint struct {
	c     *call
	party int
	rtcp  bool
	own   *stream // the owner's voice: RTP sent from this endpoint
	other *stream // the other party's voice: RTP sent to it
}

func newEndpoint(c *call, party int, rtcp bool) *endpoint {
	return &endpoint{c: c, party: party, rtcp: rtcp, own: c.streams[party], other: c.streams[1-party]}
}

// stream is the voice of one party of a call: RTP sent from that party.
// The fields every packet touches come first, together.
type stream struct {
	c     *call
	party int
	// gone is set when the call is finished; its endpoints linger.
	gone atomic.Bool
	// senderState guards sender: the source address of the first packet
	// (one party's voice comes from one place at a time). It is written
	// once, then only read, so it sits inline instead of behind a pointer.
	senderState atomic.Uint32
	firstPT     atomic.Int32 // payload type of the first packet + 1 (0: none yet)
	ssrc        atomic.Uint32
	// lastPacket is the capture time of the newest packet (ns), for
	// timeouts; packets counts all pushed.
	lastPacket atomic.Int64
	packets    atomic.Int64
	// srtp is read for every packet, so it shares the first cache line
	// with the fields above (a reader's flow cache hit touches no other).
	srtp   *rtp.Decrypter
	sender netip.AddrPort
	// nlanes is one more than the highest lane in use, so a flush pass
	// looks at the one or two lanes a stream has, not all maxLanes.
	nlanes atomic.Int32
	lanes  [maxLanes]atomic.Pointer[rtp.Ring]
	// What the receiving endpoint reported about this stream in RTCP.
	rtcpLost    atomic.Int64
	rtcpJitter  atomic.Uint32
	rtcpReports atomic.Int64

	srtpMu sync.Mutex
}

// senderState values.
const (
	senderNone uint32 = iota
	senderWriting
	senderSet
)

// claim reports whether packets from src belong to this stream: the first
// sender claims it, later packets must come from the same place.
func (s *stream) claim(src netip.AddrPort) bool {
	if s.senderState.Load() == senderSet {
		return s.sender == src
	}
	return s.claimFirst(src)
}

// claimFirst records the first sender. Two readers may race for it (one
// party's voice on two fanout members); the loser waits the few
// nanoseconds the winner needs to write the address.
func (s *stream) claimFirst(src netip.AddrPort) bool {
	if s.senderState.CompareAndSwap(senderNone, senderWriting) {
		s.sender = src
		s.senderState.Store(senderSet)
		return true
	}
	for s.senderState.Load() != senderSet {
		runtime.Gosched()
	}
	return s.sender == src
}

// lane returns the ring of reader i, making it on first use (the only
// allocation on the packet path, once per stream and reader). Its slots
// fit the first payload seen (G.711 needs 160 bytes, L16 stereo 1280), so
// no codec's packets are dropped for size.
func (s *stream) lane(i, slots, payload int) *rtp.Ring {
	if r := s.lanes[i].Load(); r != nil {
		return r
	}
	r, err := rtp.NewRing(slots, slotSize(payload))
	if err != nil {
		return nil
	}
	if s.setLane(i, r) {
		return r
	}
	return s.lanes[i].Load()
}

// setLane installs r as lane i if the lane is empty.
func (s *stream) setLane(i int, r *rtp.Ring) bool {
	if !s.lanes[i].CompareAndSwap(nil, r) {
		return false
	}
	for {
		n := s.nlanes.Load()
		if int(n) > i || s.nlanes.CompareAndSwap(n, int32(i+1)) {
			return true
		}
	}
}

// activeLanes is the part of lanes that may hold a ring (entries may
// still be nil).
func (s *stream) activeLanes() []atomic.Pointer[rtp.Ring] {
	return s.lanes[:s.nlanes.Load()]
}

// slotSize is the ring's arena bytes per slot for a stream whose first
// payload has n bytes: the ring then holds RingSlots packets of that size,
// the same span of audio if the sender later switches to a longer ptime
// (fewer, bigger packets), and takes any single payload up to half the
// arena. At least 20 ms of G.711, so a stream that starts with 4-byte
// telephone events still has room for its audio.
func slotSize(n int) int {
	return min(max(n, minSlotPayload), maxSlotPayload)
}

const (
	minSlotPayload = 160 // 20 ms of G.711
	maxSlotPayload = 2048
)

// party is one side of a call.
type party struct {
	number, name string
	tag          string
	sigAddr      netip.Addr
	media        []netip.AddrPort // registered endpoints (RTP and RTCP)
	// codecMap is the payload types of this party's last SDP; eventPT its
	// telephone-event type; crypto the SDES key it sends with.
	pt       int // -1: unknown
	codecMap []ptCodec
	eventPT  uint8
	crypto   cryptoKey
	hold     bool
}

type ptCodec struct {
	pt       uint8
	name     string
	clock    int
	channels int
}

type cryptoKey struct {
	suite string
	key   []byte
}

// event is something signalling saw that becomes a bookmark.
type event struct {
	at    int64 // capture time, ns
	kind  string
	label string
}

// call is one SIP dialog (or one pair of RTP flows without signalling).
// Fields up to "flusher-owned" are guarded by Engine.mu.
type call struct {
	key string // Call-ID, or "rtp:" + endpoints for calls without signalling
	// deferred: passes skip the call until it is caught up (batch.go);
	// through is the last pass it has seen. Both flushMu's (deferred is
	// also read and cleared under e.mu).
	deferred bool
	through  int64
	// sigJob is 1 + the index of the call's job while a pass hands its
	// SIP messages over (signalling.go); 0 otherwise.
	sigJob     int
	sip        bool
	callID     string
	parties    [2]party // 0: caller (or the first RTP sender seen), 1: callee
	local      int      // index of the local party
	direction  string   // meta.Direction value
	answered   bool
	answeredAt int64
	ended      bool
	failed     bool
	endReason  string
	created    int64
	endAt      int64
	lastSig    int64
	events     []event
	replaces   string // Call-ID this call replaced (attended transfer)
	referTo    string // Call-ID a REFER pointed at
	sessionID  string
	pbxCallID  string
	adopted    bool // an orphan call that later matched SIP
	infoDirty  bool // call info changed after the recording began

	streams [2]*stream

	// flusher-owned
	rec *recording
}

func (c *call) hasMedia() bool {
	return c.streams[0].packets.Load() > 0 || c.streams[1].packets.Load() > 0
}

func (c *call) lastMedia() int64 {
	return max(c.streams[0].lastPacket.Load(), c.streams[1].lastPacket.Load())
}
