package meta

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// ID is a recording's ID: a UUID (v7) in its canonical text form. It is
// an alias of string, so APIs that take an ID accept the strings every
// other method of this package returns.
type ID = string

// Direction of a call as seen from the local party.
type Direction string

// Directions.
const (
	DirUnknown  Direction = "unknown"
	DirIncoming Direction = "incoming"
	DirOutgoing Direction = "outgoing"
)

// Source is how the audio reached Callvault.
type Source string

// Sources.
const (
	SourceMirror Source = "mirror"
	SourceSIPREC Source = "siprec"
	SourceUpload Source = "upload"
	SourceWebRTC Source = "webrtc"
)

// Status is where a recording is in its life.
type Status string

// Statuses. StatusDeleted is only reached through DeleteRecording.
const (
	StatusRecording Status = "recording"
	StatusComplete  Status = "complete"
	StatusRecovered Status = "recovered"
	StatusFailed    Status = "failed"
	StatusDeleted   Status = "deleted"
)

// Tier is the storage tier holding the audio file.
type Tier string

// Tiers.
const (
	TierHot     Tier = "hot"
	TierArchive Tier = "archive"
)

// Format of the recording file's content.
type Format string

// Formats.
const (
	FormatGrid Format = "grid"
	FormatWAV  Format = "wav"
	FormatMP3  Format = "mp3"
	// FormatRTP is captured RTP packets kept as they came, for codecs the
	// appliance cannot decode (G.729, Opus, ...): evidence, not playable.
	FormatRTP Format = "rtp"
)

// BookmarkType says what happened at a bookmark.
type BookmarkType string

// Bookmark types. Their order is fixed: the summary stores a bit per type.
const (
	BookmarkPause        BookmarkType = "pause"
	BookmarkResume       BookmarkType = "resume"
	BookmarkStart        BookmarkType = "start"
	BookmarkStop         BookmarkType = "stop"
	BookmarkHold         BookmarkType = "hold"
	BookmarkTransfer     BookmarkType = "transfer"
	BookmarkDTMF         BookmarkType = "dtmf"
	BookmarkManual       BookmarkType = "manual"
	BookmarkAnnouncement BookmarkType = "announcement"
	BookmarkPayment      BookmarkType = "payment"
)

// enum tables: position = code stored in the summary. Append only.
var (
	directionCodes = []Direction{DirUnknown, DirIncoming, DirOutgoing}
	statusCodes    = []Status{StatusRecording, StatusComplete, StatusRecovered, StatusFailed, StatusDeleted}
	bookmarkCodes  = []BookmarkType{BookmarkPause, BookmarkResume, BookmarkStart, BookmarkStop, BookmarkHold,
		BookmarkTransfer, BookmarkDTMF, BookmarkManual, BookmarkAnnouncement, BookmarkPayment}
)

// ChannelQuality is the network quality of one received channel.
type ChannelQuality struct {
	Label           string  `json:"label"`
	PacketsExpected int64   `json:"packetsExpected"`
	PacketsReceived int64   `json:"packetsReceived"`
	LossPct         float64 `json:"lossPct"`
	JitterMs        float64 `json:"jitterMs"`
	OneWay          bool    `json:"oneWay"`
}

// LocalParty is the user's side of the call.
type LocalParty struct {
	User     string `json:"user,omitempty"` // user ID
	Username string `json:"username,omitempty"`
	Number   string `json:"number,omitempty"`
	Name     string `json:"name,omitempty"`
}

// RemoteParty is the other side of the call.
type RemoteParty struct {
	Number string `json:"number,omitempty"`
	Name   string `json:"name,omitempty"`
}

// Note is a text note added by a user.
type Note struct {
	ID     string    `json:"id"`
	Author string    `json:"author"`
	Time   time.Time `json:"time"`
	Text   string    `json:"text"`
}

// Bookmark marks a point in the recording.
type Bookmark struct {
	ID       string       `json:"id"`
	Type     BookmarkType `json:"type"`
	OffsetMs int64        `json:"offsetMs"`
	Author   string       `json:"author,omitempty"`
	Label    string       `json:"label,omitempty"`
	Time     time.Time    `json:"time"`
}

// Related links this recording to another one (a transfer, a consultation call).
type Related struct {
	ID       string `json:"id"`
	Relation string `json:"relation"`
}

// Preservation is a legal hold.
type Preservation struct {
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	Until time.Time `json:"until,omitzero"` // zero: indefinitely
	// ReleaseRequestedBy asked to lift an indefinite hold; a second person
	// (not them) must approve it with Release (two-person rule).
	ReleaseRequestedBy string    `json:"releaseRequestedBy,omitempty"`
	ReleaseRequestedAt time.Time `json:"releaseRequestedAt,omitzero"`
}

// Deletion records who deleted a recording and when (kept in the tombstone).
type Deletion struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// FileInfo locates and unlocks the recording file.
type FileInfo struct {
	Path   string `json:"path,omitempty"` // relative to the tier root
	Format Format `json:"format,omitempty"`
	SHA256 string `json:"sha256,omitempty"` // seal hash: SHA-256 of the encrypted file, hex
	// AudioSHA256 is the SHA-256 of the decrypted content (the audio as
	// captured or uploaded), fixed when the recording is sealed: an export
	// carries that content, and this hash (also in the audit chain) proves
	// it is what was recorded.
	AudioSHA256 string `json:"audioSha256,omitempty"`
	WrappedDEK  []byte `json:"wrappedDek,omitempty"`
	KeyTerm     uint32 `json:"keyTerm,omitempty"`
}

// Recording is the metadata of one call recording.
type Recording struct {
	ID                  string            `json:"id"` // UUIDv7, decided by the caller
	Reference           string            `json:"reference"`
	PBXCallID           string            `json:"pbxCallId,omitempty"`
	SIPCallIDIngress    string            `json:"sipCallIdIngress,omitempty"`
	SIPCallIDEgress     string            `json:"sipCallIdEgress,omitempty"`
	SessionID           string            `json:"sessionId,omitempty"`
	Start               time.Time         `json:"start"`
	Duration            int64             `json:"durationMs"`
	Direction           Direction         `json:"direction"`
	Source              Source            `json:"source"`
	Technology          string            `json:"technology,omitempty"`
	Node                string            `json:"node,omitempty"`
	Codecs              []string          `json:"codecs,omitempty"`
	Channels            int               `json:"channels,omitempty"`
	Size                int64             `json:"size,omitempty"`
	Quality             []ChannelQuality  `json:"quality,omitempty"`
	LocalParty          LocalParty        `json:"localParty"`
	RemoteParty         RemoteParty       `json:"remoteParty"`
	Group               string            `json:"group,omitempty"`
	Tenant              string            `json:"tenant,omitempty"`
	Notes               []Note            `json:"notes,omitempty"`
	Rating              int               `json:"rating,omitempty"`
	Category            string            `json:"category,omitempty"`
	CustomFields        map[string]string `json:"customFields,omitempty"`
	CompleteTransaction bool              `json:"completeTransaction,omitempty"`
	ReviewMinutes       int               `json:"reviewMinutes,omitempty"`
	Transcript          string            `json:"transcript,omitempty"`
	Bookmarks           []Bookmark        `json:"bookmarks,omitempty"`
	Related             []Related         `json:"related,omitempty"`
	Status              Status            `json:"status"`
	DeleteAfter         time.Time         `json:"deleteAfter,omitzero"`
	Preserved           *Preservation     `json:"preserved,omitempty"`
	Deleted             *Deletion         `json:"deleted,omitempty"`
	Tier                Tier              `json:"tier,omitempty"`
	File                FileInfo          `json:"file"`
	DurationFlagged     bool              `json:"durationFlagged,omitempty"`
	// Replicas are the cluster nodes other than Node that hold a verified
	// copy of the sealed file, sorted (AddReplica, replica.go).
	Replicas []string `json:"replicas,omitempty"`
}

// Size limits. They keep every index key far below bbolt's 32 KiB and a
// recording's JSON in the tens of kilobytes.
const (
	maxCallIDLen     = 256
	maxNumberLen     = 64
	maxCodecs        = 16
	maxChannels      = 64
	maxNotes         = 500
	maxNoteLen       = 8 << 10
	maxBookmarks     = 2000
	maxRelated       = 200
	maxCustomFields  = 64
	maxCustomLen     = 1024
	maxTranscriptLen = 1 << 20
	maxDEKLen        = 1024
	maxWordLen       = 48 // index words are cut to this many bytes (at a rune boundary)
	maxRating        = 5
)

// parseRecID returns the 16-byte key of a recording ID.
func parseRecID(field, id string) (uuid.UUID, error) {
	if len(id) > 64 {
		return uuid.UUID{}, fmt.Errorf("%w: %s is %d bytes", ErrInvalid, field, len(id))
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("%w: %s %q: %w", ErrInvalid, field, id, err)
	}
	if u == uuid.Nil {
		return uuid.UUID{}, fmt.Errorf("%w: %s is the nil UUID", ErrInvalid, field)
	}
	return u, nil
}

// skey is the sort key of a recording in every index: start time in
// milliseconds (big endian) then the ID. Sorting by start rather than by the
// UUIDv7 alone keeps the order right for uploads of old calls, whose IDs are
// minted at upload time.
const skeyLen = 24

func makeSkey(start time.Time, id uuid.UUID) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, skeyLen), uint64(start.UnixMilli()))
	return append(k, id[:]...)
}

func validEnum[T comparable](v T, set []T) bool { return slices.Contains(set, v) }

// checkText bounds free text and requires valid UTF-8, so that the JSON
// round trip returns exactly the bytes the indexes were derived from.
func checkText(field, v string, limit int) error {
	if len(v) > limit {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrInvalid, field, len(v), limit)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	return nil
}

func checkRange(field string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return fmt.Errorf("%w: %s %d outside %d..%d", ErrInvalid, field, v, lo, hi)
	}
	return nil
}

// validate checks every field of a recording; commands run it on the result
// of their change, so nothing invalid is ever stored.
func (r *Recording) validate() error {
	if _, err := parseRecID("id", r.ID); err != nil {
		return err
	}
	if y := r.Start.Year(); y < 1970 || y > 9999 {
		return fmt.Errorf("%w: start year %d outside 1970..9999", ErrInvalid, y)
	}
	errs := []error{
		checkKeyText("pbxCallId", r.PBXCallID, maxCallIDLen),
		checkKeyText("sipCallIdIngress", r.SIPCallIDIngress, maxCallIDLen),
		checkKeyText("sipCallIdEgress", r.SIPCallIDEgress, maxCallIDLen),
		checkKeyText("sessionId", r.SessionID, maxCallIDLen),
		checkRange("durationMs", r.Duration, 0, math.MaxInt64/2),
		checkText("technology", r.Technology, maxNameLen),
		checkText("node", r.Node, maxNameLen),
		checkRange("channels", int64(r.Channels), 0, maxChannels),
		checkRange("size", r.Size, 0, math.MaxInt64/2),
		checkKeyText("localParty.user", r.LocalParty.User, maxIDLen),
		checkText("localParty.username", r.LocalParty.Username, maxNameLen),
		checkKeyText("localParty.number", r.LocalParty.Number, maxNumberLen),
		checkText("localParty.name", r.LocalParty.Name, maxNameLen),
		checkKeyText("remoteParty.number", r.RemoteParty.Number, maxNumberLen),
		checkKeyText("remoteParty.name", r.RemoteParty.Name, maxNameLen),
		checkKeyText("group", r.Group, maxIDLen),
		checkKeyText("tenant", r.Tenant, maxIDLen),
		checkRange("rating", int64(r.Rating), 0, maxRating),
		checkKeyText("category", r.Category, maxNameLen),
		checkRange("reviewMinutes", int64(r.ReviewMinutes), 0, 1<<31-1),
		checkText("transcript", r.Transcript, maxTranscriptLen),
		checkTime("deleteAfter", r.DeleteAfter),
		checkText("file.path", r.File.Path, 4096),
		checkText("file.sha256", r.File.SHA256, 64),
		checkText("file.audioSha256", r.File.AudioSHA256, 64),
		checkRange("file.wrappedDek", int64(len(r.File.WrappedDEK)), 0, maxDEKLen),
		checkRange("codecs", int64(len(r.Codecs)), 0, maxCodecs),
		checkRange("quality", int64(len(r.Quality)), 0, maxChannels),
		checkRange("notes", int64(len(r.Notes)), 0, maxNotes),
		checkRange("bookmarks", int64(len(r.Bookmarks)), 0, maxBookmarks),
		checkRange("related", int64(len(r.Related)), 0, maxRelated),
		checkRange("customFields", int64(len(r.CustomFields)), 0, maxCustomFields),
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if !validEnum(r.Direction, directionCodes) {
		return fmt.Errorf("%w: direction %q", ErrInvalid, r.Direction)
	}
	if !validEnum(r.Source, []Source{SourceMirror, SourceSIPREC, SourceUpload, SourceWebRTC}) {
		return fmt.Errorf("%w: source %q", ErrInvalid, r.Source)
	}
	if !validEnum(r.Status, statusCodes) {
		return fmt.Errorf("%w: status %q", ErrInvalid, r.Status)
	}
	if r.Tier != "" && r.Tier != TierHot && r.Tier != TierArchive {
		return fmt.Errorf("%w: tier %q", ErrInvalid, r.Tier)
	}
	if r.File.Format != "" && !validEnum(r.File.Format, []Format{FormatGrid, FormatWAV, FormatMP3, FormatRTP}) {
		return fmt.Errorf("%w: file.format %q", ErrInvalid, r.File.Format)
	}
	if r.File.SHA256 != "" {
		if b, err := hex.DecodeString(r.File.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("%w: file.sha256 is not 64 hex digits", ErrInvalid)
		}
	}
	for i, c := range r.Codecs {
		if err := checkText(fmt.Sprintf("codecs[%d]", i), c, 64); err != nil {
			return err
		}
	}
	for i, q := range r.Quality {
		f := fmt.Sprintf("quality[%d]", i)
		if err := checkText(f+".label", q.Label, maxNameLen); err != nil {
			return err
		}
		if q.PacketsExpected < 0 || q.PacketsReceived < 0 || !finite(q.LossPct) || !finite(q.JitterMs) {
			return fmt.Errorf("%w: %s has negative counts or non-finite values", ErrInvalid, f)
		}
	}
	if err := r.validateLists(); err != nil {
		return err
	}
	if r.Preserved != nil {
		if err := checkTimes("preserved", r.Preserved.At, r.Preserved.Until); err != nil {
			return err
		}
		if err := checkText("preserved.by", r.Preserved.By, maxIDLen); err != nil {
			return err
		}
	}
	if r.Deleted != nil {
		if err := checkTime("deleted.at", r.Deleted.At); err != nil {
			return err
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func checkTimes(field string, ts ...time.Time) error {
	for _, t := range ts {
		if err := checkTime(field, t); err != nil {
			return err
		}
	}
	return nil
}

func (r *Recording) validateLists() error {
	for i, n := range r.Notes {
		f := fmt.Sprintf("notes[%d]", i)
		if err := firstErr(checkID(f+".id", n.ID), checkText(f+".author", n.Author, maxIDLen),
			checkText(f+".text", n.Text, maxNoteLen), checkTime(f+".time", n.Time)); err != nil {
			return err
		}
	}
	for i, b := range r.Bookmarks {
		f := fmt.Sprintf("bookmarks[%d]", i)
		if err := firstErr(checkID(f+".id", b.ID), checkText(f+".author", b.Author, maxIDLen),
			checkText(f+".label", b.Label, maxNameLen), checkTime(f+".time", b.Time),
			checkRange(f+".offsetMs", b.OffsetMs, 0, math.MaxInt64/2)); err != nil {
			return err
		}
		if !validEnum(b.Type, bookmarkCodes) {
			return fmt.Errorf("%w: %s.type %q", ErrInvalid, f, b.Type)
		}
	}
	for i, rel := range r.Related {
		f := fmt.Sprintf("related[%d]", i)
		if _, err := parseRecID(f+".id", rel.ID); err != nil {
			return err
		}
		if err := checkID(f+".relation", rel.Relation); err != nil {
			return err
		}
	}
	// Sorted keys: error messages must not depend on map iteration order.
	keys := make([]string, 0, len(r.CustomFields))
	for k := range r.CustomFields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := firstErr(checkID("customFields key", k), checkText("customFields["+k+"]", r.CustomFields[k], maxCustomLen)); err != nil {
			return err
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// normalize puts times in UTC (JSON then writes "Z") and lists in canonical form.
func (r *Recording) normalize() {
	r.Start = r.Start.UTC()
	r.DeleteAfter = r.DeleteAfter.UTC()
	if r.Preserved != nil {
		r.Preserved.At, r.Preserved.Until = r.Preserved.At.UTC(), r.Preserved.Until.UTC()
	}
	if r.Deleted != nil {
		r.Deleted.At = r.Deleted.At.UTC()
	}
	for i := range r.Notes {
		r.Notes[i].Time = r.Notes[i].Time.UTC()
	}
	for i := range r.Bookmarks {
		r.Bookmarks[i].Time = r.Bookmarks[i].Time.UTC()
	}
	if u, err := uuid.Parse(r.ID); err == nil {
		r.ID = u.String()
	}
	for i := range r.Related {
		if u, err := uuid.Parse(r.Related[i].ID); err == nil {
			r.Related[i].ID = u.String()
		}
	}
	if len(r.CustomFields) == 0 {
		r.CustomFields = nil
	}
}

// ---- search keys derived from a recording ----

// words splits text into lower-case words of letters and digits, cut to
// maxWordLen bytes, deduplicated and sorted (deterministic index entries).
func words(text string) []string {
	var out []string
	for f := range strings.FieldsFuncSeq(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		out = append(out, cutWord(f))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func cutWord(w string) string {
	if len(w) <= maxWordLen {
		return w
	}
	w = w[:maxWordLen]
	for len(w) > 0 && !utf8.ValidString(w) {
		w = w[:len(w)-1]
	}
	return w
}

// normNumber makes phone numbers comparable: lower case, without spaces and
// the punctuation people type ("+49 (30) 123-45" → "+493012345").
func normNumber(n string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '(', ')', '.', '/', '\t':
			return -1
		}
		return unicode.ToLower(r)
	}, n)
}

type indexEntry struct {
	bucket int // position in indexBuckets
	key    string
}

// Positions in indexBuckets.
const (
	ixCallID = iota
	ixUser
	ixGroup
	ixLocNum
	ixRemNum
	ixRemName
	ixNote
	ixAttr
	ixExpiry
)

// attribute index values.
func attrPreserved() string              { return "p" }
func attrBookmark(b BookmarkType) string { return "b:" + string(b) }
func attrCategory(c string) string       { return "c:" + strings.ToLower(c) }
func attrRating(n int) string            { return fmt.Sprintf("r:%d", n) }
func attrStatus(s Status) string         { return "s:" + string(s) }

// indexEntries lists every secondary index key of r, sorted and unique. The
// index content is a pure function of the recording, which is what makes
// updates (diff old against new) and Check simple.
func indexEntries(r *Recording, skey []byte) []indexEntry {
	var es []indexEntry
	add := func(b int, v string) {
		if v != "" {
			es = append(es, indexEntry{b, v + "\x00" + string(skey)})
		}
	}
	for _, c := range []string{r.PBXCallID, r.SIPCallIDIngress, r.SIPCallIDEgress, r.SessionID} {
		add(ixCallID, c)
	}
	add(ixUser, r.LocalParty.User)
	add(ixGroup, r.Group)
	add(ixLocNum, normNumber(r.LocalParty.Number))
	add(ixRemNum, normNumber(r.RemoteParty.Number))
	for _, w := range words(r.RemoteParty.Name) {
		add(ixRemName, w)
	}
	var notes strings.Builder
	for _, n := range r.Notes {
		notes.WriteString(n.Text)
		notes.WriteByte(' ')
	}
	for _, w := range words(notes.String()) {
		add(ixNote, w)
	}
	if r.Preserved != nil {
		add(ixAttr, attrPreserved())
	}
	for _, b := range r.Bookmarks {
		add(ixAttr, attrBookmark(b.Type))
	}
	if r.Category != "" {
		add(ixAttr, attrCategory(r.Category))
	}
	if r.Rating > 0 {
		add(ixAttr, attrRating(r.Rating))
	}
	if r.Status != StatusComplete {
		add(ixAttr, attrStatus(r.Status))
	}
	add(ixExpiry, expiryValue(r))
	slices.SortFunc(es, func(a, b indexEntry) int {
		if a.bucket != b.bucket {
			return a.bucket - b.bucket
		}
		return strings.Compare(a.key, b.key)
	})
	return slices.Compact(es)
}

// ---- summary: the compact per-recording value used by search post-filters ----

// summary layout (value of rec_time):
//
//	[0]    version (1)
//	[1]    direction code     [2] status code     [3] rating
//	[4]    flags: 1 preserved, 2 has notes
//	[5:7]  bookmark type bitmask (bit i = bookmarkCodes[i]), big endian
//	[7:15] duration ms, big endian
//	then uvarint-length strings: tenant, group, local user, local number
//	(normalized), remote number (normalized), remote name (lower), category (lower)
const summaryFixed = 15

const (
	flagPreserved = 1 << iota
	flagNotes
)

type summary struct {
	direction, status, rating, flags byte
	bookmarks                        uint16
	duration                         int64
	tenant, group, user              []byte
	localNum, remoteNum, remoteName  []byte
	category                         []byte
}

func encodeSummary(r *Recording) []byte {
	b := make([]byte, summaryFixed, summaryFixed+64)
	b[0] = 1
	b[1] = byte(slices.Index(directionCodes, r.Direction))
	b[2] = byte(slices.Index(statusCodes, r.Status))
	b[3] = byte(r.Rating)
	if r.Preserved != nil {
		b[4] |= flagPreserved
	}
	if len(r.Notes) > 0 {
		b[4] |= flagNotes
	}
	var mask uint16
	for _, bm := range r.Bookmarks {
		if i := slices.Index(bookmarkCodes, bm.Type); i >= 0 { // validated; the guard keeps a bad record from panicking Check
			mask |= 1 << i
		}
	}
	binary.BigEndian.PutUint16(b[5:], mask)
	binary.BigEndian.PutUint64(b[7:], uint64(r.Duration))
	for _, s := range []string{r.Tenant, r.Group, r.LocalParty.User, normNumber(r.LocalParty.Number),
		normNumber(r.RemoteParty.Number), strings.ToLower(r.RemoteParty.Name), strings.ToLower(r.Category)} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// decodeSummary parses v without copying: the slices alias v and are only
// valid inside the read transaction.
func decodeSummary(v []byte, s *summary) error {
	if len(v) < summaryFixed || v[0] != 1 {
		return fmt.Errorf("%w: summary of %d bytes", ErrCorrupt, len(v))
	}
	s.direction, s.status, s.rating, s.flags = v[1], v[2], v[3], v[4]
	s.bookmarks = binary.BigEndian.Uint16(v[5:])
	s.duration = int64(binary.BigEndian.Uint64(v[7:]))
	rest := v[summaryFixed:]
	for _, dst := range []*[]byte{&s.tenant, &s.group, &s.user, &s.localNum, &s.remoteNum, &s.remoteName, &s.category} {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return fmt.Errorf("%w: truncated summary", ErrCorrupt)
		}
		*dst = rest[k : k+int(n)]
		rest = rest[k+int(n):]
	}
	return nil
}

// ---- storing ----

// loadRecording reads a recording for modification.
func (t *txn) loadRecording(field, id string) (*Recording, uuid.UUID, error) {
	u, err := parseRecID(field, id)
	if err != nil {
		return nil, u, err
	}
	var r Recording
	if err := getJSON(t.b(bRec), u[:], &r); err != nil {
		return nil, u, fmt.Errorf("recording %s: %w", u, err)
	}
	return &r, u, nil
}

// storeRecording writes r and brings every index from old's entries to
// r's. old is nil for a new recording. r must already be validated.
func (t *txn) storeRecording(old, r *Recording, id uuid.UUID) error {
	skey := makeSkey(r.Start, id)
	var oldEntries []indexEntry
	if old != nil {
		oldSkey := makeSkey(old.Start, id)
		if !bytes.Equal(oldSkey, skey) {
			return fmt.Errorf("%w: start cannot change", ErrInvalid)
		}
		oldEntries = indexEntries(old, skey)
	}
	newEntries := indexEntries(r, skey)
	for _, e := range oldEntries {
		if _, found := slices.BinarySearchFunc(newEntries, e, cmpEntry); !found {
			if err := t.del(indexBuckets[e.bucket], []byte(e.key)); err != nil {
				return err
			}
		}
	}
	for _, e := range newEntries {
		if _, found := slices.BinarySearchFunc(oldEntries, e, cmpEntry); !found {
			if err := t.put(indexBuckets[e.bucket], []byte(e.key), nil); err != nil {
				return err
			}
		}
	}
	if err := t.put(bTime, skey, encodeSummary(r)); err != nil {
		return err
	}
	if old == nil || old.Reference != r.Reference {
		if err := t.put(bRef, []byte(r.Reference), skey); err != nil {
			return err
		}
	}
	return t.putJSON(bRec, id[:], r)
}

func cmpEntry(a, b indexEntry) int {
	if a.bucket != b.bucket {
		return a.bucket - b.bucket
	}
	return strings.Compare(a.key, b.key)
}

// nextReference assigns the next reference number of the recording's
// start year: "2026" + 9 digits. The counter lives in the database, so every
// replica assigns the same number.
func (t *txn) nextReference(start time.Time) (string, error) {
	key := fmt.Appendf(nil, "ref/%04d", start.Year())
	var n uint64
	if v := t.b(bCounters).Get(key); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	if n > 999_999_999 {
		return "", fmt.Errorf("%w: reference numbers of %d exhausted", ErrInvalid, start.Year())
	}
	if err := t.put(bCounters, key, binary.BigEndian.AppendUint64(nil, n)); err != nil {
		return "", err
	}
	return fmt.Sprintf("%04d%09d", start.Year(), n), nil
}

// modify is the shape of most recording commands: load, change, validate, store.
func (t *txn) modify(id string, fn func(r *Recording) error) (Result, error) {
	r, u, err := t.loadRecording("id", id)
	if err != nil {
		return Result{}, err
	}
	if r.Status == StatusDeleted {
		return Result{}, fmt.Errorf("%w: %s", ErrDeleted, u)
	}
	old := *r
	// fn may append to slices shared with old; give r its own copies first.
	r.Notes, r.Bookmarks, r.Related = slices.Clone(r.Notes), slices.Clone(r.Bookmarks), slices.Clone(r.Related)
	if err := fn(r); err != nil {
		return Result{}, err
	}
	r.normalize()
	if err := r.validate(); err != nil {
		return Result{}, err
	}
	return Result{ID: r.ID, Reference: r.Reference}, t.storeRecording(&old, r, u)
}

// checkRecordings recomputes every index from the primary records and
// compares both ways, counting entries so that stale extras are found too.
func checkRecordings(tx *bolt.Tx) error {
	want := make([]int, len(indexBuckets))
	nrec := 0
	err := tx.Bucket(bRec).ForEach(func(k, v []byte) error {
		var r Recording
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("%w: recording %x: %w", ErrCorrupt, k, err)
		}
		u, err := uuid.Parse(r.ID)
		if err != nil || !bytes.Equal(u[:], k) {
			return fmt.Errorf("%w: recording key %x holds id %q", ErrCorrupt, k, r.ID)
		}
		nrec++
		skey := makeSkey(r.Start, u)
		if got := tx.Bucket(bTime).Get(skey); !bytes.Equal(got, encodeSummary(&r)) {
			return fmt.Errorf("%w: %s: summary %x, want %x", ErrCorrupt, r.ID, got, encodeSummary(&r))
		}
		if got := tx.Bucket(bRef).Get([]byte(r.Reference)); !bytes.Equal(got, skey) {
			return fmt.Errorf("%w: %s: reference %q points to %x", ErrCorrupt, r.ID, r.Reference, got)
		}
		for _, e := range indexEntries(&r, skey) {
			want[e.bucket]++
			if tx.Bucket(indexBuckets[e.bucket]).Get([]byte(e.key)) == nil {
				return fmt.Errorf("%w: %s: missing %s entry %q", ErrCorrupt, r.ID, indexBuckets[e.bucket], e.key)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, b := range [][]byte{bTime, bRef} {
		if n := tx.Bucket(b).Stats().KeyN; n != nrec {
			return fmt.Errorf("%w: %s has %d keys, %d recordings", ErrCorrupt, b, n, nrec)
		}
	}
	for i, b := range indexBuckets {
		if n := tx.Bucket(b).Stats().KeyN; n != want[i] {
			return fmt.Errorf("%w: %s has %d keys, want %d", ErrCorrupt, b, n, want[i])
		}
	}
	return nil
}
