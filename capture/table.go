package capture

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
)

// streamTable maps a media endpoint (address and port) to the call party
// that owns it: RTP sent to it is the other party's voice, RTP sent from
// it (symmetric RTP, RFC 4961) the owner's own. Readers
// look up every RTP packet here, so it is sharded with read locks: a
// lookup takes one RLock on one shard and allocates nothing.
//
// Readers keep a cache of what their flows resolved to (flowcache.go). So
// that it never serves a mapping that changed, every key hashes to one of
// tableGens generation counters, which put and remove bump after changing
// the map: a cached answer is good while the counters of both its
// addresses are what they were before it was looked up.
type streamTable struct {
	shards [64]tableShard
	gens   [tableGens]atomic.Uint32
}

// tableGens is the number of generation counters: enough that a call
// starting (two to four puts) invalidates a few cached flows, not all.
const tableGens = 4096

type tableShard struct {
	mu sync.RWMutex
	m  map[netip.AddrPort]*endpoint
}

func newStreamTable() *streamTable {
	t := &streamTable{}
	for i := range t.shards {
		t.shards[i].m = make(map[netip.AddrPort]*endpoint)
	}
	return t
}

func tableHash(k netip.AddrPort) uint32 {
	a := k.Addr().As16()
	h := uint32(k.Port())
	for _, b := range a[10:] { // the low bytes vary most, for v4 and v6 alike
		h = h*31 + uint32(b)
	}
	return h
}

func (t *streamTable) shard(k netip.AddrPort) *tableShard {
	return &t.shards[tableHash(k)%uint32(len(t.shards))]
}

// gen returns the generation counter of k's slot: it changes whenever a
// key that hashes there is put or removed.
func (t *streamTable) gen(k netip.AddrPort) uint32 {
	return t.gens[genSlot(k)].Load()
}

// gen4 is gen for an IPv4 address (as a big-endian number) and port, the
// form the reader's flow cache has them in (flowcache.go): the same
// counter as gen for the same endpoint, without building an AddrPort.
func (t *streamTable) gen4(addr uint32, port uint16) uint32 {
	return t.gens[genSlot4(addr, port)].Load()
}

// bump moves k's generation on, after the map changed (see gen).
func (t *streamTable) bump(k netip.AddrPort) {
	t.gens[genSlot(k)].Add(1)
}

// genSlot is the generation counter of k. IPv4 endpoints take a
// multiplicative hash of address and port, which the reader computes for
// every RTP packet from the numbers it already has (tableHash, through
// As16 and a byte loop, was a third of the flow cache's cost); others
// (IPv6, and IPv4-mapped IPv6, which a decoded packet never carries) hash
// as the shards do.
func genSlot(k netip.AddrPort) uint32 {
	if a := k.Addr(); a.Is4() {
		b := a.As4()
		return genSlot4(binary.BigEndian.Uint32(b[:]), k.Port())
	}
	return (tableHash(k) * 0x9e3779b1) >> (32 - 12)
}

func genSlot4(addr uint32, port uint16) uint32 {
	return uint32(((uint64(addr)<<16 | uint64(port)) * 0x9e3779b97f4a7c15) >> (64 - 12))
}

func (t *streamTable) get(k netip.AddrPort) *endpoint {
	sh := t.shard(k)
	sh.mu.RLock()
	s := sh.m[k]
	sh.mu.RUnlock()
	return s
}

// put maps k to s, replacing (and returning) what was there: an endpoint
// reused by a new call belongs to the new call.
func (t *streamTable) put(k netip.AddrPort, s *endpoint) *endpoint {
	sh := t.shard(k)
	sh.mu.Lock()
	old := sh.m[k]
	sh.m[k] = s
	sh.mu.Unlock()
	t.bump(k)
	return old
}

// remove deletes k only if it still maps to s.
func (t *streamTable) remove(k netip.AddrPort, s *endpoint) {
	sh := t.shard(k)
	sh.mu.Lock()
	if sh.m[k] == s {
		delete(sh.m, k)
	}
	sh.mu.Unlock()
	t.bump(k)
}
