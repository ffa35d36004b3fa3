package meta

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func newRec(t testing.TB, start time.Time) Recording {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return Recording{
		ID: id.String(), PBXCallID: "pbx-1", SIPCallIDIngress: "abc@sbc", Start: start, Duration: 65_000,
		Direction: DirIncoming, Source: SourceMirror, Status: StatusRecording, Tier: TierHot,
		LocalParty:  LocalParty{User: "u1", Number: "+49 30 1234-100", Name: "Alice"},
		RemoteParty: RemoteParty{Number: "+49 89 555 0100", Name: "Hans Müller"},
		Group:       "g1", Tenant: "t1",
		File: FileInfo{Path: "x/y", Format: FormatGrid, WrappedDEK: []byte("secret-wrapped-key"), KeyTerm: 1},
	}
}

var jan = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)

func TestReferenceNumbersPerYear(t *testing.T) {
	db := mustOpen(t)
	want := []struct {
		start time.Time
		ref   string
	}{
		{jan, "2026000000001"},
		{jan.Add(time.Hour), "2026000000002"},
		{time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC), "2025000000001"},
		{jan.Add(-time.Hour), "2026000000003"},
		// The year is that of the start time in UTC.
		{time.Date(2027, 1, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600)), "2026000000004"},
	}
	for _, w := range want {
		r := newRec(t, w.start)
		res := mustApply(t, db, &CreateRecording{Recording: r})
		if res.Reference != w.ref || res.ID != r.ID {
			t.Fatalf("start %v: reference %q, want %q", w.start, res.Reference, w.ref)
		}
		got, err := db.RecordingByReference(w.ref)
		if err != nil || got.ID != r.ID || !got.Start.Equal(w.start) || got.Start.Location() != time.UTC {
			t.Fatalf("RecordingByReference(%s) = %+v, %v", w.ref, got, err)
		}
	}
}

func TestCreateRecordingValidation(t *testing.T) {
	db := mustOpen(t)
	ok := newRec(t, jan)
	mustApply(t, db, &CreateRecording{Recording: ok})
	wantErr(t, db, &CreateRecording{Recording: ok}, ErrExists)

	cases := map[string]func(r *Recording){
		"bad id":         func(r *Recording) { r.ID = "not-a-uuid" },
		"nil id":         func(r *Recording) { r.ID = uuid.Nil.String() },
		"reference set":  func(r *Recording) { r.Reference = "2026000000099" },
		"year 1960":      func(r *Recording) { r.Start = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC) },
		"direction":      func(r *Recording) { r.Direction = "sideways" },
		"source":         func(r *Recording) { r.Source = "fax" },
		"status deleted": func(r *Recording) { r.Status = StatusDeleted },
		"rating 6":       func(r *Recording) { r.Rating = 6 },
		"negative dur":   func(r *Recording) { r.Duration = -1 },
		"NUL in callid":  func(r *Recording) { r.PBXCallID = "a\x00b" },
		"huge callid":    func(r *Recording) { r.PBXCallID = strings.Repeat("x", maxCallIDLen+1) },
		"huge note":      func(r *Recording) { r.Notes = []Note{{ID: "n", Text: strings.Repeat("a", maxNoteLen+1)}} },
		"dup note ids":   func(r *Recording) { r.Notes = []Note{{ID: "n", Text: "a"}, {ID: "n", Text: "b"}} },
		"bookmark type":  func(r *Recording) { r.Bookmarks = []Bookmark{{ID: "b", Type: "coffee"}} },
		"sha not hex":    func(r *Recording) { r.File.SHA256 = "zz" },
		"tier":           func(r *Recording) { r.Tier = "cold" },
		"related self":   func(r *Recording) { r.Related = []Related{{ID: "nope", Relation: "x"}} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRec(t, jan)
			mutate(&r)
			wantErr(t, db, &CreateRecording{Recording: r}, ErrInvalid)
		})
	}
}

func TestRecordingCommands(t *testing.T) {
	db := mustOpen(t)
	a, b := newRec(t, jan), newRec(t, jan.Add(time.Minute))
	mustApply(t, db, &CreateRecording{Recording: a})
	mustApply(t, db, &CreateRecording{Recording: b})

	d, sz, flagged := int64(90_000), int64(12345), true
	seal := strings.Repeat("0f", 32)
	mustApply(t, db, &UpdateRecording{ID: a.ID, Status: StatusComplete, Duration: &d, Size: &sz, Codecs: []string{"PCMA", "G722"},
		Quality:  []ChannelQuality{{Label: "caller", PacketsExpected: 100, PacketsReceived: 98, LossPct: 2, JitterMs: 3.5}},
		SealHash: seal, DurationFlagged: &flagged})
	wantErr(t, db, &UpdateRecording{ID: a.ID, Status: StatusDeleted}, ErrInvalid)
	wantErr(t, db, &UpdateRecording{ID: uuid.NewString(), Status: StatusComplete}, ErrNotFound)
	mustApply(t, db, &SetLocation{ID: a.ID, Tier: TierArchive, Path: "nas/a"})
	mustApply(t, db, &AddNote{ID: a.ID, Note: Note{ID: "n1", Author: "u1", Time: jan, Text: "Customer wants a REFUND"}})
	wantErr(t, db, &AddNote{ID: a.ID, Note: Note{ID: "n1", Author: "u1", Time: jan, Text: "again"}}, ErrExists)
	mustApply(t, db, &SetRating{ID: a.ID, Rating: 4})
	wantErr(t, db, &SetRating{ID: a.ID, Rating: -1}, ErrInvalid)
	mustApply(t, db, &SetCategory{ID: a.ID, Category: "Billing"})
	mustApply(t, db, &SetCustomField{ID: a.ID, Key: "order", Value: "A-17"})
	mustApply(t, db, &SetCustomField{ID: a.ID, Key: "tmp", Value: "x"})
	mustApply(t, db, &SetCustomField{ID: a.ID, Key: "tmp", Value: ""})
	mustApply(t, db, &SetComplete{ID: a.ID, Complete: true})
	mustApply(t, db, &SetReviewMinutes{ID: a.ID, Minutes: 7})
	mustApply(t, db, &SetTranscript{ID: a.ID, Transcript: "hello"})
	mustApply(t, db, &AddBookmark{ID: a.ID, Bookmark: Bookmark{ID: "bm1", Type: BookmarkPause, OffsetMs: 5000, Time: jan}})
	mustApply(t, db, &LinkRelated{ID: a.ID, Other: b.ID, Relation: "transfer"})
	mustApply(t, db, &LinkRelated{ID: a.ID, Other: b.ID, Relation: "transfer"}) // idempotent
	wantErr(t, db, &LinkRelated{ID: a.ID, Other: a.ID, Relation: "transfer"}, ErrInvalid)
	mustApply(t, db, &SetDeleteAfter{ID: a.ID, DeleteAfter: jan.AddDate(1, 0, 0)})
	mustApply(t, db, &RewrapDEKs{Keys: []Rewrap{{ID: a.ID, WrappedDEK: []byte("k2-a"), KeyTerm: 2}, {ID: b.ID, WrappedDEK: []byte("k2-b"), KeyTerm: 2}}})
	// All or nothing: one unknown ID rejects the whole rewrap.
	wantErr(t, db, &RewrapDEKs{Keys: []Rewrap{{ID: a.ID, WrappedDEK: []byte("k3"), KeyTerm: 3}, {ID: uuid.NewString(), WrappedDEK: []byte("k3"), KeyTerm: 3}}}, ErrNotFound)

	got, err := db.Recording(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusComplete || got.Duration != d || got.Size != sz || len(got.Codecs) != 2 || got.Quality[0].JitterMs != 3.5 ||
		got.File.SHA256 != seal || !got.DurationFlagged || got.Tier != TierArchive || got.File.Path != "nas/a" ||
		len(got.Notes) != 1 || got.Rating != 4 || got.Category != "Billing" || len(got.CustomFields) != 1 ||
		got.CustomFields["order"] != "A-17" || !got.CompleteTransaction || got.ReviewMinutes != 7 || got.Transcript != "hello" ||
		len(got.Bookmarks) != 1 || len(got.Related) != 1 || got.Related[0] != (Related{ID: b.ID, Relation: "transfer"}) ||
		!got.DeleteAfter.Equal(jan.AddDate(1, 0, 0)) || string(got.File.WrappedDEK) != "k2-a" || got.File.KeyTerm != 2 {
		t.Fatalf("after commands: %+v", got)
	}
	gb, _ := db.Recording(b.ID)
	if len(gb.Related) != 1 || gb.Related[0].ID != a.ID {
		t.Fatalf("reverse link missing: %+v", gb.Related)
	}
}

func TestDeleteShredsAndRespectsHold(t *testing.T) {
	db := mustOpen(t)
	r := newRec(t, jan)
	r.Notes = []Note{{ID: "n1", Author: "u1", Time: jan, Text: "secret words"}}
	res := mustApply(t, db, &CreateRecording{Recording: r})
	mustApply(t, db, &Preserve{ID: r.ID, By: "auditor", At: jan, Until: jan.AddDate(0, 1, 0)})
	wantErr(t, db, &DeleteRecording{ID: r.ID, By: "admin", At: jan.AddDate(0, 0, 10)}, ErrPreserved)
	// The hold has expired at At: deleting is allowed.
	mustApply(t, db, &DeleteRecording{ID: r.ID, By: "admin", At: jan.AddDate(0, 2, 0)})
	wantErr(t, db, &DeleteRecording{ID: r.ID, By: "admin", At: jan.AddDate(0, 2, 0)}, ErrDeleted)
	wantErr(t, db, &AddNote{ID: r.ID, Note: Note{ID: "n2", Text: "x"}}, ErrDeleted)

	tomb, err := db.RecordingByReference(res.Reference)
	if err != nil {
		t.Fatal(err)
	}
	if tomb.Status != StatusDeleted || tomb.File.WrappedDEK != nil || tomb.Notes != nil || tomb.RemoteParty != (RemoteParty{}) ||
		tomb.Deleted == nil || tomb.Deleted.By != "admin" || tomb.ID != r.ID || tomb.Group != "g1" {
		t.Fatalf("tombstone: %+v", tomb)
	}
	// The wrapped key must be gone from the file, not just from the struct.
	var dump bytes.Buffer
	if err := db.Dump(&dump); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"secret-wrapped-key", "secret words", "Müller"} {
		if bytes.Contains(dump.Bytes(), []byte(hexOf(secret))) {
			t.Fatalf("%q still in the database after delete", secret)
		}
	}
	// Indefinite hold blocks deletion forever.
	r2 := newRec(t, jan)
	mustApply(t, db, &CreateRecording{Recording: r2})
	mustApply(t, db, &Preserve{ID: r2.ID, By: "auditor", At: jan})
	wantErr(t, db, &DeleteRecording{ID: r2.ID, By: "admin", At: jan.AddDate(50, 0, 0)}, ErrPreserved)
	// Lifting it takes two people: a request, then someone else's release.
	wantErr(t, db, &Release{ID: r2.ID, By: "admin", At: jan}, ErrNeedsApproval)
	mustApply(t, db, &RequestRelease{ID: r2.ID, By: "admin", At: jan})
	wantErr(t, db, &Release{ID: r2.ID, By: "admin", At: jan}, ErrNeedsApproval)
	wantErr(t, db, &DeleteRecording{ID: r2.ID, By: "admin", At: jan}, ErrPreserved)
	mustApply(t, db, &Release{ID: r2.ID, By: "admin2", At: jan})
	mustApply(t, db, &DeleteRecording{ID: r2.ID, By: "admin", At: jan})

	p, err := db.Search(Query{Scope: Scope{All: true}})
	if err != nil || len(p.Recordings) != 0 {
		t.Fatalf("deleted recordings found by default: %+v, %v", p, err)
	}
	p, err = db.Search(Query{Scope: Scope{All: true}, IncludeDeleted: true})
	if err != nil || len(p.Recordings) != 2 {
		t.Fatalf("IncludeDeleted: %d results, %v", len(p.Recordings), err)
	}
}

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&15])
	}
	return b.String()
}

// applyLog applies cmds one by one (batch == 0) or in batches, returning
// how many commands were rejected.
func applyLog(t testing.TB, db *DB, cmds []Command, batch int) int {
	t.Helper()
	rejected := 0
	enc := make([][]byte, len(cmds))
	for i, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		enc[i] = b
	}
	if batch == 0 {
		for _, b := range enc {
			if _, err := db.Apply(b); err != nil {
				rejected++
			}
		}
		return rejected
	}
	for len(enc) > 0 {
		n := min(batch, len(enc))
		res, err := db.ApplyBatch(enc[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				rejected++
			}
		}
		enc = enc[n:]
	}
	return rejected
}

func dump(t testing.TB, db *DB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := db.Dump(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDeterminism applies one generated log — valid and rejected commands
// mixed — to fresh databases one by one and in batches: the dumps must be
// byte-identical, and every index must agree with the records (checked
// by mustOpen's cleanup).
func TestDeterminism(t *testing.T) {
	cmds := newWorld(1, 40, 5, 2, 30*24*time.Hour).log(500, 1.5)
	one, two, batched := mustOpen(t), mustOpen(t), mustOpen(t)
	r1 := applyLog(t, one, cmds, 0)
	r2 := applyLog(t, two, cmds, 0)
	r3 := applyLog(t, batched, cmds, 37)
	if r1 == 0 || r1 == len(cmds) {
		t.Fatalf("%d of %d commands rejected: the log should mix valid and rejected commands", r1, len(cmds))
	}
	if r1 != r2 || r1 != r3 {
		t.Fatalf("rejections differ: %d, %d, %d", r1, r2, r3)
	}
	d1, d2, d3 := dump(t, one), dump(t, two), dump(t, batched)
	if !bytes.Equal(d1, d2) || !bytes.Equal(d1, d3) {
		t.Fatalf("dumps differ: %d, %d, %d bytes", len(d1), len(d2), len(d3))
	}
	if !bytes.Contains(d1, []byte("idx_note\t")) || !bytes.Contains(d1, []byte("idx_attr\t")) {
		t.Fatal("dump lacks index buckets")
	}
	t.Logf("%d commands, %d rejected, dump %d bytes", len(cmds), r1, len(d1))
}

// TestCheckFindsCorruption proves Check is not vacuous: remove one index
// entry or add a stale one and it must fail.
func TestCheckFindsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bucket []byte
		add    bool
	}{{"missing note entry", bNote, false}, {"stale user entry", bUser, true}, {"missing time entry", bTime, false}} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(t.TempDir()+"/m.db", Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			r := newRec(t, jan)
			r.Notes = []Note{{ID: "n", Text: "refund"}}
			mustApply(t, db, &CreateRecording{Recording: r})
			if err := db.Check(); err != nil {
				t.Fatal(err)
			}
			err = db.bolt.Update(func(tx *boltTx) error {
				b := tx.Bucket(tc.bucket)
				if tc.add {
					return b.Put(append([]byte("ghost\x00"), make([]byte, skeyLen)...), nil)
				}
				k, _ := b.Cursor().First()
				return b.Delete(k)
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Check(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check after corruption: %v", err)
			}
		})
	}
}

// TestDiscardLeavesNothing: a recording still being written can be
// discarded, leaving no record, no index entry and no search hit; a
// finished one cannot.
func TestDiscardLeavesNothing(t *testing.T) {
	db := mustOpen(t)
	keep, gone := newRec(t, jan), newRec(t, jan.Add(time.Minute))
	gone.Notes = []Note{{ID: "n1", Author: "u1", Time: jan, Text: "discard me"}}
	gone.Preserved = &Preservation{By: "u1", At: jan}
	mustApply(t, db, &CreateRecording{Recording: keep})
	res := mustApply(t, db, &CreateRecording{Recording: gone})
	mustApply(t, db, &DiscardRecording{ID: gone.ID})
	if _, err := db.Recording(gone.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("discarded recording still there: %v", err)
	}
	if _, err := db.RecordingByReference(res.Reference); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reference still there: %v", err)
	}
	for _, q := range []Query{{Scope: Scope{All: true}, IncludeDeleted: true}, {Scope: Scope{All: true}, NoteWords: "discard"}, {Scope: Scope{All: true}, Preserved: true}} {
		p, err := db.Search(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Recordings {
			if r.ID == gone.ID {
				t.Fatalf("search %+v finds the discarded recording", q)
			}
		}
	}
	mustApply(t, db, &UpdateRecording{ID: keep.ID, Status: StatusComplete, SealHash: strings.Repeat("ab", 32)})
	wantErr(t, db, &DiscardRecording{ID: keep.ID}, ErrInvalid)
	wantErr(t, db, &DiscardRecording{ID: gone.ID}, ErrNotFound)
	// mustOpen's cleanup runs Check: every index agrees with what is left.
}

// TestHoldOnlyGrows: preserving again never shortens a hold, a dated hold
// moves the deletion date out, and a new hold cancels a pending release.
func TestHoldOnlyGrows(t *testing.T) {
	db := mustOpen(t)
	r := newRec(t, jan)
	r.DeleteAfter = jan.AddDate(0, 3, 0)
	mustApply(t, db, &CreateRecording{Recording: r})
	get := func() Recording { g, _ := db.Recording(r.ID); return g }
	mustApply(t, db, &Preserve{ID: r.ID, By: "a", At: jan, Until: jan.AddDate(1, 0, 0)})
	if g := get(); !g.DeleteAfter.Equal(jan.AddDate(1, 0, 0)) {
		t.Fatalf("delete after %v, want the hold's end", g.DeleteAfter)
	}
	mustApply(t, db, &Preserve{ID: r.ID, By: "b", At: jan, Until: jan.AddDate(0, 6, 0)}) // shorter: ignored
	if g := get(); !g.Preserved.Until.Equal(jan.AddDate(1, 0, 0)) {
		t.Fatalf("hold shortened to %v", g.Preserved.Until)
	}
	wantErr(t, db, &RequestRelease{ID: r.ID, By: "a", At: jan}, ErrInvalid) // dated: released directly
	mustApply(t, db, &Preserve{ID: r.ID, By: "c", At: jan})                 // indefinite now
	mustApply(t, db, &Preserve{ID: r.ID, By: "d", At: jan, Until: jan.AddDate(9, 0, 0)})
	if g := get(); !g.Preserved.Until.IsZero() {
		t.Fatalf("indefinite hold became dated: %v", g.Preserved.Until)
	}
	mustApply(t, db, &RequestRelease{ID: r.ID, By: "a", At: jan})
	mustApply(t, db, &Preserve{ID: r.ID, By: "e", At: jan}) // cancels the request
	wantErr(t, db, &Release{ID: r.ID, By: "b", At: jan}, ErrNeedsApproval)
}
