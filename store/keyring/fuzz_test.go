package keyring

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// fuzzMaster is the master key every FuzzOpen input is opened with; the seeds
// are sealed under it, so mutations start from blobs that authenticate.
var fuzzMaster = bytes.Repeat([]byte{0x42}, KeySize)

func FuzzOpen(f *testing.F) {
	k, err := New(testRand(1))
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		blob, err := k.Seal(fuzzMaster)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(blob)
		if k, err = k.AddTerm(testRand(byte(i + 2))); err != nil {
			f.Fatal(err)
		}
	}
	f.Add([]byte("CVKR\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, blob []byte) {
		k, err := Open(fuzzMaster, blob, testRand(9))
		if err != nil {
			if k != nil {
				t.Fatal("Open returned a keyring and an error")
			}
			return
		}
		// Anything that opens must behave like a keyring.
		dek := bytes.Repeat([]byte{1}, KeySize)
		w, err := k.WrapDEK(dek, []byte("id"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.UnwrapDEK(w, []byte("id"))
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("round trip through opened keyring: %v", err)
		}
	})
}

// FuzzDecodePayload reaches the payload parser directly; behind GCM it is
// otherwise unreachable for mutated inputs.
func FuzzDecodePayload(f *testing.F) {
	p := binary.BigEndian.AppendUint32(nil, 2)
	p = binary.BigEndian.AppendUint32(p, 2)
	p = binary.BigEndian.AppendUint32(p, 1)
	p = append(p, make([]byte, KeySize)...)
	p = binary.BigEndian.AppendUint32(p, 2)
	p = append(p, make([]byte, KeySize)...)
	f.Add(p)
	f.Add(p[:8])
	f.Add([]byte{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		k, err := decodePayload(p)
		if err != nil {
			return
		}
		terms := k.Terms()
		if len(terms) == 0 || terms[len(terms)-1] != k.ActiveTerm() {
			t.Fatalf("decoded keyring with terms %v and active %d", terms, k.ActiveTerm())
		}
	})
}

func FuzzUnwrapDEK(f *testing.F) {
	k, err := New(testRand(1))
	if err != nil {
		f.Fatal(err)
	}
	k2, err := k.AddTerm(testRand(2))
	if err != nil {
		f.Fatal(err)
	}
	dek := bytes.Repeat([]byte{7}, KeySize)
	for _, kr := range []*Keyring{k, k2} {
		w, err := kr.WrapDEK(dek, []byte("rec-1"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(w, []byte("rec-1"))
	}
	f.Add([]byte{}, []byte("rec-1"))
	f.Add(make([]byte, WrappedDEKSize), []byte{})
	f.Fuzz(func(t *testing.T, wrapped, id []byte) {
		got, err := k2.UnwrapDEK(wrapped, id)
		if err != nil {
			return
		}
		// Only the seeds authenticate; anything that does must be the DEK.
		if !bytes.Equal(got, dek) || !bytes.Equal(id, []byte("rec-1")) {
			t.Fatalf("unwrapped %x for id %q", got, id)
		}
		if _, err := k2.Rewrap(wrapped, id); err != nil {
			t.Fatal(err)
		}
	})
}
