package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// testRand is a deterministic randomness source so failures reproduce.
func testRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// failingRand fails after n good bytes, to drive every "reading randomness" path.
type failingRand struct{ n int }

func (f *failingRand) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("entropy source broken")
	}
	k := min(f.n, len(p))
	clear(p[:k])
	f.n -= k
	return k, io.ErrUnexpectedEOF
}

func mustNew(t *testing.T) *Keyring {
	t.Helper()
	k, err := New(testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustDEK(t *testing.T, seed byte) []byte {
	t.Helper()
	d, err := NewDEK(testRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var recID = []byte("0190f0a1-7c3e-7d2a-9b1e-4f5a6b7c8d9e")

func TestNewAndAddTermAreImmutable(t *testing.T) {
	k1 := mustNew(t)
	if got := k1.ActiveTerm(); got != 1 {
		t.Fatalf("active term %d, want 1", got)
	}
	k2, err := k1.AddTerm(testRand(2))
	if err != nil {
		t.Fatal(err)
	}
	k3, err := k2.AddTerm(testRand(3))
	if err != nil {
		t.Fatal(err)
	}
	if k1.ActiveTerm() != 1 || len(k1.Terms()) != 1 {
		t.Fatalf("AddTerm changed the original: active %d terms %v", k1.ActiveTerm(), k1.Terms())
	}
	if k2.ActiveTerm() != 2 || fmt.Sprint(k2.Terms()) != "[1 2]" {
		t.Fatalf("k2: active %d terms %v", k2.ActiveTerm(), k2.Terms())
	}
	if k3.ActiveTerm() != 3 || fmt.Sprint(k3.Terms()) != "[1 2 3]" {
		t.Fatalf("k3: active %d terms %v", k3.ActiveTerm(), k3.Terms())
	}
	if k3.terms[1].key != k1.terms[1].key {
		t.Fatal("term 1 key changed across clones")
	}
	if k3.terms[2].key == k3.terms[3].key || k3.terms[1].key == k3.terms[2].key {
		t.Fatal("terms share a key")
	}
}

func TestWrapUnwrapRoundTrip(t *testing.T) {
	k := mustNew(t)
	dek := mustDEK(t, 9)
	w, err := k.WrapDEK(dek, recID)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != WrappedDEKSize {
		t.Fatalf("wrapped length %d, want %d", len(w), WrappedDEKSize)
	}
	if bytes.Contains(w, dek) {
		t.Fatal("wrapped DEK contains the DEK in clear")
	}
	got, err := k.UnwrapDEK(w, recID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, dek) {
		t.Fatal("unwrapped DEK differs")
	}
	w2, err := k.WrapDEK(dek, recID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(w, w2) {
		t.Fatal("two wraps of the same DEK are identical: nonce not random")
	}
}

// TestWrappedLayout decrypts a wrapped DEK with the standard library alone,
// proving the documented layout and AAD.
func TestWrappedLayout(t *testing.T) {
	k := mustNew(t)
	k, _ = k.AddTerm(testRand(4))
	dek := mustDEK(t, 9)
	w, err := k.WrapDEK(dek, recID)
	if err != nil {
		t.Fatal(err)
	}
	if term := binary.BigEndian.Uint32(w[0:4]); term != 2 {
		t.Fatalf("term field %d, want 2", term)
	}
	if w[4] != 1 {
		t.Fatalf("version byte %d, want 1", w[4])
	}
	block, _ := aes.NewCipher(k.terms[2].key[:])
	gcm, _ := cipher.NewGCM(block)
	aad := append(append([]byte{}, w[0:5]...), recID...)
	got, err := gcm.Open(nil, w[5:17], w[17:], aad)
	if err != nil {
		t.Fatalf("layout differs from the documented one: %v", err)
	}
	if !bytes.Equal(got, dek) {
		t.Fatal("decrypted DEK differs")
	}
}

func TestUnwrapErrors(t *testing.T) {
	k := mustNew(t)
	dek := mustDEK(t, 9)
	w, err := k.WrapDEK(dek, recID)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := k.AddTerm(testRand(5))
	w2, _ := k2.WrapDEK(dek, recID)

	unknown := bytes.Clone(w)
	binary.BigEndian.PutUint32(unknown, 77)
	badVersion := bytes.Clone(w)
	badVersion[4] = 2

	cases := []struct {
		name    string
		wrapped []byte
		id      []byte
		want    error
		msg     string
	}{
		{"other recording", w, []byte("another-recording"), ErrCorrupt, "term 1"},
		{"empty recording id", w, nil, ErrNoRecordingID, ""},
		{"empty", nil, recID, ErrCorrupt, "0 bytes"},
		{"short", w[:WrappedDEKSize-1], recID, ErrCorrupt, "64 bytes"},
		{"long", append(bytes.Clone(w), 0), recID, ErrCorrupt, "66 bytes"},
		{"unknown term", unknown, recID, ErrUnknownTerm, "term 77"},
		{"newer term than keyring", w2, recID, ErrUnknownTerm, "term 2"},
		{"version", badVersion, recID, ErrVersion, "version 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := k.UnwrapDEK(c.wrapped, c.id)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q does not mention %q", err, c.msg)
			}
		})
	}
}

func TestWrapErrors(t *testing.T) {
	k := mustNew(t)
	if _, err := k.WrapDEK(make([]byte, 16), recID); !errors.Is(err, ErrKeyLength) {
		t.Fatalf("16-byte DEK: got %v, want ErrKeyLength", err)
	}
	if _, err := k.WrapDEK(make([]byte, KeySize), nil); !errors.Is(err, ErrNoRecordingID) {
		t.Fatalf("no id: got %v, want ErrNoRecordingID", err)
	}
	kb, err := New(&onceRand{r: testRand(1), n: KeySize})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kb.WrapDEK(make([]byte, KeySize), recID); err == nil || !strings.Contains(err.Error(), "randomness") {
		t.Fatalf("broken rand: got %v", err)
	}
}

// onceRand serves n bytes of r and then fails.
type onceRand struct {
	r io.Reader
	n int
}

func (o *onceRand) Read(p []byte) (int, error) {
	if o.n <= 0 {
		return 0, errors.New("entropy source exhausted")
	}
	if len(p) > o.n {
		p = p[:o.n]
	}
	n, err := o.r.Read(p)
	o.n -= n
	return n, err
}

func TestFlipAnyByteOfWrappedDEK(t *testing.T) {
	k := mustNew(t)
	w, err := k.WrapDEK(mustDEK(t, 9), recID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(w)
			b[i] ^= mask
			_, err := k.UnwrapDEK(b, recID)
			var want error
			switch {
			case i < 4:
				want = ErrUnknownTerm
			case i == 4:
				want = ErrVersion
			default:
				want = ErrCorrupt
			}
			if !errors.Is(err, want) {
				t.Fatalf("byte %d ^ %#x: got %v, want %v", i, mask, err, want)
			}
		}
	}
}

func TestRewrap(t *testing.T) {
	k1 := mustNew(t)
	dek := mustDEK(t, 9)
	w1, _ := k1.WrapDEK(dek, recID)
	k2, err := k1.AddTerm(testRand(2))
	if err != nil {
		t.Fatal(err)
	}
	w2, err := k2.Rewrap(w1, recID)
	if err != nil {
		t.Fatal(err)
	}
	if term, _ := WrappedTerm(w2); term != 2 {
		t.Fatalf("rewrapped term %d, want 2", term)
	}
	got, err := k2.UnwrapDEK(w2, recID)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap after rewrap: %v, equal %v", err, bytes.Equal(got, dek))
	}
	// The old keyring cannot read the rewrapped DEK.
	if _, err := k1.UnwrapDEK(w2, recID); !errors.Is(err, ErrUnknownTerm) {
		t.Fatalf("old keyring: got %v, want ErrUnknownTerm", err)
	}
	// Rewrapping again is a verified no-op.
	w3, err := k2.Rewrap(w2, recID)
	if err != nil || !bytes.Equal(w3, w2) {
		t.Fatalf("second rewrap: %v, unchanged %v", err, bytes.Equal(w3, w2))
	}
	// Rewrap checks the binding too.
	if _, err := k2.Rewrap(w1, []byte("other")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("rewrap with other id: got %v, want ErrCorrupt", err)
	}
	tampered := bytes.Clone(w2)
	tampered[30] ^= 1
	if _, err := k2.Rewrap(tampered, recID); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("rewrap of tampered active-term DEK: got %v, want ErrCorrupt", err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	master := mustDEK(t, 42)
	k, _ := New(testRand(1))
	k, _ = k.AddTerm(testRand(2))
	k, _ = k.AddTerm(testRand(3))
	dek := mustDEK(t, 9)
	wOld, _ := mustNew(t).WrapDEK(dek, recID) // term 1 of the same seed
	wNew, _ := k.WrapDEK(dek, recID)

	blob, err := k.Seal(master)
	if err != nil {
		t.Fatal(err)
	}
	for _, term := range k.Terms() {
		key := k.terms[term].key
		if bytes.Contains(blob, key[:]) {
			t.Fatalf("sealed blob contains KEK of term %d in clear", term)
		}
	}
	o, err := Open(master, blob, testRand(7))
	if err != nil {
		t.Fatal(err)
	}
	if o.ActiveTerm() != 3 || fmt.Sprint(o.Terms()) != "[1 2 3]" {
		t.Fatalf("opened keyring: active %d terms %v", o.ActiveTerm(), o.Terms())
	}
	for _, w := range [][]byte{wOld, wNew} {
		got, err := o.UnwrapDEK(w, recID)
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("unwrap with opened keyring: %v", err)
		}
	}
	// The opened keyring keeps working: rotation and wrapping.
	o2, err := o.AddTerm(testRand(8))
	if err != nil || o2.ActiveTerm() != 4 {
		t.Fatalf("AddTerm on opened keyring: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	master := mustDEK(t, 42)
	k := mustNew(t)
	blob, err := k.Seal(master)
	if err != nil {
		t.Fatal(err)
	}
	other := mustDEK(t, 43)
	if _, err := Open(other, blob, crand.Reader); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("wrong master: got %v, want ErrWrongMasterKey", err)
	}
	if _, err := Open(master[:16], blob, crand.Reader); !errors.Is(err, ErrKeyLength) {
		t.Fatalf("short master: got %v, want ErrKeyLength", err)
	}
	if _, err := k.Seal(master[:31]); !errors.Is(err, ErrKeyLength) {
		t.Fatalf("seal with short master: got %v, want ErrKeyLength", err)
	}
	for n := 0; n < len(blob); n++ {
		if _, err := Open(master, blob[:n], crand.Reader); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: got %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := Open(master, append(bytes.Clone(blob), 0), crand.Reader); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("extra byte: got %v, want ErrCorrupt", err)
	}
	v2 := bytes.Clone(blob)
	v2[4] = 2
	if _, err := Open(master, v2, crand.Reader); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("version 2: got %v, want ErrVersion", err)
	}
	kb, _ := New(&onceRand{r: testRand(1), n: KeySize})
	if _, err := kb.Seal(master); err == nil || !strings.Contains(err.Error(), "randomness") {
		t.Fatalf("seal with broken rand: got %v", err)
	}
}

func TestFlipAnyByteOfSealedKeyring(t *testing.T) {
	master := mustDEK(t, 42)
	k, _ := mustNew(t).AddTerm(testRand(2))
	blob, err := k.Seal(master)
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		b := bytes.Clone(blob)
		b[i] ^= 0x01
		_, err := Open(master, b, crand.Reader)
		var want error
		switch {
		case i < 4:
			want = ErrCorrupt // magic
		case i == 4:
			want = ErrVersion
		case i < sealAADSize:
			want = ErrWrongMasterKey // check value
		default:
			want = ErrCorrupt
		}
		if !errors.Is(err, want) {
			t.Fatalf("byte %d: got %v, want %v", i, err, want)
		}
	}
}

func TestDecodePayloadErrors(t *testing.T) {
	entry := func(term uint32) []byte {
		e := binary.BigEndian.AppendUint32(nil, term)
		return append(e, bytes.Repeat([]byte{7}, KeySize)...)
	}
	payload := func(active, count uint32, entries ...[]byte) []byte {
		p := binary.BigEndian.AppendUint32(nil, active)
		p = binary.BigEndian.AppendUint32(p, count)
		for _, e := range entries {
			p = append(p, e...)
		}
		return p
	}
	cases := []struct {
		name string
		p    []byte
		msg  string
	}{
		{"short", []byte{0, 0, 0}, "3 bytes"},
		{"no terms", payload(1, 0), "0 terms"},
		{"too many terms", payload(1, maxTerms+1), "65537 terms"},
		{"length mismatch", payload(1, 2, entry(1)), "want 80 for 2 terms"},
		{"term zero", payload(0, 1, entry(0)), "term 0 follows"},
		{"not ascending", payload(2, 2, entry(2), entry(1)), "term 1 follows term 2"},
		{"duplicate", payload(2, 2, entry(2), entry(2)), "term 2 follows term 2"},
		{"active not newest", payload(1, 2, entry(1), entry(2)), "active term 1 is not the newest term 2"},
		{"active missing", payload(9, 1, entry(1)), "active term 9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodePayload(c.p)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want ErrCorrupt mentioning %q", err, c.msg)
			}
		})
	}
	ok, err := decodePayload(payload(5, 2, entry(3), entry(5)))
	if err != nil || ok.ActiveTerm() != 5 {
		t.Fatalf("valid payload with gaps: %v", err)
	}
}

func TestTermOverflow(t *testing.T) {
	p := binary.BigEndian.AppendUint32(nil, math.MaxUint32)
	p = binary.BigEndian.AppendUint32(p, 1)
	p = binary.BigEndian.AppendUint32(p, math.MaxUint32)
	p = append(p, make([]byte, KeySize)...)
	k, err := decodePayload(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.AddTerm(testRand(1)); !errors.Is(err, ErrTermOverflow) {
		t.Fatalf("got %v, want ErrTermOverflow", err)
	}
}

func TestBrokenRandomness(t *testing.T) {
	if _, err := New(&failingRand{n: 5}); err == nil {
		t.Fatal("New with broken rand succeeded")
	}
	if _, err := NewDEK(&failingRand{}); err == nil {
		t.Fatal("NewDEK with broken rand succeeded")
	}
	if _, err := mustNew(t).AddTerm(&failingRand{}); err == nil || !strings.Contains(err.Error(), "term 2") {
		t.Fatalf("AddTerm with broken rand: %v", err)
	}
	if _, err := NewSalt(&failingRand{}); err == nil {
		t.Fatal("NewSalt with broken rand succeeded")
	}
}

func TestZeroize(t *testing.T) {
	k1 := mustNew(t)
	k2, _ := k1.AddTerm(testRand(2))
	dek := mustDEK(t, 9)
	w, _ := k2.WrapDEK(dek, recID)
	old := k1.terms[1]
	k1.Zeroize()
	if old.key != [KeySize]byte{} {
		t.Fatal("Zeroize left key bytes")
	}
	if _, err := k1.WrapDEK(dek, recID); !errors.Is(err, ErrZeroized) {
		t.Fatalf("WrapDEK after Zeroize: %v", err)
	}
	if _, err := k1.UnwrapDEK(w, recID); !errors.Is(err, ErrZeroized) {
		t.Fatalf("UnwrapDEK after Zeroize: %v", err)
	}
	if _, err := k1.Seal(dek); !errors.Is(err, ErrZeroized) {
		t.Fatalf("Seal after Zeroize: %v", err)
	}
	if _, err := k1.AddTerm(testRand(3)); !errors.Is(err, ErrZeroized) {
		t.Fatalf("AddTerm after Zeroize: %v", err)
	}
	// The clone is unaffected.
	if got, err := k2.UnwrapDEK(w, recID); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("clone after Zeroize of original: %v", err)
	}
	b := []byte{1, 2, 3}
	Zero(b)
	if !bytes.Equal(b, []byte{0, 0, 0}) {
		t.Fatal("Zero left bytes")
	}
}

// TestConcurrentUse runs wraps, unwraps and rotations at once; run with -race.
func TestConcurrentUse(t *testing.T) {
	k, err := New(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := []byte(fmt.Sprintf("rec-%d", g))
			for range 200 {
				dek, err := NewDEK(crand.Reader)
				if err != nil {
					errs <- err
					return
				}
				w, err := k.WrapDEK(dek, id)
				if err != nil {
					errs <- err
					return
				}
				got, err := k.UnwrapDEK(w, id)
				if err != nil || !bytes.Equal(got, dek) {
					errs <- fmt.Errorf("goroutine %d: unwrap: %v", g, err)
					return
				}
				if _, err := k.AddTerm(crand.Reader); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
