package meta

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func auditLog(n int, seed uint64) []Command {
	rng := rand.New(rand.NewPCG(seed, 1))
	var cmds []Command
	for i := range n {
		e := AuditEntry{
			Time:   jan.Add(time.Duration(i) * time.Minute),
			Actor:  fmt.Sprintf("u%d", rng.IntN(5)),
			Tenant: fmt.Sprintf("t%d", rng.IntN(2)),
			Action: auditActions[rng.IntN(len(auditActions))],
		}
		if rng.IntN(2) == 0 {
			e.Recording = fmt.Sprintf("rec-%d", rng.IntN(7))
		}
		if rng.IntN(5) == 0 {
			e.Outcome = "denied"
		}
		e.Address = "192.0.2.1"
		cmds = append(cmds, &AppendAudit{Entry: e})
	}
	return cmds
}

func allAudit(t *testing.T, db *DB) []AuditEntry {
	t.Helper()
	var all []AuditEntry
	err := db.bolt.View(func(tx *boltTx) error {
		return tx.Bucket(bAudit).ForEach(func(_, v []byte) error {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			all = append(all, e)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestAuditChain: entries are numbered and chained, the chain verifies,
// and replaying the same commands into another database gives the same
// bytes (every replica computes the same hashes).
func TestAuditChain(t *testing.T) {
	db, other := mustOpen(t), mustOpen(t)
	cmds := auditLog(300, 1)
	applyLog(t, db, cmds, 0)
	applyLog(t, other, cmds, 64)
	v, err := db.VerifyAudit()
	if err != nil || v.Broken != 0 || v.Entries != 300 {
		t.Fatalf("verify: %+v %v", v, err)
	}
	all := allAudit(t, db)
	if v.Last != all[len(all)-1].Hash || all[0].Prev != "" || all[1].Prev != all[0].Hash {
		t.Fatalf("chain links: last %s, entries %+v %+v", v.Last, all[0], all[1])
	}
	var a, b bytes.Buffer
	if err := db.Dump(&a); err != nil {
		t.Fatal(err)
	}
	if err := other.Dump(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same audit commands gave different databases")
	}
}

// TestAuditTamper: any change, removal or re-hashed forgery of an entry is
// found, at the first entry it breaks.
func TestAuditTamper(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(tx *boltTx) error
		want   uint64
	}{
		{"edit detail", func(tx *boltTx) error { return editAudit(tx, 40, func(e *AuditEntry) { e.Detail = "nothing to see" }) }, 40},
		{"edit and rehash", func(tx *boltTx) error {
			return editAudit(tx, 40, func(e *AuditEntry) {
				e.Actor = "someone-else"
				e.Hash, _ = auditHash(e)
			})
		}, 41},
		{"remove", func(tx *boltTx) error { return tx.Bucket(bAudit).Delete(auditKey(77)) }, 77},
		{"remove the last", func(tx *boltTx) error {
			// Not detectable from the chain alone: the signed checkpoints
			// (the last hash, signed) are what catch it. Here the chain is whole.
			return tx.Bucket(bAudit).Delete(auditKey(100))
		}, 0},
		{"swap two", func(tx *boltTx) error {
			b := tx.Bucket(bAudit)
			x, y := bytes.Clone(b.Get(auditKey(10))), bytes.Clone(b.Get(auditKey(11)))
			if err := b.Put(auditKey(10), y); err != nil {
				return err
			}
			return b.Put(auditKey(11), x)
		}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustOpen(t)
			applyLog(t, db, auditLog(100, 2), 0)
			if err := db.bolt.Update(tc.change); err != nil {
				t.Fatal(err)
			}
			v, err := db.VerifyAudit()
			if err != nil {
				t.Fatal(err)
			}
			if v.Broken != tc.want {
				t.Fatalf("broken at %d (%s), want %d", v.Broken, v.Problem, tc.want)
			}
			if tc.want != 0 && v.Problem == "" {
				t.Fatal("no description of the break")
			}
		})
	}
}

func editAudit(tx *boltTx, seq uint64, f func(*AuditEntry)) error {
	b := tx.Bucket(bAudit)
	var e AuditEntry
	if err := json.Unmarshal(b.Get(auditKey(seq)), &e); err != nil {
		return err
	}
	f(&e)
	raw, _ := json.Marshal(&e)
	return b.Put(auditKey(seq), raw)
}

// TestSearchAudit compares every filter and the pages with a scan.
func TestSearchAudit(t *testing.T) {
	db := mustOpen(t)
	applyLog(t, db, auditLog(500, 3), 100)
	all := allAudit(t, db)
	slices.Reverse(all) // newest first
	t0 := "t0"
	for i, q := range []AuditQuery{
		{}, {Limit: 7}, {Actor: "u3", Limit: 13}, {Recording: "rec-2", Limit: 5}, {Action: AuditPlay}, {Tenant: &t0, Limit: 40},
		{Tenant: &t0, Actor: "u1", Action: AuditDownload}, {Start: jan.Add(100 * time.Minute), End: jan.Add(200 * time.Minute), Limit: 30},
		{Recording: "rec-1", Start: jan.Add(300 * time.Minute)},
	} {
		var want []uint64
		for _, e := range all {
			if (q.Tenant == nil || e.Tenant == *q.Tenant) && (q.Actor == "" || e.Actor == q.Actor) && (q.Recording == "" || e.Recording == q.Recording) &&
				(q.Action == "" || e.Action == q.Action) && (q.Start.IsZero() || !e.Time.Before(q.Start)) && (q.End.IsZero() || e.Time.Before(q.End)) {
				want = append(want, e.Seq)
			}
		}
		var got []uint64
		for pages := 0; ; pages++ {
			p, err := db.SearchAudit(q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Entries {
				got = append(got, e.Seq)
			}
			if p.Next == 0 || pages > 600 {
				break
			}
			q.Before = p.Next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("query %d %+v:\n got %v\nwant %v", i, q, got, want)
		}
	}
	if _, err := db.SearchAudit(AuditQuery{Action: "dance"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown action: %v", err)
	}
}

func TestAuditRejects(t *testing.T) {
	db := mustOpen(t)
	ok := AuditEntry{Time: jan, Actor: "u1", Action: AuditLogin}
	for name, mod := range map[string]func(*AuditEntry){
		"action":  func(e *AuditEntry) { e.Action = "dance" },
		"outcome": func(e *AuditEntry) { e.Outcome = "maybe" },
		"actor":   func(e *AuditEntry) { e.Actor = "" },
		"time":    func(e *AuditEntry) { e.Time = time.Time{} },
		"nul":     func(e *AuditEntry) { e.Recording = "a\x00b" },
	} {
		e := ok
		mod(&e)
		if _, err := apply(db, &AppendAudit{Entry: e}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	// A rejected entry takes no number: the next good one is 1.
	res := mustApply(t, db, &AppendAudit{Entry: ok})
	if res.ID != "1" {
		t.Fatalf("first accepted entry is %s", res.ID)
	}
	if v, _ := db.VerifyAudit(); v.Entries != 1 || v.Broken != 0 {
		t.Fatalf("%+v", v)
	}
}

// TestApplyConcurrentGroupCommit: many goroutines appending at once all
// succeed, each entry gets its own number, a rejected command among them
// changes nothing and does not fail the others, and the chain is whole.
func TestApplyConcurrentGroupCommit(t *testing.T) {
	db := mustOpen(t)
	const n = 200
	errs := make(chan error, n)
	seqs := make(chan string, n)
	for i := range n {
		go func() {
			e := AuditEntry{Time: jan, Actor: fmt.Sprintf("u%d", i%7), Action: AuditPlay}
			if i%10 == 0 {
				e.Action = "dance" // rejected
			}
			b, _ := Encode(&AppendAudit{Entry: e})
			res, err := db.ApplyConcurrent(b)
			if i%10 == 0 {
				if !errors.Is(err, ErrInvalid) {
					errs <- fmt.Errorf("rejected command %d: %v", i, err)
					return
				}
				errs <- nil
				return
			}
			seqs <- res.ID
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(seqs)
	seen := map[string]bool{}
	for s := range seqs {
		if seen[s] {
			t.Fatalf("sequence %s given twice", s)
		}
		seen[s] = true
	}
	v, err := db.VerifyAudit()
	if err != nil || v.Broken != 0 || v.Entries != n-n/10 || len(seen) != n-n/10 {
		t.Fatalf("verify %+v %v, %d results", v, err, len(seen))
	}
}

// TestAuditCheckpointVerification: Apply takes only a checkpoint that
// names an entry's real hash and verifies; VerifyAudit then catches
// entries cut off after it and a checkpoint edited afterwards.
func TestAuditCheckpointVerification(t *testing.T) {
	db := mustOpen(t)
	applyLog(t, db, auditLog(30, 4), 0)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := db.AuditEntry(30)
	if err != nil {
		t.Fatal(err)
	}
	good := &AuditCheckpoint{Seq: 30, Hash: e.Hash, Time: jan, PublicKey: pub, Signature: ed25519.Sign(priv, CheckpointMessage(30, e.Hash))}
	wrongHash := *good
	wrongHash.Hash = strings.Repeat("0", 64)
	forged := *good
	forged.Signature = ed25519.Sign(priv, CheckpointMessage(29, e.Hash))
	missing := *good
	missing.Seq = 31
	for name, c := range map[string]*AuditCheckpoint{"wrong hash": &wrongHash, "forged": &forged} {
		if _, err := apply(db, c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s checkpoint: %v, want ErrInvalid", name, err)
		}
	}
	wantErr(t, db, &missing, ErrNotFound)
	mustApply(t, db, good)
	if v, err := db.VerifyAudit(); err != nil || v.Broken != 0 || v.Checkpoints != 1 || v.LastCheckpoint != 30 {
		t.Fatalf("%+v %v", v, err)
	}
	// Cut off the newest entries: the chain that is left is whole, the
	// checkpoint says it was longer.
	if err := db.bolt.Update(func(tx *boltTx) error {
		for seq := uint64(26); seq <= 30; seq++ {
			if err := tx.Bucket(bAudit).Delete(auditKey(seq)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	v, err := db.VerifyAudit()
	if err != nil || v.Broken != 26 || !strings.Contains(v.Problem, "removed") {
		t.Fatalf("truncation: %+v %v", v, err)
	}
}

// TestAppendAuditsBatch: a batch appends its entries in order into the same
// chain; one invalid entry rejects the whole batch.
func TestAppendAuditsBatch(t *testing.T) {
	db := mustOpen(t)
	mustApply(t, db, &AppendAudit{Entry: AuditEntry{Time: jan, Actor: "u1", Action: AuditLogin}})
	var batch []AuditEntry
	for i := range 5 {
		batch = append(batch, AuditEntry{Time: jan.Add(time.Duration(i) * time.Second), Actor: "u2", Action: AuditSearch, Detail: fmt.Sprint(i)})
	}
	bad := append(slices.Clone(batch), AuditEntry{Time: jan, Actor: "u2", Action: "dance"})
	wantErr(t, db, &AppendAudits{Entries: bad}, ErrInvalid)
	wantErr(t, db, &AppendAudits{}, ErrInvalid)
	if res := mustApply(t, db, &AppendAudits{Entries: batch}); res.ID != "6" {
		t.Fatalf("last entry of the batch is %s, want 6", res.ID)
	}
	all := allAudit(t, db)
	if len(all) != 6 || all[1].Detail != "0" || all[5].Detail != "4" || all[3].Prev != all[2].Hash {
		t.Fatalf("entries %+v", all)
	}
	if v, err := db.VerifyAudit(); err != nil || v.Broken != 0 || v.Entries != 6 {
		t.Fatalf("%+v %v", v, err)
	}
}
