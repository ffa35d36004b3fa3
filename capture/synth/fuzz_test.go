package synth

import (
	"errors"
	"io"
	"testing"
	"time"
)

// FuzzConfig: synth parses no outside input, but its Config comes from
// command-line flags (callvault dev gencalls), so any Config must give
// either ErrConfig or a consistent capture, never a panic or a hang.
func FuzzConfig(f *testing.F) {
	f.Add(5, int64(3*time.Second), int64(0), int64(0), uint64(1), 0.0, 0.0, int64(0), int64(0), []byte("5#"), int64(500*time.Millisecond), int64(100*time.Millisecond))
	f.Add(2, int64(2*time.Second), int64(time.Millisecond), int64(300*time.Millisecond), uint64(9), 10.0, 5.0, int64(5*time.Millisecond), int64(40*time.Millisecond), []byte("1"), int64(200*time.Millisecond), int64(0))
	f.Add(0, int64(-1), int64(-1), int64(-1), uint64(0), -1.0, 200.0, int64(-1), int64(-1), []byte("x"), int64(-5), int64(-5))
	f.Fuzz(func(t *testing.T, calls int, dur, stagger, ring int64, seed uint64, loss, reorder float64, jitter, reDelay int64, digits []byte, at, length int64) {
		cfg := Config{Calls: calls, Duration: time.Duration(dur), Stagger: time.Duration(stagger), RingTime: time.Duration(ring),
			Seed: seed, LossPct: loss, ReorderPct: reorder, Jitter: time.Duration(jitter), ReorderDelay: time.Duration(reDelay)}
		for i, d := range digits {
			if i == 4 {
				break
			}
			cfg.DTMF = append(cfg.DTMF, Digit{Symbol: d, At: time.Duration(at) + time.Duration(i)*time.Duration(length+int64(time.Second)), Length: time.Duration(length)})
		}
		// Validation alone for any size (it does no per-packet work).
		probe := cfg
		probe.DTMF = append([]Digit(nil), cfg.DTMF...)
		if err := probe.normalize(); err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("normalize: %v is not ErrConfig", err)
			}
			return
		}
		// Generation only for small captures, so each input runs fast.
		if probe.Calls > 4 || probe.Duration > 5*time.Second || probe.Stagger > 10*time.Second || probe.RingTime > 10*time.Second {
			return
		}
		sum, err := Write(io.Discard, cfg)
		if err != nil {
			t.Fatalf("normalize accepted the config but Write failed: %v", err)
		}
		slots, lost := int64(0), int64(0)
		for _, c := range sum.Calls {
			for _, s := range c.Streams {
				slots += int64(s.Slots)
				lost += int64(s.Lost)
			}
		}
		if sum.Frames != sum.SIP+sum.RTP || sum.SIP != int64(7*cfg.Calls) || sum.RTP+sum.Lost != slots || lost != sum.Lost || sum.Last.Before(sum.First) {
			t.Fatalf("inconsistent summary %+v (slots %d, lost %d)", sum, slots, lost)
		}
	})
}
