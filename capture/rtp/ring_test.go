package rtp

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"slices"
	"sync"
	"testing"
	"unsafe"
)

func TestRingConfig(t *testing.T) {
	for _, c := range []struct{ slots, payload int }{{0, 0}, {1, 0}, {3, 0}, {1 << 17, 0}, {8, -1}, {8, 1 << 16}} {
		if _, err := NewRing(c.slots, c.payload); !errors.Is(err, ErrConfig) {
			t.Errorf("NewRing(%d, %d) err = %v", c.slots, c.payload, err)
		}
	}
}

func TestRingFullAndOversize(t *testing.T) {
	r, err := NewRing(4, 16)
	if err != nil {
		t.Fatal(err)
	}
	var h Header
	for i := 0; i < 4; i++ {
		h.SequenceNumber = uint16(i)
		if !r.Push(&h, []byte{byte(i)}, int64(i)) {
			t.Fatalf("push %d refused", i)
		}
	}
	if r.Push(&h, []byte{9}, 9) {
		t.Fatal("push into a full ring accepted")
	}
	if r.SlotPayload() != 32 {
		t.Fatalf("4 slots of 16 bytes accept payloads up to %d bytes, want 32 (half the arena)", r.SlotPayload())
	}
	if r.Push(&h, make([]byte, 33), 9) {
		t.Fatal("oversized payload accepted")
	}
	if r.Push(&h, make([]byte, 16), 9) {
		t.Fatal("a slot-sized payload fits but the ring is still full")
	}
	var s Slot
	buf := make([]byte, 16)
	p, ok := r.Pop(&s, buf)
	if !ok || s.Seq != 0 || len(p) != 1 || p[0] != 0 {
		t.Fatalf("pop %+v %x", s, p)
	}
	if !r.Push(&h, make([]byte, 16), 10) {
		t.Fatal("push after pop refused")
	}
	st := r.Stats()
	if st.Pushed != 5 || st.Popped != 1 || st.Dropped != 2 || st.Oversize != 1 || r.Len() != 4 {
		t.Fatalf("stats %+v len %d", st, r.Len())
	}
	n := r.Drain(func(*Slot, []byte) {})
	if n != 4 || r.Len() != 0 {
		t.Fatalf("drained %d, len %d", n, r.Len())
	}
	if _, ok := r.Pop(&s, buf); ok {
		t.Fatal("pop from empty ring")
	}
}

// TestRingArena: the arena, not the slot count, limits big payloads, and
// a payload that would straddle the arena's end starts at its beginning
// once the consumer has freed it.
func TestRingArena(t *testing.T) {
	r, err := NewRing(4, 16) // 64-byte arena, payloads up to 32
	if err != nil {
		t.Fatal(err)
	}
	var h Header
	fill := func(n int, b byte) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = b
		}
		return p
	}
	if !r.Push(&h, fill(30, 1), 1) || !r.Push(&h, fill(30, 2), 2) {
		t.Fatal("two payloads of 30 bytes refused in a 64-byte arena")
	}
	if r.Push(&h, fill(5, 3), 3) {
		t.Fatal("a third payload accepted with 4 bytes of the arena left")
	}
	if !r.Push(&h, fill(4, 3), 3) {
		t.Fatal("a payload of the 4 bytes left refused")
	}
	var s Slot
	buf := make([]byte, 64)
	if p, ok := r.Pop(&s, buf); !ok || len(p) != 30 || p[0] != 1 {
		t.Fatalf("first pop: %x", p)
	}
	// 30 bytes free at the start, none at the end: 20 bytes go to offset 0.
	if !r.Push(&h, fill(20, 4), 4) {
		t.Fatal("payload refused with 30 bytes free at the arena's start")
	}
	if r.Push(&h, fill(11, 5), 5) {
		t.Fatal("payload accepted with 10 bytes free")
	}
	for i, want := range []struct {
		n int
		b byte
	}{{30, 2}, {4, 3}, {20, 4}} {
		p, ok := r.Pop(&s, buf)
		if !ok || len(p) != want.n || p[0] != want.b || p[len(p)-1] != want.b {
			t.Fatalf("pop %d: %x, want %d bytes of %d", i, p, want.n, want.b)
		}
	}
	// Half the arena fits into an empty ring wherever the producer stands.
	for k := 0; k < 12; k++ {
		n := 32 - k%5*7 // 32, 25, 18, 11, 4, ...: the producer's offset wanders
		if !r.Push(&h, fill(32, byte(k)), int64(k)) {
			t.Fatalf("round %d: an empty ring refuses a payload of half its arena", k)
		}
		if !r.Push(&h, fill(n, byte(k)), int64(k)) {
			r.Drain(func(*Slot, []byte) {})
			if !r.Push(&h, fill(n, byte(k)), int64(k)) {
				t.Fatalf("round %d: an empty ring refuses %d bytes", k, n)
			}
		}
		r.Drain(func(*Slot, []byte) {})
	}
	if st := r.Stats(); st.Dropped < 2 || st.Oversize != 0 || st.Pushed != st.Popped {
		t.Fatalf("stats %+v", st)
	}
}

// TestRingConcurrent moves millions of packets (fewer with -short) through a
// small ring between two goroutines; every payload carries its sequence
// number and a CRC of its bytes, so a torn read, a reordering or a lost
// update shows. Run it with -race (1M packets then, 2M without).
func TestRingConcurrent(t *testing.T) {
	total := 2_000_000
	switch {
	case testing.Short():
		total = 200_000
	case raceEnabled:
		total = 1_000_000 // 3-40 s under the race detector on 2 shared cores
	}
	r, err := NewRing(1024, 64)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var pushed, refused int
	go func() {
		defer wg.Done()
		var h Header
		p := make([]byte, 64)
		for i := 0; i < total; {
			n := 8 + i%56
			binary.BigEndian.PutUint32(p, uint32(i))
			for j := 8; j < n; j++ {
				p[j] = byte(i * j)
			}
			binary.BigEndian.PutUint32(p[4:], crc32.ChecksumIEEE(p[8:n]))
			h.SequenceNumber, h.Timestamp, h.SSRC = uint16(i), uint32(i)*160, uint32(i)^0xABCD
			if r.Push(&h, p[:n], int64(i)) {
				i++
				pushed++
			} else {
				refused++
				runtime.Gosched()
			}
		}
	}()
	got := 0
	var sum uint64
	for got < total {
		n := r.Drain(func(s *Slot, p []byte) {
			i := int(binary.BigEndian.Uint32(p))
			if i != got || len(p) != 8+i%56 || s.Seq != uint16(i) || s.TS != uint32(i)*160 || s.SSRC != uint32(i)^0xABCD || s.Arrival != int64(i) {
				t.Fatalf("packet %d: got index %d len %d slot %+v", got, i, len(p), *s)
			}
			if binary.BigEndian.Uint32(p[4:]) != crc32.ChecksumIEEE(p[8:]) {
				t.Fatalf("packet %d: checksum mismatch", i)
			}
			sum += uint64(i)
			got++
		})
		if n == 0 {
			runtime.Gosched()
		}
	}
	wg.Wait()
	if want := uint64(total) * uint64(total-1) / 2; sum != want {
		t.Fatalf("sum %d want %d", sum, want)
	}
	st := r.Stats()
	if st.Pushed != uint64(total) || st.Popped != uint64(total) || st.Dropped != uint64(refused) {
		t.Fatalf("stats %+v refused %d", st, refused)
	}
	t.Logf("%d packets, %d pushes refused while full", pushed, refused)
}

func TestRingNoAllocs(t *testing.T) {
	r, _ := NewRing(64, 0)
	var h Header
	p := make([]byte, 160)
	var s Slot
	buf := make([]byte, r.SlotPayload())
	if n := testing.AllocsPerRun(1000, func() {
		r.Push(&h, p, 1)
		r.Pop(&s, buf)
		r.Push(&h, p, 1)
		r.Drain(func(*Slot, []byte) {})
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func BenchmarkRingPushPop(b *testing.B) {
	r, _ := NewRing(256, 0)
	h := Header{SequenceNumber: 1, Timestamp: 160, SSRC: 7, PayloadType: 8}
	p := make([]byte, 160)
	var s Slot
	buf := make([]byte, r.SlotPayload())
	b.Run("same goroutine", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Push(&h, p, 1)
			r.Pop(&s, buf)
		}
	})
	b.Run("two goroutines", func(b *testing.B) {
		b.ReportAllocs()
		n := b.N
		done := make(chan struct{})
		go func() {
			defer close(done)
			for got := 0; got < n; {
				if k := r.Drain(func(*Slot, []byte) {}); k > 0 {
					got += k
				} else {
					runtime.Gosched()
				}
			}
		}()
		for i := 0; i < n; {
			if r.Push(&h, p, 1) {
				i++
			} else {
				runtime.Gosched()
			}
		}
		<-done
	})
}

// TestRingDrainUntil: DrainUntil hands over exactly the packets stamped at
// or before its bound, across the stamp counter's wrap, and leaves the
// rest queued in order; a Slot stays 32 bytes with its stamp.
func TestRingDrainUntil(t *testing.T) {
	if n := unsafe.Sizeof(Slot{}); n != 32 {
		t.Errorf("Slot is %d bytes, want 32", n)
	}
	r, err := NewRing(16, 160)
	if err != nil {
		t.Fatal(err)
	}
	start := uint32(1<<32 - 5) // the stamps wrap in the middle
	var h Header
	for i := uint32(0); i < 12; i++ {
		h.SequenceNumber = uint16(i)
		if !r.PushOrdered(&h, []byte{byte(i)}, int64(i), start+i) {
			t.Fatalf("push %d refused", i)
		}
	}
	var got []uint16
	take := func(s *Slot, p []byte) {
		if p[0] != byte(s.Seq) || s.Order != start+uint32(s.Seq) {
			t.Errorf("slot %d: payload %d, order %d", s.Seq, p[0], s.Order)
		}
		got = append(got, s.Seq)
	}
	for _, c := range []struct {
		bound uint32
		n     int
	}{{start - 1, 0}, {start + 3, 4}, {start + 3, 0}, {start + 7, 4}, {start + 100, 4}} {
		if n := r.DrainUntil(c.bound, take); n != c.n {
			t.Errorf("DrainUntil(%d): %d packets, want %d", int32(c.bound-start), n, c.n)
		}
	}
	for i, s := range got {
		if s != uint16(i) {
			t.Fatalf("drained %v, want 0..11 in order", got)
		}
	}
	if len(got) != 12 || r.Len() != 0 {
		t.Fatalf("drained %d, %d left", len(got), r.Len())
	}
}

// TestRingQueuedMemory checks the spans a consumer prefetches before it
// drains: the queued slots' headers exactly, and the arena bytes from the
// next payload on, both split where the ring wraps.
func TestRingQueuedMemory(t *testing.T) {
	r, err := NewRing(8, 160)
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ p, n uintptr }
	spans := func() []span {
		var got []span
		r.QueuedMemory(func(p unsafe.Pointer, n uintptr) { got = append(got, span{uintptr(p), n}) })
		return got
	}
	if got := spans(); len(got) != 0 {
		t.Fatalf("empty ring: spans %v", got)
	}
	var h Header
	payload := make([]byte, 160)
	push := func(n int) {
		for range n {
			if !r.Push(&h, payload, 0) {
				t.Fatal("push refused")
			}
		}
	}
	slot := func(i int) uintptr { return uintptr(unsafe.Pointer(&r.slots[i])) }
	arena := func(i int) uintptr { return uintptr(unsafe.Pointer(&r.arena[i])) }

	push(3)
	want := []span{{slot(0), 3 * 32}, {arena(0), 3 * 160}}
	if got := spans(); !slices.Equal(got, want) {
		t.Fatalf("3 queued: spans %v, want %v", got, want)
	}
	if n := r.Drain(func(*Slot, []byte) {}); n != 3 {
		t.Fatalf("drained %d", n)
	}
	push(7) // slots 3..7 and 0..1; payloads at 480..1279 and 0..319
	want = []span{{slot(3), 5 * 32}, {slot(0), 2 * 32}, {arena(480), 800}, {arena(0), 320}}
	if got := spans(); !slices.Equal(got, want) {
		t.Fatalf("7 queued across the wrap: spans %v, want %v", got, want)
	}
}
