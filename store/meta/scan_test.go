package meta

import (
	"slices"
	"testing"
	"time"
)

func TestRecordingsAfterPagesEverything(t *testing.T) {
	db := mustOpen(t)
	var want []string
	for i := range 7 {
		r := newRec(t, jan.Add(time.Duration(i)*time.Minute))
		mustApply(t, db, &CreateRecording{Recording: r})
		want = append(want, r.ID)
	}
	mustApply(t, db, &DeleteRecording{ID: want[3], By: "admin", At: jan})
	slices.Sort(want) // ID order
	var got []string
	after := ""
	for range 10 {
		page, err := db.RecordingsAfter(after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			got = append(got, r.ID)
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged walk:\n got %v\nwant %v", got, want)
	}
	if _, err := db.RecordingsAfter("junk", 3); err == nil {
		t.Fatal("bad cursor ID accepted")
	}
}
