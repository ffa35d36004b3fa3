package store

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"
)

func optionsMsg(i int) SignalMessage {
	return SignalMessage{At: time.Unix(1_760_000_000+int64(i), 0).UTC(), Transport: "udp",
		Src: netip.MustParseAddrPort("192.0.2.1:5060"), Dst: netip.MustParseAddrPort("192.0.2.2:5060"),
		Raw: []byte(fmt.Sprintf("OPTIONS sip:%d@example.com SIP/2.0\r\nCSeq: %d OPTIONS\r\n\r\n", i, i))}
}

// TestSignallingFromWriter: b is not the recording's writer (a is). It
// reads the call's SIP messages from a, keeps a copy, takes later messages
// from a when it reads again, and still answers from its copy when a is
// gone. A tampered or shorter copy never replaces what b has.
func TestSignallingFromWriter(t *testing.T) {
	a, b, rec, _ := twoNodes(t, 10_000)
	if err := a.AppendSignalling(rec.ID, optionsMsg(0), optionsMsg(1)); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Signalling(rec.ID); err != nil || len(got) != 0 {
		t.Fatalf("b without a peer: %d messages, %v; want none", len(got), err)
	}
	b.SetRemoteFiles(&peerFiles{from: a})
	got, err := b.Signalling(rec.ID)
	if err != nil || len(got) != 2 || string(got[1].Raw) != string(optionsMsg(1).Raw) {
		t.Fatalf("b from a: %d messages, %v; want 2", len(got), err)
	}
	// The answer to the BYE arrives after the seal: b takes it on its next read.
	if err := a.AppendSignalling(rec.ID, optionsMsg(2)); err != nil {
		t.Fatal(err)
	}
	if got, err = b.Signalling(rec.ID); err != nil || len(got) != 3 {
		t.Fatalf("b after a third message on a: %d, %v; want 3", len(got), err)
	}
	// a unreachable: b's copy answers.
	b.SetRemoteFiles(nil)
	if got, err = b.Signalling(rec.ID); err != nil || len(got) != 3 {
		t.Fatalf("b on its own copy: %d, %v; want 3", len(got), err)
	}

	full, err := a.SignallingFile(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A changed byte in any record is refused, and b keeps its copy.
	for _, off := range []int{len(full) - 1, len(full) / 2, sigHeaderSize + 10} {
		bad := append([]byte(nil), full...)
		bad[off] ^= 0x40
		if ok, err := b.InstallSignalling(rec, bad); ok || !errors.Is(err, ErrSignalling) {
			t.Errorf("byte %d changed: installed %v, %v; want ErrSignalling", off, ok, err)
		}
	}
	// A shorter copy (one message fewer, or a torn last record) does not
	// replace a longer one.
	if err := a.AppendSignalling(rec.ID, optionsMsg(3)); err != nil {
		t.Fatal(err)
	}
	longer, _ := a.SignallingFile(rec.ID)
	if ok, err := b.InstallSignalling(rec, longer[:len(longer)-5]); ok || err != nil {
		t.Fatalf("torn copy with as many whole records as b has: installed %v, %v", ok, err)
	}
	if ok, err := b.InstallSignalling(rec, longer); !ok || err != nil {
		t.Fatalf("longer copy: installed %v, %v", ok, err)
	}
	if got, err = b.Signalling(rec.ID); err != nil || len(got) != 4 {
		t.Fatalf("b after installing 4: %d, %v", len(got), err)
	}
	// Another recording's side file never authenticates as this one's.
	other := record(t, a, newRecording(time.Now(), "wav"), signal(1000))
	if err := a.AppendSignalling(other.ID, optionsMsg(9), optionsMsg(10), optionsMsg(11), optionsMsg(12), optionsMsg(13)); err != nil {
		t.Fatal(err)
	}
	foreign, _ := a.SignallingFile(other.ID)
	if ok, err := b.InstallSignalling(rec, foreign); ok || !errors.Is(err, ErrSignalling) {
		t.Fatalf("another recording's file: installed %v, %v", ok, err)
	}
	if _, err := os.Stat(b.signalPath(rec)); err != nil {
		t.Fatal(err)
	}
}
