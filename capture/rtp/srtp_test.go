package rtp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/callvault/callvault/store/audio"
)

const aliceKey = "inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS" // testdata/MANIFEST.md

func TestParseSDESInline(t *testing.T) {
	if k, err := ParseSDESInline(aliceKey + "|2^20|1:4"); err != nil || len(k) != 30 {
		t.Fatalf("%d bytes, %v", len(k), err)
	}
	for _, bad := range []string{"9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS", "inline:!!!", "inline:AAAA"} {
		if _, err := ParseSDESInline(bad); !errors.Is(err, ErrSRTPKey) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if _, err := NewDecrypter("F8_128_HMAC_SHA1_80", make([]byte, 30)); !errors.Is(err, ErrSRTPKey) {
		t.Errorf("unknown suite: %v", err)
	}
	if _, err := NewDecrypter(SuiteAES128HMACSHA1_80, make([]byte, 29)); !errors.Is(err, ErrSRTPKey) {
		t.Errorf("short key: %v", err)
	}
}

// decryptAll decrypts every RTP datagram of a capture; it fails the test
// if any authentication tag does not verify.
func decryptAll(t testing.TB, path, suite, key string) (pkts []Packet, arrivals []int64) {
	t.Helper()
	k, err := ParseSDESInline(key)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecrypter(suite, k)
	if err != nil {
		t.Fatal(err)
	}
	for _, dg := range readUDP(t, path) {
		if !LooksLikeRTP(dg.Payload) {
			continue
		}
		var p Packet
		out, err := d.DecryptRTP(make([]byte, len(dg.Payload)), dg.Payload, &p)
		if err != nil {
			t.Fatalf("packet %d: %v", len(pkts), err)
		}
		if &out[0] == &dg.Payload[0] {
			t.Fatal("decrypted in place over the capture buffer")
		}
		pkts = append(pkts, p)
		arrivals = append(arrivals, dg.Arrival)
	}
	return pkts, arrivals
}

// renderRMS puts decrypted packets through Playout and a grid file and
// returns the RMS of the rendered PCM (dBFS) and the fraction of present
// ticks.
func renderRMS(t *testing.T, codec audio.Codec, rate int, pkts []Packet, arrivals []int64) (float64, float64) {
	pl, err := NewPlayout(PlayoutConfig{Codec: codec, PayloadType: pkts[0].PayloadType, Start: arrivals[0]})
	if err != nil {
		t.Fatal(err)
	}
	var grid bytes.Buffer
	gw, err := audio.NewGridWriter(&grid, audio.GridConfig{Channels: []audio.GridChannel{{Codec: codec, SampleRate: rate, ClockRate: 8000}}})
	if err != nil {
		t.Fatal(err)
	}
	tick := make([]byte, pl.TickBytes())
	pull := func(now int64) {
		for !pl.Drained() {
			f, ok := pl.NextTick(tick, now)
			if !ok {
				return
			}
			if err := gw.WriteTick([]audio.TickFlag{f}, [][]byte{tick}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range pkts {
		pull(arrivals[i])
		s := Slot{Arrival: arrivals[i], TS: pkts[i].Timestamp, SSRC: pkts[i].SSRC, Seq: pkts[i].SequenceNumber, PT: pkts[i].PayloadType, Len: uint16(len(pkts[i].Payload))}
		pl.Write(&s, pkts[i].Payload)
	}
	pl.Close()
	pull(0)
	st := pl.Stats()
	src, err := audio.Open(bytes.NewReader(grid.Bytes()), int64(grid.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var pcm bytes.Buffer
	if err := src.Render(context.Background(), &pcm, audio.RenderOptions{Format: audio.OutputPCM16, Layout: audio.LayoutMono}); err != nil {
		t.Fatal(err)
	}
	var sum float64
	b := pcm.Bytes()
	for i := 0; i+1 < len(b); i += 2 {
		v := float64(int16(binary.LittleEndian.Uint16(b[i:])))
		sum += v * v
	}
	rms := math.Sqrt(sum / float64(len(b)/2))
	return 20 * math.Log10(rms/32768), float64(st.TicksPresent) / float64(st.TicksPresent+st.TicksFilled+st.TicksAbsent)
}

// TestSRTPAlice decrypts rtpproxy's alice_srtp.pcap (BSD-2-Clause, copied
// into testdata): every one of the 1556 packets must authenticate, carry
// 160 bytes of G.722 (20 ms), and the rendered audio must be speech-like
// (well above silence, not clipped noise). With a wrong key nothing
// authenticates.
func TestSRTPAlice(t *testing.T) {
	pkts, arr := decryptAll(t, "testdata/alice_srtp.pcap", SuiteAES128HMACSHA1_80, aliceKey)
	if len(pkts) != 1556 {
		t.Fatalf("%d packets", len(pkts))
	}
	for i, p := range pkts {
		if p.PayloadType != 9 || len(p.Payload) != 160 || p.SSRC != 0x2A1AD144 {
			t.Fatalf("packet %d: PT %d, %d bytes", i, p.PayloadType, len(p.Payload))
		}
	}
	db, present := renderRMS(t, audio.CodecG722, 16000, pkts, arr)
	t.Logf("alice: %d packets, rendered RMS %.1f dBFS, %.0f%% ticks present", len(pkts), db, present*100)
	if db < -45 || db > -3 || present < 0.95 {
		t.Errorf("RMS %.1f dBFS, present %.2f", db, present)
	}

	wrong := []byte(aliceKey)
	wrong[10] ^= 1
	k, _ := ParseSDESInline(string(wrong))
	d, _ := NewDecrypter(SuiteAES128HMACSHA1_80, k)
	var p Packet
	for _, dg := range readUDP(t, "testdata/alice_srtp.pcap")[:20] {
		if _, err := d.DecryptRTP(nil, dg.Payload, &p); !errors.Is(err, ErrSRTPAuth) {
			t.Fatalf("wrong key: err = %v", err)
		}
	}
}

// TestSRTPMarseillaise is a development check on the marseillaise capture
// (no licence upstream: read from the shared corpus, never copied).
func TestSRTPMarseillaise(t *testing.T) {
	path := "/work/shared/corpus/pcaps/wireshark-samples/marseillaise-srtp.pcap"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("corpus file not present (dev check only, file has no licence): %v", err)
	}
	pkts, arr := decryptAll(t, path, SuiteAES128HMACSHA1_80, "inline:aSBrbm93IGFsbCB5b3VyIGxpdHRsZSBzZWNyZXRz")
	if len(pkts) != 11888 {
		t.Fatalf("%d packets", len(pkts))
	}
	db, present := renderRMS(t, audio.CodecPCMA, 8000, pkts, arr)
	t.Logf("marseillaise: %d packets, RMS %.1f dBFS, %.0f%% present", len(pkts), db, present*100)
	if db < -40 || present < 0.95 {
		t.Errorf("RMS %.1f dBFS, present %.2f", db, present)
	}
}

func BenchmarkSRTPDecrypt(b *testing.B) {
	k, _ := ParseSDESInline(aliceKey)
	ds := readUDP(b, filepath.Join("testdata", "alice_srtp.pcap"))
	dst := make([]byte, 1500)
	var p Packet
	b.ReportAllocs()
	i := 0
	var d *Decrypter
	for b.Loop() {
		// a fresh context per pass over the capture: pion's replay and
		// rollover state must see sequence numbers move forward
		if i%len(ds) == 0 {
			d, _ = NewDecrypter(SuiteAES128HMACSHA1_80, k)
		}
		if _, err := d.DecryptRTP(dst, ds[i%len(ds)].Payload, &p); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func TestSRTPDecryptNoAllocs(t *testing.T) {
	k, _ := ParseSDESInline(aliceKey)
	d, _ := NewDecrypter(SuiteAES128HMACSHA1_80, k)
	ds := readUDP(t, "testdata/alice_srtp.pcap")
	dst := make([]byte, 1500)
	var p Packet
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := d.DecryptRTP(dst, ds[i].Payload, &p); err != nil {
			t.Fatal(err)
		}
		i++
	}); n != 0 {
		t.Fatalf("%v allocs per decrypt", n)
	}
}
