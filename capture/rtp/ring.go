package rtp

import (
	"fmt"
	"sync/atomic"
)

// Ring is a lock-free single-producer single-consumer queue of RTP
// packets in preallocated slots, one per stream.
//
// Why SPSC is enough: capture reads with AF_PACKET fanout in hash mode, so
// every packet of one UDP flow (one direction of one RTP stream) reaches
// the same fanout member, and one reader goroutine owns each member. That
// goroutine is therefore the only producer of the stream's ring. The
// consumer is the one flusher goroutine the stream is assigned to. With
// one writer per index, each side needs only an atomic load of the other
// side's index and an atomic store of its own: no CAS, no lock, no
// allocation.
//
// Memory ordering: Go's sync/atomic operations are sequentially consistent
// (the Go memory model, "Atomic Values"), which gives the release/acquire
// pairs this algorithm needs: the producer fills a slot and then stores
// head (release), the consumer loads head (acquire) before reading the
// slot; the consumer finishes with a slot before storing tail, and the
// producer loads tail before reusing it. head and tail sit on their own
// cache lines, and each side keeps a private cached copy of the other's
// index, refreshed only when the ring looks full (or empty), so the two
// cores rarely touch the same line.
//
// Oversized payloads are rejected and counted (Stats.Oversize), not
// truncated: a cut G.711 frame would put a wrong number of samples on the
// timeline as if it had been received, while a rejected one leaves a gap
// that playout fills with silence and flags as such.
type Ring struct {
	_          [64]byte
	head       atomic.Uint64 // next slot the producer writes; owned by the producer
	cachedTail uint64        // producer's last view of tail
	dropped    atomic.Uint64 // full ring
	oversize   atomic.Uint64 // payload larger than the slot
	_          [64 - 32]byte
	tail       atomic.Uint64 // next slot the consumer reads; owned by the consumer
	cachedHead uint64        // consumer's last view of head
	_          [64 - 16]byte

	mask    uint64
	slotCap int
	slots   []Slot
	payload []byte // len(slots)*slotCap bytes, slot i at [i*slotCap, (i+1)*slotCap)
}

// Slot is one queued packet: the RTP header fields playout needs and the
// capture time. Its payload lives in the ring's payload arena.
type Slot struct {
	Arrival int64 // capture time, ns
	TS      uint32
	SSRC    uint32
	Seq     uint16
	Len     uint16 // payload bytes
	PT      uint8
	Marker  bool
}

// RingStats are the ring's counters; the producer counts Dropped and
// Oversize with atomic adds, so any goroutine may read them.
type RingStats struct {
	Pushed   uint64 // packets queued since creation
	Popped   uint64 // packets taken by the consumer
	Dropped  uint64 // refused because the ring was full
	Oversize uint64 // refused because the payload exceeded the slot
}

// Ring limits.
const (
	// DefaultSlotPayload holds 60 ms of G.711 or G.722 (480 bytes).
	DefaultSlotPayload = 512
	maxRingSlots       = 1 << 16
	maxSlotPayload     = 1<<16 - 1
)

// NewRing allocates a ring of slots entries (a power of two, 2..65536)
// that each hold up to slotPayload payload bytes (0 means
// DefaultSlotPayload). L16 streams need bigger slots (20 ms of 16 kHz L16
// is 640 bytes). All memory is allocated here, once.
func NewRing(slots, slotPayload int) (*Ring, error) {
	if slots < 2 || slots > maxRingSlots || slots&(slots-1) != 0 {
		return nil, fmt.Errorf("%w: ring of %d slots (a power of two, 2..%d)", ErrConfig, slots, maxRingSlots)
	}
	if slotPayload == 0 {
		slotPayload = DefaultSlotPayload
	}
	if slotPayload < 1 || slotPayload > maxSlotPayload {
		return nil, fmt.Errorf("%w: slot payload of %d bytes (1..%d)", ErrConfig, slotPayload, maxSlotPayload)
	}
	return &Ring{
		mask:    uint64(slots - 1),
		slotCap: slotPayload,
		slots:   make([]Slot, slots),
		payload: make([]byte, slots*slotPayload),
	}, nil
}

// Push queues a packet; only the producer goroutine may call it. It never
// blocks and never allocates: it returns false when the ring is full or
// the payload is larger than a slot, and counts the refusal.
func (r *Ring) Push(h *Header, payload []byte, arrival int64) bool {
	if len(payload) > r.slotCap {
		r.oversize.Add(1)
		return false
	}
	head := r.head.Load() // our own index: no other writer
	if head-r.cachedTail > r.mask {
		r.cachedTail = r.tail.Load()
		if head-r.cachedTail > r.mask {
			r.dropped.Add(1)
			return false
		}
	}
	i := head & r.mask
	s := &r.slots[i]
	s.Arrival = arrival
	s.TS = h.Timestamp
	s.SSRC = h.SSRC
	s.Seq = h.SequenceNumber
	s.Len = uint16(len(payload))
	s.PT = h.PayloadType
	s.Marker = h.Marker
	off := int(i) * r.slotCap
	copy(r.payload[off:off+r.slotCap], payload)
	r.head.Store(head + 1) // publishes the slot
	return true
}

// Pop copies the oldest packet's fields into dst and its payload into buf
// and returns the payload slice (a prefix of buf). It reports false when
// the ring is empty. Only the consumer goroutine may call it. buf must
// hold the slot size; a shorter buf is an error the caller made, answered
// with a cut payload and dst.Len telling the true size.
func (r *Ring) Pop(dst *Slot, buf []byte) ([]byte, bool) {
	s, p, ok := r.Peek()
	if !ok {
		return nil, false
	}
	*dst = *s
	n := copy(buf, p)
	r.Release()
	return buf[:n], true
}

// Peek returns the oldest packet without copying it. The slot and payload
// stay valid until Release; only the consumer goroutine may call it.
func (r *Ring) Peek() (*Slot, []byte, bool) {
	tail := r.tail.Load()
	if tail == r.cachedHead {
		r.cachedHead = r.head.Load()
		if tail == r.cachedHead {
			return nil, nil, false
		}
	}
	i := tail & r.mask
	s := &r.slots[i]
	off := int(i) * r.slotCap
	return s, r.payload[off : off+int(s.Len) : off+int(s.Len)], true
}

// Release frees the slot returned by the last Peek.
func (r *Ring) Release() { r.tail.Store(r.tail.Load() + 1) }

// Drain hands every queued packet to fn, oldest first, releasing each
// slot after fn returns, and returns how many it handed over. The slot
// and payload passed to fn are only valid during the call. Only the
// consumer goroutine may call it. It stops at the packets present when it
// started plus any that arrive meanwhile, up to one ring's worth, so a
// busy producer cannot keep it forever.
func (r *Ring) Drain(fn func(s *Slot, payload []byte)) int {
	n := 0
	for n <= int(r.mask) {
		s, p, ok := r.Peek()
		if !ok {
			break
		}
		fn(s, p)
		r.Release()
		n++
	}
	return n
}

// Len returns how many packets are queued (a moment's view when called
// from neither side).
func (r *Ring) Len() int { return int(r.head.Load() - r.tail.Load()) }

// Cap returns the number of slots.
func (r *Ring) Cap() int { return len(r.slots) }

// SlotPayload returns the largest payload a slot holds.
func (r *Ring) SlotPayload() int { return r.slotCap }

// Stats returns the counters; safe from any goroutine.
func (r *Ring) Stats() RingStats {
	tail := r.tail.Load()
	return RingStats{
		Pushed:   r.head.Load(),
		Popped:   tail,
		Dropped:  r.dropped.Load(),
		Oversize: r.oversize.Load(),
	}
}
