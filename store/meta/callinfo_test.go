package meta

import (
	"errors"
	"testing"
	"time"
)

func TestSetCallInfo(t *testing.T) {
	db := mustOpen(t)
	r := newRec(t, time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	r.SIPCallIDIngress, r.PBXCallID, r.SessionID = "", "", ""
	r.LocalParty = LocalParty{}
	r.RemoteParty = RemoteParty{}
	r.Direction = DirUnknown
	r.Technology = "RTP without signalling"
	mustApply(t, db, &CreateRecording{Recording: r})

	mustApply(t, db, &SetCallInfo{
		ID: r.ID, SIPCallIDIngress: "a84b4c76e66710@pc33", Direction: DirOutgoing, Technology: "SIP passive capture",
		LocalParty:  &LocalParty{Number: "+4930111", Name: "Alice"},
		RemoteParty: &RemoteParty{Number: "+4940222", Name: "Bob"},
	})
	got, err := db.Recording(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SIPCallIDIngress != "a84b4c76e66710@pc33" || got.Direction != DirOutgoing || got.LocalParty.Number != "+4930111" || got.RemoteParty.Name != "Bob" || got.Technology != "SIP passive capture" {
		t.Fatalf("call info not set: %+v", got)
	}
	scope := Scope{All: true}
	for _, q := range []Query{{CallID: "a84b4c76e66710@pc33"}, {RemoteNumber: "+4940"}, {LocalNumber: "+49301"}, {Direction: DirOutgoing}} {
		q.Scope = scope
		page, err := db.Search(q)
		if err != nil || len(page.Recordings) != 1 || page.Recordings[0].ID != r.ID {
			t.Errorf("search %+v after SetCallInfo: %v %d", q, err, len(page.Recordings))
		}
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	mustApply(t, db, &DeleteRecording{ID: r.ID, By: "admin", At: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)})
	if _, err := apply(db, &SetCallInfo{ID: r.ID, PBXCallID: "x"}); !errors.Is(err, ErrDeleted) {
		t.Fatalf("SetCallInfo on a deleted recording: %v", err)
	}
}

func TestFormatRTP(t *testing.T) {
	db := mustOpen(t)
	r := newRec(t, time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	r.File.Format = FormatRTP
	mustApply(t, db, &CreateRecording{Recording: r})
	r2 := newRec(t, time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC))
	r2.File.Format = "ogg"
	wantErr(t, db, &CreateRecording{Recording: r2}, ErrInvalid)
}
