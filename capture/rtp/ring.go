package rtp

import (
	"fmt"
	"sync/atomic"
	"unsafe"
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
// Payloads live in a byte arena of slots × slotPayload bytes, packed one
// after another (a payload that would straddle the arena's end starts
// again at its beginning), not in fixed slots sized for the largest
// payload: a ring then holds as much time of audio as the slots promise
// whatever the ptime, in about two thirds of the memory of fixed 256-byte
// slots (issue 4: rings were half of a call's memory at 10,000 calls).
// The producer owns the arena's head, the consumer publishes the byte
// position it has released up to (btail), with the same acquire/release
// pairing as the slot indexes.
//
// Payloads larger than half the arena are rejected and counted
// (Stats.Oversize), not truncated: a cut G.711 frame would put a wrong
// number of samples on the timeline as if it had been received, while a
// rejected one leaves a gap that playout fills with silence and flags as
// such. Half the arena always fits into an empty ring, wherever the
// producer stopped.
type Ring struct {
	_          [64]byte
	head       atomic.Uint64 // next slot the producer writes; owned by the producer
	cachedTail uint64        // producer's last view of tail
	bhead      uint64        // producer: arena bytes used so far (monotonic, skips included)
	boff       uint64        // producer: bhead modulo the arena size
	cachedBT   uint64        // producer's last view of btail
	dropped    atomic.Uint64 // full ring
	oversize   atomic.Uint64 // payload larger than the slot
	_          [64 - 56]byte
	tail       atomic.Uint64 // next slot the consumer reads; owned by the consumer
	btail      atomic.Uint64 // arena bytes released (monotonic); owned by the consumer
	cachedHead uint64        // consumer's last view of head
	cpos       uint64        // consumer: arena position of the next payload (mirrors bhead)
	coff       uint64        // consumer: cpos modulo the arena size
	_          [64 - 40]byte

	mask       uint64
	maxPayload int
	slots      []Slot
	arena      []byte
}

// Slot is one queued packet: the RTP header fields playout needs and the
// capture time. Its payload lives in the ring's arena.
type Slot struct {
	Arrival int64 // capture time, ns
	TS      uint32
	SSRC    uint32
	Seq     uint16
	Len     uint16 // payload bytes
	PT      uint8
	Marker  bool
	off     uint32 // payload offset in the arena
	// Order is the producer's stamp (PushOrdered): a consumer that works
	// through the ring in several steps later than the packets came
	// (capture imports) drains, per step, exactly what was queued by then.
	// It fits in the slot's padding: a Slot stays 32 bytes.
	Order uint32
}

// RingStats are the ring's counters; the producer counts Dropped and
// Oversize with atomic adds, so any goroutine may read them.
type RingStats struct {
	Pushed   uint64 // packets queued since creation
	Popped   uint64 // packets taken by the consumer
	Dropped  uint64 // refused because the ring (slots or arena) was full
	Oversize uint64 // refused because the payload exceeded SlotPayload
}

// Ring limits.
const (
	// DefaultSlotPayload holds 60 ms of G.711 or G.722 (480 bytes).
	DefaultSlotPayload = 512
	maxRingSlots       = 1 << 16
	maxSlotPayload     = 1<<16 - 1
)

// NewRing allocates a ring of slots entries (a power of two, 2..65536)
// and an arena of slots × slotPayload bytes (slotPayload 0 means
// DefaultSlotPayload): it holds slots packets of slotPayload bytes on
// average, and accepts any payload up to SlotPayload (half the arena, at
// least slotPayload). All memory is allocated here, once.
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
		mask:       uint64(slots - 1),
		maxPayload: min(slots*slotPayload/2, maxSlotPayload),
		slots:      make([]Slot, slots),
		arena:      make([]byte, slots*slotPayload),
	}, nil
}

// Push queues a packet; only the producer goroutine may call it. It never
// blocks and never allocates: it returns false when the ring (its slots
// or its arena) is full or the payload is larger than SlotPayload, and
// counts the refusal.
func (r *Ring) Push(h *Header, payload []byte, arrival int64) bool {
	return r.PushOrdered(h, payload, arrival, 0)
}

// PushOrdered is Push with the producer's stamp for the slot's Order (a
// counter that grows by one per packet; it may wrap).
func (r *Ring) PushOrdered(h *Header, payload []byte, arrival int64, order uint32) bool {
	n := uint64(len(payload))
	if len(payload) > r.maxPayload {
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
	a := uint64(len(r.arena))
	pos, off := r.bhead, r.boff
	if off+n > a { // would straddle the end: start again at 0
		pos += a - off
		off = 0
	}
	if pos+n-r.cachedBT > a {
		r.cachedBT = r.btail.Load()
		if pos+n-r.cachedBT > a {
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
	s.Len = uint16(n)
	s.PT = h.PayloadType
	s.Marker = h.Marker
	s.off = uint32(off)
	s.Order = order
	copy(r.arena[off:off+n], payload)
	r.bhead = pos + n
	if r.boff = off + n; r.boff == a {
		r.boff = 0
	}
	r.head.Store(head + 1) // publishes the slot
	return true
}

// Next returns where the producer's next packet will go: its slot and the
// first arena byte of its payload (unless it has to wrap to the arena's
// start). It changes nothing; only the producer goroutine may call it. A
// reader working ahead of its packets uses it to prefetch both.
func (r *Ring) Next() (*Slot, *byte) {
	return &r.slots[r.head.Load()&r.mask], &r.arena[r.boff]
}

// Oldest returns where the consumer's next packet is: its slot and the
// first arena byte of its payload, whether or not one is queued. It
// changes nothing; only the consumer goroutine may call it. A flusher
// working through many rings uses it to prefetch both.
func (r *Ring) Oldest() (*Slot, *byte) {
	return &r.slots[r.tail.Load()&r.mask], &r.arena[r.coff]
}

// QueuedMemory reports where the packets queued now lie, for a consumer
// that wants them in its caches before it drains (prefetch hints, nothing
// more): fn gets the slot headers and the arena bytes, each as one span or,
// where the ring wraps, two. The arena span is estimated from the ring's
// average slot payload, so it may be a little short or long. Only the
// consumer may call it; it reads no slot.
func (r *Ring) QueuedMemory(fn func(p unsafe.Pointer, n uintptr)) {
	tail := r.tail.Load()
	n := r.head.Load() - tail
	if n == 0 {
		return
	}
	size := uint64(len(r.slots))
	first := tail & r.mask
	if k := min(n, size-first); k > 0 {
		fn(unsafe.Pointer(&r.slots[first]), uintptr(k)*unsafe.Sizeof(Slot{}))
		if n > k {
			fn(unsafe.Pointer(&r.slots[0]), uintptr(n-k)*unsafe.Sizeof(Slot{}))
		}
	}
	a := uint64(len(r.arena))
	bytes := min(n*(a/size), a)
	if k := min(bytes, a-r.coff); k > 0 {
		fn(unsafe.Pointer(&r.arena[r.coff]), uintptr(k))
		if bytes > k {
			fn(unsafe.Pointer(&r.arena[0]), uintptr(bytes-k))
		}
	}
}

// Pop copies the oldest packet's fields into dst and its payload into buf
// and returns the payload slice (a prefix of buf). It reports false when
// the ring is empty. Only the consumer goroutine may call it. buf must
// hold SlotPayload bytes; a shorter buf is an error the caller made,
// answered with a cut payload and dst.Len telling the true size.
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
	s := &r.slots[tail&r.mask]
	off, end := int(s.off), int(s.off)+int(s.Len)
	return s, r.arena[off:end:end], true
}

// Release frees the slot returned by the last Peek and its payload's
// bytes. The consumer follows the producer's packing: a payload at offset
// 0 that does not follow the previous one means the producer skipped the
// arena's end.
func (r *Ring) Release() {
	tail := r.tail.Load()
	s := &r.slots[tail&r.mask]
	a := uint64(len(r.arena))
	if uint64(s.off) != r.coff {
		r.cpos += a - r.coff
	}
	r.cpos += uint64(s.Len)
	if r.coff = uint64(s.off) + uint64(s.Len); r.coff == a {
		r.coff = 0
	}
	r.btail.Store(r.cpos)
	r.tail.Store(tail + 1)
}

// Drain hands every queued packet to fn, oldest first, and releases them
// when it is done, returning how many it handed over. The slot and
// payload passed to fn are only valid during the call. Only the consumer
// goroutine may call it. It stops at the packets present when it started
// plus any that arrive meanwhile, up to one ring's worth, so a busy
// producer cannot keep it forever.
func (r *Ring) Drain(fn func(s *Slot, payload []byte)) int {
	return r.drain(0, false, fn)
}

// DrainUntil is Drain limited to the packets stamped at or before order
// (PushOrdered; compared as a wrapping counter): it stops at the first
// later one and leaves it queued.
func (r *Ring) DrainUntil(order uint32, fn func(s *Slot, payload []byte)) int {
	return r.drain(order, true, fn)
}

// drain is Drain and DrainUntil. It is Peek and Release in a loop, except
// that the indexes are published once, after the last packet, not after
// each: an atomic store is a full barrier on amd64 (XCHG), and Release
// made two per packet (issue 4: an import drains every packet it reads).
// Publishing late only keeps the producer from reusing those slots until
// the drain returns, which it would not have got to sooner anyway.
func (r *Ring) drain(order uint32, bounded bool, fn func(s *Slot, payload []byte)) int {
	tail := r.tail.Load()
	head := r.cachedHead
	a := uint64(len(r.arena))
	cpos, coff := r.cpos, r.coff
	n := 0
	for n <= int(r.mask) {
		if tail == head {
			if head = r.head.Load(); tail == head {
				break
			}
		}
		s := &r.slots[tail&r.mask]
		if bounded && int32(s.Order-order) > 0 {
			break
		}
		off, end := uint64(s.off), uint64(s.off)+uint64(s.Len)
		fn(s, r.arena[off:end:end])
		// Release's bookkeeping, on locals.
		if off != coff {
			cpos += a - coff
		}
		cpos += uint64(s.Len)
		if coff = end; coff == a {
			coff = 0
		}
		tail++
		n++
	}
	r.cachedHead = head
	if n > 0 {
		r.cpos, r.coff = cpos, coff
		r.btail.Store(cpos)
		r.tail.Store(tail) // publishes the slots as free
	}
	return n
}

// Len returns how many packets are queued (a moment's view when called
// from neither side).
func (r *Ring) Len() int { return int(r.head.Load() - r.tail.Load()) }

// Cap returns the number of slots.
func (r *Ring) Cap() int { return len(r.slots) }

// SlotPayload returns the largest payload the ring accepts.
func (r *Ring) SlotPayload() int { return r.maxPayload }

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
