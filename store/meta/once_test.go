package meta

import (
	"errors"
	"testing"
	"time"
)

func mustEncode(t testing.TB, c Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOnceAppliesAtMostOnce(t *testing.T) {
	db := mustOpen(t)
	rec := newRec(t, jan)
	once := &Once{Key: "00112233445566778899aabbccddeeff", At: jan, Cmd: mustEncode(t, &CreateRecording{Recording: rec})}
	first := mustApply(t, db, once)
	if first.Duplicate || first.Reference == "" {
		t.Fatalf("first apply: %+v, want a reference and no duplicate", first)
	}
	// Committed twice (a retried forward, an outbox replay): no error, no change.
	again := mustApply(t, db, once)
	if !again.Duplicate {
		t.Fatalf("second apply: %+v, want Duplicate", again)
	}
	if n := countRecordings(t, db); n != 1 {
		t.Fatalf("%d recordings after a duplicate, want 1", n)
	}
	if known, err := db.OnceKnown(once.Key); err != nil || !known {
		t.Fatalf("OnceKnown = %v, %v", known, err)
	}
	// Without the wrapper the same command is refused as a duplicate ID:
	// the wrapper is what makes the retry safe.
	if _, err := apply(db, &CreateRecording{Recording: rec}); !errors.Is(err, ErrExists) {
		t.Fatalf("bare second create: %v, want ErrExists", err)
	}
}

func TestOnceFailedInnerLeavesNoKey(t *testing.T) {
	db := mustOpen(t)
	rec := newRec(t, jan)
	cat := &Once{Key: "ffeeddccbbaa99887766554433221100", At: jan, Cmd: mustEncode(t, &SetCategory{ID: rec.ID, Category: "Billing"})}
	if _, err := apply(db, cat); !errors.Is(err, ErrNotFound) {
		t.Fatalf("once on a missing recording: %v, want ErrNotFound", err)
	}
	if known, _ := db.OnceKnown(cat.Key); known {
		t.Fatal("a failed inner command recorded its key")
	}
	// The recording arrives (the outbox keeps order; a forward may not):
	// the same Once now applies.
	mustApply(t, db, &CreateRecording{Recording: rec})
	if res := mustApply(t, db, cat); res.Duplicate {
		t.Fatal("applied as a duplicate after the first try failed")
	}
	got, err := db.Recording(rec.ID)
	if err != nil || got.Category != "Billing" {
		t.Fatalf("category %q, %v", got.Category, err)
	}
}

func TestOnceRejects(t *testing.T) {
	db := mustOpen(t)
	inner := mustEncode(t, &PutSetting{Key: "k", Value: []byte("v")})
	nested := mustEncode(t, &Once{Key: "00000000000000000000000000000001", At: jan, Cmd: inner})
	for name, c := range map[string]*Once{
		"short key": {Key: "0011", At: jan, Cmd: inner},
		"not hex":   {Key: "zz112233445566778899aabbccddeeff", At: jan, Cmd: inner},
		"zero at":   {Key: "00112233445566778899aabbccddeeff", Cmd: inner},
		"no cmd":    {Key: "00112233445566778899aabbccddeeff", At: jan},
		"nested":    {Key: "00112233445566778899aabbccddeef0", At: jan, Cmd: nested},
	} {
		if _, err := apply(db, c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := apply(db, &Once{Key: "00112233445566778899aabbccddeeff", At: jan, Cmd: []byte{0xfe}}); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("unknown inner: %v", err)
	}
}

func TestOncePrunesOldKeys(t *testing.T) {
	db := mustOpen(t)
	keys := []string{"00000000000000000000000000000001", "00000000000000000000000000000002", "00000000000000000000000000000003"}
	for i, k := range keys {
		mustApply(t, db, &Once{Key: k, At: jan.Add(time.Duration(i) * time.Hour), Cmd: mustEncode(t, &PutSetting{Key: "k", Value: []byte{byte(i)}})})
	}
	// A Once made after the first two keys' keep period ends prunes them,
	// and only them.
	late := jan.Add(OnceKeep + 90*time.Minute)
	mustApply(t, db, &Once{Key: "00000000000000000000000000000004", At: late, Cmd: mustEncode(t, &PutSetting{Key: "k", Value: []byte("late")})})
	for i, k := range keys {
		known, err := db.OnceKnown(k)
		if err != nil {
			t.Fatal(err)
		}
		if want := i == 2; known != want {
			t.Errorf("key %d known = %v, want %v", i, known, want)
		}
	}
}

func countRecordings(t testing.TB, db *DB) int {
	t.Helper()
	page, err := db.Search(Query{Scope: Scope{All: true}, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Recordings)
}
