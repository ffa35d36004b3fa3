package meta

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The audit log: every security-relevant event (sign-in, search, play,
// download, export, delete, preserve, note, rating, configuration, user and
// key changes) is an entry appended through Apply, so a cluster replicates
// it like any other change, and its order is the log's order.
//
// Entries form a hash chain: each entry's Hash is SHA-256 over the previous
// entry's hash and the entry's canonical JSON (Hash itself left empty).
// Changing, removing or reordering an entry breaks every hash after it,
// which VerifyAudit reports. The chain is computed inside Apply from the
// command and the previous entry only, so every replica computes the same.

// AuditAction names what happened.
type AuditAction string

// Audit actions.
const (
	AuditLogin       AuditAction = "login"
	AuditLoginFailed AuditAction = "login-failed"
	AuditLogout      AuditAction = "logout"
	AuditSearch      AuditAction = "search"
	AuditView        AuditAction = "view" // a recording's details
	AuditPlay        AuditAction = "play"
	AuditDownload    AuditAction = "download"
	AuditExport      AuditAction = "export"
	AuditUpload      AuditAction = "upload"
	AuditDelete      AuditAction = "delete"
	AuditPreserve    AuditAction = "preserve"
	AuditRelease     AuditAction = "release"
	AuditNote        AuditAction = "note"
	AuditRating      AuditAction = "rating"
	AuditAnnotate    AuditAction = "annotate" // category, custom fields, flags, transcript, bookmarks
	AuditConfig      AuditAction = "config"
	AuditUser        AuditAction = "user" // accounts, groups, tenants, permissions
	AuditToken       AuditAction = "token"
	AuditKey         AuditAction = "key" // key rotation
	AuditPurge       AuditAction = "purge"
	AuditSeal        AuditAction = "seal" // a recording's hashes fixed when it was sealed
)

var auditActions = []AuditAction{AuditLogin, AuditLoginFailed, AuditLogout, AuditSearch, AuditView, AuditPlay,
	AuditDownload, AuditExport, AuditUpload, AuditDelete, AuditPreserve, AuditRelease, AuditNote, AuditRating,
	AuditAnnotate, AuditConfig, AuditUser, AuditToken, AuditKey, AuditPurge, AuditSeal}

// AuditActions lists every action an entry may have, in a fixed order.
func AuditActions() []AuditAction { return slices.Clone(auditActions) }

// AuditEntry is one event. Seq, Prev and Hash are assigned by Apply.
type AuditEntry struct {
	Seq       uint64      `json:"seq"`
	Time      time.Time   `json:"time"`
	Actor     string      `json:"actor"` // user ID, or "system:<part>"
	ActorName string      `json:"actorName,omitempty"`
	Tenant    string      `json:"tenant"`
	Action    AuditAction `json:"action"`
	// Outcome is "ok", "denied" (not allowed) or "failed".
	Outcome   string `json:"outcome"`
	Recording string `json:"recording,omitempty"`
	Address   string `json:"address,omitempty"` // the client's address
	Detail    string `json:"detail,omitempty"`  // e.g. the search filters, the format downloaded
	Prev      string `json:"prev"`
	Hash      string `json:"hash"`
}

// AppendAudit adds an entry to the audit log.
type AppendAudit struct {
	Entry AuditEntry `json:"entry"`
}

func (*AppendAudit) commandType() CommandType { return TypeAppendAudit }

// AppendAudits adds several entries in order, in one command: the web
// server's queue of search and view entries commits them in batches. All
// or nothing: one invalid entry rejects the command.
type AppendAudits struct {
	Entries []AuditEntry `json:"entries"`
}

func (*AppendAudits) commandType() CommandType { return TypeAppendAudits }

// maxAuditBatch bounds one AppendAudits.
const maxAuditBatch = 10_000

func (c *AppendAudits) apply(t *txn) (Result, error) {
	if len(c.Entries) == 0 || len(c.Entries) > maxAuditBatch {
		return Result{}, fmt.Errorf("%w: %d entries, want 1..%d", ErrInvalid, len(c.Entries), maxAuditBatch)
	}
	for i := range c.Entries {
		if err := c.Entries[i].check(); err != nil {
			return Result{}, fmt.Errorf("entries[%d]: %w", i, err)
		}
	}
	var res Result
	for i := range c.Entries {
		r, err := (&AppendAudit{Entry: c.Entries[i]}).apply(t)
		if err != nil {
			return Result{}, err
		}
		res = r
	}
	return res, nil // the last entry's number
}

var (
	bAudit    = []byte("audit")     // seq (8 bytes BE) → JSON AuditEntry
	bAuditIdx = []byte("idx_audit") // kind ‖ 0x00 ‖ value ‖ 0x00 ‖ seq → empty
)

// audit index kinds
const (
	auditByActor     = "a"
	auditByRecording = "r"
	auditByAction    = "x"
	auditByTenant    = "t"
)

func auditKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func auditIdxKey(kind, value string, seq uint64) []byte {
	k := make([]byte, 0, len(kind)+len(value)+10)
	k = append(append(append(append(k, kind...), 0), value...), 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func (c *AppendAudit) apply(t *txn) (Result, error) {
	e := c.Entry
	if err := e.check(); err != nil {
		return Result{}, err
	}
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	e.Time = e.Time.UTC()
	b := t.b(bAudit)
	e.Seq, e.Prev = 1, ""
	if k, v := b.Cursor().Last(); k != nil {
		var last AuditEntry
		if err := json.Unmarshal(v, &last); err != nil {
			return Result{}, storageError{fmt.Errorf("audit entry %x: %w", k, err)}
		}
		e.Seq, e.Prev = last.Seq+1, last.Hash
	}
	e.Hash = ""
	sum, err := auditHash(&e)
	if err != nil {
		return Result{}, err
	}
	e.Hash = sum
	raw, err := json.Marshal(&e)
	if err != nil {
		return Result{}, storageError{err}
	}
	if err := t.put(bAudit, auditKey(e.Seq), raw); err != nil {
		return Result{}, err
	}
	for _, ix := range [][2]string{{auditByActor, e.Actor}, {auditByRecording, e.Recording}, {auditByAction, string(e.Action)}, {auditByTenant, e.Tenant}} {
		if ix[1] == "" && ix[0] != auditByTenant {
			continue
		}
		if err := t.put(bAuditIdx, auditIdxKey(ix[0], ix[1], e.Seq), nil); err != nil {
			return Result{}, err
		}
	}
	return Result{ID: fmt.Sprint(e.Seq)}, nil
}

// check validates what the caller sets.
func (e *AuditEntry) check() error {
	if !slices.Contains(auditActions, e.Action) {
		return fmt.Errorf("%w: audit action %q", ErrInvalid, e.Action)
	}
	switch e.Outcome {
	case "", "ok", "denied", "failed":
	default:
		return fmt.Errorf("%w: audit outcome %q", ErrInvalid, e.Outcome)
	}
	if e.Time.IsZero() {
		return fmt.Errorf("%w: audit.time is zero", ErrInvalid)
	}
	return firstErr(
		checkID("audit.actor", e.Actor),
		checkKeyText("audit.actorName", e.ActorName, maxNameLen),
		checkKeyText("audit.tenant", e.Tenant, maxIDLen),
		checkKeyText("audit.recording", e.Recording, maxIDLen),
		checkKeyText("audit.address", e.Address, maxNameLen),
		checkText("audit.detail", e.Detail, maxTextLen),
		checkTime("audit.time", e.Time),
	)
}

// auditHash is SHA-256 over the previous hash and the entry's JSON with an
// empty Hash field.
func auditHash(e *AuditEntry) (string, error) {
	c := *e
	c.Hash = ""
	raw, err := json.Marshal(&c)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(e.Prev))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// AuditQuery selects audit entries, newest first. Zero fields do not filter.
type AuditQuery struct {
	Tenant     *string // nil: every tenant (a global admin); else that tenant only
	Actor      string
	Recording  string
	Action     AuditAction
	Start, End time.Time // End exclusive
	Limit      int       // default 100, at most 1000
	Before     uint64    // cursor: entries with Seq < Before (0: from the newest)
}

// AuditPage is one page of entries; Next is the Before of the next page (0: last page).
type AuditPage struct {
	Entries []AuditEntry
	Next    uint64
}

// SearchAudit walks the most selective index of q backwards from the cursor
// and post-filters with the rest.
func (db *DB) SearchAudit(q AuditQuery) (AuditPage, error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = 100
	case limit < 0:
		return AuditPage{}, fmt.Errorf("%w: limit %d", ErrInvalid, limit)
	case limit > 1000:
		limit = 1000
	}
	if q.Action != "" && !slices.Contains(auditActions, q.Action) {
		return AuditPage{}, fmt.Errorf("%w: audit action %q", ErrInvalid, q.Action)
	}
	var page AuditPage
	err := db.bolt.View(func(tx *bolt.Tx) error {
		entries := tx.Bucket(bAudit)
		match := func(e *AuditEntry) bool {
			return (q.Tenant == nil || e.Tenant == *q.Tenant) && (q.Actor == "" || e.Actor == q.Actor) &&
				(q.Recording == "" || e.Recording == q.Recording) && (q.Action == "" || e.Action == q.Action) &&
				(q.Start.IsZero() || !e.Time.Before(q.Start)) && (q.End.IsZero() || e.Time.Before(q.End))
		}
		visit := func(seq uint64, v []byte) (bool, error) {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return false, fmt.Errorf("%w: audit entry %d: %w", ErrCorrupt, seq, err)
			}
			if !match(&e) {
				return true, nil
			}
			if len(page.Entries) == limit {
				page.Next = page.Entries[limit-1].Seq
				return false, nil
			}
			page.Entries = append(page.Entries, e)
			return true, nil
		}
		var kind, value string
		switch {
		case q.Recording != "":
			kind, value = auditByRecording, q.Recording
		case q.Actor != "":
			kind, value = auditByActor, q.Actor
		case q.Action != "":
			kind, value = auditByAction, string(q.Action)
		case q.Tenant != nil:
			kind, value = auditByTenant, *q.Tenant
		}
		if kind == "" {
			c := entries.Cursor()
			var k, v []byte
			if q.Before == 0 {
				k, v = c.Last()
			} else {
				k, _ = c.Seek(auditKey(q.Before))
				if k == nil {
					k, v = c.Last()
				} else {
					k, v = c.Prev()
				}
			}
			for ; k != nil; k, v = c.Prev() {
				if more, err := visit(binary.BigEndian.Uint64(k), v); err != nil || !more {
					return err
				}
			}
			return nil
		}
		prefix := auditIdxKey(kind, value, 0)
		prefix = prefix[:len(prefix)-8]
		c := tx.Bucket(bAuditIdx).Cursor()
		before := q.Before
		if before == 0 {
			before = ^uint64(0)
		}
		k, _ := c.Seek(auditIdxKey(kind, value, before))
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, _ = c.Prev() {
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			v := entries.Get(auditKey(seq))
			if v == nil {
				return fmt.Errorf("%w: audit index entry %d has no entry", ErrCorrupt, seq)
			}
			if more, err := visit(seq, v); err != nil || !more {
				return err
			}
		}
		return nil
	})
	return page, err
}

// AuditVerification is what VerifyAudit found.
type AuditVerification struct {
	Entries uint64 // entries checked
	Last    string // hash of the last entry (what a signed checkpoint covers)
	// Checkpoints verified, and the newest one's entry number. Entries
	// below it cannot have been cut off unnoticed.
	Checkpoints    int
	LastCheckpoint uint64
	// Keys are the public keys (hex) that signed the checkpoints.
	Keys []string
	// Broken is the sequence number of the first entry whose hash, link or
	// number is wrong (0: the chain is whole); Problem says what is wrong.
	Broken  uint64
	Problem string
}

// VerifyAudit recomputes the whole chain from the first entry.
func (db *DB) VerifyAudit() (AuditVerification, error) {
	var res AuditVerification
	errStop := errors.New("stop") // ends the walk at the first broken link
	err := db.bolt.View(func(tx *bolt.Tx) error {
		prev, want := "", uint64(1)
		return tx.Bucket(bAudit).ForEach(func(k, v []byte) error {
			var e AuditEntry
			fail := func(seq uint64, format string, args ...any) error {
				res.Broken, res.Problem = seq, fmt.Sprintf(format, args...)
				return errStop
			}
			if len(k) != 8 {
				return fail(want, "key %x is not a sequence number", k)
			}
			seq := binary.BigEndian.Uint64(k)
			if err := json.Unmarshal(v, &e); err != nil {
				return fail(seq, "entry does not decode: %v", err)
			}
			switch {
			case seq != want || e.Seq != seq:
				return fail(want, "entry %d missing (found key %d, seq %d)", want, seq, e.Seq)
			case e.Prev != prev:
				return fail(seq, "link to the previous entry is %.16s…, the previous entry's hash is %.16s…", e.Prev, prev)
			}
			sum, err := auditHash(&e)
			if err != nil {
				return err
			}
			if sum != e.Hash {
				return fail(seq, "hash is %.16s…, the content hashes to %.16s…", e.Hash, sum)
			}
			prev, want = e.Hash, want+1
			res.Entries, res.Last = seq, e.Hash
			return nil
		})
	})
	if errors.Is(err, errStop) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	// The checkpoints: each must match the entry it names and verify under
	// its key; the newest bounds how many entries there must be.
	err = db.bolt.View(func(tx *bolt.Tx) error {
		entries := tx.Bucket(bAudit)
		return tx.Bucket(bAuditCheckpoints).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				res.Broken, res.Problem = max(res.Entries, 1), fmt.Sprintf("checkpoint key %x is not an entry number", k)
				return errStop
			}
			seq := binary.BigEndian.Uint64(k)
			var cp AuditCheckpoint
			if err := json.Unmarshal(v, &cp); err != nil {
				res.Broken, res.Problem = seq, fmt.Sprintf("checkpoint of entry %d does not decode: %v", seq, err)
				return errStop
			}
			var e AuditEntry
			raw := entries.Get(k)
			switch {
			case raw == nil:
				res.Broken, res.Problem = res.Entries+1, fmt.Sprintf("a signed checkpoint covers %d entries, only %d are left: entries after %d were removed", seq, res.Entries, res.Entries)
				return errStop
			case json.Unmarshal(raw, &e) != nil || e.Hash != cp.Hash || cp.Seq != seq:
				res.Broken, res.Problem = seq, fmt.Sprintf("entry %d is not the one its checkpoint signed", seq)
				return errStop
			case len(cp.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(ed25519.PublicKey(cp.PublicKey), CheckpointMessage(seq, cp.Hash), cp.Signature):
				res.Broken, res.Problem = seq, fmt.Sprintf("the checkpoint signature of entry %d does not verify", seq)
				return errStop
			}
			res.Checkpoints++
			res.LastCheckpoint = seq
			if key := hex.EncodeToString(cp.PublicKey); !slices.Contains(res.Keys, key) {
				res.Keys = append(res.Keys, key)
			}
			return nil
		})
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return res, err
}

// AuditCheckpoint anchors the chain: a signature by the appliance's
// signing key (ed25519) over an entry's sequence number and hash. Anyone
// with the public key can then tell that the chain up to that entry is the
// one the appliance wrote, and that entries after it were not cut off
// unnoticed (the checkpoint names how many there were). The signature is
// made before the command is built; Apply only verifies it, which is
// deterministic.
type AuditCheckpoint struct {
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	PublicKey []byte    `json:"publicKey"` // ed25519, 32 bytes
	Signature []byte    `json:"signature"` // ed25519 over CheckpointMessage(Seq, Hash)
}

func (*AuditCheckpoint) commandType() CommandType { return TypeAuditCheckpoint }

var bAuditCheckpoints = []byte("audit_checkpoints") // seq (8 bytes BE) → JSON AuditCheckpoint

// CheckpointMessage is what a checkpoint signs: a fixed label, the entry's
// number and its hash.
func CheckpointMessage(seq uint64, hash string) []byte {
	m := append([]byte("callvault audit checkpoint\x00"), binary.BigEndian.AppendUint64(nil, seq)...)
	return append(m, hash...)
}

func (c *AuditCheckpoint) apply(t *txn) (Result, error) {
	if len(c.PublicKey) != ed25519.PublicKeySize || len(c.Signature) != ed25519.SignatureSize {
		return Result{}, fmt.Errorf("%w: checkpoint key of %d bytes, signature of %d", ErrInvalid, len(c.PublicKey), len(c.Signature))
	}
	if err := checkTime("time", c.Time); err != nil {
		return Result{}, err
	}
	raw := t.b(bAudit).Get(auditKey(c.Seq))
	if raw == nil {
		return Result{}, fmt.Errorf("%w: audit entry %d", ErrNotFound, c.Seq)
	}
	var e AuditEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return Result{}, storageError{fmt.Errorf("audit entry %d: %w", c.Seq, err)}
	}
	if e.Hash != c.Hash {
		return Result{}, fmt.Errorf("%w: checkpoint of entry %d names hash %.16s…, the entry has %.16s…", ErrInvalid, c.Seq, c.Hash, e.Hash)
	}
	if !ed25519.Verify(ed25519.PublicKey(c.PublicKey), CheckpointMessage(c.Seq, c.Hash), c.Signature) {
		return Result{}, fmt.Errorf("%w: checkpoint signature of entry %d does not verify", ErrInvalid, c.Seq)
	}
	cp := *c
	cp.Time = cp.Time.UTC()
	b, err := json.Marshal(&cp)
	if err != nil {
		return Result{}, storageError{err}
	}
	return Result{ID: fmt.Sprint(c.Seq)}, t.put(bAuditCheckpoints, auditKey(c.Seq), b)
}

// AuditHead returns the newest entry's number and hash (0, "" when empty)
// and the newest checkpoint's number (0: none).
func (db *DB) AuditHead() (seq uint64, hash string, checkpoint uint64, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		if k, v := tx.Bucket(bAudit).Cursor().Last(); k != nil {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: audit entry %x: %w", ErrCorrupt, k, err)
			}
			seq, hash = e.Seq, e.Hash
		}
		if k, _ := tx.Bucket(bAuditCheckpoints).Cursor().Last(); len(k) == 8 {
			checkpoint = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return seq, hash, checkpoint, err
}

// AuditEntry returns one entry by number.
func (db *DB) AuditEntry(seq uint64) (AuditEntry, error) {
	var e AuditEntry
	return e, db.viewJSON(bAudit, auditKey(seq), &e, "audit entry")
}
