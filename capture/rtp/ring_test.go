package rtp

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"sync"
	"testing"
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
	if r.Push(&h, make([]byte, 17), 9) {
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
