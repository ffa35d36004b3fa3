package audio

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestG711KnownValues(t *testing.T) {
	// Values from the G.711 tables as 16-bit linear (sox/Wireshark scaling).
	cases := []struct {
		name string
		got  int16
		want int16
	}{
		{"ulaw FF is +0", UlawToLinear(0xFF), 0},
		{"ulaw 7F is -0", UlawToLinear(0x7F), 0},
		{"ulaw 80 is max", UlawToLinear(0x80), 32124},
		{"ulaw 00 is min", UlawToLinear(0x00), -32124},
		{"ulaw FE is +8", UlawToLinear(0xFE), 8},
		{"ulaw EF", UlawToLinear(0xEF), 132},
		{"alaw D5 is +8", AlawToLinear(0xD5), 8},
		{"alaw 55 is -8", AlawToLinear(0x55), -8},
		{"alaw AA is max", AlawToLinear(0xAA), 32256},
		{"alaw 2A is min", AlawToLinear(0x2A), -32256},
		{"alaw D4 is +24", AlawToLinear(0xD4), 24},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: got %d want %d", c.name, c.got, c.want)
		}
	}
	if LinearToUlaw(0) != 0xFF || LinearToAlaw(0) != 0xD5 {
		t.Errorf("silence encodes to %#x/%#x", LinearToUlaw(0), LinearToAlaw(0))
	}
	if LinearToUlaw(32767) != 0x80 || LinearToUlaw(-32768) != 0x00 {
		t.Errorf("ulaw clipping: %#x %#x", LinearToUlaw(32767), LinearToUlaw(-32768))
	}
	if LinearToAlaw(32767) != 0xAA || LinearToAlaw(-32768) != 0x2A {
		t.Errorf("alaw clipping: %#x %#x", LinearToAlaw(32767), LinearToAlaw(-32768))
	}
}

func TestG711RoundTrip(t *testing.T) {
	for c := 0; c < 256; c++ {
		u := byte(c)
		if got := LinearToUlaw(UlawToLinear(u)); got != u && u != 0x7F {
			t.Errorf("ulaw %#02x -> %d -> %#02x", u, UlawToLinear(u), got)
		}
		if got := LinearToAlaw(AlawToLinear(u)); got != u {
			t.Errorf("alaw %#02x -> %d -> %#02x", u, AlawToLinear(u), got)
		}
	}
	// Every 16-bit value must encode to the code whose decoded value is
	// nearest (G.711 is a mid-riser/mid-tread quantiser): check the error
	// never exceeds half of the segment's step.
	for v := -32768; v <= 32767; v++ {
		dv := int(UlawToLinear(LinearToUlaw(int16(v))))
		if e := abs(dv - v); e > ulawMaxErr(v) {
			t.Fatalf("ulaw %d -> %d: error %d", v, dv, e)
		}
		da := int(AlawToLinear(LinearToAlaw(int16(v))))
		if e := abs(da - v); e > alawMaxErr(v) {
			t.Fatalf("alaw %d -> %d: error %d", v, da, e)
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// ulawMaxErr: the largest µ-law step is 1024 (16-bit scale), half of it
// plus the clipping region above 32124.
func ulawMaxErr(v int) int {
	if abs(v) > 32124 {
		return abs(v) - 32124 + 512
	}
	return 512 + 4
}

func alawMaxErr(v int) int {
	if abs(v) > 32256 {
		return abs(v) - 32256 + 512
	}
	return 512 + 8
}

func TestL16(t *testing.T) {
	in := []int16{0, 1, -1, 32767, -32768, 0x1234}
	buf := make([]byte, 2*len(in))
	if n := EncodeL16(buf, in); n != len(in) {
		t.Fatalf("encoded %d", n)
	}
	if buf[10] != 0x12 || buf[11] != 0x34 {
		t.Fatalf("not big-endian: % x", buf[10:])
	}
	out := make([]int16, len(in))
	if n := DecodeL16(out, buf[:len(buf)-1]); n != len(in)-1 {
		t.Fatalf("odd trailing byte: decoded %d", n)
	}
	DecodeL16(out, buf)
	for i := range in {
		if in[i] != out[i] {
			t.Fatalf("sample %d: %d != %d", i, out[i], in[i])
		}
	}
}

// TestG722MatchesFFmpeg decodes the G.722 RTP payloads of a real call
// (testdata/MANIFEST.md) and compares with ffmpeg's decoding of the same
// bytes, committed as a golden file.
func TestG722MatchesFFmpeg(t *testing.T) {
	in, err := os.ReadFile("testdata/g722-sip-rtp.g722")
	if err != nil {
		t.Fatal(err)
	}
	goldenBytes, err := os.ReadFile("testdata/g722-sip-rtp.ffmpeg.s16le")
	if err != nil {
		t.Fatal(err)
	}
	golden := make([]int16, len(goldenBytes)/2)
	for i := range golden {
		golden[i] = int16(binary.LittleEndian.Uint16(goldenBytes[2*i:]))
	}
	if len(golden) != 2*len(in) {
		t.Fatalf("golden has %d samples, want %d", len(golden), 2*len(in))
	}
	// Decode in RTP-sized pieces (160 octets = 20 ms) to exercise state
	// carried across calls.
	dec := NewG722Decoder()
	got := make([]int16, 0, len(golden))
	buf := make([]int16, 320)
	for off := 0; off < len(in); off += 160 {
		n := dec.Decode(buf, in[off:min(off+160, len(in))])
		got = append(got, buf[:n]...)
	}
	diffs, maxd := 0, 0
	for i := range golden {
		if d := abs(int(got[i]) - int(golden[i])); d != 0 {
			if diffs < 5 {
				t.Errorf("sample %d: got %d, ffmpeg %d", i, got[i], golden[i])
			}
			diffs++
			maxd = max(maxd, d)
		}
	}
	if diffs != 0 {
		t.Fatalf("%d of %d samples differ from ffmpeg, max diff %d", diffs, len(golden), maxd)
	}
	var energy float64
	for _, v := range got {
		energy += float64(v) * float64(v)
	}
	if energy == 0 {
		t.Fatal("decoded signal is silent; the test proves nothing")
	}
}

// TestG722EncodeDecodeSNR encodes a synthetic two-tone signal and decodes it
// again. G.722 at 64 kbit/s delivers well over 30 dB on such signals once
// the QMF delay (23 samples) is accounted for.
func TestG722EncodeDecodeSNR(t *testing.T) {
	const n = 16000 * 2
	in := make([]int16, n)
	for i := range in {
		ts := float64(i) / 16000
		// 440 Hz and 1.8 kHz in the low band, 5.2 kHz in the high band
		// (which only has 2 bits per sample, hence a modest threshold).
		in[i] = int16(6000*math.Sin(2*math.Pi*440*ts) + 4000*math.Sin(2*math.Pi*1800*ts) + 2000*math.Sin(2*math.Pi*5200*ts))
	}
	enc, dec := NewG722Encoder(), NewG722Decoder()
	code := make([]byte, n/2)
	out := make([]int16, n)
	for off := 0; off < n; off += 320 {
		m := enc.Encode(code[off/2:], in[off:off+320])
		dec.Decode(out[off:], code[off/2:off/2+m])
	}
	best, bestDelay := -100.0, 0
	for delay := 0; delay < 40; delay++ {
		var sig, noise float64
		for i := 4000; i < n-100; i++ {
			s := float64(in[i])
			e := float64(out[i+delay]) - s
			sig += s * s
			noise += e * e
		}
		if snr := 10 * math.Log10(sig/noise); snr > best {
			best, bestDelay = snr, delay
		}
	}
	t.Logf("G.722 round trip SNR %.1f dB at delay %d samples", best, bestDelay)
	if best < 30 {
		t.Fatalf("SNR %.1f dB < 30 dB", best)
	}
	// The two QMFs together delay by 22 samples with our alignment of
	// sample pairs; anything else means a filter is misaligned.
	if bestDelay != 22 {
		t.Errorf("codec delay %d, want 22", bestDelay)
	}
}

// TestG722Silence checks the octet we pad gaps with: after real speech, a
// run of G722Silence must bring the output to rest below -50 dBFS within
// 50 ms and keep it there (no drift), because its 4-bit adaptation value
// QQ4[15] is 0: the predictors stop moving. A run of 0xFA (what encoders
// send for silence) is shown to drift, which is why we do not use it.
func TestG722Silence(t *testing.T) {
	speech, err := os.ReadFile("testdata/g722-sip-rtp.g722")
	if err != nil {
		t.Fatal(err)
	}
	if g722QQ4[G722Silence&0x3F>>2] != 0 {
		t.Fatal("G722Silence adapts the low band")
	}
	fill := func(code byte) (peakAfter50ms int) {
		dec := NewG722Decoder()
		out := make([]int16, 2*16000)
		dec.Decode(out, speech[:16000]) // 2 s of the IVR prompt
		src := make([]byte, 8000)       // 1 s of fill
		for i := range src {
			src[i] = code
		}
		out = out[:16000]
		dec.Decode(out, src)
		for _, v := range out[800:] {
			peakAfter50ms = max(peakAfter50ms, abs(int(v)))
		}
		return peakAfter50ms
	}
	if p := fill(G722Silence); p > 104 { // 104/32768 = -50 dBFS
		t.Errorf("G722Silence fill peaks at %d after 50 ms", p)
	}
	if p := fill(0xFA); p <= 104 {
		t.Logf("0xFA fill stays at %d; the drift seen when choosing G722Silence did not occur", p)
	}
}

func TestG711MatchesSox(t *testing.T) {
	if _, err := exec.LookPath("sox"); err != nil {
		t.Skip("sox not installed; the table self-checks above still ran")
	}
	for _, name := range []string{"jfk_8k_ulaw.wav", "jfk_8k_alaw.wav"} {
		t.Run(name, func(t *testing.T) {
			want := soxS16(t, "testdata/"+name)
			raw, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			codes := raw[len(raw)-len(want):] // data chunk is last in these files
			got := make([]int16, len(codes))
			if strings.Contains(name, "ulaw") {
				DecodeUlaw(got, codes)
			} else {
				DecodeAlaw(got, codes)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("sample %d: got %d sox %d", i, got[i], want[i])
				}
			}
		})
	}
}

// soxS16 asks sox for the 16-bit samples of a file (no dither, native
// channels).
func soxS16(t *testing.T, path string) []int16 {
	t.Helper()
	out, err := exec.Command("sox", "-D", path, "-t", "s16", "-L", "-").Output()
	if err != nil {
		t.Fatalf("sox %s: %v", path, err)
	}
	s := make([]int16, len(out)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(out[2*i:]))
	}
	return s
}
