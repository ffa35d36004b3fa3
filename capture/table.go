package capture

import (
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
	return t.gens[(tableHash(k)*0x9e3779b1)>>(32-12)].Load()
}

// bump moves k's generation on, after the map changed (see gen).
func (t *streamTable) bump(k netip.AddrPort) {
	t.gens[(tableHash(k)*0x9e3779b1)>>(32-12)].Add(1)
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
