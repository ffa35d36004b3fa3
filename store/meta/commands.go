package meta

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// CreateRecording adds a recording. Reference must be empty: Apply assigns
// the next number of the start year. Status must not be deleted.
type CreateRecording struct {
	Recording Recording `json:"recording"`
}

// UpdateRecording changes the fields that evolve while a call is recorded
// and sealed. Nil/empty fields are left as they are.
type UpdateRecording struct {
	ID              string           `json:"id"`
	Status          Status           `json:"status,omitempty"`
	Duration        *int64           `json:"durationMs,omitempty"`
	Size            *int64           `json:"size,omitempty"`
	Channels        *int             `json:"channels,omitempty"`
	Codecs          []string         `json:"codecs,omitempty"`
	Quality         []ChannelQuality `json:"quality,omitempty"`
	File            *FileInfo        `json:"file,omitempty"`
	SealHash        string           `json:"sealHash,omitempty"`  // sets File.SHA256
	AudioHash       string           `json:"audioHash,omitempty"` // sets File.AudioSHA256
	DurationFlagged *bool            `json:"durationFlagged,omitempty"`
	// Audit entries are appended to the audit log in the same transaction,
	// after the change: a seal and the entries that record it (the store's
	// seal entry, an upload's entry) commit together or not at all, in one
	// fsync instead of one each. Result.AuditSeq is the last one's number.
	Audit []AuditEntry `json:"audit,omitempty"`
}

// SetLocation records that the file moved to another tier or path.
type SetLocation struct {
	ID   string `json:"id"`
	Tier Tier   `json:"tier"`
	Path string `json:"path"`
}

// AddNote appends a note; note IDs are unique within the recording.
type AddNote struct {
	ID   string `json:"id"`
	Note Note   `json:"note"`
}

// SetRating sets the score, 0 (unrated) to 5.
type SetRating struct {
	ID     string `json:"id"`
	Rating int    `json:"rating"`
}

// SetCategory sets the category ("" clears it).
type SetCategory struct {
	ID       string `json:"id"`
	Category string `json:"category"`
}

// SetCustomField sets one custom field; an empty Value removes it.
type SetCustomField struct {
	ID    string `json:"id"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

// SetComplete sets the complete-transaction flag.
type SetComplete struct {
	ID       string `json:"id"`
	Complete bool   `json:"complete"`
}

// SetReviewMinutes records how long a reviewer spent on the call.
type SetReviewMinutes struct {
	ID      string `json:"id"`
	Minutes int    `json:"minutes"`
}

// SetTranscript replaces the transcript.
type SetTranscript struct {
	ID         string `json:"id"`
	Transcript string `json:"transcript"`
}

// AddBookmark appends a bookmark; bookmark IDs are unique within the recording.
type AddBookmark struct {
	ID       string   `json:"id"`
	Bookmark Bookmark `json:"bookmark"`
}

// LinkRelated links two recordings in both directions with the same relation.
type LinkRelated struct {
	ID       string `json:"id"`
	Other    string `json:"other"`
	Relation string `json:"relation"`
}

// Preserve puts a recording under legal hold. At is the caller's clock.
type Preserve struct {
	ID    string    `json:"id"`
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	Until time.Time `json:"until,omitzero"` // zero: indefinitely
}

// Release lifts a legal hold. A hold until a date is lifted by one person;
// an indefinite one only after RequestRelease, by someone else (By), the
// two-person rule: ErrNeedsApproval otherwise.
type Release struct {
	ID string    `json:"id"`
	By string    `json:"by,omitempty"`
	At time.Time `json:"at,omitzero"`
}

// RequestRelease asks to lift an indefinite hold; a second person approves
// it with Release. Preserving the recording again cancels the request.
type RequestRelease struct {
	ID string    `json:"id"`
	By string    `json:"by"`
	At time.Time `json:"at"`
}

func (*RequestRelease) commandType() CommandType { return TypeRequestRelease }

func (c *RequestRelease) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error {
		if err := firstErr(checkID("by", c.By), checkTime("at", c.At)); err != nil {
			return err
		}
		switch p := r.Preserved; {
		case p == nil:
			return fmt.Errorf("%w: recording %s is not preserved", ErrInvalid, r.ID)
		case !p.Until.IsZero():
			return fmt.Errorf("%w: the hold of %s ends %v: release it directly", ErrInvalid, r.ID, p.Until)
		}
		r.Preserved.ReleaseRequestedBy, r.Preserved.ReleaseRequestedAt = c.By, c.At
		return nil
	})
}

// SetDeleteAfter sets the retention deadline (zero: keep).
type SetDeleteAfter struct {
	ID          string    `json:"id"`
	DeleteAfter time.Time `json:"deleteAfter,omitzero"`
}

// Rewrap is one recording's data key wrapped under a new key term.
type Rewrap struct {
	ID         string `json:"id"`
	WrappedDEK []byte `json:"wrappedDek"`
	KeyTerm    uint32 `json:"keyTerm"`
}

// RewrapDEKs replaces wrapped data keys after a key rotation. All or nothing:
// if one ID is unknown or deleted, none is changed.
type RewrapDEKs struct {
	Keys []Rewrap `json:"keys"`
}

// DeleteRecording crypto-shreds a recording: the wrapped data key is
// destroyed in the same transaction, personal data and search entries are
// removed, and a tombstone (ID, reference, start, tenant, group, user, file
// path, seal hash, who and when) is kept for the audit trail. At is the
// caller's clock, compared with a legal hold's Until.
type DeleteRecording struct {
	ID string    `json:"id"`
	By string    `json:"by"`
	At time.Time `json:"at"`
}

func (*CreateRecording) commandType() CommandType  { return TypeCreateRecording }
func (*UpdateRecording) commandType() CommandType  { return TypeUpdateRecording }
func (*SetLocation) commandType() CommandType      { return TypeSetLocation }
func (*AddNote) commandType() CommandType          { return TypeAddNote }
func (*SetRating) commandType() CommandType        { return TypeSetRating }
func (*SetCategory) commandType() CommandType      { return TypeSetCategory }
func (*SetCustomField) commandType() CommandType   { return TypeSetCustomField }
func (*SetComplete) commandType() CommandType      { return TypeSetComplete }
func (*SetReviewMinutes) commandType() CommandType { return TypeSetReviewMinutes }
func (*SetTranscript) commandType() CommandType    { return TypeSetTranscript }
func (*AddBookmark) commandType() CommandType      { return TypeAddBookmark }
func (*LinkRelated) commandType() CommandType      { return TypeLinkRelated }
func (*Preserve) commandType() CommandType         { return TypePreserve }
func (*Release) commandType() CommandType          { return TypeRelease }
func (*SetDeleteAfter) commandType() CommandType   { return TypeSetDeleteAfter }
func (*RewrapDEKs) commandType() CommandType       { return TypeRewrapDEKs }
func (*DeleteRecording) commandType() CommandType  { return TypeDeleteRecording }

func registerRecordingHandlers(h *[256]handler) {
	h[TypeCreateRecording] = handle[CreateRecording]()
	h[TypeDiscardRecording] = handle[DiscardRecording]()
	h[TypeSetRetention] = handle[SetRetention]()
	h[TypeRequestRelease] = handle[RequestRelease]()
	h[TypeUpdateRecording] = handle[UpdateRecording]()
	h[TypeSetLocation] = handle[SetLocation]()
	h[TypeAddNote] = handle[AddNote]()
	h[TypeSetRating] = handle[SetRating]()
	h[TypeSetCategory] = handle[SetCategory]()
	h[TypeSetCustomField] = handle[SetCustomField]()
	h[TypeSetComplete] = handle[SetComplete]()
	h[TypeSetReviewMinutes] = handle[SetReviewMinutes]()
	h[TypeSetTranscript] = handle[SetTranscript]()
	h[TypeAddBookmark] = handle[AddBookmark]()
	h[TypeLinkRelated] = handle[LinkRelated]()
	h[TypePreserve] = handle[Preserve]()
	h[TypeRelease] = handle[Release]()
	h[TypeSetDeleteAfter] = handle[SetDeleteAfter]()
	h[TypeRewrapDEKs] = handle[RewrapDEKs]()
	h[TypeDeleteRecording] = handle[DeleteRecording]()
	h[TypeSetCallInfo] = handle[SetCallInfo]()
}

func (c *CreateRecording) apply(t *txn) (Result, error) {
	r := c.Recording
	if r.Reference != "" {
		return Result{}, fmt.Errorf("%w: reference is assigned by Apply, got %q", ErrInvalid, r.Reference)
	}
	if r.Status == StatusDeleted || r.Deleted != nil {
		return Result{}, fmt.Errorf("%w: a new recording cannot be deleted", ErrInvalid)
	}
	r.normalize()
	if err := r.validate(); err != nil {
		return Result{}, err
	}
	if err := checkUniqueIDs(&r); err != nil {
		return Result{}, err
	}
	u, _ := uuid.Parse(r.ID)
	if t.b(bRec).Get(u[:]) != nil {
		return Result{}, fmt.Errorf("%w: recording %s", ErrExists, u)
	}
	if r.DeleteAfter.IsZero() {
		r.DeleteAfter = deleteAfter(t.tx, r.Tenant, r.Group, r.Start)
	}
	// Validation is over; from here on only writes.
	ref, err := t.nextReference(r.Start)
	if err != nil {
		return Result{}, err
	}
	r.Reference = ref
	return Result{ID: r.ID, Reference: ref}, t.storeRecording(nil, &r, u)
}

// checkUniqueIDs rejects duplicate note and bookmark IDs (imports may bring several).
func checkUniqueIDs(r *Recording) error {
	seen := map[string]bool{}
	for _, n := range r.Notes {
		if seen["n"+n.ID] {
			return fmt.Errorf("%w: duplicate note id %q", ErrInvalid, n.ID)
		}
		seen["n"+n.ID] = true
	}
	for _, b := range r.Bookmarks {
		if seen["b"+b.ID] {
			return fmt.Errorf("%w: duplicate bookmark id %q", ErrInvalid, b.ID)
		}
		seen["b"+b.ID] = true
	}
	return nil
}

func (c *UpdateRecording) apply(t *txn) (Result, error) {
	// Refusals come before the first write: a Batch goes on past a
	// refused command, which must then have changed nothing.
	if len(c.Audit) > maxAuditBatch {
		return Result{}, fmt.Errorf("%w: %d audit entries, want at most %d", ErrInvalid, len(c.Audit), maxAuditBatch)
	}
	for i := range c.Audit {
		if err := c.Audit[i].check(); err != nil {
			return Result{}, fmt.Errorf("audit[%d]: %w", i, err)
		}
	}
	res, err := t.modify(c.ID, c.ApplyTo)
	if err != nil {
		return res, err
	}
	for i := range c.Audit {
		r, err := (&AppendAudit{Entry: c.Audit[i]}).apply(t)
		if err != nil {
			return Result{}, storageError{fmt.Errorf("audit entry %d of the update of %s: %w", i, c.ID, err)}
		}
		res.AuditSeq, _ = strconv.ParseUint(r.ID, 10, 64)
	}
	return res, nil
}

// ApplyTo makes the command's changes to r, as Apply does to the stored
// recording; the store uses it to describe a sealed recording whose
// commands wait in a cluster node's outbox.
func (c *UpdateRecording) ApplyTo(r *Recording) error {
	if c.Status != "" {
		if c.Status == StatusDeleted {
			return fmt.Errorf("%w: status deleted is set only by DeleteRecording", ErrInvalid)
		}
		r.Status = c.Status
	}
	if c.Duration != nil {
		r.Duration = *c.Duration
	}
	if c.Size != nil {
		r.Size = *c.Size
	}
	if c.Channels != nil {
		r.Channels = *c.Channels
	}
	if c.Codecs != nil {
		r.Codecs = c.Codecs
	}
	if c.Quality != nil {
		r.Quality = c.Quality
	}
	if c.File != nil {
		r.File = *c.File
	}
	if c.SealHash != "" {
		r.File.SHA256 = c.SealHash
	}
	if c.AudioHash != "" {
		r.File.AudioSHA256 = c.AudioHash
	}
	if c.DurationFlagged != nil {
		r.DurationFlagged = *c.DurationFlagged
	}
	return nil
}

func (c *SetLocation) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error {
		if c.Tier == "" || c.Path == "" {
			return fmt.Errorf("%w: tier and path are required", ErrInvalid)
		}
		r.Tier, r.File.Path = c.Tier, c.Path
		return nil
	})
}

func (c *AddNote) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error {
		if slices.ContainsFunc(r.Notes, func(n Note) bool { return n.ID == c.Note.ID }) {
			return fmt.Errorf("%w: note %q", ErrExists, c.Note.ID)
		}
		r.Notes = append(r.Notes, c.Note)
		return nil
	})
}

func (c *SetRating) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error { r.Rating = c.Rating; return nil })
}

func (c *SetCategory) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error { r.Category = c.Category; return nil })
}

func (c *SetCustomField) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error {
		if err := checkID("key", c.Key); err != nil {
			return err
		}
		m := make(map[string]string, len(r.CustomFields)+1)
		for k, v := range r.CustomFields { // copying a map: order does not matter
			m[k] = v
		}
		if c.Value == "" {
			delete(m, c.Key)
		} else {
			m[c.Key] = c.Value
		}
		r.CustomFields = m
		return nil
	})
}

func (c *SetComplete) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error { r.CompleteTransaction = c.Complete; return nil })
}

func (c *SetReviewMinutes) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error { r.ReviewMinutes = c.Minutes; return nil })
}

func (c *SetTranscript) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error { r.Transcript = c.Transcript; return nil })
}

func (c *AddBookmark) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error {
		if slices.ContainsFunc(r.Bookmarks, func(b Bookmark) bool { return b.ID == c.Bookmark.ID }) {
			return fmt.Errorf("%w: bookmark %q", ErrExists, c.Bookmark.ID)
		}
		r.Bookmarks = append(r.Bookmarks, c.Bookmark)
		return nil
	})
}

func (c *LinkRelated) apply(t *txn) (Result, error) {
	a, ua, err := t.loadRecording("id", c.ID)
	if err != nil {
		return Result{}, err
	}
	b, ub, err := t.loadRecording("other", c.Other)
	if err != nil {
		return Result{}, err
	}
	if ua == ub {
		return Result{}, fmt.Errorf("%w: other: a recording cannot be related to itself", ErrInvalid)
	}
	if a.Status == StatusDeleted || b.Status == StatusDeleted {
		return Result{}, fmt.Errorf("%w: %s or %s", ErrDeleted, ua, ub)
	}
	oldA, oldB := *a, *b
	link := func(r *Recording, other uuid.UUID) {
		rel := Related{ID: other.String(), Relation: c.Relation}
		if !slices.Contains(r.Related, rel) {
			r.Related = append(slices.Clone(r.Related), rel)
		}
	}
	link(a, ub)
	link(b, ua)
	if err := firstErr(a.validate(), b.validate()); err != nil {
		return Result{}, err
	}
	if err := t.storeRecording(&oldA, a, ua); err != nil {
		return Result{}, err
	}
	return Result{ID: a.ID}, t.storeRecording(&oldB, b, ub)
}

func (c *Preserve) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error {
		if err := checkID("by", c.By); err != nil {
			return err
		}
		// A hold only ever grows: an indefinite one stays indefinite, a
		// later end date wins, and the recording's deletion date moves out
		// to the hold's end.
		until := c.Until
		if old := r.Preserved; old != nil && (old.Until.IsZero() || (!until.IsZero() && old.Until.After(until))) {
			until = old.Until
		}
		r.Preserved = &Preservation{By: c.By, At: c.At, Until: until}
		if !until.IsZero() && !r.DeleteAfter.IsZero() && until.After(r.DeleteAfter) {
			r.DeleteAfter = until
		}
		return nil
	})
}

func (c *Release) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error {
		p := r.Preserved
		if p == nil {
			return nil // nothing held: releasing is a no-op
		}
		if p.Until.IsZero() {
			switch {
			case p.ReleaseRequestedBy == "":
				return fmt.Errorf("%w: %s is held indefinitely: a release must be requested, then approved by someone else", ErrNeedsApproval, r.ID)
			case c.By == "" || c.By == p.ReleaseRequestedBy:
				return fmt.Errorf("%w: the release of %s was requested by %s and needs another person's approval", ErrNeedsApproval, r.ID, p.ReleaseRequestedBy)
			}
		}
		r.Preserved = nil
		return nil
	})
}

func (c *SetDeleteAfter) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error { r.DeleteAfter = c.DeleteAfter; return nil })
}

func (c *RewrapDEKs) apply(t *txn) (Result, error) {
	if len(c.Keys) == 0 || len(c.Keys) > 10_000 {
		return Result{}, fmt.Errorf("%w: keys has %d entries, want 1..10000", ErrInvalid, len(c.Keys))
	}
	// First pass: everything must exist and be valid, so that the command
	// is all or nothing.
	for i, k := range c.Keys {
		r, u, err := t.loadRecording(fmt.Sprintf("keys[%d].id", i), k.ID)
		if err != nil {
			return Result{}, err
		}
		if r.Status == StatusDeleted {
			return Result{}, fmt.Errorf("%w: keys[%d] %s", ErrDeleted, i, u)
		}
		if len(k.WrappedDEK) == 0 || len(k.WrappedDEK) > maxDEKLen {
			return Result{}, fmt.Errorf("%w: keys[%d].wrappedDek is %d bytes", ErrInvalid, i, len(k.WrappedDEK))
		}
	}
	for _, k := range c.Keys {
		if _, err := t.modify(k.ID, func(r *Recording) error {
			r.File.WrappedDEK, r.File.KeyTerm = k.WrappedDEK, k.KeyTerm
			return nil
		}); err != nil {
			return Result{}, storageError{err} // cannot be a validation error after the first pass
		}
	}
	return Result{ID: c.Keys[0].ID}, nil
}

func (c *DeleteRecording) apply(t *txn) (Result, error) {
	r, u, err := t.loadRecording("id", c.ID)
	if err != nil {
		return Result{}, err
	}
	if r.Status == StatusDeleted {
		return Result{}, fmt.Errorf("%w: %s", ErrDeleted, u)
	}
	if err := firstErr(checkID("by", c.By), checkTime("at", c.At)); err != nil {
		return Result{}, err
	}
	if p := r.Preserved; p != nil && (p.Until.IsZero() || p.Until.After(c.At)) {
		return Result{}, fmt.Errorf("%w: %s held by %s until %v", ErrPreserved, u, p.By, p.Until)
	}
	// The tombstone keeps what the audit trail needs and nothing personal.
	tomb := Recording{
		ID: r.ID, Reference: r.Reference, Start: r.Start, Duration: r.Duration,
		Direction: r.Direction, Source: r.Source, Node: r.Node,
		LocalParty: LocalParty{User: r.LocalParty.User}, Group: r.Group, Tenant: r.Tenant,
		Status: StatusDeleted, Tier: r.Tier,
		File:    FileInfo{Path: r.File.Path, Format: r.File.Format, SHA256: r.File.SHA256, AudioSHA256: r.File.AudioSHA256}, // no WrappedDEK: shredded
		Deleted: &Deletion{By: c.By, At: c.At},
	}
	tomb.normalize()
	if err := tomb.validate(); err != nil {
		return Result{}, err
	}
	return Result{ID: tomb.ID, Reference: tomb.Reference}, t.storeRecording(r, &tomb, u)
}

// DiscardRecording removes a recording that never became one: an upload
// refused or cut off, early media of a call nobody answered. Unlike
// DeleteRecording it leaves no tombstone (its reference number stays
// unused), so only a recording still being written can be discarded.
type DiscardRecording struct {
	ID string `json:"id"`
}

func (*DiscardRecording) commandType() CommandType { return TypeDiscardRecording }

func (c *DiscardRecording) apply(t *txn) (Result, error) {
	r, u, err := t.loadRecording("id", c.ID)
	if err != nil {
		return Result{}, err
	}
	if r.Status != StatusRecording {
		return Result{}, fmt.Errorf("%w: recording %s is %s; only one being written can be discarded", ErrInvalid, u, r.Status)
	}
	skey := makeSkey(r.Start, u)
	for _, e := range indexEntries(r, skey) {
		if err := t.del(indexBuckets[e.bucket], []byte(e.key)); err != nil {
			return Result{}, err
		}
	}
	for _, d := range []struct{ b, k []byte }{{bTime, skey}, {bRef, []byte(r.Reference)}, {bRec, u[:]}} {
		if err := t.del(d.b, d.k); err != nil {
			return Result{}, err
		}
	}
	return Result{ID: r.ID, Reference: r.Reference}, nil
}

// SetCallInfo sets who and what a recording is about when capture learns
// it after the recording began: RTP seen before its SIP (capture started
// mid-call), matched to the dialog when a re-INVITE or BYE shows up.
// Empty fields are left as they are.
type SetCallInfo struct {
	ID               string       `json:"id"`
	PBXCallID        string       `json:"pbxCallId,omitempty"`
	SIPCallIDIngress string       `json:"sipCallIdIngress,omitempty"`
	SIPCallIDEgress  string       `json:"sipCallIdEgress,omitempty"`
	SessionID        string       `json:"sessionId,omitempty"`
	Direction        Direction    `json:"direction,omitempty"`
	Technology       string       `json:"technology,omitempty"`
	LocalParty       *LocalParty  `json:"localParty,omitempty"`
	RemoteParty      *RemoteParty `json:"remoteParty,omitempty"`
}

func (*SetCallInfo) commandType() CommandType { return TypeSetCallInfo }

func (c *SetCallInfo) apply(t *txn) (Result, error) {
	return t.modify(c.ID, func(r *Recording) error {
		set := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		set(&r.PBXCallID, c.PBXCallID)
		set(&r.SIPCallIDIngress, c.SIPCallIDIngress)
		set(&r.SIPCallIDEgress, c.SIPCallIDEgress)
		set(&r.SessionID, c.SessionID)
		set(&r.Technology, c.Technology)
		if c.Direction != "" {
			r.Direction = c.Direction
		}
		if c.LocalParty != nil {
			r.LocalParty = *c.LocalParty
		}
		if c.RemoteParty != nil {
			r.RemoteParty = *c.RemoteParty
		}
		return nil
	})
}
