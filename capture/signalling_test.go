package capture

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/callvault/callvault/store"
)

// TestSignallingStored is issue 7's "the SIP messages of the call when it
// was captured from the network": an import of corpus captures with SIP
// over UDP and over TCP (reassembled) stores each recorded call's messages
// beside its recording, in order, with the addresses they travelled
// between. The expected messages and addresses are what tshark shows for
// the files (testdata/corpus/MANIFEST.md).
func TestSignallingStored(t *testing.T) {
	for _, c := range []struct {
		file, transport string
		calls           int
		// the first call's INVITE: from the caller to the callee
		callID, caller, callee string
		// the first call's messages, by start line (method or status and
		// CSeq method), and who sent each (c caller, e callee), as tshark
		// lists them
		want []string
		by   string
	}{
		{"sip-rtp-g722.pcap", "udp", 1, "1-2161@10.0.2.20", "10.0.2.20:5060", "10.0.2.15:5060",
			[]string{"INVITE", "100 INVITE", "200 INVITE", "ACK", "BYE", "200 BYE"}, "ceecec"},
		{"sip-tcp.pcap", "tcp", 0, "1-2550@127.0.0.1", "127.0.0.1:36959", "127.0.0.1:5060",
			[]string{"INVITE", "180 INVITE", "200 INVITE", "ACK", "BYE", "200 BYE"}, "ceecce"},
	} {
		t.Run(c.file, func(t *testing.T) {
			st, sums, stats := importInto(t, Config{}, "testdata/corpus/"+c.file)
			if c.calls > 0 && len(sums) != c.calls {
				t.Fatalf("%d calls recorded, want %d", len(sums), c.calls)
			}
			if n := stats.RecordErrors.Load() + stats.SignalDropped.Load(); n != 0 {
				t.Fatalf("%d record errors, %d messages dropped", stats.RecordErrors.Load(), stats.SignalDropped.Load())
			}
			found := false
			for _, s := range sums {
				msgs, err := st.Signalling(s.RecordingID)
				if err != nil {
					t.Fatal(err)
				}
				if s.CallID == "" || len(msgs) == 0 {
					t.Errorf("call %q (recording %s): %d SIP messages stored", s.CallID, s.RecordingID, len(msgs))
					continue
				}
				for i, m := range msgs {
					if m.Transport != c.transport || !bytes.Contains(m.Raw, []byte(s.CallID)) {
						t.Errorf("call %s message %d: %s, %q...: not this call's, or wrong transport", s.CallID, i, m.Transport, first(m.Raw))
					}
					if i > 0 && m.At.Before(msgs[i-1].At) {
						t.Errorf("call %s message %d at %v, before message %d at %v", s.CallID, i, m.At, i-1, msgs[i-1].At)
					}
				}
				if s.CallID != c.callID {
					continue
				}
				found = true
				var got []string
				for _, m := range msgs {
					got = append(got, startLine(t, m))
				}
				if strings.Join(got, ", ") != strings.Join(c.want, ", ") {
					t.Fatalf("call %s: messages %v, want %v", s.CallID, got, c.want)
				}
				caller, callee := netip.MustParseAddrPort(c.caller), netip.MustParseAddrPort(c.callee)
				for i, m := range msgs {
					from, to := callee, caller
					if c.by[i] == 'c' {
						from, to = caller, callee
					}
					if m.Src != from || m.Dst != to {
						t.Errorf("call %s %s: %v → %v, want %v → %v", s.CallID, c.want[i], m.Src, m.Dst, from, to)
					}
				}
				if !bytes.HasPrefix(msgs[0].Raw, []byte("INVITE sip:")) || !bytes.Contains(msgs[0].Raw, []byte("\r\n\r\nv=0")) {
					t.Errorf("stored INVITE is not the whole message: %q", msgs[0].Raw)
				}
			}
			if !found {
				t.Fatalf("call %s not recorded; summaries %+v", c.callID, sums)
			}
		})
	}
}

// startLine names a SIP message by its method, or status code and CSeq
// method.
func startLine(t *testing.T, m store.SignalMessage) string {
	t.Helper()
	line := first(m.Raw)
	if !strings.HasPrefix(line, "SIP/2.0 ") {
		return strings.Fields(line)[0]
	}
	code := strings.Fields(line)[1]
	for _, h := range strings.Split(string(m.Raw), "\r\n") {
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "CSeq") {
			f := strings.Fields(v)
			return code + " " + f[len(f)-1]
		}
	}
	t.Fatalf("response without CSeq: %q", m.Raw)
	return ""
}

func first(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\r\n")
	return line
}

// TestSignalLogGivesMemoryBack: after a burst of calls set up at once, the
// messages of calls forgotten without a recording are dropped, those still
// waiting keep their order, and the burst's buffer goes back to the heap
// (at 10,000 calls it is tens of megabytes).
func TestSignalLogGivesMemoryBack(t *testing.T) {
	e := New(Config{}, StoreSink(testStore(t)))
	ap := netip.MustParseAddrPort("192.0.2.1:5060")
	raw := bytes.Repeat([]byte("x"), 1000)
	e.mu.Lock()
	waiting := e.newCall(0, "waiting")
	var gone []*call
	for i := 0; i < 1000; i++ {
		c := e.newCall(0, "gone")
		gone = append(gone, c)
		e.noteSignal(c, 0, ap, ap, raw, false)
		if i%100 == 0 {
			e.noteSignal(waiting, int64(i), ap, ap, []byte("INVITE "+strconv.Itoa(i)), false)
		}
	}
	burst := cap(e.sigBuf)
	e.mu.Unlock()
	for _, c := range gone {
		e.finish(c) // forgotten without a recording
	}
	e.flushMu.Lock()
	e.handSignals()
	e.flushMu.Unlock()
	if len(e.sigLog) != 10 || cap(e.sigBuf) >= releaseSignalLog || burst < releaseSignalLog {
		t.Fatalf("%d messages left, buffer %d bytes (burst %d)", len(e.sigLog), cap(e.sigBuf), burst)
	}
	for i, en := range e.sigLog {
		if got, want := string(e.sigBuf[en.off:en.off+en.n]), "INVITE "+strconv.Itoa(i*100); en.c != waiting || got != want {
			t.Errorf("message %d: %q of %p, want %q of the waiting call", i, got, en.c, want)
		}
	}
	if n := e.stats.SignalDropped.Load(); n != 0 {
		t.Errorf("%d messages counted as dropped for lack of room", n)
	}
}
