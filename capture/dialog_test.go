package capture

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

const (
	alice = "10.0.0.1"   // a phone on the local network
	bob   = "192.0.2.50" // the other side, through the trunk
	carol = "192.0.2.77"
)

func localCfg() Config {
	return Config{LocalNets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, RTPTimeout: 2 * time.Second}
}

// setUp plays INVITE / 180 / 200 / ACK between alice (caller) and bob.
func setUp(s *sim, callID string) (a, b *rtpStream) {
	s.sip(alice+":5060", bob+":5060", invite(callID, "at", "1001", "+4930999", alice, 20000, "sendrecv"))
	s.advance(50 * time.Millisecond)
	s.sip(bob+":5060", alice+":5060", response(180, "Ringing", "INVITE", 1, callID, "at", "1001", "+4930999", "bt", "", 0, ""))
	s.advance(time.Second)
	s.sip(bob+":5060", alice+":5060", response(200, "OK", "INVITE", 1, callID, "at", "1001", "+4930999", "bt", bob, 30000, "sendrecv"))
	s.advance(10 * time.Millisecond)
	s.sip(alice+":5060", bob+":5060", request("ACK", 1, callID, "at", "1001", "+4930999", "bt", ""))
	a = &rtpStream{src: alice + ":20000", dst: bob + ":30000", ssrc: 0xA, fill: 0x11}
	b = &rtpStream{src: bob + ":30000", dst: alice + ":20000", ssrc: 0xB, fill: 0x22}
	return a, b
}

func bye(s *sim, callID string) {
	s.sip(alice+":5060", bob+":5060", request("BYE", 2, callID, "at", "1001", "+4930999", "bt", ""))
	s.advance(10 * time.Millisecond)
	s.sip(bob+":5060", alice+":5060", response(200, "OK", "BYE", 2, callID, "at", "1001", "+4930999", "bt", "", 0, ""))
}

func count(b []byte, v byte) int {
	n := 0
	for _, x := range b {
		if x == v {
			n++
		}
	}
	return n
}

func TestCallStereoLocalLeft(t *testing.T) {
	s := newSim(t, localCfg())
	a, b := setUp(s, "call-1")
	s.talk(3*time.Second, a, b)
	bye(s, "call-1")
	recs := s.close()
	if len(recs) != 1 {
		t.Fatalf("%d recordings, want 1", len(recs))
	}
	r := recs[0]
	if r.Direction != meta.DirOutgoing || r.LocalParty.Number != "1001" || r.RemoteParty.Number != "+4930999" || r.SIPCallIDIngress != "call-1" {
		t.Fatalf("metadata: dir %s local %+v remote %+v call %q", r.Direction, r.LocalParty, r.RemoteParty, r.SIPCallIDIngress)
	}
	if r.Duration < 2900 || r.Duration > 3300 {
		t.Errorf("duration %d ms, want about 3000", r.Duration)
	}
	left, right := s.channels(r.ID)
	if count(left, 0x11) < 140 || count(right, 0x22) < 140 || count(left, 0x22) > 0 || count(right, 0x11) > 0 {
		t.Fatalf("channels: left has alice %d bob %d, right has bob %d alice %d", count(left, 0x11), count(left, 0x22), count(right, 0x22), count(right, 0x11))
	}
	if q := r.Quality; len(q) != 2 || q[0].PacketsReceived != 150 || q[1].PacketsReceived != 150 || q[0].LossPct != 0 {
		t.Errorf("quality %+v", r.Quality)
	}

	// The same call seen from the other side: bob is local, right and left swap.
	s2 := newSim(t, Config{LocalNets: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	a, b = setUp(s2, "call-2")
	s2.talk(time.Second, a, b)
	bye(s2, "call-2")
	r = s2.close()[0]
	left, right = s2.channels(r.ID)
	if r.Direction != meta.DirIncoming || r.LocalParty.Number != "+4930999" || count(left, 0x22) < 40 || count(right, 0x11) < 40 {
		t.Fatalf("bob local: dir %s local %+v, left bob %d right alice %d", r.Direction, r.LocalParty, count(left, 0x22), count(right, 0x11))
	}
}

func TestHoldAndReinvite(t *testing.T) {
	s := newSim(t, localCfg())
	a, b := setUp(s, "call-h")
	s.talk(time.Second, a, b)
	// alice holds: sendonly; bob stops sending. Longer than the RTP timeout:
	// a held call must not end.
	reinvite := strings.Replace(invite("call-h", "at", "1001", "+4930999", alice, 20000, "sendonly"), "CSeq: 1 INVITE", "CSeq: 2 INVITE", 1)
	reinvite = strings.Replace(reinvite, "To: <sip:+4930999@example.com>", "To: <sip:+4930999@example.com>;tag=bt", 1)
	s.sip(alice+":5060", bob+":5060", reinvite)
	s.sip(bob+":5060", alice+":5060", response(200, "OK", "INVITE", 2, "call-h", "at", "1001", "+4930999", "bt", bob, 30000, "recvonly"))
	s.talk(5*time.Second, a)
	// Resume, and bob moves his media to a new port.
	reinvite = strings.Replace(invite("call-h", "at", "1001", "+4930999", alice, 20000, "sendrecv"), "CSeq: 1 INVITE", "CSeq: 3 INVITE", 1)
	reinvite = strings.Replace(reinvite, "To: <sip:+4930999@example.com>", "To: <sip:+4930999@example.com>;tag=bt", 1)
	s.sip(alice+":5060", bob+":5060", reinvite)
	s.sip(bob+":5060", alice+":5060", response(200, "OK", "INVITE", 3, "call-h", "at", "1001", "+4930999", "bt", bob, 30002, "sendrecv"))
	a.dst = bob + ":30002"
	b2 := &rtpStream{src: bob + ":30002", dst: alice + ":20000", ssrc: 0xB2, fill: 0x22}
	s.talk(time.Second, a, b2)
	bye(s, "call-h")
	recs := s.close()
	if len(recs) != 1 {
		t.Fatalf("%d recordings, want 1 (a held call must not time out)", len(recs))
	}
	r := recs[0]
	var holds []string
	for _, bm := range r.Bookmarks {
		if bm.Type == meta.BookmarkHold {
			holds = append(holds, bm.Label)
		}
	}
	if strings.Join(holds, ",") != "hold,resume" {
		t.Errorf("hold bookmarks %v, want hold,resume", holds)
	}
	_, right := s.channels(r.ID)
	if n := count(right[len(right)-50:], 0x22); n < 40 {
		t.Errorf("bob's audio after he moved ports: %d of 50 ticks", n)
	}
	if r.Duration < 6800 {
		t.Errorf("duration %d ms, want about 7000 (hold included)", r.Duration)
	}
}

func TestCancelledAndFailedCallsLeaveNoRecording(t *testing.T) {
	s := newSim(t, localCfg())
	// Ringing, then cancelled.
	s.sip(alice+":5060", bob+":5060", invite("c-cancel", "at", "1001", "+4930999", alice, 20000, "sendrecv"))
	s.sip(bob+":5060", alice+":5060", response(180, "Ringing", "INVITE", 1, "c-cancel", "at", "1001", "+4930999", "bt", "", 0, ""))
	s.advance(2 * time.Second)
	s.sip(alice+":5060", bob+":5060", request("CANCEL", 1, "c-cancel", "at", "1001", "+4930999", "", ""))
	s.sip(bob+":5060", alice+":5060", response(487, "Request Terminated", "INVITE", 1, "c-cancel", "at", "1001", "+4930999", "bt", "", 0, ""))
	// Early media (183 with SDP and an announcement), then 486 Busy.
	s.advance(time.Second)
	s.sip(alice+":5060", bob+":5060", invite("c-busy", "at2", "1001", "+4930998", alice, 20010, "sendrecv"))
	s.sip(bob+":5060", alice+":5060", response(183, "Session Progress", "INVITE", 1, "c-busy", "at2", "1001", "+4930998", "bt2", bob, 30010, "sendrecv"))
	ann := &rtpStream{src: bob + ":30010", dst: alice + ":20010", ssrc: 0xE, fill: 0x33}
	s.talk(time.Second, ann)
	s.sip(bob+":5060", alice+":5060", response(486, "Busy Here", "INVITE", 1, "c-busy", "at2", "1001", "+4930998", "bt2", "", 0, ""))
	s.talk(200*time.Millisecond, ann) // trailing RTP after the failure
	s.advance(10 * time.Second)
	if recs := s.close(); len(recs) != 0 {
		t.Fatalf("%d recordings for calls never answered: %+v", len(recs), recs)
	}
	if s.e.Stats().AfterEnd.Load() == 0 {
		t.Error("RTP after the failure was not counted as after-end")
	}
}

func TestEarlyMediaThenAnswerIsKept(t *testing.T) {
	s := newSim(t, localCfg())
	s.sip(alice+":5060", bob+":5060", invite("c-early", "at", "1001", "+4930999", alice, 20000, "sendrecv"))
	s.sip(bob+":5060", alice+":5060", response(183, "Session Progress", "INVITE", 1, "c-early", "at", "1001", "+4930999", "bt", bob, 30000, "sendrecv"))
	b := &rtpStream{src: bob + ":30000", dst: alice + ":20000", ssrc: 0xB, fill: 0x44}
	s.talk(time.Second, b)
	s.sip(bob+":5060", alice+":5060", response(200, "OK", "INVITE", 1, "c-early", "at", "1001", "+4930999", "bt", bob, 30000, "sendrecv"))
	a := &rtpStream{src: alice + ":20000", dst: bob + ":30000", ssrc: 0xA, fill: 0x11}
	b.fill = 0x22
	s.talk(time.Second, a, b)
	bye(s, "c-early")
	recs := s.close()
	if len(recs) != 1 {
		t.Fatalf("%d recordings", len(recs))
	}
	_, right := s.channels(recs[0].ID)
	if count(right, 0x44) < 40 || count(right, 0x22) < 40 {
		t.Fatalf("early media %d ticks, answer %d ticks: both must be in the recording", count(right, 0x44), count(right, 0x22))
	}
}

func TestDTMFBookmarks(t *testing.T) {
	s := newSim(t, localCfg())
	a, b := setUp(s, "c-dtmf")
	s.talk(time.Second, a, b)
	s.dtmf(a, 5) // RFC 4733 digit 5 from alice at ~1 s
	s.talk(time.Second, a, b)
	info := request("INFO", 2, "c-dtmf", "at", "1001", "+4930999", "bt", "Content-Type: application/dtmf-relay\n")
	info = strings.Replace(info, "Content-Length: 0\n\n", "Content-Length: {len}\n\nSignal=#\nDuration=160\n", 1)
	s.sip(alice+":5060", bob+":5060", info)
	s.talk(time.Second, a, b)
	bye(s, "c-dtmf")
	r := s.close()[0]
	var got []string
	for _, bm := range r.Bookmarks {
		if bm.Type == meta.BookmarkDTMF {
			got = append(got, bm.Label[:1]+"@"+(time.Duration(bm.OffsetMs)*time.Millisecond/(100*time.Millisecond)*(100*time.Millisecond)).String())
			if bm.OffsetMs < 900 || bm.OffsetMs > 2200 {
				t.Errorf("DTMF %q at %d ms", bm.Label, bm.OffsetMs)
			}
		}
	}
	if len(got) != 2 || got[0][0] != '5' || got[1][0] != '#' {
		t.Fatalf("DTMF bookmarks %v, want 5 (RFC 4733) then # (SIP INFO)", got)
	}
}

func TestCallWithoutBYEEndsOnRTPTimeout(t *testing.T) {
	s := newSim(t, localCfg())
	a, b := setUp(s, "c-nobye")
	s.talk(2*time.Second, a, b)
	// Nothing more for this call; another call's traffic moves the clock.
	a2, b2 := setUp(s, "c-other")
	s.talk(4*time.Second, a2, b2)
	sums := s.e.Summaries()
	if len(sums) != 1 || sums[0].CallID != "c-nobye" || sums[0].EndReason != "rtp timeout" {
		t.Fatalf("after the timeout: %+v", sums)
	}
	if sums[0].DurationMs < 1900 || sums[0].DurationMs > 2400 {
		t.Errorf("duration %d ms, want about 2000 (not counting the timeout)", sums[0].DurationMs)
	}
	bye(s, "c-other")
	if n := len(s.close()); n != 2 {
		t.Fatalf("%d recordings", n)
	}
}

// TestRTPBeforeSIP: capture starts mid-call (no INVITE seen); the RTP is
// recorded without signalling and takes the dialog's identity when an
// in-dialog re-INVITE names its endpoints.
func TestRTPBeforeSIP(t *testing.T) {
	s := newSim(t, localCfg())
	a := &rtpStream{src: alice + ":20000", dst: bob + ":30000", ssrc: 0xA, fill: 0x11}
	b := &rtpStream{src: bob + ":30000", dst: alice + ":20000", ssrc: 0xB, fill: 0x22}
	s.talk(2*time.Second, a, b)
	reinvite := strings.Replace(invite("c-late", "at", "1001", "+4930999", alice, 20000, "sendrecv"), "CSeq: 1 INVITE", "CSeq: 7 INVITE", 1)
	reinvite = strings.Replace(reinvite, "To: <sip:+4930999@example.com>", "To: <sip:+4930999@example.com>;tag=bt", 1)
	s.sip(alice+":5060", bob+":5060", reinvite)
	s.talk(time.Second, a, b)
	bye(s, "c-late")
	recs := s.close()
	if len(recs) != 1 {
		t.Fatalf("%d recordings, want 1", len(recs))
	}
	r := recs[0]
	if r.SIPCallIDIngress != "c-late" || r.LocalParty.Number != "1001" || !strings.Contains(r.Technology, "SIP") {
		t.Fatalf("the recording did not take the dialog's identity: %+v", r)
	}
	left, right := s.channels(r.ID)
	if count(left, 0x11) < 130 || count(right, 0x22) < 130 {
		t.Fatalf("left alice %d right bob %d", count(left, 0x11), count(right, 0x22))
	}
	if sums := s.e.Summaries(); len(sums) != 1 || sums[0].EndReason != "bye" {
		t.Fatalf("summaries %+v", sums)
	}
}

// TestTransferLinksRecordings: an attended transfer (REFER with Replaces,
// then an INVITE with Replaces) links the recordings of the calls.
func TestTransferLinksRecordings(t *testing.T) {
	s := newSim(t, localCfg())
	a, b := setUp(s, "c-first")
	s.talk(time.Second, a, b)
	// alice consults carol.
	s.sip(alice+":5060", carol+":5060", strings.ReplaceAll(invite("c-consult", "at3", "1001", "+4930777", alice, 20004, "sendrecv"), "+4930777@example.com", "+4930777@example.com"))
	s.sip(carol+":5060", alice+":5060", response(200, "OK", "INVITE", 1, "c-consult", "at3", "1001", "+4930777", "ct", carol, 40000, "sendrecv"))
	c1 := &rtpStream{src: alice + ":20004", dst: carol + ":40000", ssrc: 0xC1, fill: 0x55}
	c2 := &rtpStream{src: carol + ":40000", dst: alice + ":20004", ssrc: 0xC2, fill: 0x66}
	s.talk(time.Second, a, b, c1, c2)
	// alice transfers bob to carol.
	refer := request("REFER", 2, "c-first", "at", "1001", "+4930999", "bt",
		"Refer-To: <sip:+4930777@example.com?Replaces=c-consult%3Bto-tag%3Dct%3Bfrom-tag%3Dat3>\nReferred-By: <sip:1001@example.com>\n")
	s.sip(alice+":5060", bob+":5060", refer)
	s.talk(200*time.Millisecond, a, b, c1, c2)
	newInv := strings.Replace(invite("c-new", "bt9", "+4930999", "+4930777", bob, 30020, "sendrecv"), "Contact:", "Replaces: c-consult;to-tag=ct;from-tag=at3\nContact:", 1)
	s.sip(bob+":5060", carol+":5060", newInv)
	s.sip(carol+":5060", bob+":5060", response(200, "OK", "INVITE", 1, "c-new", "bt9", "+4930999", "+4930777", "ct9", carol, 40002, "sendrecv"))
	d1 := &rtpStream{src: bob + ":30020", dst: carol + ":40002", ssrc: 0xD1, fill: 0x22}
	d2 := &rtpStream{src: carol + ":40002", dst: bob + ":30020", ssrc: 0xD2, fill: 0x66}
	s.talk(time.Second, d1, d2)
	recs := s.close()
	if len(recs) != 3 {
		t.Fatalf("%d recordings, want 3", len(recs))
	}
	byCall := map[string]meta.Recording{}
	for _, r := range recs {
		byCall[r.SIPCallIDIngress] = r
	}
	related := func(a, b string) bool {
		for _, rel := range byCall[a].Related {
			if rel.ID == byCall[b].ID {
				return true
			}
		}
		return false
	}
	if !related("c-new", "c-consult") || !related("c-consult", "c-new") {
		t.Errorf("the INVITE with Replaces does not link the new call to the consultation: %+v", byCall["c-new"].Related)
	}
	var transfer bool
	for _, bm := range byCall["c-first"].Bookmarks {
		transfer = transfer || bm.Type == meta.BookmarkTransfer
	}
	if !transfer {
		t.Error("no transfer bookmark on the transferred call")
	}
}
