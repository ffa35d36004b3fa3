package capture

import (
	"net/netip"
	"sync"
)

// streamTable maps a media endpoint (address and port) to the call party
// that owns it: RTP sent to it is the other party's voice, RTP sent from
// it (symmetric RTP, RFC 4961) the owner's own. Readers
// look up every RTP packet here, so it is sharded with read locks: a
// lookup takes one RLock on one shard and allocates nothing.
type streamTable struct {
	shards [64]tableShard
}

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

func (t *streamTable) shard(k netip.AddrPort) *tableShard {
	a := k.Addr().As16()
	h := uint32(k.Port())
	for _, b := range a[10:] { // the low bytes vary most, for v4 and v6 alike
		h = h*31 + uint32(b)
	}
	return &t.shards[h%uint32(len(t.shards))]
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
}
