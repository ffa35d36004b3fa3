package audio

// G.711 (ITU-T G.711, 1988) µ-law and A-law.
//
// Decoding uses 256-entry tables and encoding uses 14-bit (µ-law) and 13-bit
// (A-law) index tables, so both directions are one load per sample and never
// allocate. The tables are built once from the segment/quantisation rules of
// G.711 Tables 1a/2a; the linear values are the ones in the G.711 appendix
// scaled to 16 bits, which is what sox, Wireshark's RTP player and most
// telephony stacks produce (µ-law ±32124, A-law ±32256).

// Silence bytes: what a gap in a G.711 stream is filled with.
const (
	UlawSilence byte = 0xFF // µ-law code for +0
	AlawSilence byte = 0xD5 // A-law code for the smallest positive step (+8)
)

// g711Tables holds all four lookup tables. It is built once and never
// written afterwards, so sharing it between goroutines is safe.
type g711Tables struct {
	ulawDec [256]int16
	alawDec [256]int16
	ulawEnc [1 << 14]byte // indexed by the 14-bit two's-complement sample
	alawEnc [1 << 13]byte // indexed by the 13-bit two's-complement sample
}

var g711 = buildG711()

func buildG711() *g711Tables {
	t := new(g711Tables)
	for i := 0; i < 256; i++ {
		t.ulawDec[i] = ulawDecode(byte(i))
		t.alawDec[i] = alawDecode(byte(i))
	}
	for i := 0; i < 1<<14; i++ {
		v := int16(i<<2) >> 2 // sign-extend 14 bits
		t.ulawEnc[i] = ulawEncode14(int32(v))
	}
	for i := 0; i < 1<<13; i++ {
		v := int16(i<<3) >> 3 // sign-extend 13 bits
		t.alawEnc[i] = alawEncode13(int32(v))
	}
	return t
}

// ulawDecode expands one µ-law code: the bits are inverted on the line, the
// magnitude is (2*mantissa+33) << exponent minus the bias 33, scaled by 4.
func ulawDecode(u byte) int16 {
	u = ^u
	mag := (int32(u&0x0F)<<3 + 0x84) << ((u & 0x70) >> 4)
	if u&0x80 != 0 {
		return int16(0x84 - mag)
	}
	return int16(mag - 0x84)
}

// alawDecode expands one A-law code: even bits are inverted on the line
// (xor 0x55); segment 0 is linear, segments 1..7 double the step each time.
func alawDecode(a byte) int16 {
	a ^= 0x55
	mag := int32(a&0x0F) << 4
	switch seg := (a & 0x70) >> 4; seg {
	case 0:
		mag += 8
	case 1:
		mag += 0x108
	default:
		mag = (mag + 0x108) << (seg - 1)
	}
	if a&0x80 != 0 {
		return int16(mag)
	}
	return int16(-mag)
}

// ulawEncode14 compresses a 14-bit linear sample (G.711 µ-law input range).
func ulawEncode14(v int32) byte {
	mask := byte(0xFF)
	if v < 0 {
		v = -v
		mask = 0x7F
	}
	if v > 8159 {
		v = 8159
	}
	v += 0x21 // bias 33
	seg := 0
	for lim := int32(0x3F); seg < 8 && v > lim; seg++ {
		lim = lim<<1 | 1
	}
	if seg >= 8 {
		return 0x7F ^ mask
	}
	return (byte(seg<<4) | byte(v>>(seg+1))&0x0F) ^ mask
}

// alawEncode13 compresses a 13-bit linear sample (G.711 A-law input range).
func alawEncode13(v int32) byte {
	mask := byte(0xD5)
	if v < 0 {
		mask = 0x55
		v = -v - 1
	}
	seg := 0
	for lim := int32(0x1F); seg < 8 && v > lim; seg++ {
		lim = lim<<1 | 1
	}
	if seg >= 8 {
		return 0x7F ^ mask
	}
	out := byte(seg << 4)
	if seg < 2 {
		out |= byte(v>>1) & 0x0F
	} else {
		out |= byte(v>>seg) & 0x0F
	}
	return out ^ mask
}

// UlawToLinear returns the 16-bit linear value of one µ-law code.
func UlawToLinear(u byte) int16 { return g711.ulawDec[u] }

// AlawToLinear returns the 16-bit linear value of one A-law code.
func AlawToLinear(a byte) int16 { return g711.alawDec[a] }

// LinearToUlaw compresses one 16-bit sample to µ-law (the two low bits are
// below µ-law's 14-bit resolution and are dropped, as in G.711).
func LinearToUlaw(v int16) byte { return g711.ulawEnc[uint16(v)>>2] }

// LinearToAlaw compresses one 16-bit sample to A-law (13-bit resolution).
func LinearToAlaw(v int16) byte { return g711.alawEnc[uint16(v)>>3] }

// DecodeUlaw expands µ-law bytes from src into dst and returns the number of
// samples written: min(len(dst), len(src)).
func DecodeUlaw(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, c := range src {
		dst[i] = g711.ulawDec[c]
	}
	return n
}

// DecodeAlaw expands A-law bytes; see DecodeUlaw.
func DecodeAlaw(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, c := range src {
		dst[i] = g711.alawDec[c]
	}
	return n
}

// EncodeUlaw compresses samples from src into dst and returns
// min(len(dst), len(src)).
func EncodeUlaw(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, v := range src {
		dst[i] = g711.ulawEnc[uint16(v)>>2]
	}
	return n
}

// EncodeAlaw compresses samples to A-law; see EncodeUlaw.
func EncodeAlaw(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, v := range src {
		dst[i] = g711.alawEnc[uint16(v)>>3]
	}
	return n
}

// DecodeL16 converts RFC 3551 L16 (16-bit big-endian signed, network order)
// to samples and returns the number written: min(len(dst), len(src)/2). An
// odd trailing byte is ignored.
func DecodeL16(dst []int16, src []byte) int {
	n := min(len(dst), len(src)/2)
	for i := 0; i < n; i++ {
		dst[i] = int16(uint16(src[2*i])<<8 | uint16(src[2*i+1]))
	}
	return n
}

// EncodeL16 writes samples as L16 and returns the number of samples written:
// min(len(dst)/2, len(src)).
func EncodeL16(dst []byte, src []int16) int {
	n := min(len(dst)/2, len(src))
	for i := 0; i < n; i++ {
		dst[2*i] = byte(uint16(src[i]) >> 8)
		dst[2*i+1] = byte(src[i])
	}
	return n
}
