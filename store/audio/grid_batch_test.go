package audio

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// countingWriter records each Write it gets.
type countingWriter struct {
	buf    bytes.Buffer
	writes int
	failAt int // fail the failAt-th write (1-based); 0 never
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes == w.failAt {
		return 0, errDiskFull
	}
	return w.buf.Write(p)
}

var errDiskFull = errors.New("disk full")

// gridTicks is a sequence of ticks with every flag on both channels.
func gridTicks(n int) ([][]TickFlag, [][][]byte) {
	flags := make([][]TickFlag, n)
	payloads := make([][][]byte, n)
	all := []TickFlag{TickPresent, TickFilled, TickAbsent}
	for i := range flags {
		flags[i] = []TickFlag{all[i%3], all[(i/3)%3]}
		payloads[i] = [][]byte{bytes.Repeat([]byte{byte(i)}, 160), bytes.Repeat([]byte{byte(i + 100)}, 160)}
	}
	return flags, payloads
}

// TestGridInPlaceAndBatched: ticks produced in place (TickBuffer +
// CommitTick), in batches of any buffer size, give the same container as
// WriteTick one at a time, with one Write per batch instead of per tick.
func TestGridInPlaceAndBatched(t *testing.T) {
	const n = 50
	flags, payloads := gridTicks(n)
	var want countingWriter
	gw, err := NewGridWriter(&want, stereoG711(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range flags {
		if err := gw.WriteTick(flags[i], payloads[i]); err != nil {
			t.Fatal(err)
		}
	}
	if want.writes != 1+n {
		t.Fatalf("unbatched: %d writes for a header and %d ticks", want.writes, n)
	}
	tick := 2 * (1 + 160)
	for _, bufTicks := range []int{0, 1, 2, 7, 16, 64} {
		var got countingWriter
		g, err := NewGridWriter(&got, stereoG711(t))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, bufTicks*tick+tick/2) // room to spare is not used
		// Batches of 10 ticks, each begun and ended like a catch-up.
		for i := 0; i < n; i++ {
			if i%10 == 0 {
				if err := g.BeginBatch(buf); err != nil {
					t.Fatal(err)
				}
			}
			for ch := 0; ch < 2; ch++ {
				copy(g.TickBuffer(ch), payloads[i][ch])
			}
			if err := g.CommitTick(flags[i]); err != nil {
				t.Fatal(err)
			}
			if i%10 == 9 {
				if err := g.EndBatch(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !bytes.Equal(got.buf.Bytes(), want.buf.Bytes()) {
			t.Errorf("%d-tick batches: container differs from WriteTick's", bufTicks)
		}
		wantWrites := 1 + n
		if bufTicks >= 1 {
			perBatch := (10 + bufTicks - 1) / bufTicks
			wantWrites = 1 + n/10*perBatch
		}
		if got.writes != wantWrites {
			t.Errorf("%d-tick batches: %d writes, want %d", bufTicks, got.writes, wantWrites)
		}
		if g.NumTicks() != n {
			t.Errorf("%d ticks counted, want %d", g.NumTicks(), n)
		}
	}
}

// TestGridBatchWriteError: a failed batched write is sticky and names the
// ticks it lost, like a failed WriteTick.
func TestGridBatchWriteError(t *testing.T) {
	flags, payloads := gridTicks(8)
	w := &countingWriter{failAt: 2} // the header is write 1
	g, err := NewGridWriter(w, stereoG711(t))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16<<10)
	if err := g.BeginBatch(buf); err != nil {
		t.Fatal(err)
	}
	for i := range flags {
		if err := g.WriteTick(flags[i], payloads[i]); err != nil {
			t.Fatalf("tick %d: %v before anything was written", i, err)
		}
	}
	err = g.EndBatch()
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("EndBatch: %v, want the writer's error", err)
	}
	if err := g.WriteTick(flags[0], payloads[0]); !errors.Is(err, errDiskFull) {
		t.Fatalf("WriteTick after a failed batch: %v, want it sticky", err)
	}
	if err := g.CommitTick([]TickFlag{TickPresent}); err == nil {
		t.Fatal("CommitTick with one flag for two channels: no error")
	}
}

// TestGridInPlaceNoAllocs: the in-place and batched path allocates
// nothing either.
func TestGridInPlaceNoAllocs(t *testing.T) {
	g, err := NewGridWriter(io.Discard, stereoG711(t))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4<<10)
	flags := []TickFlag{TickPresent, TickFilled}
	if n := testing.AllocsPerRun(100, func() {
		_ = g.BeginBatch(buf)
		for i := 0; i < 20; i++ {
			g.TickBuffer(0)[0] = byte(i)
			_ = g.CommitTick(flags)
		}
		_ = g.EndBatch()
	}); n != 0 {
		t.Errorf("batched in-place ticks: %v allocs/op", n)
	}
}
