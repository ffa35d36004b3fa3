package store

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callvault/callvault/store/bundle"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/store/recfile"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// sipMsg builds a SIP message whose Call-ID names the recording and n, so
// a leak of it into any file on disk can be searched for.
func sipMsg(t0 time.Time, transport, src, dst, method, callID string, n int) SignalMessage {
	raw := fmt.Sprintf("%s sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/%s %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\nContent-Length: 0\r\n\r\n",
		method, strings.ToUpper(transport), src, callID, n, method)
	return SignalMessage{At: t0.Add(time.Duration(n) * time.Millisecond).UTC(), Transport: transport,
		Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), Raw: []byte(raw)}
}

func sameSignal(t *testing.T, what string, got, want []SignalMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.At.Equal(w.At) || g.Transport != w.Transport || g.Src != w.Src || g.Dst != w.Dst || !bytes.Equal(g.Raw, w.Raw) {
			t.Fatalf("%s: message %d is\n%+v\nwant\n%+v", what, i, g, w)
		}
	}
}

// TestSignallingStored: messages appended while a call is recorded and
// after it is sealed (a late BYE), from many goroutines at once across
// recordings, read back whole and in order; and no clear byte of any of
// them is on disk.
func TestSignallingStored(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	const recs, perRec = 6, 40
	ids := make([]string, recs)
	recorders := make([]*Recorder, recs)
	for i := range recs {
		r, err := s.Create(ctx, newRecording(t0.Add(time.Duration(i)*time.Minute), meta.FormatGrid))
		if err != nil {
			t.Fatal(err)
		}
		ids[i], recorders[i] = r.ID(), r
		if _, err := r.Write(signal(3000)); err != nil {
			t.Fatal(err)
		}
	}
	want := make([][]SignalMessage, recs)
	var wg sync.WaitGroup
	errs := make(chan error, recs)
	for i := range recs {
		transport, src, dst := "udp", "192.0.2.10:5060", "198.51.100.20:5060"
		if i%2 == 1 {
			transport, src, dst = "tcp", "[2001:db8::1]:5061", "[2001:db8::2]:5060"
		}
		for n := range perRec {
			want[i] = append(want[i], sipMsg(t0, transport, src, dst, "INFO", fmt.Sprintf("leakcheck-%d-%d@host", i, n), n))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Singles and a batch, so both paths interleave with the others.
			for n := 0; n < perRec-10; n++ {
				if err := s.AppendSignalling(ids[i], want[i][n]); err != nil {
					errs <- err
					return
				}
			}
			if _, err := recorders[i].Close(ctx, Final{}); err != nil {
				errs <- err
				return
			}
			errs <- s.AppendSignalling(ids[i], want[i][perRec-10:]...)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range ids {
		got, err := s.Signalling(id)
		if err != nil {
			t.Fatal(err)
		}
		sameSignal(t, id, got, want[i])
	}
	if got := s.Stats().SignalMessages.Load(); got != recs*perRec {
		t.Errorf("SignalMessages = %d, want %d", got, recs*perRec)
	}
	// A recording without messages has none, and no side file.
	r, err := s.Create(ctx, newRecording(t0, meta.FormatWAV))
	if err != nil {
		t.Fatal(err)
	}
	r.Write(signal(100))
	if _, err := r.Close(ctx, Final{}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Signalling(r.ID()); err != nil || len(got) != 0 {
		t.Fatalf("recording without messages: %d, %v", len(got), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	noClearText(t, dir, "leakcheck-", "sip:bob@example.com")
}

// noClearText fails if any file under dir contains one of the strings.
func noClearText(t *testing.T, dir string, needles ...string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s holds %q in clear", p, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("only %d files under %s: the check looked at nothing", files, dir)
	}
}

// TestSignallingTamper: a changed byte, swapped records and another
// recording's file are refused, naming the record; a torn tail (a crash
// mid-append) is ignored by reads and cut off by the next append.
func TestSignallingTamper(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	t0 := time.Now().UTC()
	mk := func() (string, []SignalMessage) {
		r, err := s.Create(ctx, newRecording(t0, meta.FormatWAV))
		if err != nil {
			t.Fatal(err)
		}
		r.Write(signal(100))
		if _, err := r.Close(ctx, Final{}); err != nil {
			t.Fatal(err)
		}
		var msgs []SignalMessage
		for n := range 3 {
			msgs = append(msgs, sipMsg(t0, "udp", "192.0.2.1:5060", "192.0.2.2:5060", "INVITE", r.ID(), n))
		}
		if err := s.AppendSignalling(r.ID(), msgs...); err != nil {
			t.Fatal(err)
		}
		return r.ID(), msgs
	}
	path := func(id string) string {
		rec, err := s.Meta().Recording(id)
		if err != nil {
			t.Fatal(err)
		}
		return s.signalPath(rec)
	}
	id, msgs := mk()
	orig, err := os.ReadFile(path(id))
	if err != nil {
		t.Fatal(err)
	}
	recLen := (len(orig) - sigHeaderSize) / 3 // the three records have the same length
	for _, c := range []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)-5] ^= 1; return b }, "record 2"},
		{"swapped records", func(b []byte) []byte {
			first := bytes.Clone(b[sigHeaderSize : sigHeaderSize+recLen])
			copy(b[sigHeaderSize:], b[sigHeaderSize+recLen:sigHeaderSize+2*recLen])
			copy(b[sigHeaderSize+recLen:], first)
			return b
		}, "record 0"},
		{"bad length", func(b []byte) []byte { b[sigHeaderSize] = 0xff; return b }, "length"},
		{"dropped middle record", func(b []byte) []byte {
			return append(b[:sigHeaderSize+recLen:sigHeaderSize+recLen], b[sigHeaderSize+2*recLen:]...)
		}, "record 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(path(id), c.edit(bytes.Clone(orig)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Signalling(id)
			if !errors.Is(err, ErrSignalling) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Signalling = %v, want ErrSignalling naming %q", err, c.want)
			}
		})
	}
	// Another recording's side file in its place.
	other, _ := mk()
	if err := os.WriteFile(path(id), mustRead(t, path(other)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Signalling(id); !errors.Is(err, ErrSignalling) || !strings.Contains(err.Error(), "header") {
		t.Fatalf("another recording's file: %v", err)
	}
	if err := s.AppendSignalling(id, msgs[0]); !errors.Is(err, ErrSignalling) {
		t.Fatalf("append to another recording's file: %v", err)
	}

	// Torn tail: the last record cut short.
	if err := os.WriteFile(path(id), orig[:len(orig)-7], 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Signalling(id)
	if err != nil {
		t.Fatal(err)
	}
	sameSignal(t, "torn tail", got, msgs[:2])
	late := sipMsg(t0, "udp", "192.0.2.2:5060", "192.0.2.1:5060", "BYE", id, 9)
	if err := s.AppendSignalling(id, late); err != nil {
		t.Fatal(err)
	}
	got, err = s.Signalling(id)
	if err != nil {
		t.Fatal(err)
	}
	sameSignal(t, "append after a torn tail", got, []SignalMessage{msgs[0], msgs[1], late})
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSignallingBadInput: messages that cannot be stored are refused with
// ErrSignalling, and an unknown recording with meta.ErrNotFound.
func TestSignallingBadInput(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	r, err := s.Create(ctx, newRecording(time.Now(), meta.FormatWAV))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx, Final{})
	good := sipMsg(time.Now(), "udp", "192.0.2.1:5060", "192.0.2.2:5060", "INVITE", "x", 0)
	for name, m := range map[string]SignalMessage{
		"transport":    {At: good.At, Transport: "sctp", Src: good.Src, Dst: good.Dst, Raw: good.Raw},
		"no source":    {At: good.At, Transport: "udp", Dst: good.Dst, Raw: good.Raw},
		"no message":   {At: good.At, Transport: "udp", Src: good.Src, Dst: good.Dst},
		"huge message": {At: good.At, Transport: "tcp", Src: good.Src, Dst: good.Dst, Raw: make([]byte, sigMaxRecord)},
	} {
		if err := s.AppendSignalling(r.ID(), good, m); !errors.Is(err, ErrSignalling) {
			t.Errorf("%s: %v, want ErrSignalling", name, err)
		}
	}
	if got, err := s.Signalling(r.ID()); err != nil || len(got) != 0 {
		t.Errorf("a refused batch stored %d messages (%v)", len(got), err)
	}
	if err := s.AppendSignalling("0198a6c1-0000-7000-8000-000000000000", good); !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("unknown recording: %v", err)
	}
}

// TestSignallingShredded: deleting and purging a recording destroy its
// messages with it: the side file is gone, its key with the recording's,
// and a copy kept aside cannot be read with anything the store still has.
func TestSignallingShredded(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	s := openStore(t, t.TempDir(), func(c *Config) { c.Now = func() time.Time { return now } })
	ctx := context.Background()
	if _, err := s.Apply(ctx, &meta.SetRetention{Days: 10}); err != nil {
		t.Fatal(err)
	}
	var recs []meta.Recording
	for i := range 2 {
		r, err := s.Create(ctx, newRecording(now.AddDate(0, 0, -20+i*15), meta.FormatWAV)) // one due, one not
		if err != nil {
			t.Fatal(err)
		}
		r.Write(signal(100))
		if err := s.AppendSignalling(r.ID(), sipMsg(now, "udp", "192.0.2.1:5060", "192.0.2.2:5060", "INVITE", r.ID(), i)); err != nil {
			t.Fatal(err)
		}
		rec, err := r.Close(ctx, Final{})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	due, kept := recs[0], recs[1]
	aside := mustRead(t, s.signalPath(due))
	if n, err := s.Purge(ctx, now, 0); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if kept2 := mustRead(t, s.signalPath(kept)); len(kept2) == 0 {
		t.Fatal("the recording not due lost its messages")
	}
	if _, err := os.Stat(s.signalPath(due)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("purged recording's side file: %v", err)
	}
	tomb, err := s.Meta().Recording(due.ID)
	if err != nil || tomb.Status != meta.StatusDeleted || len(tomb.File.WrappedDEK) != 0 {
		t.Fatalf("tombstone %+v, %v", tomb.File, err)
	}
	if _, err := s.Signalling(due.ID); !errors.Is(err, ErrNoFile) {
		t.Fatalf("Signalling of a purged recording: %v", err)
	}
	// The copy put aside does not open under the kept recording's key
	// either (nor under any other: the purged key is gone).
	aead, hdr, err := s.signalAEAD(kept)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readSignals(append(hdr, aside[sigHeaderSize:]...), hdr, aead); !errors.Is(err, ErrSignalling) {
		t.Fatalf("a purged recording's messages opened under another key: %v", err)
	}

	// Discarded (an unanswered call's early media): its messages go with it.
	r, err := s.Create(ctx, newRecording(now, meta.FormatGrid))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendSignalling(r.ID(), sipMsg(now, "udp", "192.0.2.1:5060", "192.0.2.2:5060", "INVITE", r.ID(), 0)); err != nil {
		t.Fatal(err)
	}
	early, err := s.Meta().Recording(r.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.signalPath(early)); err != nil {
		t.Fatal(err)
	}
	if err := r.Abort(ctx, "capture"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.signalPath(early)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("discarded recording's side file: %v", err)
	}

	if err := s.Delete(ctx, kept.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.signalPath(kept)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted recording's side file: %v", err)
	}
	if err := s.AppendSignalling(kept.ID, sipMsg(now, "udp", "192.0.2.1:5060", "192.0.2.2:5060", "BYE", "x", 1)); !errors.Is(err, ErrNoFile) {
		t.Fatalf("append to a deleted recording: %v", err)
	}
}

// TestSignallingArchived: a recording moved to the archive tier keeps its
// messages readable (the side file stays on the hot tier) and can still be
// appended to.
func TestSignallingArchived(t *testing.T) {
	e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
	ctx := context.Background()
	old, _ := e.record(t, tierNow.Add(-90*24*time.Hour), 1000)
	m := sipMsg(tierNow, "tcp", "192.0.2.1:5060", "192.0.2.2:5060", "INVITE", "arch", 0)
	if err := e.s.AppendSignalling(old.ID, m); err != nil {
		t.Fatal(err)
	}
	if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 1 {
		t.Fatalf("runOnce = %d, %v", moved, err)
	}
	e.onArchive(t, old)
	late := sipMsg(tierNow, "tcp", "192.0.2.2:5060", "192.0.2.1:5060", "BYE", "arch", 1)
	if err := e.s.AppendSignalling(old.ID, late); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.Signalling(old.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameSignal(t, "archived", got, []SignalMessage{m, late})
}

// TestExportSignalling: a bundle carries a captured call's SIP messages as
// text and as a pcap whose packets decode (IPv4 and IPv6, UDP and TCP) to
// the messages as stored, both listed in the manifest; the bundle
// verifies.
func TestExportSignalling(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	t0 := time.Date(2026, 4, 2, 9, 30, 0, 0, time.UTC)
	r, err := s.Create(ctx, newRecording(t0, meta.FormatWAV))
	if err != nil {
		t.Fatal(err)
	}
	r.Write(testWAV(8000, 800))
	msgs := []SignalMessage{
		sipMsg(t0, "udp", "192.0.2.1:5060", "192.0.2.2:5060", "INVITE", "call-1", 0),
		sipMsg(t0, "tcp", "[2001:db8::1]:5061", "[2001:db8::2]:5060", "INVITE", "call-1", 1),
		sipMsg(t0, "tcp", "[2001:db8::2]:5060", "[2001:db8::1]:5061", "ACK", "call-1", 2),
		sipMsg(t0, "tcp", "[2001:db8::1]:5061", "[2001:db8::2]:5060", "BYE", "call-1", 3),
		sipMsg(t0, "udp", "192.0.2.1:5060", "[2001:db8::2]:5060", "OPTIONS", "call-1", 4), // mixed families
	}
	// A large TCP message spans several synthesised segments.
	big := sipMsg(t0, "tcp", "[2001:db8::1]:5061", "[2001:db8::2]:5060", "MESSAGE", "call-1", 5)
	big.Raw = append(big.Raw, bytes.Repeat([]byte("x"), 150000)...)
	msgs = append(msgs, big)
	if err := s.AppendSignalling(r.ID(), msgs...); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Close(ctx, Final{}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	m, err := s.Export(ctx, &buf, []string{r.ID()}, "auditor", "")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := bundle.Verify(bytes.NewReader(buf.Bytes()), int64(buf.Len()), Fingerprint(s.PublicKey()))
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	br := m.Recordings[0]
	if br.SIPText == "" || br.SIPPcap == "" {
		t.Fatalf("manifest names no SIP files: %+v", br)
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Path] = true
	}
	if !listed[br.SIPText] || !listed[br.SIPPcap] {
		t.Fatalf("SIP files not in the manifest's file list")
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		f, err := zr.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	txt := string(read(br.SIPText))
	for _, want := range []string{
		"#1 2026-04-02T09:30:00Z udp 192.0.2.1:5060 -> 192.0.2.2:5060",
		"#3 2026-04-02T09:30:00.002Z tcp [2001:db8::2]:5060 -> [2001:db8::1]:5061",
		"ACK sip:bob@example.com SIP/2.0\r\n",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("sip.txt lacks %q:\n%.600s", want, txt)
		}
	}

	// The pcap: every packet decodes without error; UDP payloads and the
	// per-direction TCP streams give back the messages.
	pr, err := pcapgo.NewReader(bytes.NewReader(read(br.SIPPcap)))
	if err != nil {
		t.Fatal(err)
	}
	if pr.LinkType() != layers.LinkTypeRaw {
		t.Fatalf("link type %v", pr.LinkType())
	}
	var udp [][]byte
	streams := map[string][]byte{}
	nextSeq := map[string]uint32{}
	packets := 0
	for {
		data, ci, err := pr.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		packets++
		first := layers.LayerTypeIPv4
		if data[0]>>4 == 6 {
			first = layers.LayerTypeIPv6
		}
		p := gopacket.NewPacket(data, first, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("packet %d does not decode: %v", packets, el.Error())
		}
		if ci.Timestamp.Before(t0) {
			t.Errorf("packet %d at %v, before the call", packets, ci.Timestamp)
		}
		switch l := p.TransportLayer().(type) {
		case *layers.UDP:
			if err := verifyChecksum(p); err != nil {
				t.Errorf("packet %d: %v", packets, err)
			}
			udp = append(udp, l.Payload)
		case *layers.TCP:
			key := p.NetworkLayer().NetworkFlow().String() + " " + l.TransportFlow().String()
			if s, ok := nextSeq[key]; ok && s != l.Seq {
				t.Errorf("packet %d: TCP seq %d, want %d", packets, l.Seq, s)
			}
			nextSeq[key] = l.Seq + uint32(len(l.Payload))
			streams[key] = append(streams[key], l.Payload...)
		default:
			t.Fatalf("packet %d: transport %T", packets, l)
		}
	}
	if len(udp) != 2 || !bytes.Equal(udp[0], msgs[0].Raw) || !bytes.Equal(udp[1], msgs[4].Raw) {
		t.Errorf("UDP payloads do not give back the messages")
	}
	fwd := "2001:db8::1->2001:db8::2 5061->5060"
	if want := string(msgs[1].Raw) + string(msgs[3].Raw) + string(msgs[5].Raw); string(streams[fwd]) != want {
		t.Errorf("TCP stream %s: %d bytes, want %d", fwd, len(streams[fwd]), len(want))
	}
	if packets < 6+2 {
		t.Errorf("%d packets: the large message was not split", packets)
	}
	tsharkReadsSIP(t, read(br.SIPPcap), []string{"INVITE", "INVITE", "ACK", "BYE", "OPTIONS", "MESSAGE"})
}

// tsharkReadsSIP opens a pcap with Wireshark's tshark, when installed, and
// checks that it decodes the SIP requests named, in order (TCP messages
// reassembled across segments).
func tsharkReadsSIP(t *testing.T, pcap []byte, methods []string) {
	t.Helper()
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Logf("tshark not installed (Debian package tshark): sip.pcap was checked with gopacket only")
		return
	}
	p := filepath.Join(t.TempDir(), "sip.pcap")
	if err := os.WriteFile(p, pcap, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tshark, "-r", p, "-Y", "sip.Request-Line", "-T", "fields", "-e", "sip.Method").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, " ") {
			got = append(got, l)
		}
	}
	if strings.Join(got, ",") != strings.Join(methods, ",") {
		t.Errorf("tshark decodes the SIP methods %v, want %v\n%s", got, methods, out)
	}
}

// verifyChecksum recomputes a UDP packet's checksum by serialising it
// again with the checksum computed, and compares.
func verifyChecksum(p gopacket.Packet) error {
	u := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	want := u.Checksum
	c := *u
	if err := c.SetNetworkLayerForChecksum(p.NetworkLayer()); err != nil {
		return err
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, &c, gopacket.Payload(u.Payload)); err != nil {
		return err
	}
	if c.Checksum != want {
		return fmt.Errorf("UDP checksum %#04x, recomputed %#04x", want, c.Checksum)
	}
	return nil
}

// FuzzSignalRecords: a side file read back from disk is outside input
// (a damaged disk, a tampered copy): any bytes give messages or an error,
// never a panic. The records are sealed with a fixed key, so the fuzzer
// reaches the plaintext decoder through valid records too.
func FuzzSignalRecords(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	hdr := append([]byte(sigMagic), bytes.Repeat([]byte{1}, 16)...)
	seal := func(plains ...[]byte) []byte {
		b := bytes.Clone(hdr)
		for i, p := range plains {
			nonce := make([]byte, sigNonceSize)
			ct := aead.Seal(nil, nonce, p, sigAAD(hdr, uint64(i)))
			b = append(b, byte(0), byte(0), byte((len(ct)+sigNonceSize)>>8), byte(len(ct)+sigNonceSize))
			b = append(b, nonce...)
			b = append(b, ct...)
		}
		return b
	}
	m := sipMsg(time.Unix(1700000000, 0), "udp", "192.0.2.1:5060", "[2001:db8::1]:5060", "INVITE", "seed", 0)
	p, err := encodeSignal(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seal(p), p)
	f.Add(seal(p, p), []byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 6})
	f.Add(hdr, []byte{})
	f.Add([]byte("CVSIG"), bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, file, plain []byte) {
		msgs, err := readSignals(file, hdr, aead)
		if err == nil {
			for _, m := range msgs {
				if !m.Src.IsValid() || !m.Dst.IsValid() || len(m.Raw) == 0 {
					t.Fatalf("accepted a message with no addresses or payload: %+v", m)
				}
			}
		}
		// The plaintext decoder alone, and the round trip of what it accepts.
		dm, err := decodeSignal(plain)
		if err != nil {
			return
		}
		again, err := encodeSignal(dm)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", dm, err)
		}
		back, err := decodeSignal(again)
		if err != nil || back.Src != dm.Src || back.Dst != dm.Dst || !back.At.Equal(dm.At) || !bytes.Equal(back.Raw, dm.Raw) {
			t.Fatalf("round trip: %+v -> %+v (%v)", dm, back, err)
		}
	})
}

// BenchmarkAppendSignalling appends 800 bytes (an INVITE with SDP),
// messages 1 to 10 of a call. open: to a recording being written, as
// capture does, which finds the side file's end in the Recorder (a lookup
// of the open recording, deriving the signalling key, one write). sealed:
// to a sealed recording, which reads its metadata and scans its side file
// first (what every append did before the Recorder kept the end);
// x-sealed is sealed's time per append over open's in the same run.
// Creating and sealing the recordings is outside the timer.
func BenchmarkAppendSignalling(b *testing.B) {
	var nsOpen float64
	for _, mode := range []string{"open", "sealed"} {
		b.Run(mode, func(b *testing.B) {
			ns := benchAppendSignalling(b, mode == "sealed")
			if mode == "open" {
				nsOpen = ns
			} else if nsOpen > 0 {
				b.ReportMetric(ns/nsOpen, "x-open")
			}
		})
	}
}

func benchAppendSignalling(b *testing.B, sealed bool) float64 {
	s := openStore(b, b.TempDir())
	ctx := context.Background()
	t0 := time.Now()
	m := sipMsg(t0, "udp", "192.0.2.1:5060", "192.0.2.2:5060", "INVITE", "bench", 0)
	m.Raw = append(m.Raw, bytes.Repeat([]byte("a=rtpmap:0 PCMU/8000\r\n"), 30)...)
	b.ReportAllocs()
	b.SetBytes(int64(len(m.Raw)))
	var r *Recorder
	for i := range b.N {
		if i%10 == 0 {
			b.StopTimer()
			if r != nil && !sealed {
				r.Close(ctx, Final{})
			}
			var err error
			if r, err = s.Create(ctx, newRecording(t0, meta.FormatGrid)); err != nil {
				b.Fatal(err)
			}
			if sealed {
				if _, err := r.Close(ctx, Final{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
		if err := s.AppendSignalling(r.ID(), m); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if r != nil && !sealed {
		r.Close(ctx, Final{})
	}
	return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
}

// TestUnflushedCreateCommitsWhileWriting: an unflushed recording (an
// import) and a bulk one (an upload) take bytes and SIP messages while
// their create commit is still under way (the messages go through the open
// Recorder, not the metadata, which does not know the recording yet);
// Close and WaitCreated wait for that commit, so the seal never overtakes
// it. When the create commit fails, Close and WaitCreated report it and
// nothing is left: no file, no side file, no metadata, not counted as
// open; Abort after it has nothing to do.
func TestUnflushedCreateCommitsWhileWriting(t *testing.T) {
	for _, mode := range []string{"bulk", "unflushed"} {
		for _, refuse := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/refuse=%v", mode, refuse), func(t *testing.T) {
				testCreateCommitsWhileWriting(t, mode, refuse)
			})
		}
	}
}

func testCreateCommitsWhileWriting(t *testing.T, mode string, refuse bool) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	c := &slowCommitter{inner: LocalCommitter{DB: s.Meta()}, release: make(chan struct{}), refuse: refuse}
	s.SetCommitter(c)
	opt := Bulk()
	if mode == "unflushed" {
		opt = Unflushed()
	}
	r, err := s.Create(ctx, newRecording(time.Now(), meta.FormatWAV), opt)
	if err != nil {
		t.Fatal(err)
	}
	data := signal(300_000)
	if _, err := r.Write(data); err != nil {
		t.Fatalf("write while the create commit waits: %v", err)
	}
	t0 := time.Now()
	var sent []SignalMessage
	for i := range 3 {
		m := sipMsg(t0, "udp", "192.0.2.1:5060", "192.0.2.2:5060", "INVITE", "early-"+r.ID(), i)
		if err := s.AppendSignalling(r.ID(), m); err != nil {
			t.Fatalf("signalling while the create commit waits: %v", err)
		}
		sent = append(sent, m)
	}
	if _, err := s.Meta().Recording(r.ID()); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("the create committed before it was released: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- r.WaitCreated() }()
	select {
	case err := <-waited:
		t.Fatalf("WaitCreated returned before the create commit: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	closed := make(chan error, 1)
	go func() {
		_, err := r.Close(ctx, Final{})
		closed <- err
	}()
	select {
	case err := <-closed:
		t.Fatalf("Close returned before the create commit: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(c.release)
	err = <-closed
	werr := <-waited
	files, _ := filepath.Glob(filepath.Join(dir, "recordings", "*", "*", "*", r.ID()+".*"))
	if refuse {
		if !errors.Is(err, meta.ErrInvalid) || !errors.Is(werr, meta.ErrInvalid) {
			t.Fatalf("Close, WaitCreated after a refused create: %v, %v", err, werr)
		}
		if len(files) != 0 {
			t.Fatalf("a refused create left its files: %v", files)
		}
		if _, err := s.Meta().Recording(r.ID()); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("a refused create left metadata: %v", err)
		}
		if err := r.Abort(ctx, "test"); err != nil {
			t.Fatalf("Abort after a refused create: %v", err)
		}
		if n := s.Stats().RecordingsOpen.Load(); n != 0 {
			t.Fatalf("%d recordings counted open", n)
		}
		return
	}
	if err != nil || werr != nil {
		t.Fatal(err, werr)
	}
	rec, err := s.Meta().Recording(r.ID())
	if err != nil || rec.Status != meta.StatusComplete || rec.Size != int64(len(data)) || len(files) != 2 {
		t.Fatalf("sealed: %+v %v, files %v", rec, err, files)
	}
	// After the seal an append reads the metadata and the file.
	m := sipMsg(t0, "udp", "192.0.2.2:5060", "192.0.2.1:5060", "BYE", "early-"+r.ID(), 3)
	if err := s.AppendSignalling(r.ID(), m); err != nil {
		t.Fatal(err)
	}
	got, err := s.Signalling(r.ID())
	if err != nil {
		t.Fatal(err)
	}
	sameSignal(t, "messages appended before the create committed and after the seal", got, append(sent, m))
	var audio bytes.Buffer
	a, err := s.OpenAudio(ctx, r.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := io.Copy(&audio, io.NewSectionReader(a, 0, a.Size())); err != nil || !bytes.Equal(audio.Bytes(), data) {
		t.Fatalf("read back %d bytes (%v), want the %d written", audio.Len(), err, len(data))
	}
}

// TestUnflushedNotFlushed: the store's flusher seals the open chunk of a
// live recording every interval but leaves an unflushed one (an import)
// alone, so its chunks are cut only when full; what it holds is written by
// its Close and reads back whole.
func TestUnflushedNotFlushed(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, func(c *Config) { c.FlushInterval = 10 * time.Millisecond })
	ctx := context.Background()
	const chunk = 4096
	live, err := s.Create(ctx, newRecording(time.Now(), meta.FormatGrid), ChunkSize(chunk))
	if err != nil {
		t.Fatal(err)
	}
	imp, err := s.Create(ctx, newRecording(time.Now(), meta.FormatGrid), Unflushed(), ChunkSize(chunk))
	if err != nil {
		t.Fatal(err)
	}
	if err := imp.WaitCreated(); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Meta().Recording(imp.ID()); err != nil || rec.Status != meta.StatusRecording {
		t.Fatalf("after WaitCreated: %+v, %v", rec, err)
	}
	data := signal(3*chunk + 1000)
	size := func(r *Recorder) int64 {
		fi, err := os.Stat(r.path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// Written in pieces across many flush intervals.
	for off := 0; off < len(data); off += 700 {
		end := min(off+700, len(data))
		for _, r := range []*Recorder{live, imp} {
			if _, err := r.Write(data[off:end]); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(15 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for live.Available() == chunk-len(data)%chunk && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // the flusher has not cut the live tail yet
	}
	wantImp := int64(recfile.HeaderSize + 3*(chunk+ChunkOverhead)) // three full chunks, the tail held
	if got := size(imp); got != wantImp {
		t.Errorf("unflushed file is %d bytes, want %d (full chunks only)", got, wantImp)
	}
	if got := imp.Available(); got != chunk-1000 {
		t.Errorf("unflushed recording has %d bytes of room in its chunk, want %d: its tail was cut", got, chunk-1000)
	}
	if got := size(live); got <= wantImp+ChunkOverhead {
		t.Errorf("live file is %d bytes: the flusher cut no partial chunk (the unflushed one has %d)", got, wantImp)
	}
	for _, r := range []*Recorder{live, imp} {
		if _, err := r.Close(ctx, Final{}); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, s, r.ID()); !bytes.Equal(got, data) {
			t.Fatalf("%s reads back %d bytes, want the %d written", r.ID(), len(got), len(data))
		}
	}
}

// TestDirSyncsShare: a directory fsync covers every file counted before it
// began, and only those; a failed one covers nothing.
func TestDirSyncsShare(t *testing.T) {
	var d dirSyncs
	dir := t.TempDir()
	a, b := d.created(dir), d.created(dir)
	if err := d.sync(dir, b); err != nil {
		t.Fatal(err)
	}
	if got := d.get(dir).synced; got != b {
		t.Fatalf("after syncing file %d the directory is synced up to %d", b, got)
	}
	if err := d.sync(dir, a); err != nil || d.get(dir).synced != b {
		t.Fatalf("file %d was covered by the sync for %d: %v, synced %d", a, b, err, d.get(dir).synced)
	}
	c := d.created(dir)
	if err := d.sync(dir, c); err != nil || d.get(dir).synced != c {
		t.Fatalf("file %d created after the last sync: %v, synced %d", c, err, d.get(dir).synced)
	}
	gone := filepath.Join(dir, "gone")
	n := d.created(gone)
	if err := d.sync(gone, n); err == nil {
		t.Fatal("fsync of a missing directory succeeded")
	}
	if d.get(gone).synced != 0 {
		t.Fatal("a failed fsync counted as covering its files")
	}
	if d.get(dir).synced != c {
		t.Fatal("directories share their counts")
	}
}

// TestSignallingOpenThenSealed: messages appended while the recording is
// open (the Recorder remembers where the side file ends), then after its
// seal (the file is scanned), then while other appends run concurrently,
// read back complete and in order; a torn record left at the end of the
// file before the first append is cut off.
func TestSignallingOpenThenSealed(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	r, err := s.Create(ctx, newRecording(t0, meta.FormatGrid), Unflushed())
	if err != nil {
		t.Fatal(err)
	}
	rec := r.created
	msg := func(n int) SignalMessage {
		return sipMsg(t0, "udp", "192.0.2.1:5060", "192.0.2.2:5060", "INFO", r.ID(), n)
	}
	var want []SignalMessage
	if err := s.AppendSignalling(r.ID(), msg(0)); err != nil {
		t.Fatal(err)
	}
	want = append(want, msg(0))
	// A torn record at the end, as a crash mid-append leaves it: the
	// cached end was learnt by the first append, so drop it and the next
	// append scans again (as a restarted process would).
	f, err := os.OpenFile(s.signalPath(rec), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 200, 1, 2, 3})
	f.Close()
	s.sigLocks.of(r.ID()).Lock()
	r.sig = sigEnd{}
	s.sigLocks.of(r.ID()).Unlock()
	for i := 1; i < 20; i++ {
		if err := s.AppendSignalling(r.ID(), msg(i), msg(100+i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, msg(i), msg(100+i))
	}
	if _, err := r.Write(signal(1000)); err != nil {
		t.Fatal(err)
	}
	// Appends racing the seal: each lands once, in the order of the calls.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := r.Close(ctx, Final{}); err != nil {
			t.Error(err)
		}
	}()
	for i := 20; i < 60; i++ {
		if err := s.AppendSignalling(r.ID(), msg(i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, msg(i))
	}
	wg.Wait()
	got, err := s.Signalling(r.ID())
	if err != nil {
		t.Fatal(err)
	}
	sameSignal(t, "open, torn, racing the seal, sealed", got, want)
}

const unflushedChildEnv = "CALLVAULT_STORE_UNFLUSHED_CHILD"

// TestUnflushedCrashChild is TestUnflushedCrashRecovery's child process:
// it writes an unflushed recording and SIP messages, says so, and waits to
// be killed. Run as a test of its own it does nothing.
func TestUnflushedCrashChild(t *testing.T) {
	dir := os.Getenv(unflushedChildEnv)
	if dir == "" {
		t.Log("the child process of TestUnflushedCrashRecovery: nothing to do on its own")
		return
	}
	s, err := Open(Config{DataDir: dir, Keys: KeySource{Env: testKey}, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ctx := context.Background()
	r, err := s.Create(ctx, newRecording(time.Now(), meta.FormatGrid), Unflushed(), ChunkSize(4096))
	if err == nil {
		_, err = r.Write(signal(10_000)) // two full chunks, 1,808 bytes held
	}
	t0 := time.Now()
	for i := range 3 {
		if err == nil {
			err = s.AppendSignalling(r.ID(), sipMsg(t0, "udp", "192.0.2.1:5060", "192.0.2.2:5060", "INVITE", "crash", i))
		}
	}
	if err == nil {
		err = r.WaitCreated()
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("import", r.ID())
	time.Sleep(time.Minute) // killed before
	os.Exit(1)
}

// TestUnflushedCrashRecovery: an unflushed recording abandoned mid-write by
// kill -9 is recovered at the next Open like any recording a crash left
// open: its whole chunks kept (the held tail is lost: an import is run
// again), its messages readable.
func TestUnflushedCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnflushedCrashChild$")
	cmd.Env = append(os.Environ(), unflushedChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	buf := make([]byte, 0, 256)
	for id == "" {
		var b [64]byte
		n, err := out.Read(b[:])
		buf = append(buf, b[:n]...)
		if line, _, ok := strings.Cut(string(buf), "\n"); ok {
			f := strings.Fields(line)
			if len(f) != 2 || f[0] != "import" {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("child: %q", line)
			}
			id = f[1]
		}
		if err != nil && id == "" {
			_ = cmd.Wait()
			t.Fatalf("child ended without a recording: %v, %q", err, buf)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	s := openStore(t, dir)
	rec, err := s.Meta().Recording(id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != meta.StatusRecovered || rec.Size != 2*4096 {
		t.Fatalf("after kill -9: status %s, %d bytes; want recovered with its two whole chunks (8192)", rec.Status, rec.Size)
	}
	if got := readAll(t, s, id); !bytes.Equal(got, signal(10_000)[:2*4096]) {
		t.Fatal("the recovered audio is not what was written")
	}
	got, err := s.Signalling(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d messages after the crash, want 3", len(got))
	}
}
