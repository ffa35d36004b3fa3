package meta

import (
	"errors"
	"fmt"
	"testing"
)

// TestUpdateRecordingWithAudit: an UpdateRecording's audit entries are
// appended in its transaction, after the change, chained like any other
// entries, and Result.AuditSeq names the last; an update that is refused
// (unknown recording, a bad entry, a forbidden status) changes nothing and
// appends nothing.
func TestUpdateRecordingWithAudit(t *testing.T) {
	db := mustOpen(t)
	rec := newRec(t, jan)
	mustApply(t, db, &CreateRecording{Recording: rec})
	mustApply(t, db, &AppendAudit{Entry: AuditEntry{Time: jan, Actor: "u1", Action: AuditPlay, Recording: rec.ID}})
	entry := func(actor string) AuditEntry {
		return AuditEntry{Time: jan, Actor: actor, Action: AuditSeal, Recording: rec.ID, Detail: "sealed"}
	}
	head := func() uint64 {
		seq, _, _, err := db.AuditHead()
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}

	size := int64(4096)
	res := mustApply(t, db, &UpdateRecording{ID: rec.ID, Status: StatusComplete, Size: &size,
		Audit: []AuditEntry{entry("system:store"), entry("uploader")}})
	if res.AuditSeq != 3 || head() != 3 {
		t.Fatalf("AuditSeq %d, head %d; want 3 (after the one entry before)", res.AuditSeq, head())
	}
	got, err := db.Recording(rec.ID)
	if err != nil || got.Status != StatusComplete || got.Size != size {
		t.Fatalf("recording after the update: %+v %v", got, err)
	}
	for seq, actor := range map[uint64]string{2: "system:store", 3: "uploader"} {
		e, err := db.AuditEntry(seq)
		if err != nil || e.Actor != actor || e.Outcome != "ok" {
			t.Fatalf("entry %d: %+v %v, want actor %s", seq, e, err, actor)
		}
	}
	if v, err := db.VerifyAudit(); err != nil || v.Broken != 0 {
		t.Fatalf("the chain after entries appended by an update: %+v %v", v, err)
	}
	if res := mustApply(t, db, &UpdateRecording{ID: rec.ID, Status: StatusComplete}); res.AuditSeq != 0 {
		t.Fatalf("an update without entries reports AuditSeq %d", res.AuditSeq)
	}

	refused := []struct {
		name string
		cmd  *UpdateRecording
		want error
	}{
		{"unknown recording", &UpdateRecording{ID: "0190a0b0-0000-7000-8000-000000000001", Status: StatusComplete, Audit: []AuditEntry{entry("x")}}, ErrNotFound},
		{"entry without an action", &UpdateRecording{ID: rec.ID, Status: StatusFailed, Audit: []AuditEntry{{Time: jan, Actor: "x"}}}, ErrInvalid},
		{"status deleted", &UpdateRecording{ID: rec.ID, Status: StatusDeleted, Audit: []AuditEntry{entry("x")}}, ErrInvalid},
		{"too many entries", &UpdateRecording{ID: rec.ID, Status: StatusFailed, Audit: make([]AuditEntry, maxAuditBatch+1)}, ErrInvalid},
	}
	for _, tc := range refused {
		if _, err := apply(db, tc.cmd); !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if head() != 3 {
			t.Fatalf("%s: the refused update appended entries (head %d)", tc.name, head())
		}
		if got, _ := db.Recording(rec.ID); got.Status != StatusComplete {
			t.Fatalf("%s: the refused update changed the recording: %s", tc.name, got.Status)
		}
	}

	// In a Batch, a refused update next to an accepted one leaves no trace.
	b := &Batch{Cmds: [][]byte{
		encodeBatchCmd(t, &UpdateRecording{ID: rec.ID, Status: StatusDeleted, Audit: []AuditEntry{entry("refused")}}),
		encodeBatchCmd(t, &UpdateRecording{ID: rec.ID, Status: StatusComplete, Audit: []AuditEntry{entry("accepted")}}),
	}}
	res = mustApply(t, db, b)
	if res.Batch[0].Err == nil || res.Batch[1].Err != nil || res.Batch[1].AuditSeq != 4 || head() != 4 {
		t.Fatalf("batch: %+v, head %d", res.Batch, head())
	}
	if e, _ := db.AuditEntry(4); e.Actor != "accepted" {
		t.Fatalf("entry 4 is %s's", fmt.Sprint(e.Actor))
	}
}
