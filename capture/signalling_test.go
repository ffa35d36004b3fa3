package capture

import (
	"bytes"
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/callvault/callvault/capture/synth"
	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/meta"
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

// sigCountSink counts AppendSignalling calls per recording and fails one
// that comes after the recording's seal.
type sigCountSink struct {
	Sink
	mu      sync.Mutex
	appends map[string]int
	msgs    map[string]int
	sealed  map[string]bool
	late    []string
}

func (s *sigCountSink) Create(ctx context.Context, rec meta.Recording, imported bool) (Recorder, error) {
	r, err := s.Sink.Create(ctx, rec, imported)
	if err != nil {
		return nil, err
	}
	return &sealNoting{r.(*store.Recorder), s}, nil
}

func (s *sigCountSink) AppendSignalling(id meta.ID, msgs ...store.SignalMessage) error {
	s.mu.Lock()
	s.appends[id]++
	s.msgs[id] += len(msgs)
	if s.sealed[id] {
		s.late = append(s.late, id)
	}
	s.mu.Unlock()
	return s.Sink.AppendSignalling(id, msgs...)
}

// sealNoting tells its sink when the recording is sealed.
type sealNoting struct {
	*store.Recorder
	s *sigCountSink
}

func (r *sealNoting) Close(ctx context.Context, f store.Final) (meta.Recording, error) {
	r.s.mu.Lock()
	r.s.sealed[r.ID()] = true
	r.s.mu.Unlock()
	return r.Recorder.Close(ctx, f)
}

// TestImportSignalsBeforeSeal: an import stores each recorded call's SIP
// messages while the recording is open (the store's cheap path): the
// setup once the recording exists, the teardown with the seal job, never
// after the seal; and every message the call had is there, in order:
// INVITE first, the BYE's answer last.
func TestImportSignalsBeforeSeal(t *testing.T) {
	st := testStore(t)
	sink := &sigCountSink{Sink: StoreSink(st), appends: map[string]int{}, msgs: map[string]int{}, sealed: map[string]bool{}}
	e := New(Config{}, sink)
	r := e.NewReader()
	if _, err := synth.Generate(synth.Config{Calls: 20, Duration: 10 * time.Second, Seed: 11}, func(ts time.Time, frame []byte) error {
		r.Handle(packet.LinkEthernet, ts, frame)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	sums := e.Summaries()
	if len(sums) != 20 {
		t.Fatalf("%d calls, want 20", len(sums))
	}
	if len(sink.late) > 0 {
		t.Errorf("appends after the seal: %v", sink.late)
	}
	for _, s := range sums {
		msgs, err := st.Signalling(s.RecordingID)
		if err != nil {
			t.Fatal(err)
		}
		if n := sink.appends[s.RecordingID]; n < 2 || n > 3 {
			t.Errorf("call %s: %d appends, want the setup's (one pass, or two if the ACK came a pass later) and the teardown's", s.CallID, n)
		}
		if len(msgs) < 4 || len(msgs) != sink.msgs[s.RecordingID] {
			t.Fatalf("call %s: %d messages stored, %d appended", s.CallID, len(msgs), sink.msgs[s.RecordingID])
		}
		if got := startLine(t, msgs[0]); got != "INVITE" {
			t.Errorf("call %s: first message %s", s.CallID, got)
		}
		if got := startLine(t, msgs[len(msgs)-1]); got != "200 BYE" {
			t.Errorf("call %s: last message %s", s.CallID, got)
		}
		for i, m := range msgs {
			if !bytes.Contains(m.Raw, []byte(s.CallID)) || (i > 0 && m.At.Before(msgs[i-1].At)) {
				t.Errorf("call %s message %d: not this call's, or out of order", s.CallID, i)
			}
		}
	}
}

// TestSignalsHandedEachPass: an import's call keeps none of its SIP: each
// pass hands what the log has for it to the store in one job, and what is
// still in the log when the call ends goes with the seal; everything in
// order, nothing twice.
func TestSignalsHandedEachPass(t *testing.T) {
	st := testStore(t)
	sink := &sigCountSink{Sink: StoreSink(st), appends: map[string]int{}, msgs: map[string]int{}, sealed: map[string]bool{}}
	e := New(Config{}, sink)
	rec, err := sink.Create(context.Background(), meta.Recording{Direction: meta.DirUnknown, Source: meta.SourceMirror, Channels: 2, File: meta.FileInfo{Format: meta.FormatGrid}}, true)
	if err != nil {
		t.Fatal(err)
	}
	p := &pendingRecorder{id: rec.ID()}
	p.ready(rec)
	p.r = rec
	ap := netip.MustParseAddrPort("192.0.2.1:5060")
	e.mu.Lock()
	c := e.newCall(0, "long")
	e.mu.Unlock()
	c.rec = &recording{r: p}
	const n, size = 50, 1000
	passes := 0
	for i := 0; i < n; i++ {
		raw := append([]byte("INFO "+strconv.Itoa(i)+" "), bytes.Repeat([]byte("x"), size)...)
		e.mu.Lock()
		e.noteSignal(c, int64(i), ap, ap, raw, false)
		e.mu.Unlock()
		if i%3 == 0 && i < n-4 { // the last four are still in the log at the seal
			e.flushMu.Lock()
			e.handSignals()
			e.flushMu.Unlock()
			passes++
			if left := len(e.sigLog); left != 0 {
				t.Fatalf("message %d: %d left in the log after a pass", i, left)
			}
		}
	}
	stored := sink.msgs[rec.ID()]
	if sink.appends[rec.ID()] != passes || stored != n-4 {
		t.Fatalf("%d appends of %d messages before the seal, want one a pass (%d) and %d", sink.appends[rec.ID()], stored, passes, n-4)
	}
	e.flushMu.Lock()
	rest := e.takeSignals(c)
	e.flushMu.Unlock()
	if len(rest) != 4 {
		t.Fatalf("%d messages for the seal, want 4", len(rest))
	}
	if err := sink.AppendSignalling(rec.ID(), rest...); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Close(context.Background(), store.Final{}); err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Signalling(rec.ID())
	if err != nil || len(msgs) != n {
		t.Fatalf("%d messages stored, %v", len(msgs), err)
	}
	for i, m := range msgs {
		if want := "INFO " + strconv.Itoa(i) + " "; !bytes.HasPrefix(m.Raw, []byte(want)) {
			t.Fatalf("message %d is %q", i, first(m.Raw)[:12])
		}
	}
	e.mu.Lock()
	left := len(e.sigLog)
	e.mu.Unlock()
	e.flushMu.Lock()
	e.handSignals() // the taken entries are dropped, not stored twice
	e.flushMu.Unlock()
	if left != 4 || len(e.sigLog) != 0 || sink.msgs[rec.ID()] != n {
		t.Fatalf("log had %d entries (want the 4 taken), has %d; %d messages appended", left, len(e.sigLog), sink.msgs[rec.ID()])
	}
}
