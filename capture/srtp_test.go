package capture

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/pion/srtp/v3"
)

// TestSRTPWithSDESKeys: the SDP of both parties carries a=crypto (RFC 4568);
// their media is SRTP. The recording holds the decrypted audio.
func TestSRTPWithSDESKeys(t *testing.T) {
	s := newSim(t, localCfg())
	keyA := []byte("0123456789abcdefABCDEFGHIJKLMN") // 16-byte key || 14-byte salt
	keyB := []byte("fedcba9876543210NMLKJIHGFEDCBA")
	crypto := func(k []byte) string {
		return "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(k) + "\n"
	}
	inv := strings.Replace(invite("c-srtp", "at", "1001", "+4930999", alice, 20000, "sendrecv"), "RTP/AVP", "RTP/SAVP", 1)
	s.sip(alice+":5060", bob+":5060", inv+crypto(keyA))
	ok := strings.Replace(response(200, "OK", "INVITE", 1, "c-srtp", "at", "1001", "+4930999", "bt", bob, 30000, "sendrecv"), "RTP/AVP", "RTP/SAVP", 1)
	s.sip(bob+":5060", alice+":5060", ok+crypto(keyB))
	s.sip(alice+":5060", bob+":5060", request("ACK", 1, "c-srtp", "at", "1001", "+4930999", "bt", ""))

	enc := func(k []byte) *srtp.Context {
		c, err := srtp.CreateContext(k[:16], k[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca, cb := enc(keyA), enc(keyB)
	a := &rtpStream{src: alice + ":20000", dst: bob + ":30000", ssrc: 0xA, fill: 0x11}
	b := &rtpStream{src: bob + ":30000", dst: alice + ":20000", ssrc: 0xB, fill: 0x22}
	pl := make([]byte, 160)
	for i := 0; i < 100; i++ {
		for _, x := range []struct {
			r *rtpStream
			c *srtp.Context
		}{{a, ca}, {b, cb}} {
			for j := range pl {
				pl[j] = x.r.fill
			}
			p := make([]byte, 12+160)
			p[0], p[1] = 0x80, 0
			p[2], p[3] = byte(x.r.seq>>8), byte(x.r.seq)
			p[4], p[5], p[6], p[7] = byte(x.r.ts>>24), byte(x.r.ts>>16), byte(x.r.ts>>8), byte(x.r.ts)
			p[11] = byte(x.r.ssrc)
			copy(p[12:], pl)
			out, err := x.c.EncryptRTP(nil, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out[12:]), string(pl[:16])) {
				t.Fatal("the test's SRTP left the payload in clear")
			}
			s.udp(x.r.src, x.r.dst, out)
			x.r.seq++
			x.r.ts += 160
		}
		s.advance(20 * time.Millisecond)
	}
	bye(s, "c-srtp")
	recs := s.close()
	if len(recs) != 1 {
		t.Fatalf("%d recordings", len(recs))
	}
	left, right := s.channels(recs[0].ID)
	if count(left, 0x11) < 90 || count(right, 0x22) < 90 {
		t.Fatalf("decrypted audio: left alice %d, right bob %d of %d ticks (SRTP errors %d)", count(left, 0x11), count(right, 0x22), len(left), s.e.Stats().SRTPErrors.Load())
	}
}
