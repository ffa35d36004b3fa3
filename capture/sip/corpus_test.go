package sip

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// golden is one line of testdata/corpus/golden/*.tsv: what tshark decoded
// from one SIP message (see testdata/extract.sh).
type golden struct {
	frame, udpPort, tcpStream, tcpPort    string
	method, status, callID, cseq, cseqMth string
	fromTag, toTag, fromUser, toUser      string
}

func readGolden(t *testing.T, path string) []golden {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []golden
	for _, line := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 13 {
			t.Fatalf("%s: %d fields in %q", path, len(f), line)
		}
		if strings.Contains(line, "|") {
			t.Fatalf("%s: frame %s holds several SIP messages; the test expects one per frame", path, f[0])
		}
		out = append(out, golden{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12]})
	}
	return out
}

// checkGolden compares a parsed message with tshark's view of it.
func checkGolden(g golden, m *Message) error {
	var errs []string
	eq := func(what string, got []byte, want string) {
		if string(got) != want {
			errs = append(errs, fmt.Sprintf("%s = %q, tshark %q", what, got, want))
		}
	}
	eq("Method", m.Method, g.method)
	status := ""
	if m.StatusCode != 0 {
		status = fmt.Sprint(m.StatusCode)
	}
	eq("Status", []byte(status), g.status)
	eq("Call-ID", m.CallID(), g.callID)
	cs, err := m.CSeq()
	if err != nil {
		errs = append(errs, err.Error())
	}
	eq("CSeq", []byte(fmt.Sprint(cs.Seq)), g.cseq)
	eq("CSeq method", cs.Method, g.cseqMth)
	from, err := m.From()
	if err != nil {
		errs = append(errs, err.Error())
	}
	to, err := m.To()
	if err != nil {
		errs = append(errs, err.Error())
	}
	eq("From tag", from.Tag(), g.fromTag)
	eq("To tag", to.Tag(), g.toTag)
	eq("From user", from.URI.User, g.fromUser)
	eq("To user", to.URI.User, g.toUser)
	if len(errs) > 0 {
		return fmt.Errorf("frame %s: %s", g.frame, strings.Join(errs, "; "))
	}
	return nil
}

// TestCorpusUDP parses every SIP datagram extracted from the corpus and
// checks Call-ID, CSeq and the From/To tags and users against tshark.
func TestCorpusUDP(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/golden/*.tsv")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	checked := 0
	for _, gf := range files {
		name := strings.TrimSuffix(filepath.Base(gf), ".tsv")
		t.Run(name, func(t *testing.T) {
			var m Message
			var s SDP
			for _, g := range readGolden(t, gf) {
				if g.udpPort == "" {
					continue
				}
				b, err := os.ReadFile(fmt.Sprintf("testdata/corpus/udp/%s-f%s.sip", name, g.frame))
				if err != nil {
					t.Fatal(err)
				}
				n, err := Parse(b, &m)
				if err != nil {
					t.Errorf("frame %s: %v", g.frame, err)
					continue
				}
				if n != len(b) {
					t.Errorf("frame %s: used %d of %d bytes", g.frame, n, len(b))
				}
				if !LooksLikeSIP(b) {
					t.Errorf("frame %s: LooksLikeSIP false", g.frame)
				}
				if err := checkGolden(g, &m); err != nil {
					t.Error(err)
				}
				if body, ok := m.SDPBody(); ok {
					if err := ParseSDP(body, &s); err != nil {
						t.Errorf("frame %s: SDP: %v", g.frame, err)
					} else if len(s.Media) == 0 {
						t.Errorf("frame %s: SDP without m= lines", g.frame)
					}
				}
				checked++
			}
		})
	}
	// Every extracted datagram must be covered by a golden line.
	all, _ := filepath.Glob("testdata/corpus/udp/*.sip")
	if checked != len(all) {
		t.Errorf("checked %d datagrams, %d files in testdata/corpus/udp", checked, len(all))
	}
}

// TestCorpusTCP frames each extracted TCP direction, fed in uneven
// chunks, and checks the messages in order against tshark.
func TestCorpusTCP(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/golden/*.tsv")
	streams := 0
	for _, gf := range files {
		name := strings.TrimSuffix(filepath.Base(gf), ".tsv")
		byDir := map[string][]golden{}
		var order []string
		for _, g := range readGolden(t, gf) {
			if g.tcpStream == "" {
				continue
			}
			key := fmt.Sprintf("%s-s%s-p%s", name, g.tcpStream, g.tcpPort)
			if byDir[key] == nil {
				order = append(order, key)
			}
			byDir[key] = append(byDir[key], g)
		}
		for _, key := range order {
			t.Run(key, func(t *testing.T) {
				b, err := os.ReadFile("testdata/corpus/tcp/" + key + ".bin")
				if err != nil {
					t.Fatal(err)
				}
				// Large enough for sip-body-large's 65793-byte INVITE; the
				// default size drops it (TestFramerOversizedCorpus).
				f := NewFramer(128<<10, nil)
				var m Message
				var got int
				for i, chunk := 0, 1; len(b) > 0; i++ {
					n := f.Feed(b[:min(chunk, len(b))])
					b = b[n:]
					for _, ok := f.Next(&m); ok; _, ok = f.Next(&m) {
						if got >= len(byDir[key]) {
							t.Fatalf("more messages than tshark saw (%d)", len(byDir[key]))
						}
						if err := checkGolden(byDir[key][got], &m); err != nil {
							t.Error(err)
						}
						got++
					}
					chunk = chunk*3 + 1 // 1, 4, 13, 40, ... bytes
				}
				if got != len(byDir[key]) {
					t.Errorf("framed %d messages, tshark %d", got, len(byDir[key]))
				}
				if f.Buffered() != 0 {
					t.Errorf("%d bytes left over", f.Buffered())
				}
				streams++
			})
		}
	}
	if streams == 0 {
		t.Fatal("no TCP streams in the golden files")
	}
}

// TestFramerOversizedCorpus feeds suricata-verify's 65793-byte INVITE
// through a default Framer: it is dropped and counted, and the next
// message on the stream still comes out.
func TestFramerOversizedCorpus(t *testing.T) {
	big, err := os.ReadFile("testdata/corpus/tcp/sip-body-large-s0-p59809.bin")
	if err != nil {
		t.Fatal(err)
	}
	if len(big) <= DefaultMaxMessage {
		t.Fatalf("fixture is %d bytes, not larger than the buffer", len(big))
	}
	next := []byte("BYE sip:bob@b.example SIP/2.0\r\nCall-ID: after-big\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
	stream := append(append([]byte{}, big...), next...)
	f := NewFramer(0, nil)
	var m Message
	var ids []string
	for p := stream; len(p) > 0; {
		n := f.Feed(p[:min(1460, len(p))])
		p = p[n:]
		for _, ok := f.Next(&m); ok; _, ok = f.Next(&m) {
			ids = append(ids, string(m.CallID()))
		}
	}
	if len(ids) != 1 || ids[0] != "after-big" {
		t.Fatalf("messages %q, want only after-big", ids)
	}
	st := f.Stats()
	if st.Oversized.Load() != 1 || st.DroppedBytes.Load() != uint64(len(big)) {
		t.Errorf("oversized %d dropped %d bytes, want 1 and %d", st.Oversized.Load(), st.DroppedBytes.Load(), len(big))
	}
	if f.Buffered() != 0 {
		t.Errorf("%d bytes left", f.Buffered())
	}
}

// TestSIPRECBodies parses the vendors' SIPREC multipart bodies: an SDP part
// with a=label per stream and an rs-metadata part.
func TestSIPRECBodies(t *testing.T) {
	cases := []struct {
		file, boundary string
		labels         []string
		ports          []uint16
		dir            Direction
	}{
		{"acme-siprec-offer.txt", "unique-boundary-1", []string{"16777227", "16777228"}, []uint16{20106, 20110}, DirSendOnly},
		{"avaya-siprec-offer.txt", "unique-boundary-1", []string{"201835599", "201835600"}, []uint16{33802, 33806}, DirSendOnly},
		{"broadworks-offer-2.txt", "foobar", []string{"10", "20"}, []uint16{38606, 35744}, DirSendOnly},
		{"cisco-siprec-offer.txt", "uniqueBoundary", []string{"1", "2"}, []uint16{10292, 10294}, DirSendOnly},
		{"connectel-offer.txt", "OSS-unique-boundary-42", []string{"1", "2"}, []uint16{35011, 35012}, DirSendOnly},
		{"inactive-sdp-offer.txt", "uniqueBoundary", []string{"1", "2"}, []uint16{19254, 19236}, DirInactive},
		{"procomm-siprec-offer.txt", "2CD2A2E9", []string{"a_leg", "b_leg"}, []uint16{12654, 12686}, DirSendOnly},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			body, err := os.ReadFile("testdata/siprec/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			ct := []byte("multipart/mixed;boundary=" + c.boundary)
			parts, err := ParseMultipart(ct, body, nil)
			if err != nil {
				t.Fatal(err)
			}
			var sdp, meta []byte
			for _, p := range parts {
				mt, _ := MediaType(p.ContentType)
				switch {
				case equalFold(mt, "application/sdp"):
					sdp = p.Body
				case hasPrefixFold(mt, "application/rs-metadata"):
					meta = p.Body
				}
			}
			if sdp == nil || meta == nil {
				t.Fatalf("parts %d: sdp %v metadata %v", len(parts), sdp != nil, meta != nil)
			}
			if !bytes.Contains(meta, []byte("<")) || bytes.Contains(meta, []byte("--"+c.boundary)) {
				t.Errorf("metadata part not cut at the boundary: %q", clip(meta))
			}
			var s SDP
			if err := ParseSDP(sdp, &s); err != nil {
				t.Fatal(err)
			}
			if len(s.Media) != len(c.labels) {
				t.Fatalf("%d media, want %d", len(s.Media), len(c.labels))
			}
			for i := range s.Media {
				e := s.Endpoint(i)
				if string(e.Label) != c.labels[i] || e.Port != c.ports[i] || e.Direction != c.dir {
					t.Errorf("media %d: label %q port %d dir %v; want %q %d %v", i, e.Label, e.Port, e.Direction, c.labels[i], c.ports[i], c.dir)
				}
				if codec, ok := s.Media[i].Codec(s.Media[i].PayloadTypes[0]); !ok || codec.ClockRate != 8000 {
					t.Errorf("media %d: first codec %+v %v", i, codec, ok)
				}
			}
		})
	}
}

// TestSIPRECInvite parses Intrado's full SIPREC INVITE and finds its SDP
// through SDPBody. The fixture was stored with LF line ends while its
// Content-Length counts CRLF ones, so as stored it is a truncated datagram;
// with CRLF restored it parses whole.
func TestSIPRECInvite(t *testing.T) {
	lf, err := os.ReadFile("testdata/siprec/intrado-siprec-invite.txt")
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if _, err := Parse(lf, &m); !errors.Is(err, ErrTruncated) {
		t.Fatalf("LF-only file: err %v, want ErrTruncated", err)
	}
	b := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
	n, err := Parse(b, &m)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(b) {
		t.Errorf("used %d of %d bytes", n, len(b))
	}
	if string(m.Method) != "INVITE" || string(m.CallID()) != "6c953981285cde0446619ca30087d35a@10.106.2.10:5060" {
		t.Fatalf("method %q call-id %q", m.Method, m.CallID())
	}
	if v := m.Header("x-call-direction"); string(v) != "incoming" {
		t.Errorf("x-Call-Direction = %q", v)
	}
	parts, err := m.Parts(nil)
	if err != nil || len(parts) != 2 {
		t.Fatalf("parts %d err %v", len(parts), err)
	}
	sdp, ok := m.SDPBody()
	if !ok {
		t.Fatal("no SDP part")
	}
	var s SDP
	if err := ParseSDP(sdp, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Media) != 1 {
		t.Fatalf("%d media, want 1", len(s.Media))
	}
	if e := s.Endpoint(0); string(e.Label) != "1" || e.Port != 11854 || e.Direction != DirSendOnly ||
		e.Addr.String() != "10.106.2.10" {
		t.Errorf("endpoint %+v", e)
	}
}
