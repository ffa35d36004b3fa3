package capture

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"github.com/callvault/callvault/capture/packet"
	"github.com/callvault/callvault/capture/rtp"
)

// The reader's flow cache.
//
// At 1,000 calls every RTP packet belongs to one of 2,000 streams, and the
// next packet of the same stream comes 2,000 packets later: by then the
// stream table's map buckets, the endpoint, the stream, its ring and the
// ring's next slot have all left the CPU's caches. Before this cache an
// import spent 40 % of its CPU in the reader's UDP path, nearly all of it
// waiting for those five dependent cache misses in a row (issue 4).
//
// So each reader keeps a four-way set-associative cache from an IPv4 UDP
// flow (its addresses and ports) to what the table lookup, the sender
// check and the lane lookup made of it: the stream and this reader's ring. A hit replaces
// two map lookups and the endpoint with one cache line the reader owns.
// The answer can change only when the table changes for either address
// (a call starts or ends, an endpoint moves); the table's generation
// counters say so (table.go). What the claim decided cannot change: a
// stream's first sender is fixed once set. Everything else the packet path
// reads (the stream's end, SRTP, the ring's room) is read from the stream
// and the ring as before.
//
// And because a hit's addresses are known before the packet is handled,
// an import can work ahead (pcapfile.go): a few frames before a packet is
// handled it prefetches the packet's cache entry, then the stream and ring
// the entry names, then the ring's next slot and arena bytes, so the cache
// misses of several packets overlap instead of following each other.
// Prefetching is only a hint: a wrong guess costs nothing but the memory
// traffic. IPv6 flows use the table directly.

// flowCacheSize is the number of entries (a power of two): 512 KiB, in
// sets of four (flowWays). One entry per flow (a direct-mapped cache) left
// a fifth of 2,000 flows sharing their entry; sets of two left 6 % of the
// packets of 1,000 calls missing (counted: 1.5 % of the sets held three
// flows or more, and three flows taking turns on two ways evict each other
// on every packet). 2,000 flows in 2,048 sets of four leave about 0.3 % of
// the sets over-full, and the replacement gives a way a second chance
// (used), so an over-full set keeps serving all but one of its flows.
const (
	flowCacheSize = 1 << 13
	flowWays      = 4
)

// flowEntry is one cache line: a flow and what it resolved to.
type flowEntry struct {
	addrs  uint64 // source IPv4 address << 32 | destination IPv4 address
	ports  uint32 // source port << 16 | destination port
	gd, gs uint32 // the table generations of the destination and the source
	rtcp   bool   // the endpoint is an RTCP one
	used   bool   // hit since a miss in its set last cleared it (second chance)
	s      *stream
	ring   *rtp.Ring // this reader's lane of s (nil until it has one, and for RTCP)
	_      [64 - 40]byte
}

// A flowEntry is exactly one cache line (these fail to compile otherwise),
// and the entries slice, 512 KiB, is page-aligned by the allocator: a set
// is four whole lines, next to each other.
var (
	_ [64 - unsafe.Sizeof(flowEntry{})]byte
	_ [unsafe.Sizeof(flowEntry{}) - 64]byte
)

// flowSet hashes an IPv4 flow to its set: the index of the set's first
// entry.
func flowSet(addrs uint64, ports uint32) uint32 {
	h := (addrs ^ uint64(ports)<<17 ^ uint64(ports)>>5) * 0x9e3779b97f4a7c15
	return uint32(h>>(64-13)) &^ (flowWays - 1)
}

// way returns the entry of set that holds the flow, or nil.
func (r *Reader) way(set uint32, addrs uint64, ports uint32) *flowEntry {
	for w := uint32(0); w < flowWays; w++ {
		if fe := &r.flows[set+w]; fe.addrs == addrs && fe.ports == ports && fe.s != nil {
			return fe
		}
	}
	return nil
}

// victim picks the entry a new flow takes in set: an empty one, else one
// not hit since the set's last miss cleared the marks. When every way was
// hit since, it clears the marks and returns nil: the new flow is not
// cached this time. Flows that took turns on too few ways used to evict
// each other on every packet (plain LRU does that to a cycle one longer
// than the set); now the set's flows keep their ways and only the extra
// one misses, until a way goes unused (a call ended) and it takes that.
func (r *Reader) victim(set uint32) *flowEntry {
	ways := r.flows[set : set+flowWays : set+flowWays]
	for w := range ways {
		if ways[w].s == nil {
			return &ways[w]
		}
	}
	for w := range ways {
		if !ways[w].used {
			return &ways[w]
		}
	}
	for w := range ways {
		ways[w].used = false
	}
	return nil
}

// flowKey4 is the cache key of an IPv4 packet; ok is false for others.
func flowKey4(p *packet.Packet) (addrs uint64, ports uint32, ok bool) {
	if !p.Src.Is4() || !p.Dst.Is4() {
		return 0, 0, false
	}
	a, b := p.Src.As4(), p.Dst.As4()
	return uint64(binary.BigEndian.Uint32(a[:]))<<32 | uint64(binary.BigEndian.Uint32(b[:])),
		uint32(p.SrcPort)<<16 | uint32(p.DstPort), true
}

// peekFlow4 finds the IPv4 UDP flow of an Ethernet frame (untagged, or
// with one or two VLAN tags) without decoding it, for prefetching: ok is
// false for anything else, including fragments. It never reads outside
// frame.
func peekFlow4(link packet.LinkType, frame []byte) (addrs uint64, ports uint32, ok bool) {
	if link != packet.LinkEthernet || len(frame) < 14 {
		return 0, 0, false
	}
	off := 12
	et := binary.BigEndian.Uint16(frame[off:])
	for i := 0; i < 2 && (et == 0x8100 || et == 0x88a8); i++ {
		off += 4
		if len(frame) < off+2 {
			return 0, 0, false
		}
		et = binary.BigEndian.Uint16(frame[off:])
	}
	off += 2
	if et != 0x0800 || len(frame) < off+20 {
		return 0, 0, false
	}
	ip := frame[off:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 17 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 || len(ip) < ihl+8 {
		return 0, 0, false
	}
	return uint64(binary.BigEndian.Uint32(ip[12:]))<<32 | uint64(binary.BigEndian.Uint32(ip[16:])),
		binary.BigEndian.Uint32(ip[ihl:]), true
}

// ahead is what the reader worked out about a frame it will handle soon.
type ahead struct {
	addrs uint64
	ports uint32
	set   int32 // its flow cache set, or -1
}

// prefetchEntry is the first step ahead: the frame's cache set.
func (r *Reader) prefetchEntry(link packet.LinkType, frame []byte) ahead {
	addrs, ports, ok := peekFlow4(link, frame)
	if !ok {
		return ahead{set: -1}
	}
	set := flowSet(addrs, ports)
	a := uintptr(unsafe.Pointer(&r.flows[set]))
	prefetch4(a, a+64, a+128, a+192)
	return ahead{addrs: addrs, ports: ports, set: int32(set)}
}

// prefetchStream is the second: the stream and ring the flow's entry
// names (a guess, checked when the packet is handled: the table may have
// changed).
func (r *Reader) prefetchStream(a ahead) {
	if a.set < 0 {
		return
	}
	fe := r.way(uint32(a.set), a.addrs, a.ports)
	if fe == nil || fe.ring == nil {
		return
	}
	s, ring := uintptr(unsafe.Pointer(fe.s)), uintptr(unsafe.Pointer(fe.ring))
	prefetch4(s, ring+64, ring+192, ring+64)
}

// prefetchSlot is the last: where the ring will put the packet.
func (r *Reader) prefetchSlot(a ahead) {
	if a.set < 0 {
		return
	}
	fe := r.way(uint32(a.set), a.addrs, a.ports)
	if fe == nil || fe.ring == nil {
		return
	}
	sl, b := fe.ring.Next()
	p := uintptr(unsafe.Pointer(b))
	prefetch4(uintptr(unsafe.Pointer(sl)), p, p+64, p+128)
}

// lookupFlow resolves an RTP/RTCP packet's stream the way the table does,
// through the cache where it can. fe is the packet's cache entry (nil for
// IPv6 and unknown flows): the caller records the ring there once it has
// one.
func (r *Reader) lookupFlow(src, dst netip.AddrPort) (s *stream, ring *rtp.Ring, isRTCP bool, fe *flowEntry) {
	e, p := r.e, &r.pkt
	addrs, ports, ok := flowKey4(p)
	var gd, gs uint32
	if ok {
		// The generations before the lookups: a change after this makes
		// the entry stale, never a stale answer current.
		gd, gs = e.table.gen4(uint32(addrs), uint16(ports)), e.table.gen4(uint32(addrs>>32), uint16(ports>>16))
		set := flowSet(addrs, ports)
		if fe = r.way(set, addrs, ports); fe != nil {
			if fe.gd == gd && fe.gs == gs {
				if !fe.used {
					fe.used = true
				}
				return fe.s, fe.ring, fe.rtcp, fe
			}
			// Stale: look the flow up again into the same entry.
		} else {
			fe = r.victim(set)
		}
		if fe != nil {
			// A new entry starts marked: it survives the next miss in its
			// set, so two flows beyond the ways do not take turns evicting
			// each other's fresh entries.
			fe.s, fe.ring, fe.used = nil, nil, true
			fe.addrs, fe.ports, fe.gd, fe.gs = addrs, ports, gd, gs
		}
	}
	if ep := e.table.get(dst); ep != nil {
		// Sent to a party's endpoint: the other party's voice.
		s, isRTCP = ep.other, ep.rtcp
	} else if ep := e.table.get(src); ep != nil {
		// Sent from a party's endpoint (symmetric RTP behind NAT): its own.
		s, isRTCP = ep.own, ep.rtcp
	}
	if s == nil {
		return nil, nil, false, nil
	}
	if !isRTCP && !s.claim(src) {
		// Another sender on a channel that already has one, while the other
		// party's channel has none: a media relay or B2BUA made the SDP
		// misleading, and this is the other party's voice (RFC 3550 §8.2
		// sources do not change address mid-stream).
		if o := s.c.streams[1-s.party]; o.claim(src) {
			s = o
		}
	}
	// Both claims are settled now (the first sender of a stream is fixed
	// once set), so the entry may keep the answer: the caller fills in
	// the ring once it has one.
	if fe != nil {
		fe.rtcp = isRTCP
		fe.s = s
	}
	return s, nil, isRTCP, fe
}
