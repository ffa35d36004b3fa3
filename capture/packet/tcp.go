package packet

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
)

// Defaults for AssemblerConfig.
const (
	DefaultMaxFlows           = 4096
	DefaultMaxBufferedPerFlow = 256 << 10
	DefaultMaxBuffered        = 32 << 20
	// DefaultGapTimeout: a hole still open this long after it appeared is
	// skipped. Linux retransmits after at least 200 ms and doubles from
	// there, so two seconds covers a retransmission or two; longer than
	// that it was lost by the capture, not by the network.
	DefaultGapTimeout = 2 * time.Second
	// DefaultIdleTimeout closes a flow direction that sent nothing for this
	// long. SIP trunks idle for minutes between calls and send CRLF
	// keepalives (RFC 5626 §4.4.1) well within it.
	DefaultIdleTimeout = 10 * time.Minute

	// maxHeldSegments bounds the out-of-order segments held per flow, as
	// well as their bytes: holding and draining walk the list, so a peer
	// sending thousands of one-byte segments must not make each one cost
	// thousands of steps.
	maxHeldSegments = 256

	// retransWindow is how far before its FIN an ended flow still takes
	// segments for retransmissions; anything else starts a new stream.
	retransWindow = 1 << 20
)

// Flow is one direction of a TCP connection.
type Flow struct {
	Src, Dst netip.AddrPort
}

// Reverse is the other direction of the same connection.
func (f Flow) Reverse() Flow { return Flow{Src: f.Dst, Dst: f.Src} }

func (f Flow) String() string { return f.Src.String() + "->" + f.Dst.String() }

// EndReason says why a Stream ended.
type EndReason uint8

// Reasons a Stream ends.
const (
	EndFIN     EndReason = iota + 1 // all bytes up to the FIN were delivered
	EndRST                          // a RST in either direction
	EndIdle                         // nothing seen for IdleTimeout
	EndEvicted                      // MaxFlows reached; this was the least recently seen
	EndNewSYN                       // a SYN with a new ISN reused the 4-tuple
	EndFlush                        // Flush was called
)

func (r EndReason) String() string {
	switch r {
	case EndFIN:
		return "fin"
	case EndRST:
		return "rst"
	case EndIdle:
		return "idle"
	case EndEvicted:
		return "evicted"
	case EndNewSYN:
		return "new-syn"
	case EndFlush:
		return "flush"
	}
	return fmt.Sprintf("EndReason(%d)", uint8(r))
}

// Stream receives one flow direction's bytes in sequence order. Its methods
// are called on the goroutine that calls Assembler.Add and must not call back
// into the Assembler.
type Stream interface {
	// Data delivers the next bytes of the stream. b is valid only during the
	// call (it points into the captured frame or a reused buffer).
	Data(b []byte)
	// Gap says n bytes of sequence space were lost before the next Data:
	// the capture missed them and they will never come. A SIP framer
	// resynchronises on the next start line.
	Gap(n int)
	// End is the last call for the stream. Bytes still held out of order
	// were delivered (with Gaps) before it.
	End(reason EndReason)
}

// StreamFactory makes the Stream for a new flow direction. fromSYN is false
// when the capture began mid-connection: the first bytes may then start in
// the middle of a message.
type StreamFactory interface {
	NewStream(f Flow, fromSYN bool) Stream
}

// AssemblerConfig bounds an Assembler. Zero fields take the defaults.
type AssemblerConfig struct {
	MaxFlows           int // flow directions tracked; a new one evicts the least recently seen
	MaxBufferedPerFlow int // out-of-order bytes held per flow direction
	MaxBuffered        int // out-of-order bytes held across all flows
	GapTimeout         time.Duration
	IdleTimeout        time.Duration
}

// AssemblerStats counts what an Assembler did; atomics, so the appliance
// can read them while capture runs.
type AssemblerStats struct {
	Segments     atomic.Uint64 // TCP segments seen
	Bytes        atomic.Uint64 // bytes delivered in order
	Duplicates   atomic.Uint64 // segments whose bytes had all been delivered or were held already
	OutOfOrder   atomic.Uint64 // segments held for later
	Gaps         atomic.Uint64 // holes skipped
	GapBytes     atomic.Uint64 // sequence space skipped
	FlowsOpened  atomic.Uint64
	FlowsEvicted atomic.Uint64
	FlowsIdle    atomic.Uint64
	Flows        atomic.Int64 // flow directions tracked now
	Buffered     atomic.Int64 // out-of-order bytes held now
}

type oooSeg struct {
	seq  uint32
	data []byte
}

// tcpFlow is the state of one flow direction.
type tcpFlow struct {
	key      Flow
	s        Stream
	next     uint32 // sequence number of the next byte to deliver
	isn      uint32 // first data sequence number after the SYN, when synSeen
	synSeen  bool
	fin      bool
	finSeq   uint32
	last     int64 // capture time last seen, ns
	gapSince int64 // capture time the current front hole opened, ns
	prev     int32 // recency list, least recent first
	nextFlow int32
	ooo      []oooSeg // held segments in sequence order (relative to next)
	buffered int
	ended    bool // the Stream ended (FIN); the slot lingers to absorb retransmissions
}

// Assembler reassembles TCP streams per flow direction (RFC 9293 §3.4
// sequence numbers, modulo 2^32). In-order segments are handed to the
// Stream straight from the frame; out-of-order ones are copied and held
// until the hole before them fills, is skipped after GapTimeout, or must
// be skipped for the buffer limits. One goroutine owns an Assembler.
type Assembler struct {
	cfg        AssemblerConfig
	factory    StreamFactory
	flows      []tcpFlow
	index      map[Flow]int32
	free       []int32
	head, tail int32
	buffered   int
	lastSweep  int64
	stats      AssemblerStats
}

// NewAssembler returns an Assembler that makes Streams with factory.
func NewAssembler(factory StreamFactory, cfg AssemblerConfig) *Assembler {
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.MaxBufferedPerFlow <= 0 {
		cfg.MaxBufferedPerFlow = DefaultMaxBufferedPerFlow
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = DefaultMaxBuffered
	}
	if cfg.GapTimeout <= 0 {
		cfg.GapTimeout = DefaultGapTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	a := &Assembler{
		cfg:     cfg,
		factory: factory,
		flows:   make([]tcpFlow, cfg.MaxFlows),
		index:   make(map[Flow]int32, cfg.MaxFlows),
		free:    make([]int32, cfg.MaxFlows),
		head:    -1,
		tail:    -1,
	}
	for i := range a.free {
		a.free[i] = int32(cfg.MaxFlows - 1 - i)
	}
	return a
}

// Stats returns the Assembler's counters.
func (a *Assembler) Stats() *AssemblerStats { return &a.stats }

// Add feeds one decoded packet, captured at ts. Packets that are not
// complete TCP segments (other protocols, unreassembled fragments) are
// ignored.
func (a *Assembler) Add(ts time.Time, p *Packet) {
	if p.Protocol != ProtoTCP || p.Flags&FlagFragment != 0 {
		return
	}
	now := ts.UnixNano()
	a.expire(now)
	a.stats.Segments.Add(1)
	key := Flow{Src: netip.AddrPortFrom(p.Src, p.SrcPort), Dst: netip.AddrPortFrom(p.Dst, p.DstPort)}
	idx, ok := a.index[key]
	if p.TCPFlags&TCPRst != 0 {
		// A reset ends the connection, both directions (RFC 9293 §3.5.3).
		if ok {
			a.close(idx, EndRST)
		}
		if r, ok := a.index[key.Reverse()]; ok {
			a.close(r, EndRST)
		}
		return
	}
	seq := p.TCPSeq
	syn := p.TCPFlags&TCPSyn != 0
	if syn {
		seq++ // the SYN occupies one sequence number (RFC 9293 §3.4)
		if ok && !(a.flows[idx].synSeen && a.flows[idx].isn == seq) {
			// Not a retransmitted SYN: a new connection on the same tuple.
			a.close(idx, EndNewSYN)
			ok = false
		}
	}
	if ok && a.flows[idx].ended {
		f := &a.flows[idx]
		end := seq + uint32(len(p.Payload))
		if len(p.Payload) == 0 || (int32(f.finSeq-end) >= 0 && int32(f.finSeq-seq) <= retransWindow) {
			// Retransmissions after the FIN must not start a new stream
			// that repeats the old one's tail.
			f.last = now
			a.touch(idx)
			a.stats.Duplicates.Add(1)
			return
		}
		// Data the ended connection cannot have sent: a new connection
		// on the same tuple whose SYN the capture missed.
		a.close(idx, EndNewSYN)
		ok = false
	}
	if !ok {
		if !syn && len(p.Payload) == 0 {
			return // a bare ACK or FIN says nothing about an unknown flow
		}
		idx = a.open(now, key, seq, syn)
	}
	f := &a.flows[idx]
	f.last = now
	a.touch(idx)
	if p.TCPFlags&TCPFin != 0 && !f.fin {
		f.fin = true
		f.finSeq = seq + uint32(len(p.Payload))
	}
	a.segment(f, seq, p.Payload, now)
	if len(f.ooo) > 0 && now-f.gapSince > int64(a.cfg.GapTimeout) {
		a.skipHole(f, now)
	}
	if f.fin && f.next == f.finSeq {
		// The flow lingers, ended, until it idles out or is evicted.
		a.end(idx, EndFIN)
	}
}

// Expire runs the idle and gap timeouts at capture time now, for a live
// capture whose traffic paused. Add runs them as packets arrive.
func (a *Assembler) Expire(now time.Time) { a.expire(now.UnixNano()) }

// Flush ends every flow (EndFlush), delivering what is held. Call it at
// the end of a pcap file or on shutdown.
func (a *Assembler) Flush() {
	for a.head >= 0 {
		a.close(a.head, EndFlush)
	}
}

// expire closes idle flows (oldest first, so it stops at the first live
// one) and, twice per GapTimeout, skips holes that have waited too long
// in flows that have gone quiet.
func (a *Assembler) expire(now int64) {
	idle := int64(a.cfg.IdleTimeout)
	for a.head >= 0 && now-a.flows[a.head].last > idle {
		if !a.flows[a.head].ended {
			a.stats.FlowsIdle.Add(1)
		}
		a.close(a.head, EndIdle)
	}
	gap := int64(a.cfg.GapTimeout)
	if now-a.lastSweep < gap/2 && now >= a.lastSweep {
		return
	}
	a.lastSweep = now
	for i := a.head; i >= 0; i = a.flows[i].nextFlow {
		f := &a.flows[i]
		if len(f.ooo) > 0 && now-f.gapSince > gap {
			a.skipHole(f, now)
			if f.fin && f.next == f.finSeq {
				a.end(i, EndFIN)
			}
		}
	}
}

// open starts tracking key, evicting the least recently seen flow if full.
func (a *Assembler) open(now int64, key Flow, seq uint32, syn bool) int32 {
	if len(a.free) == 0 {
		if !a.flows[a.head].ended {
			a.stats.FlowsEvicted.Add(1)
		}
		a.close(a.head, EndEvicted)
	}
	idx := a.free[len(a.free)-1]
	a.free = a.free[:len(a.free)-1]
	f := &a.flows[idx]
	f.key, f.next, f.isn, f.synSeen = key, seq, seq, syn
	f.fin, f.finSeq, f.last, f.gapSince, f.buffered, f.ended = false, 0, now, 0, 0, false
	f.prev, f.nextFlow = a.tail, -1
	if a.tail >= 0 {
		a.flows[a.tail].nextFlow = idx
	} else {
		a.head = idx
	}
	a.tail = idx
	a.index[key] = idx
	a.stats.FlowsOpened.Add(1)
	a.stats.Flows.Add(1)
	f.s = a.factory.NewStream(key, syn)
	if f.s == nil {
		f.s = discard{}
	}
	return idx
}

// touch moves idx to the most recent end of the recency list.
func (a *Assembler) touch(idx int32) {
	if a.tail == idx {
		return
	}
	a.unlink(idx)
	f := &a.flows[idx]
	f.prev, f.nextFlow = a.tail, -1
	a.flows[a.tail].nextFlow = idx // tail >= 0: idx was linked and is not the tail
	a.tail = idx
}

func (a *Assembler) unlink(idx int32) {
	f := &a.flows[idx]
	if f.prev >= 0 {
		a.flows[f.prev].nextFlow = f.nextFlow
	} else {
		a.head = f.nextFlow
	}
	if f.nextFlow >= 0 {
		a.flows[f.nextFlow].prev = f.prev
	} else {
		a.tail = f.prev
	}
}

// end delivers what idx holds (skipping holes) and ends its Stream, once.
func (a *Assembler) end(idx int32, reason EndReason) {
	f := &a.flows[idx]
	if f.ended {
		return
	}
	for len(f.ooo) > 0 {
		a.skipHole(f, f.last)
	}
	f.ended = true
	f.s.End(reason)
	f.s = nil
}

// close ends idx's Stream if it has not ended and frees the slot.
func (a *Assembler) close(idx int32, reason EndReason) {
	a.end(idx, reason)
	f := &a.flows[idx]
	delete(a.index, f.key)
	a.unlink(idx)
	f.ooo = f.ooo[:0]
	a.free = append(a.free, idx)
	a.stats.Flows.Add(-1)
}

// segment handles the data of one segment starting at seq.
func (a *Assembler) segment(f *tcpFlow, seq uint32, data []byte, now int64) {
	if len(data) == 0 {
		return
	}
	if rel := int64(int32(seq - f.next)); rel < 0 {
		// Starts before what was delivered: a retransmission, perhaps
		// with new bytes at its end.
		if -rel >= int64(len(data)) {
			a.stats.Duplicates.Add(1)
			return
		}
		data = data[-rel:]
		seq = f.next
	}
	if seq == f.next {
		a.deliver(f, data)
		a.drain(f, now)
		return
	}
	a.hold(f, seq, data, now)
}

func (a *Assembler) deliver(f *tcpFlow, b []byte) {
	f.s.Data(b)
	f.next += uint32(len(b))
	a.stats.Bytes.Add(uint64(len(b)))
}

// hold keeps an out-of-order segment, within the buffer limits: when it
// does not fit, the flow's oldest hole is skipped (the bytes before it are
// declared lost) until it does.
func (a *Assembler) hold(f *tcpFlow, seq uint32, data []byte, now int64) {
	rel := int32(seq - f.next)
	pos := len(f.ooo)
	for i, s := range f.ooo {
		srel := int32(s.seq - f.next)
		if srel <= rel && int64(rel)+int64(len(data)) <= int64(srel)+int64(len(s.data)) {
			a.stats.Duplicates.Add(1) // held already
			return
		}
		if srel > rel && pos == len(f.ooo) {
			pos = i
		}
	}
	if f.buffered+len(data) > a.cfg.MaxBufferedPerFlow || a.buffered+len(data) > a.cfg.MaxBuffered ||
		len(f.ooo) == maxHeldSegments {
		if len(f.ooo) == 0 {
			// Nothing of this flow to give up: skip straight to the segment.
			a.gap(f, seq)
			a.deliver(f, data)
			return
		}
		a.skipHole(f, now)
		a.segment(f, seq, data, now) // next moved: trim, deliver or hold anew
		return
	}
	a.stats.OutOfOrder.Add(1)
	if len(f.ooo) == 0 {
		f.gapSince = now
	}
	f.ooo = append(f.ooo, oooSeg{})
	copy(f.ooo[pos+1:], f.ooo[pos:])
	f.ooo[pos] = oooSeg{seq: seq, data: append([]byte(nil), data...)}
	f.buffered += len(data)
	a.buffered += len(data)
	a.stats.Buffered.Add(int64(len(data)))
}

// drain delivers held segments that the sequence has reached.
func (a *Assembler) drain(f *tcpFlow, now int64) {
	k := 0 // segments used up; removed with one copy at the end
	for ; k < len(f.ooo); k++ {
		s := f.ooo[k]
		rel := int64(int32(s.seq - f.next))
		if rel > 0 {
			break
		}
		f.buffered -= len(s.data)
		a.buffered -= len(s.data)
		a.stats.Buffered.Add(-int64(len(s.data)))
		if -rel < int64(len(s.data)) { // else overtaken by a longer retransmission
			a.deliver(f, s.data[-rel:])
		}
	}
	if k == 0 {
		return
	}
	n := copy(f.ooo, f.ooo[k:])
	clear(f.ooo[n:]) // drop references to the copies
	f.ooo = f.ooo[:n]
	if n > 0 {
		f.gapSince = now // a new front hole opens now
	}
}

// gap declares the bytes before seq lost and moves the flow to seq.
func (a *Assembler) gap(f *tcpFlow, seq uint32) {
	n := seq - f.next
	if int32(n) <= 0 {
		return
	}
	f.s.Gap(int(n))
	f.next = seq
	a.stats.Gaps.Add(1)
	a.stats.GapBytes.Add(uint64(n))
}

// skipHole gives up the hole in front of the first held segment.
func (a *Assembler) skipHole(f *tcpFlow, now int64) {
	a.gap(f, f.ooo[0].seq)
	a.drain(f, now)
	f.gapSince = now
}

// discard is the Stream of a flow the factory declined.
type discard struct{}

func (discard) Data([]byte)     {}
func (discard) Gap(int)         {}
func (discard) End(_ EndReason) {}
