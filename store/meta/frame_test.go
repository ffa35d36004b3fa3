package meta

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestFramesRoundTrip(t *testing.T) {
	inner := mustEncode(t, &SetCategory{ID: "0198a000-0000-7000-8000-000000000001", Category: "Billing"})
	at := time.Date(2026, 11, 22, 13, 0, 0, 123456789, time.UTC)
	once := &Once{Key: "00112233445566778899aabbccddeeff", At: at, Cmd: inner}
	b := mustEncode(t, once)
	if again := mustEncode(t, once); !bytes.Equal(b, again) {
		t.Fatal("the same Once encodes to different bytes")
	}
	got, err := DecodeOnce(b)
	if err != nil || got.Key != once.Key || !got.At.Equal(at) || !bytes.Equal(got.Cmd, inner) {
		t.Fatalf("DecodeOnce: %+v, %v", got, err)
	}
	batch := &Batch{Cmds: [][]byte{inner, b, {}}}
	bb := mustEncode(t, batch)
	gb, err := DecodeBatch(bb)
	if err != nil || len(gb.Cmds) != 3 || !bytes.Equal(gb.Cmds[0], inner) || !bytes.Equal(gb.Cmds[1], b) || len(gb.Cmds[2]) != 0 {
		t.Fatalf("DecodeBatch: %+v, %v", gb, err)
	}
	// Cut anywhere, or with bytes after it, a batch is malformed, never a panic.
	for i := 1; i < len(bb); i++ {
		if _, err := DecodeBatch(bb[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("batch cut at %d: %v", i, err)
		}
	}
	if _, err := DecodeBatch(append(bb, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a byte after the batch: %v", err)
	}
	// A count the bytes cannot hold is refused before allocating.
	if _, err := DecodeBatch([]byte{byte(TypeBatch), 0xff, 0xff, 0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a huge count: %v", err)
	}
	if _, err := DecodeOnce(b[:10]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a short once: %v", err)
	}
}
