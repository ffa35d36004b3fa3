package meta

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func encodeBatchCmd(t testing.TB, c Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBatchEachOwnResult: one Batch, many inner commands, some refused.
// Every inner command gets the result ApplyBatch gives it for the same
// list; the refused ones leave no trace, the others apply.
func TestBatchEachOwnResult(t *testing.T) {
	a, b := newRec(t, jan), newRec(t, jan.Add(time.Minute))
	inner := [][]byte{
		encodeBatchCmd(t, &CreateRecording{Recording: a}),
		encodeBatchCmd(t, &CreateRecording{Recording: a}),                                          // ErrExists
		encodeBatchCmd(t, &SetCategory{ID: "0198a000-0000-7000-8000-0000000000ff", Category: "x"}), // ErrNotFound
		{},                              // ErrMalformed
		{200, '{', '}'},                 // ErrUnknownCommand
		{byte(TypeSetRating), '{', 'x'}, // ErrMalformed (JSON)
		encodeBatchCmd(t, &CreateRecording{Recording: b}),
		encodeBatchCmd(t, &SetCategory{ID: a.ID, Category: "Billing"}),
	}
	want := []error{nil, ErrExists, ErrNotFound, ErrMalformed, ErrUnknownCommand, ErrMalformed, nil, nil}

	db := mustOpen(t)
	res := mustApply(t, db, &Batch{Cmds: inner})
	if res.Err != nil || len(res.Batch) != len(inner) {
		t.Fatalf("batch result: err %v, %d inner results; want nil and %d", res.Err, len(res.Batch), len(inner))
	}
	for i, r := range res.Batch {
		if want[i] == nil && r.Err != nil || want[i] != nil && !errors.Is(r.Err, want[i]) {
			t.Errorf("inner %d: err %v, want %v", i, r.Err, want[i])
		}
	}
	if res.Batch[0].ID != a.ID || res.Batch[6].ID != b.ID || res.Batch[0].Reference == "" ||
		res.Batch[0].Reference == res.Batch[6].Reference {
		t.Errorf("creates: %+v and %+v; want their own IDs and distinct references", res.Batch[0], res.Batch[6])
	}
	if n := countRecordings(t, db); n != 2 {
		t.Fatalf("%d recordings, want 2", n)
	}
	if got, err := db.Recording(a.ID); err != nil || got.Category != "Billing" {
		t.Fatalf("a after the batch: %+v, %v", got, err)
	}

	// The same list through ApplyBatch: the same results and the same bytes.
	ref := mustOpen(t)
	refRes, err := ref.ApplyBatch(inner)
	if err != nil {
		t.Fatal(err)
	}
	for i := range inner {
		g, w := res.Batch[i], refRes[i]
		if g.ID != w.ID || g.Reference != w.Reference || (g.Err == nil) != (w.Err == nil) ||
			g.Err != nil && g.Err.Error() != w.Err.Error() {
			t.Errorf("inner %d: batch %+v, ApplyBatch %+v", i, g, w)
		}
	}
	if !bytes.Equal(dump(t, db), dump(t, ref)) {
		t.Fatal("a Batch and ApplyBatch of the same commands left different databases")
	}
}

// TestBatchRefused: a batch that is not one (empty, too long, not JSON) is
// refused whole and changes nothing; a Batch inside a Batch is refused as
// that inner command only.
func TestBatchRefused(t *testing.T) {
	db := mustOpen(t)
	rec := newRec(t, jan)
	create := encodeBatchCmd(t, &CreateRecording{Recording: rec})
	wantErr(t, db, &Batch{}, ErrInvalid)
	wantErr(t, db, &Batch{Cmds: make([][]byte, MaxBatch+1)}, ErrInvalid)
	if _, err := db.Apply([]byte{byte(TypeBatch), '{', '"'}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage batch: %v, want ErrMalformed", err)
	}
	if _, err := db.Apply([]byte{byte(TypeBatch), '{', '"', 'c', 'm', 'd', 's', '"', ':', '[', '1', ']', '}'}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("batch of a number: %v, want ErrMalformed", err)
	}
	if n := countRecordings(t, db); n != 0 {
		t.Fatalf("%d recordings after refused batches", n)
	}

	nested := encodeBatchCmd(t, &Batch{Cmds: [][]byte{create}})
	res := mustApply(t, db, &Batch{Cmds: [][]byte{nested, create}})
	if !errors.Is(res.Batch[0].Err, ErrInvalid) || !strings.Contains(res.Batch[0].Err.Error(), "batch inside a batch") {
		t.Fatalf("nested batch: %v, want ErrInvalid (batch inside a batch)", res.Batch[0].Err)
	}
	if res.Batch[1].Err != nil || res.Batch[1].ID != rec.ID {
		t.Fatalf("the command beside the nested batch: %+v", res.Batch[1])
	}
	if n := countRecordings(t, db); n != 1 {
		t.Fatalf("%d recordings, want 1 (the nested batch's create must not apply)", n)
	}
}

// TestBatchDeterministic: two replicas applying the same log with batches
// (through ApplyLog, as the FSM does) end byte-identical, and a replay of
// an already-applied batch entry changes nothing.
func TestBatchDeterministic(t *testing.T) {
	var log [][]byte
	for i := range 5 {
		var inner [][]byte
		for j := range 20 {
			r := newRec(t, jan.Add(time.Duration(i*20+j)*time.Second))
			inner = append(inner, encodeBatchCmd(t, &CreateRecording{Recording: r}))
			if j%7 == 3 {
				inner = append(inner, encodeBatchCmd(t, &CreateRecording{Recording: r})) // refused
			}
		}
		log = append(log, encodeBatchCmd(t, &Batch{Cmds: inner}))
	}
	x, y := mustOpen(t), mustOpen(t)
	if _, err := x.ApplyLog(entries(log, 1)); err != nil {
		t.Fatal(err)
	}
	for i := range log { // one entry per transaction on y
		if _, err := y.ApplyLog(entries(log[i:i+1], uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(dump(t, x), dump(t, y)) {
		t.Fatal("replicas diverged")
	}
	before := dump(t, x)
	res, err := x.ApplyLog(entries(log[2:], 3))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Batch != nil || !bytes.Equal(before, dump(t, x)) {
		t.Fatal("replaying applied batch entries changed something")
	}
	if n := countRecordings(t, x); n != 100 {
		t.Fatalf("%d recordings, want 100", n)
	}
}

// TestBatchOfOnce: a Batch carries Once-wrapped commands opaquely; the
// Once semantics hold inside it (a repeated key is a duplicate, not an
// error, and applies nothing).
func TestBatchOfOnce(t *testing.T) {
	db := mustOpen(t)
	a, b := newRec(t, jan), newRec(t, jan.Add(time.Second))
	onceA := encodeBatchCmd(t, &Once{Key: "00112233445566778899aabbccddeeff", At: jan, Cmd: encodeBatchCmd(t, &CreateRecording{Recording: a})})
	res := mustApply(t, db, &Batch{Cmds: [][]byte{onceA, onceA, encodeBatchCmd(t, &CreateRecording{Recording: b})}})
	if r := res.Batch[0]; r.Err != nil || r.Duplicate || r.ID != a.ID {
		t.Fatalf("first once: %+v", r)
	}
	if r := res.Batch[1]; r.Err != nil || !r.Duplicate {
		t.Fatalf("repeated once in the same batch: %+v, want Duplicate", r)
	}
	if r := res.Batch[2]; r.Err != nil || r.ID != b.ID {
		t.Fatalf("plain create: %+v", r)
	}
	if n := countRecordings(t, db); n != 2 {
		t.Fatalf("%d recordings, want 2", n)
	}
}
