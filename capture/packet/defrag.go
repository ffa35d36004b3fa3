package packet

import (
	"net/netip"
	"sync/atomic"
	"time"
)

const (
	// maxDatagram is the largest reassembled payload accepted: the IPv4
	// total length and the IPv6 payload length are 16-bit fields, and a
	// fragment ending beyond them is the "ping of death".
	maxDatagram = 65535
	// maxFragments bounds the fragments of one datagram. 64 KiB in 1280-byte
	// IPv6 minimum-MTU fragments is 52; 576-byte IPv4 paths need 120.
	maxFragments = 128

	// DefaultMaxDatagrams is the default number of reassemblies in flight.
	DefaultMaxDatagrams = 1024
	// DefaultDefragMemory is the default cap on reassembly buffer bytes.
	DefaultDefragMemory = 8 << 20
	// DefaultDefragTimeout is how long, in capture time, a datagram may wait
	// for its missing fragments (the RFC 791 §3.2 suggestion of 15 s lower
	// bound, doubled as Linux ipfrag_time does).
	DefaultDefragTimeout = 30 * time.Second
)

// DefragConfig bounds a Defragmenter. Zero fields take the defaults.
type DefragConfig struct {
	// MaxDatagrams is how many datagrams may be in reassembly at once;
	// a new one beyond it evicts the oldest.
	MaxDatagrams int
	// MaxMemory caps the bytes of reassembly buffers held, in flight or
	// kept for reuse. A datagram that needs more evicts the oldest others.
	MaxMemory int
	// Timeout is how long after its first fragment, in capture time, a
	// datagram is given up.
	Timeout time.Duration
}

// DefragStats counts what a Defragmenter did; atomics, so the appliance can
// read them while capture runs.
type DefragStats struct {
	Completed  atomic.Uint64 // datagrams reassembled
	TimedOut   atomic.Uint64 // datagrams given up after Timeout
	Evicted    atomic.Uint64 // datagrams dropped for MaxDatagrams or MaxMemory
	Malformed  atomic.Uint64 // fragments rejected (bad length/offset, too many)
	Overlaps   atomic.Uint64 // datagrams dropped for overlapping fragments
	Duplicates atomic.Uint64 // exact duplicate fragments dropped
	Pending    atomic.Int64  // datagrams in reassembly now
}

// fragKey identifies a datagram: RFC 791 §3.2 (source, destination,
// protocol, identification) for IPv4; RFC 8200 §4.5 (source, destination,
// identification) for IPv6, where proto is left zero.
type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
}

type fragSpan struct{ start, end int32 }

// reassembly is one datagram being put together in its slot.
type reassembly struct {
	key        fragKey
	first      int64 // capture time of the first fragment seen, ns
	prev, next int32 // age list, oldest first
	total      int   // payload length, known from the last fragment, else -1
	got        int   // bytes received (spans never overlap, so total when done)
	hi         int   // highest end seen
	proto      uint8 // next header of the offset-0 fragment
	n          int
	spans      [maxFragments]fragSpan
	buf        []byte // the datagram image; kept across reuse of the slot
}

// Defragmenter reassembles IPv4 and IPv6 fragments. Attach it to a Decoder;
// like the Decoder it belongs to one goroutine. Slots, the index and (once
// warm) the buffers are allocated up front or reused, so reassembly does not
// allocate in steady state.
type Defragmenter struct {
	cfg        DefragConfig
	slots      []reassembly
	index      map[fragKey]int32
	free       []int32 // stack: the most recently freed slot, whose buffer is warm, is reused first
	head, tail int32   // age list ends, -1 when empty
	memory     int     // sum of cap(buf) over all slots
	stats      DefragStats
}

// NewDefragmenter returns a Defragmenter with cfg's bounds.
func NewDefragmenter(cfg DefragConfig) *Defragmenter {
	if cfg.MaxDatagrams <= 0 {
		cfg.MaxDatagrams = DefaultMaxDatagrams
	}
	if cfg.MaxMemory <= 0 {
		cfg.MaxMemory = DefaultDefragMemory
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultDefragTimeout
	}
	f := &Defragmenter{
		cfg:   cfg,
		slots: make([]reassembly, cfg.MaxDatagrams),
		index: make(map[fragKey]int32, cfg.MaxDatagrams),
		free:  make([]int32, cfg.MaxDatagrams),
		head:  -1,
		tail:  -1,
	}
	for i := range f.free {
		// Reversed so that slot 0 is handed out first.
		f.free[i] = int32(cfg.MaxDatagrams - 1 - i)
	}
	return f
}

// Stats returns the Defragmenter's counters.
func (f *Defragmenter) Stats() *DefragStats { return &f.stats }

// Memory reports the reassembly buffer bytes held, for tests and metrics.
func (f *Defragmenter) Memory() int { return f.memory }

type fragStatus uint8

const (
	fragPending fragStatus = iota
	fragComplete
	fragDuplicate
	fragOverlap
	fragTooLong
	fragUnaligned
	fragEmpty
	fragTooMany
	fragBadLast
	fragNoMemory
)

// add adds one fragment: data at byte offset off of the datagram key, more
// being the "more fragments" bit. When this completes the datagram it
// returns the reassembled payload (valid until the next call) and the
// protocol of the offset-0 fragment.
func (f *Defragmenter) add(now int64, key fragKey, proto uint8, off int, more bool, data []byte) ([]byte, uint8, fragStatus) {
	f.expire(now)
	end := off + len(data)
	idx, ok := f.index[key]
	switch {
	case end > maxDatagram:
		f.stats.Malformed.Add(1)
		if ok {
			f.release(idx)
		}
		return nil, 0, fragTooLong
	case more && len(data) == 0:
		f.stats.Malformed.Add(1)
		return nil, 0, fragEmpty
	case more && len(data)%8 != 0:
		// RFC 791 §3.2 and RFC 8200 §4.5: every fragment but the last is a
		// multiple of 8 octets long.
		f.stats.Malformed.Add(1)
		return nil, 0, fragUnaligned
	}
	if !ok {
		idx = f.alloc(now, key)
	}
	r := &f.slots[idx]
	if !more && ((r.total >= 0 && r.total != end) || r.hi > end) || more && r.total >= 0 && end > r.total {
		// Two different ends, or data beyond the end: no valid datagram.
		f.stats.Malformed.Add(1)
		f.release(idx)
		return nil, 0, fragBadLast
	}
	s32, e32 := int32(off), int32(end)
	for _, s := range r.spans[:r.n] {
		if s.start == s32 && s.end == e32 {
			f.stats.Duplicates.Add(1)
			return nil, 0, fragDuplicate
		}
		if s32 < s.end && s.start < e32 {
			f.stats.Overlaps.Add(1)
			f.release(idx)
			return nil, 0, fragOverlap
		}
	}
	if r.n == maxFragments {
		f.stats.Malformed.Add(1)
		f.release(idx)
		return nil, 0, fragTooMany
	}
	if !f.reserve(idx, end) {
		f.stats.Evicted.Add(1)
		f.release(idx)
		return nil, 0, fragNoMemory
	}
	copy(r.buf[off:end], data)
	r.spans[r.n] = fragSpan{s32, e32}
	r.n++
	r.got += len(data)
	r.hi = max(r.hi, end)
	if off == 0 {
		r.proto = proto
	}
	if !more {
		r.total = end
	}
	if r.total < 0 || r.got != r.total {
		return nil, 0, fragPending
	}
	// Disjoint spans inside [0,total) adding up to total tile it, so the
	// offset-0 fragment, and with it r.proto, is there.
	dgram, p := r.buf[:r.total], r.proto
	f.release(idx)
	f.stats.Completed.Add(1)
	return dgram, p, fragComplete
}

// expire gives up datagrams whose first fragment is older than Timeout.
func (f *Defragmenter) expire(now int64) {
	limit := int64(f.cfg.Timeout)
	for f.head >= 0 && now-f.slots[f.head].first > limit {
		f.stats.TimedOut.Add(1)
		f.release(f.head)
	}
}

// alloc takes a free slot for key, evicting the oldest datagram if none is.
func (f *Defragmenter) alloc(now int64, key fragKey) int32 {
	if len(f.free) == 0 {
		f.stats.Evicted.Add(1)
		f.release(f.head)
	}
	idx := f.free[len(f.free)-1]
	f.free = f.free[:len(f.free)-1]
	r := &f.slots[idx]
	r.key, r.first = key, now
	r.total, r.got, r.hi, r.n, r.proto = -1, 0, 0, 0, 0
	r.prev, r.next = f.tail, -1
	if f.tail >= 0 {
		f.slots[f.tail].next = idx
	} else {
		f.head = idx
	}
	f.tail = idx
	f.index[key] = idx
	f.stats.Pending.Add(1)
	return idx
}

// release ends the reassembly in slot idx and frees the slot; its buffer is
// kept for the next datagram.
func (f *Defragmenter) release(idx int32) {
	r := &f.slots[idx]
	delete(f.index, r.key)
	if r.prev >= 0 {
		f.slots[r.prev].next = r.next
	} else {
		f.head = r.next
	}
	if r.next >= 0 {
		f.slots[r.next].prev = r.prev
	} else {
		f.tail = r.prev
	}
	r.prev, r.next = -1, -1
	f.free = append(f.free, idx) // within capacity: free has room for every slot
	f.stats.Pending.Add(-1)
}

// reserve makes slot idx's buffer at least end bytes long, within MaxMemory:
// spare buffers of free slots go first, then the oldest other datagrams.
func (f *Defragmenter) reserve(idx int32, end int) bool {
	r := &f.slots[idx]
	if end <= cap(r.buf) {
		r.buf = r.buf[:cap(r.buf)]
		return true
	}
	// Grow geometrically in whole KiB so that a datagram arriving in many
	// fragments copies its image only a few times.
	newCap := min(max(end, 2*cap(r.buf), 2048), maxDatagram+1)
	newCap = min((newCap+1023)&^1023, maxDatagram+1)
	need := newCap - cap(r.buf)
	for f.memory+need > f.cfg.MaxMemory {
		if f.dropSpare() {
			continue
		}
		victim := f.head
		if victim == idx {
			victim = r.next
		}
		if victim < 0 {
			return false
		}
		f.stats.Evicted.Add(1)
		f.release(victim)
	}
	nb := make([]byte, newCap)
	copy(nb, r.buf[:r.hi])
	f.memory += need
	r.buf = nb
	return true
}

// dropSpare frees the buffer of one free slot, reporting whether there was one.
func (f *Defragmenter) dropSpare() bool {
	for i := len(f.free) - 1; i >= 0; i-- {
		r := &f.slots[f.free[i]]
		if cap(r.buf) > 0 {
			f.memory -= cap(r.buf)
			r.buf = nil
			return true
		}
	}
	return false
}
