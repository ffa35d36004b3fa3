package meta

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzSeedFile builds, once per fuzz worker, a database file holding a
// user and two recordings that the seed commands refer to, so that fuzzed
// commands reach deep code. Each exec starts from a byte copy of it: creating
// a bbolt file costs an fsync, copying 100 KB does not.
func fuzzSeedFile(f *testing.F) (seed []byte, work string) {
	dir := f.TempDir()
	db, err := Open(filepath.Join(dir, "seed.db"), Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	applyLog(f, db, fuzzSeedCommands()[:3], 0)
	if err := db.Close(); err != nil {
		f.Fatal(err)
	}
	seed, err = os.ReadFile(filepath.Join(dir, "seed.db"))
	if err != nil {
		f.Fatal(err)
	}
	return seed, filepath.Join(dir, "exec.db")
}

func fuzzSeedCommands() []Command {
	a, b := fuzzRec("0198a000-0000-7000-8000-000000000001", "refund please"), fuzzRec("0198a000-0000-7000-8000-000000000002", "")
	return []Command{
		&CreateUser{User: testUser("u1", "t1", "alice")},
		&CreateRecording{Recording: a},
		&CreateRecording{Recording: b},
		&AddNote{ID: a.ID, Note: Note{ID: "n2", Author: "u1", Time: jan, Text: "call back tomorrow"}},
		&LinkRelated{ID: a.ID, Other: b.ID, Relation: "transfer"},
		&Preserve{ID: b.ID, By: "u1", At: jan},
		&DeleteRecording{ID: a.ID, By: "u1", At: jan},
		&SetCategory{ID: b.ID, Category: "Billing"},
		&AddBookmark{ID: b.ID, Bookmark: Bookmark{ID: "x", Type: BookmarkDTMF, Time: jan}},
		&RewrapDEKs{Keys: []Rewrap{{ID: b.ID, WrappedDEK: []byte{1, 2}, KeyTerm: 2}}},
		&UpdateRecording{ID: b.ID, Status: StatusComplete, SealHash: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
		&AddReplica{ID: b.ID, Node: "node-b"},
		&AddReplica{ID: b.ID, Node: "node-b"},
		&PutSetting{Key: "k", Value: []byte("v")},
		&DiscardRecording{ID: "0198a000-0000-7000-8000-000000000002"},
		&SetRetention{Tenant: "t1", Days: 90},
		&RecomputeRetention{Tenant: "t1", Limit: 2},
		&RecomputeRetention{Tenant: "t1", Group: "g1", After: "0198a000-0000-7000-8000-000000000001", Limit: 10},
		&RequestRelease{ID: "0198a000-0000-7000-8000-000000000002", By: "u1", At: jan},
		&Release{ID: "0198a000-0000-7000-8000-000000000002", By: "u2", At: jan},
		&AuditCheckpoint{Seq: 1, Hash: "00", Time: jan, PublicKey: make([]byte, 32), Signature: make([]byte, 64)},
		&AppendAudits{Entries: []AuditEntry{{Time: jan, Actor: "u1", Action: AuditSearch, Detail: "q=1"}, {Time: jan, Actor: "u1", Action: AuditView, Recording: "x"}}},
		&AppendAudit{Entry: AuditEntry{Time: jan, Actor: "u1", Tenant: "t1", Action: AuditPlay, Recording: "0198a000-0000-7000-8000-000000000002", Address: "192.0.2.7"}},
		// Must-change-password: set by an admin's reset, cleared by the user's own change.
		&SetPassword{ID: "u1", PasswordHash: testHash, MustChange: true},
		&SetPassword{ID: "u1", PasswordHash: testHash},
		// Once twice with one key: the second is a duplicate.
		&Once{Key: "00112233445566778899aabbccddeeff", At: jan, Cmd: append([]byte{byte(TypeSetCategory)}, `{"id":"0198a000-0000-7000-8000-000000000002","category":"Once"}`...)},
		&Once{Key: "00112233445566778899aabbccddeeff", At: jan, Cmd: append([]byte{byte(TypeSetCategory)}, `{"id":"0198a000-0000-7000-8000-000000000002","category":"Twice"}`...)},
	}
}

func fuzzRec(id, note string) Recording {
	r := Recording{ID: id, PBXCallID: "pbx", Start: jan, Duration: 1000, Direction: DirOutgoing, Source: SourceUpload,
		Status: StatusRecording, LocalParty: LocalParty{User: "u1", Number: "100"}, RemoteParty: RemoteParty{Number: "+4930", Name: "Eve Doe"},
		Group: "g1", Tenant: "t1", File: FileInfo{WrappedDEK: []byte("dek")}}
	if note != "" {
		r.Notes = []Note{{ID: "n1", Author: "u1", Time: jan, Text: note}}
	}
	return r
}

// FuzzApply feeds arbitrary command sequences to Apply and ApplyBatch. The
// input is a list of commands, each prefixed by a 2-byte length. Nothing
// may panic, and afterwards every index must agree with the records.
func FuzzApply(f *testing.F) {
	var all []byte
	for _, c := range fuzzSeedCommands() {
		b, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		all = binary.BigEndian.AppendUint16(all, uint16(len(b)))
		all = append(all, b...)
		f.Add(binary.BigEndian.AppendUint16(nil, uint16(len(b))), byte(0))
	}
	f.Add(all, byte(0))
	f.Add(all, byte(1))
	f.Add([]byte{0, 3, byte(TypeSetRating), '{', '}'}, byte(1))
	seed, work := fuzzSeedFile(f)
	f.Fuzz(func(t *testing.T, in []byte, batch byte) {
		// Always start from the seed state, then apply the fuzzed commands.
		if err := os.WriteFile(work, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(work, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var cmds [][]byte
		for len(in) >= 2 && len(cmds) < 64 {
			n := int(binary.BigEndian.Uint16(in))
			in = in[2:]
			n = min(n, len(in))
			cmds = append(cmds, in[:n])
			in = in[n:]
		}
		if batch&1 == 1 {
			if _, err := db.ApplyBatch(cmds); err != nil {
				t.Fatalf("ApplyBatch failed as a whole: %v", err)
			}
		} else {
			for _, c := range cmds {
				_, _ = db.Apply(c)
			}
		}
		if err := db.Check(); err != nil {
			t.Fatalf("inconsistent after %d commands: %v", len(cmds), err)
		}
		// Reads over whatever state the commands left must not fail.
		if _, err := db.Search(Query{Scope: Scope{All: true}, IncludeDeleted: true, NoteWords: "refund"}); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzCursor: arbitrary cursors are rejected cleanly or accepted, never
// panic; an accepted one re-encodes to the same key, and Search with it works.
func FuzzCursor(f *testing.F) {
	skey := makeSkey(jan, [16]byte{1, 2, 3})
	f.Add(encodeCursor(false, skey), false)
	f.Add(encodeCursor(true, skey), true)
	f.Add(encodeCursor(true, make([]byte, skeyLen)), true)
	f.Add("", false)
	f.Add("AQ", false)
	f.Add("////////////////////////////////////", false)
	db, err := Open(f.TempDir()+"/c.db", Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	for i := range 5 {
		r := fuzzRec("0198a000-0000-7000-8000-00000000000"+string(rune('1'+i)), "")
		r.Start = jan.Add(time.Duration(i) * time.Minute)
		b, _ := Encode(&CreateRecording{Recording: r})
		if _, err := db.Apply(b); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, s string, asc bool) {
		k, err := decodeCursor(s, asc)
		if err == nil {
			k2, err := decodeCursor(encodeCursor(asc, k), asc)
			if err != nil || !bytes.Equal(k, k2) {
				t.Fatalf("round trip of %x: %x, %v", k, k2, err)
			}
		}
		p, err := db.Search(Query{Scope: Scope{All: true}, Cursor: s, Ascending: asc, Limit: 2})
		if err == nil && len(p.Recordings) > 2 {
			t.Fatalf("page of %d", len(p.Recordings))
		}
	})
}
