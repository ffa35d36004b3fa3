package audio

// G.722 at 64 kbit/s (ITU-T G.722 (09/2012), mode 1), written from the block
// descriptions of the Recommendation (§3 encoder, §4 decoder, §6 blocks):
//
//	16 kHz PCM ─► transmit QMF ─┬─ xL (0-4 kHz, 8 kHz rate) ─► low-band ADPCM, 6 bits ─┐
//	                           └─ xH (4-8 kHz, 8 kHz rate) ─► high-band ADPCM, 2 bits ┴─► octet IH<<6 | IL
//
// Each band is an ADPCM coder: a quantiser whose step size DET adapts in the
// log domain (LOGSCL/SCALEL), and a predictor with two poles and six zeros
// (block 4: RECONS, PARREC, UPPOL1/2, UPZERO, DELAYA, FILTEP, FILTEZ, PREDIC).
// The decoder reconstructs the low band from all 6 bits (INVQBL) but adapts
// only on the top 4 (INVQAL), exactly like the encoder's embedded decoder, so
// both stay in lock-step. All arithmetic is the Recommendation's 16-bit
// fixed point with its saturation points, so the output is bit-exact with
// other conforming implementations (our test compares with ffmpeg).
//
// RTP note: RFC 3551 gives G.722 an RTP clock of 8000 Hz for historical
// reasons, but the audio is sampled at 16 kHz: one octet = two samples.

// G722Silence is the octet a G.722 stream is padded with for missing time.
// IL=63 and IH=3 are the smallest steps of both bands and their adaptation
// differences are 0, so a run of them stops the predictors where they are:
// the output settles within milliseconds at a small constant level (below
// -50 dBFS after speech, ±2 from reset). Encoders such as spandsp emit 0xFA
// for silence, but a long run of 0xFA alone makes the low-band predictor
// drift to a DC offset of about 200.
const G722Silence byte = 0xFF

// Tables of the Recommendation (Tables 6-17 of G.722).
var (
	// QQ6 scaled (INVQBL, 6-bit low-band reconstruction), indexed by IL.
	g722QQ6 = [64]int32{
		-136, -136, -136, -136, -24808, -21904, -19008, -16704,
		-14984, -13512, -12280, -11192, -10232, -9360, -8576, -7856,
		-7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576,
		-3168, -2776, -2400, -2032, -1688, -1360, -1040, -728,
		24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192,
		10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
		4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032,
		1688, 1360, 1040, 728, 432, 136, -432, -136,
	}
	// QQ4 scaled (INVQAL, 4-bit reconstruction used for adaptation), by IL>>2.
	g722QQ4 = [16]int32{
		0, -20456, -12896, -8968, -6288, -4240, -2584, -1200,
		20456, 12896, 8968, 6288, 4240, 2584, 1200, 0,
	}
	// QQ2 scaled (INVQAH), indexed by IH.
	g722QQ2 = [4]int32{-7408, -1616, 7408, 1616}
	// Q6: low-band decision levels (QUANTL), by magnitude index 1..29.
	g722Q6 = [31]int32{
		0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650,
		714, 786, 858, 940, 1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980,
		2195, 2557, 2919, 0,
	}
	// ILN/ILP: 6-bit code for a negative/positive difference at magnitude
	// index 1..30 (QUANTL output mapping).
	g722ILN = [31]byte{
		0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18,
		17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4,
	}
	g722ILP = [31]byte{
		0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46,
		45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32,
	}
	// WL: low-band log-scale increments (LOGSCL) by RIL4 = RL42[IL>>2].
	g722WL   = [8]int32{-60, -30, 58, 172, 334, 538, 1198, 3042}
	g722RL42 = [16]uint8{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	// WH: high-band log-scale increments (LOGSCH) by RH2[IH].
	g722WH  = [3]int32{0, -214, 798}
	g722RH2 = [4]uint8{2, 1, 2, 1}
	// ILB: inverse log base-2 table for SCALEL/SCALEH, 2048*2^(i/32).
	g722ILB = [32]int32{
		2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543,
		2599, 2656, 2714, 2774, 2834, 2896, 2960, 3025, 3091, 3158, 3228,
		3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
	}
	// QMF coefficients h0..h11 (the 24-tap filter is symmetric:
	// h(23-i) = h(i)). Even taps h0,h2,... and odd taps h1,h3,...
	g722QMF = [24]int32{
		3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876,
		3876, 951, -805, -210, 362, 32, -156, 12, 53, -11, -11, 3,
	}
)

func sat16(v int32) int32 {
	if v > 32767 {
		return 32767
	}
	if v < -32768 {
		return -32768
	}
	return v
}

func clamp32(v, lo, hi int32) int32 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// g722Band is the state of one sub-band ADPCM coder (the variables of
// block 4 plus the scale factor). Index 0 of the history arrays is unused
// so the names match the Recommendation (A1, A2, B1..B6, DLT1..DLT6, ...).
type g722Band struct {
	s   int32    // S: predictor output for the next sample
	sz  int32    // SZ: zero-section output for the next sample
	a   [3]int32 // A1, A2: pole coefficients
	b   [7]int32 // B1..B6: zero coefficients
	dlt [7]int32 // DLT1..DLT6: past quantised differences
	r   [3]int32 // R1, R2: past reconstructed signals
	p   [3]int32 // P1, P2: past partially reconstructed signals
	nb  int32    // NBL/NBH: log scale factor
	det int32    // DETL/DETH: quantiser scale factor
}

func (b *g722Band) reset(det int32) { *b = g722Band{det: det} }

// scale implements SCALEL (shift 8) and SCALEH (shift 10): DET from NB.
func (b *g722Band) scale(shift int32) {
	wd1 := g722ILB[(b.nb>>6)&31]
	wd2 := shift - (b.nb >> 11)
	if wd2 < 0 {
		wd1 <<= uint(-wd2)
	} else {
		wd1 >>= uint(wd2)
	}
	b.det = wd1 << 2
}

// adapt runs block 4 for one quantised difference d.
func (b *g722Band) adapt(d int32) {
	r0 := sat16(b.s + d)  // RECONS
	p0 := sat16(d + b.sz) // PARREC

	// UPPOL2: second pole coefficient.
	sg0, sg1, sg2 := p0>>15, b.p[1]>>15, b.p[2]>>15
	wd1 := sat16(b.a[1] << 2)
	wd2 := wd1
	if sg0 == sg1 {
		wd2 = sat16(-wd1)
	}
	wd2 >>= 7
	wd3 := int32(-128)
	if sg0 == sg2 {
		wd3 = 128
	}
	apl2 := clamp32(wd2+wd3+((b.a[2]*32512)>>15), -12288, 12288)

	// UPPOL1: first pole coefficient, kept inside the stability triangle.
	wd1 = -192
	if sg0 == sg1 {
		wd1 = 192
	}
	apl1 := sat16(wd1 + (b.a[1]*32640)>>15)
	lim := sat16(15360 - apl2)
	apl1 = clamp32(apl1, -lim, lim)

	// UPZERO + DELAYA + FILTEZ: the sign of each past difference against
	// the new one moves its zero coefficient by ±128 (none if d == 0) with
	// leakage 255/256; then the history shifts and the zero section is
	// recomputed with the new coefficients.
	step := int32(128)
	if d == 0 {
		step = 0
	}
	sgd := d >> 15
	var sz int32
	for i := 6; i >= 1; i-- {
		w := step
		if b.dlt[i]>>15 != sgd {
			w = -step
		}
		b.b[i] = sat16(w + (b.b[i]*32640)>>15)
		if i > 1 {
			b.dlt[i] = b.dlt[i-1]
		} else {
			b.dlt[1] = d
		}
		sz = sat16(sz + (b.b[i]*sat16(b.dlt[i]+b.dlt[i]))>>15)
	}
	b.sz = sz

	// DELAYA for the pole section, then FILTEP and PREDIC.
	b.a[1], b.a[2] = apl1, apl2
	b.r[2], b.r[1] = b.r[1], r0
	b.p[2], b.p[1] = b.p[1], p0
	sp := sat16((b.a[1]*sat16(b.r[1]+b.r[1]))>>15 + (b.a[2]*sat16(b.r[2]+b.r[2]))>>15)
	b.s = sat16(sp + b.sz)
}

// lowAdapt is INVQAL + LOGSCL + SCALEL + block 4 for the low band, given
// the 6-bit code (only its top 4 bits matter here).
func (b *g722Band) lowAdapt(il byte) {
	ril := il >> 2
	dlt := (b.det * g722QQ4[ril]) >> 15
	b.nb = clamp32((b.nb*32512)>>15+g722WL[g722RL42[ril]], 0, 18432)
	b.scale(8)
	b.adapt(dlt)
}

// highAdapt is INVQAH + LOGSCH + SCALEH + block 4 for the high band; it
// returns the quantised difference DH.
func (b *g722Band) highAdapt(ih byte) int32 {
	dh := (b.det * g722QQ2[ih]) >> 15
	b.nb = clamp32((b.nb*32512)>>15+g722WH[g722RH2[ih]], 0, 22528)
	b.scale(10)
	b.adapt(dh)
	return dh
}

// G722Decoder decodes 64 kbit/s G.722 to 16 kHz PCM. The zero value is not
// ready; use NewG722Decoder or Reset. A decoder carries state between calls,
// so feed one stream's octets in order.
type G722Decoder struct {
	low, high g722Band
	xd, xs    [12]int32 // receive QMF history: xd(j)..xd(j-11), xs(j)..xs(j-11)
}

// NewG722Decoder returns a decoder in the Recommendation's reset state.
func NewG722Decoder() *G722Decoder {
	d := new(G722Decoder)
	d.Reset()
	return d
}

// Reset returns the decoder to its initial state (DETL=32, DETH=8, all
// predictor and filter memories zero).
func (d *G722Decoder) Reset() {
	d.low.reset(32)
	d.high.reset(8)
	d.xd, d.xs = [12]int32{}, [12]int32{}
}

// Decode decodes octets from src into dst (two samples per octet) and
// returns the number of samples written: 2*min(len(src), len(dst)/2).
func (d *G722Decoder) Decode(dst []int16, src []byte) int {
	n := min(len(src), len(dst)/2)
	for i, code := range src[:n] {
		il, ih := code&0x3F, code>>6

		// Low band: 6-bit reconstruction for output, 4-bit for adaptation.
		rl := clamp32(d.low.s+(d.low.det*g722QQ6[il])>>15, -16384, 16383)
		d.low.lowAdapt(il)

		// High band.
		sh := d.high.s
		rh := clamp32(sh+d.high.highAdapt(ih), -16384, 16383)

		// Receive QMF: two output samples from the band sum and difference.
		copy(d.xd[1:], d.xd[:11])
		copy(d.xs[1:], d.xs[:11])
		d.xd[0], d.xs[0] = rl-rh, rl+rh
		var x1, x2 int32
		for k := 0; k < 12; k++ {
			x1 += d.xd[k] * g722QMF[2*k]
			x2 += d.xs[k] * g722QMF[2*k+1]
		}
		dst[2*i] = int16(sat16(x1 >> 11))
		dst[2*i+1] = int16(sat16(x2 >> 11))
	}
	return 2 * n
}

// G722Encoder encodes 16 kHz PCM to 64 kbit/s G.722. Use NewG722Encoder.
type G722Encoder struct {
	low, high g722Band
	x         [24]int32 // transmit QMF history, x[0] newest
}

// NewG722Encoder returns an encoder in the reset state.
func NewG722Encoder() *G722Encoder {
	e := new(G722Encoder)
	e.Reset()
	return e
}

// Reset returns the encoder to its initial state.
func (e *G722Encoder) Reset() {
	e.low.reset(32)
	e.high.reset(8)
	e.x = [24]int32{}
}

// Encode encodes pairs of samples from src into dst and returns the number
// of octets written: min(len(src)/2, len(dst)). An odd trailing sample is
// not consumed.
func (e *G722Encoder) Encode(dst []byte, src []int16) int {
	n := min(len(src)/2, len(dst))
	for i := 0; i < n; i++ {
		// Transmit QMF: shift in two samples, x[0] is the newest.
		copy(e.x[2:], e.x[:22])
		e.x[1], e.x[0] = int32(src[2*i]), int32(src[2*i+1])
		var even, odd int32
		for k := 0; k < 12; k++ {
			even += e.x[2*k] * g722QMF[2*k]
			odd += e.x[2*k+1] * g722QMF[2*k+1]
		}
		xl := (even + odd) >> 14
		xh := (even - odd) >> 14

		// QUANTL: find the magnitude interval of EL, map to the 6-bit code.
		el := sat16(xl - e.low.s)
		wd := el
		if el < 0 {
			wd = -(el + 1)
		}
		m := 1
		for ; m < 30; m++ {
			if wd < (g722Q6[m]*e.low.det)>>12 {
				break
			}
		}
		il := g722ILP[m]
		if el < 0 {
			il = g722ILN[m]
		}
		e.low.lowAdapt(il)

		// QUANTH: two levels per sign.
		eh := sat16(xh - e.high.s)
		wd = eh
		if eh < 0 {
			wd = -(eh + 1)
		}
		var ih byte
		big := wd >= (564*e.high.det)>>12
		switch {
		case eh < 0 && big:
			ih = 0
		case eh < 0:
			ih = 1
		case big:
			ih = 2
		default:
			ih = 3
		}
		e.high.highAdapt(ih)

		dst[i] = ih<<6 | il
	}
	return n
}
