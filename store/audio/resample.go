package audio

import "math"

// 2x sample-rate conversion with one half-band FIR filter (31 taps,
// Blackman-windowed sinc, 16 non-zero coefficients in Q15). Half of a
// half-band filter's taps are zero and the centre tap is 1/2, so up- and
// down-sampling each cost 16 multiplies per output pair. Stop-band
// rejection is about 70 dB, far below G.711's own noise floor, and the
// filter delays by 8 input samples (1 ms at 8 kHz), which we accept rather
// than buffer look-ahead.

const hbTaps = 8 // odd taps per side

// hbCoef[i] is twice the filter's tap at ±(2i+1), in Q15 (so that the
// interpolated phase has unity gain). Read-only after init.
var hbCoef = func() (c [hbTaps]int32) {
	var sum int32
	for i := range c {
		j := float64(2*i + 1)
		sinc := math.Sin(math.Pi*j/2) / (math.Pi * j)
		n := j + float64(2*hbTaps-1) // position in a 4*hbTaps-1 window
		wl := float64(4*hbTaps - 2)
		w := 0.42 - 0.5*math.Cos(2*math.Pi*n/wl) + 0.08*math.Cos(4*math.Pi*n/wl)
		c[i] = int32(math.Round(2 * sinc * w * 32768))
		sum += c[i]
	}
	c[0] += 16384 - sum // exact unity DC gain: 2*sum(c) == 32768
	return c
}()

func sat16r(acc int64) int16 {
	acc = (acc + 1<<14) >> 15
	if acc > 32767 {
		return 32767
	}
	if acc < -32768 {
		return -32768
	}
	return int16(acc)
}

// upsampler2 doubles the rate of one channel.
type upsampler2 struct {
	ext []int16 // history (2*hbTaps) followed by the current block
}

func newUpsampler2(maxBlock int) *upsampler2 {
	return &upsampler2{ext: make([]int16, 2*hbTaps, 2*hbTaps+maxBlock)}
}

// process writes 2*len(in) samples to out (which must be that long).
func (u *upsampler2) process(out, in []int16) {
	h := 2 * hbTaps
	x := append(u.ext[:h], in...)
	for n := range in {
		j := h + n
		c := j - hbTaps // the integer position this pair starts at
		var acc int64
		for i, a := range hbCoef {
			acc += int64(a * (int32(x[c+1+i]) + int32(x[c-i])))
		}
		out[2*n] = x[c]
		out[2*n+1] = sat16r(acc)
	}
	copy(u.ext[:h], x[len(x)-h:])
	u.ext = x[:h]
}

// downsampler2 halves the rate of one channel.
type downsampler2 struct {
	ext []int16 // history (4*hbTaps) followed by the current block
}

func newDownsampler2(maxBlock int) *downsampler2 {
	return &downsampler2{ext: make([]int16, 4*hbTaps, 4*hbTaps+maxBlock)}
}

// process writes len(in)/2 samples to out; callers pass even-length blocks.
func (d *downsampler2) process(out, in []int16) {
	h := 4 * hbTaps
	in = in[:len(in)&^1]
	x := append(d.ext[:h], in...)
	for n := 0; n < len(in)/2; n++ {
		c := h + 2*n + 1 - (2*hbTaps - 1)
		acc := int64(x[c]) << 15 // centre tap 1/2, doubled below
		for i, a := range hbCoef {
			acc += int64(a * (int32(x[c+2*i+1]) + int32(x[c-2*i-1])))
		}
		out[n] = sat16r(acc >> 1)
	}
	copy(d.ext[:h], x[len(x)-h:])
	d.ext = x[:h]
}
