package capture

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestGen4FollowsPut: the reader reads an IPv4 endpoint's generation
// counter from the numbers in its flow key (gen4), the table bumps it from
// the AddrPort (put, remove); both must name the same counter, or a cached
// flow would outlive the mapping it was resolved from.
func TestGen4FollowsPut(t *testing.T) {
	tb := newStreamTable()
	rng := rand.New(rand.NewPCG(1, 2))
	ep := &endpoint{}
	for i := 0; i < 10_000; i++ {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], rng.Uint32())
		k := netip.AddrPortFrom(netip.AddrFrom4(b), uint16(rng.Uint32()))
		a4, port := binary.BigEndian.Uint32(b[:]), k.Port()
		before := tb.gen4(a4, port)
		if got := tb.gen(k); got != before {
			t.Fatalf("%v: gen %d, gen4 %d", k, got, before)
		}
		tb.put(k, ep)
		if after := tb.gen4(a4, port); after == before {
			t.Fatalf("%v: put left gen4 at %d", k, after)
		}
		before = tb.gen4(a4, port)
		tb.remove(k, ep)
		if after := tb.gen4(a4, port); after == before {
			t.Fatalf("%v: remove left gen4 at %d", k, after)
		}
	}
	// IPv6 endpoints still have counters of their own.
	k6 := netip.MustParseAddrPort("[2001:db8::1]:4000")
	before := tb.gen(k6)
	tb.put(k6, ep)
	if tb.gen(k6) == before {
		t.Fatal("put of an IPv6 endpoint left its generation")
	}
}
