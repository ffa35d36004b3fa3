package meta

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Scope is what the caller may see, decided by the web layer from the
// session: All (admin, auditor), a Tenant, and/or Groups (a supervisor's
// groups) and User (their own calls). With Groups or User set, a recording
// is visible if its group is one of Groups OR its local user is User, and
// (when Tenant is set) it belongs to Tenant. The zero Scope sees nothing and
// is rejected, so a forgotten scope fails loudly.
type Scope struct {
	All    bool
	Tenant string
	Groups []string
	User   string
}

// Query selects recordings. Zero fields do not filter. All conditions must hold.
type Query struct {
	// Start (inclusive) and End (exclusive) bound the call start time. Zero
	// means unbounded; defaulting to "last 7 days" is the caller's business.
	Start, End time.Time
	// MinDurationMs/MaxDurationMs bound the duration (inclusive); 0 = no bound.
	MinDurationMs, MaxDurationMs int64
	// CallID matches the PBX call ID, either SIP Call-ID or the session ID exactly.
	CallID       string
	RecordingID  string
	Reference    string
	NoteWords    string // every word must appear in the notes (case-insensitive)
	Direction    Direction
	LocalUser    string // user ID
	LocalNumber  string // prefix
	RemoteNumber string // prefix
	// RemoteName: every word must be a prefix of a word of the remote name
	// (case-insensitive), so "mül" finds "Anna Müller" and "anna m" does too.
	RemoteName     string
	Group          string
	MinRating      int // 1..5: rated at least this
	Category       string
	Preserved      bool // only recordings under legal hold
	BookmarkType   BookmarkType
	Status         Status // "" = any except deleted
	IncludeDeleted bool
	Ascending      bool // default: newest first (largest first for Sort)
	// Sort orders by something other than the start time (sort.go); such
	// a search may have at most SortLimit matches.
	Sort   SortKey
	Limit  int // default 50, at most 500
	Cursor string
	Scope  Scope
}

// Page is one page of results.
type Page struct {
	Recordings []Recording
	// Next is the opaque cursor for the following page; empty on the last page.
	Next string
}

// Page size limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Planner budgets. An index whose prefix walk (numbers, name prefixes)
// exceeds defaultCollectLimit entries is abandoned in favor of the time walk:
// past a few thousand entries the walk reads more pages than the time walk
// needs to find a page of matches (1,000,000 recordings, 1 in 200 matching:
// 10,000 summaries in order), and on a cold cache pages are what cost.
// The step sizes weigh one index candidate (a random Get) against one time
// walk candidate (a sequential cursor step).
const (
	defaultCollectLimit = 5_000
	stepIndex           = 64
	stepTime            = 512
)

// Recording returns a recording (or its tombstone) by ID.
func (db *DB) Recording(id string) (Recording, error) {
	u, err := parseRecID("id", id)
	if err != nil {
		return Recording{}, err
	}
	var r Recording
	return r, db.viewJSON(bRec, u[:], &r, "recording")
}

// RecordingByReference returns a recording (or its tombstone) by reference number.
func (db *DB) RecordingByReference(ref string) (Recording, error) {
	var r Recording
	err := db.bolt.View(func(tx *bolt.Tx) error {
		skey := tx.Bucket(bRef).Get([]byte(ref))
		if len(skey) != skeyLen {
			return fmt.Errorf("reference %q: %w", ref, ErrNotFound)
		}
		return getJSON(tx.Bucket(bRec), skey[8:], &r)
	})
	return r, err
}

// ---- cursor ----

const cursorVersion = 1

func encodeCursor(asc bool, skey []byte) string {
	b := make([]byte, 0, 2+skeyLen)
	b = append(b, cursorVersion, 0)
	if asc {
		b[1] = 1
	}
	return base64.RawURLEncoding.EncodeToString(append(b, skey...))
}

// decodeCursor parses an opaque cursor; it must come from a query with the same order.
func decodeCursor(s string, asc bool) ([]byte, error) {
	if len(s) > 64 {
		return nil, fmt.Errorf("%w: cursor is %d bytes", ErrInvalid, len(s))
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: cursor: %w", ErrInvalid, err)
	}
	if len(b) != 2+skeyLen || b[0] != cursorVersion || b[1] > 1 {
		return nil, fmt.Errorf("%w: cursor of %d bytes, version %d", ErrInvalid, len(b), firstByte(b))
	}
	if (b[1] == 1) != asc {
		return nil, fmt.Errorf("%w: cursor was made for the other sort order", ErrInvalid)
	}
	return b[2:], nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// ---- filter ----

// filter is a validated, pre-normalized Query.
type filter struct {
	q                   *Query
	lo, hi              []byte // skey bounds: lo inclusive, hi exclusive
	asc                 bool
	limit               int
	direction, status   int // -1: any
	bookmarkMask        uint16
	category            []byte
	localNum, remoteNum []byte
	remoteName          []string
	noteWords           []string
	scopeGroups         map[string]bool
}

func newFilter(q *Query) (*filter, error) {
	f := &filter{q: q, asc: q.Ascending, limit: q.Limit, direction: -1, status: -1}
	for _, s := range []struct{ name, v string }{
		{"callId", q.CallID}, {"recordingId", q.RecordingID}, {"reference", q.Reference},
		{"noteWords", q.NoteWords}, {"localUser", q.LocalUser}, {"localNumber", q.LocalNumber},
		{"remoteNumber", q.RemoteNumber}, {"remoteName", q.RemoteName}, {"group", q.Group},
		{"category", q.Category}, {"scope.tenant", q.Scope.Tenant}, {"scope.user", q.Scope.User},
	} {
		if err := checkKeyText(s.name, s.v, 1024); err != nil {
			return nil, err
		}
	}
	if err := checkList("scope.groups", q.Scope.Groups); err != nil {
		return nil, err
	}
	if !q.Scope.All && q.Scope.Tenant == "" && len(q.Scope.Groups) == 0 && q.Scope.User == "" {
		return nil, fmt.Errorf("%w: scope is empty (set All, Tenant, Groups or User)", ErrInvalid)
	}
	switch {
	case f.limit == 0:
		f.limit = DefaultLimit
	case f.limit < 0:
		return nil, fmt.Errorf("%w: limit %d", ErrInvalid, f.limit)
	case f.limit > MaxLimit:
		f.limit = MaxLimit
	}
	if q.MinRating < 0 || q.MinRating > maxRating {
		return nil, fmt.Errorf("%w: minRating %d outside 0..%d", ErrInvalid, q.MinRating, maxRating)
	}
	if q.MinDurationMs < 0 || q.MaxDurationMs < 0 || (q.MaxDurationMs > 0 && q.MaxDurationMs < q.MinDurationMs) {
		return nil, fmt.Errorf("%w: duration range %d..%d", ErrInvalid, q.MinDurationMs, q.MaxDurationMs)
	}
	if q.Direction != "" {
		if f.direction = slices.Index(directionCodes, q.Direction); f.direction < 0 {
			return nil, fmt.Errorf("%w: direction %q", ErrInvalid, q.Direction)
		}
	}
	if q.Status != "" {
		if f.status = slices.Index(statusCodes, q.Status); f.status < 0 {
			return nil, fmt.Errorf("%w: status %q", ErrInvalid, q.Status)
		}
	}
	if q.BookmarkType != "" {
		i := slices.Index(bookmarkCodes, q.BookmarkType)
		if i < 0 {
			return nil, fmt.Errorf("%w: bookmarkType %q", ErrInvalid, q.BookmarkType)
		}
		f.bookmarkMask = 1 << i
	}
	// Time bounds as sort keys.
	f.lo = make([]byte, skeyLen)
	f.hi = bytes.Repeat([]byte{0xff}, skeyLen)
	if !q.Start.IsZero() && q.Start.UnixMilli() > 0 {
		binary.BigEndian.PutUint64(f.lo, uint64(q.Start.UnixMilli()))
	}
	if !q.End.IsZero() {
		if !q.Start.IsZero() && q.End.Before(q.Start) {
			return nil, fmt.Errorf("%w: end %v before start %v", ErrInvalid, q.End, q.Start)
		}
		clear(f.hi)
		if ms := q.End.UnixMilli(); ms > 0 {
			binary.BigEndian.PutUint64(f.hi, uint64(ms))
		}
	}
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor, f.asc)
		if err != nil {
			return nil, err
		}
		if f.asc {
			// The smallest key after c: c followed by a zero byte.
			if bytes.Compare(c, f.lo) >= 0 {
				f.lo = append(bytes.Clone(c), 0)
			}
		} else if bytes.Compare(c, f.hi) < 0 {
			f.hi = bytes.Clone(c)
		}
	}
	if q.Category != "" {
		f.category = []byte(strings.ToLower(q.Category))
	}
	if q.LocalNumber != "" {
		f.localNum = []byte(normNumber(q.LocalNumber))
	}
	if q.RemoteNumber != "" {
		f.remoteNum = []byte(normNumber(q.RemoteNumber))
	}
	f.remoteName = words(q.RemoteName)
	f.noteWords = words(q.NoteWords)
	if q.NoteWords != "" && len(f.noteWords) == 0 {
		return nil, fmt.Errorf("%w: noteWords has no words", ErrInvalid)
	}
	if q.RemoteName != "" && len(f.remoteName) == 0 {
		return nil, fmt.Errorf("%w: remoteName has no words", ErrInvalid)
	}
	if !q.Scope.All {
		f.scopeGroups = make(map[string]bool, len(q.Scope.Groups))
		for _, g := range q.Scope.Groups {
			f.scopeGroups[g] = true
		}
	}
	return f, nil
}

// match runs every condition against a recording's summary (and, for call
// IDs and note words, a point lookup in the index). It is the single source
// of truth: every plan post-filters with it, so plans differ only in speed.
func (f *filter) match(tx *bolt.Tx, skey []byte, s *summary) bool {
	q := f.q
	if bytes.Compare(skey, f.lo) < 0 || bytes.Compare(skey, f.hi) >= 0 {
		return false
	}
	switch {
	case f.status >= 0 && int(s.status) != f.status:
		return false
	case f.status < 0 && !q.IncludeDeleted && statusCodes[min(int(s.status), len(statusCodes)-1)] == StatusDeleted:
		return false
	case f.direction >= 0 && int(s.direction) != f.direction:
		return false
	case q.MinDurationMs > 0 && s.duration < q.MinDurationMs:
		return false
	case q.MaxDurationMs > 0 && s.duration > q.MaxDurationMs:
		return false
	case q.MinRating > 0 && int(s.rating) < q.MinRating:
		return false
	case q.Preserved && s.flags&flagPreserved == 0:
		return false
	case f.bookmarkMask != 0 && s.bookmarks&f.bookmarkMask == 0:
		return false
	case f.category != nil && !bytes.Equal(s.category, f.category):
		return false
	case q.Group != "" && string(s.group) != q.Group:
		return false
	case q.LocalUser != "" && string(s.user) != q.LocalUser:
		return false
	case f.localNum != nil && !bytes.HasPrefix(s.localNum, f.localNum):
		return false
	case f.remoteNum != nil && !bytes.HasPrefix(s.remoteNum, f.remoteNum):
		return false
	case !f.scopeOK(s):
		return false
	}
	for _, w := range f.remoteName {
		if !hasWordPrefix(s.remoteName, w) {
			return false
		}
	}
	if q.CallID != "" && !indexHas(tx, bCallID, q.CallID, skey) {
		return false
	}
	for _, w := range f.noteWords {
		if s.flags&flagNotes == 0 || !indexHas(tx, bNote, w, skey) {
			return false
		}
	}
	return true
}

func (f *filter) scopeOK(s *summary) bool {
	sc := &f.q.Scope
	if sc.All {
		return true
	}
	if sc.Tenant != "" && string(s.tenant) != sc.Tenant {
		return false
	}
	if len(sc.Groups) == 0 && sc.User == "" {
		return true // tenant-wide scope
	}
	return f.scopeGroups[string(s.group)] || (sc.User != "" && string(s.user) == sc.User)
}

func indexHas(tx *bolt.Tx, bucket []byte, value string, skey []byte) bool {
	var buf [256]byte
	k := append(append(append(buf[:0], value...), 0), skey...)
	return tx.Bucket(bucket).Get(k) != nil
}

// hasWordPrefix reports whether some word of name (already lower case)
// starts with w, splitting the way words does, without allocating.
func hasWordPrefix(name []byte, w string) bool {
	// Most names do not contain w at all: find that out at memchr speed
	// before decoding runes (it halved the time walk of name queries).
	if !bytes.Contains(name, []byte(w)) {
		return false
	}
	for i := 0; i < len(name); {
		r, n := utf8.DecodeRune(name[i:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			i += n
			continue
		}
		if bytes.HasPrefix(name[i:], []byte(w)) {
			return true
		}
		for i < len(name) { // skip to the end of this word
			r, n := utf8.DecodeRune(name[i:])
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				break
			}
			i += n
		}
	}
	return false
}

// ---- iterators: each yields sort keys in query order within [lo, hi) ----

type iter interface {
	// next returns the next sort key and, when the iterator walks the time
	// bucket, its summary value; nil skey when done.
	next() (skey, summary []byte)
	// seek moves to the first key at or after target in query order (≥
	// target ascending, ≤ target descending) and returns it as next would;
	// the following next continues after it. Intersections leapfrog with it.
	seek(target []byte) (skey, summary []byte)
	// overflow reports that the iterator gave up (too many entries to sort).
	overflow() bool
}

// rangeIter walks the keys prefix‖skey of one bucket between the bounds.
type rangeIter struct {
	c       *bolt.Cursor
	prefix  []byte
	lo, hi  []byte
	asc     bool
	started bool
	isTime  bool
}

func newRangeIter(tx *bolt.Tx, bucket []byte, value string, f *filter) *rangeIter {
	it := &rangeIter{c: tx.Bucket(bucket).Cursor(), lo: f.lo, hi: f.hi, asc: f.asc, isTime: bytes.Equal(bucket, bTime)}
	if !it.isTime {
		it.prefix = append([]byte(value), 0)
	}
	return it
}

func (it *rangeIter) overflow() bool { return false }

func (it *rangeIter) next() ([]byte, []byte) {
	var k, v []byte
	switch {
	case !it.started && it.asc:
		return it.seek(it.lo)
	case !it.started:
		return it.seek(nil)
	case it.asc:
		k, v = it.c.Next()
	default:
		k, v = it.c.Prev()
	}
	return it.emit(k, v)
}

// seek positions the cursor on prefix‖target (nil target: the end of the
// range). Descending, that is the last key ≤ target and < hi.
func (it *rangeIter) seek(target []byte) ([]byte, []byte) {
	it.started = true
	if it.asc {
		if bytes.Compare(target, it.lo) < 0 {
			target = it.lo
		}
		return it.emit(it.c.Seek(append(slices.Clip(it.prefix), target...)))
	}
	exact := target != nil && bytes.Compare(target, it.hi) < 0
	if !exact {
		target = it.hi
	}
	want := append(slices.Clip(it.prefix), target...)
	k, v := it.c.Seek(want)
	if exact && bytes.Equal(k, want) {
		return it.emit(k, v)
	}
	if k == nil {
		k, v = it.c.Last()
	} else {
		k, v = it.c.Prev()
	}
	// Seek landed at or past the target; Prev/Last gives the last key below it.
	for k != nil && bytes.HasPrefix(k, it.prefix) && bytes.Compare(k[len(it.prefix):], target) > 0 ||
		!exact && k != nil && bytes.HasPrefix(k, it.prefix) && bytes.Compare(k[len(it.prefix):], it.hi) >= 0 {
		k, v = it.c.Prev()
	}
	return it.emit(k, v)
}

// emit turns a cursor position into the iterator's answer: the sort key
// if the position is still inside the prefix and the time bounds.
func (it *rangeIter) emit(k, v []byte) ([]byte, []byte) {
	if k == nil || !bytes.HasPrefix(k, it.prefix) || len(k) != len(it.prefix)+skeyLen {
		return nil, nil
	}
	skey := k[len(it.prefix):]
	if it.asc && bytes.Compare(skey, it.hi) >= 0 || !it.asc && bytes.Compare(skey, it.lo) < 0 {
		return nil, nil
	}
	if !it.isTime {
		v = nil
	}
	return skey, v
}

// mergeIter merges iterators that share an order, dropping duplicates
// (a recording in two of a supervisor's groups, or in a group and owned).
type mergeIter struct {
	its   []iter
	heads [][]byte
	asc   bool
	last  []byte
	init  bool
}

func (m *mergeIter) overflow() bool { return false }

func (m *mergeIter) next() ([]byte, []byte) {
	if !m.init {
		m.init = true
		m.heads = make([][]byte, len(m.its))
		for i, it := range m.its {
			m.heads[i], _ = it.next()
		}
	}
	return m.pick()
}

func (m *mergeIter) seek(target []byte) ([]byte, []byte) {
	m.init = true
	if m.heads == nil {
		m.heads = make([][]byte, len(m.its))
	}
	for i, it := range m.its {
		m.heads[i], _ = it.seek(target)
	}
	m.last = nil
	return m.pick()
}

// pick returns the best head in query order and advances its iterator.
func (m *mergeIter) pick() ([]byte, []byte) {
	for {
		best := -1
		for i, h := range m.heads {
			if h == nil {
				continue
			}
			if best < 0 {
				best = i
				continue
			}
			c := bytes.Compare(h, m.heads[best])
			if m.asc && c < 0 || !m.asc && c > 0 {
				best = i
			}
		}
		if best < 0 {
			return nil, nil
		}
		k := m.heads[best]
		m.heads[best], _ = m.its[best].next()
		if m.last != nil && bytes.Equal(k, m.last) {
			continue
		}
		m.last = k
		return k, nil
	}
}

// collectIter serves prefix conditions (numbers, name prefixes) whose index
// runs are ordered by value first: it collects the matching sort keys, up
// to a limit, and sorts them. Past the limit it overflows and the
// planner relies on the time walk instead.
type collectIter struct {
	limit  int
	tx     *bolt.Tx
	bucket []byte
	prefix []byte
	f      *filter
	keys   [][]byte
	pos    int
	done   bool
	over   bool
}

func (it *collectIter) overflow() bool { return it.over }

func (it *collectIter) next() ([]byte, []byte) {
	it.collect()
	if it.over || it.pos >= len(it.keys) {
		return nil, nil
	}
	it.pos++
	return it.keys[it.pos-1], nil
}

func (it *collectIter) seek(target []byte) ([]byte, []byte) {
	it.collect()
	if it.over {
		return nil, nil
	}
	rest := it.keys[it.pos:]
	i, _ := slices.BinarySearchFunc(rest, target, func(k, t []byte) int {
		if it.f.asc {
			return bytes.Compare(k, t)
		}
		return bytes.Compare(t, k)
	})
	it.pos += i
	return it.next()
}

// collect walks the prefix once, on first use.
func (it *collectIter) collect() {
	if !it.done {
		it.done = true
		c := it.tx.Bucket(it.bucket).Cursor()
		n := 0
		for k, _ := c.Seek(it.prefix); k != nil && bytes.HasPrefix(k, it.prefix); k, _ = c.Next() {
			if n++; n > it.limit {
				it.over, it.keys = true, nil
				return
			}
			if len(k) < skeyLen+1 {
				continue
			}
			skey := k[len(k)-skeyLen:]
			if bytes.Compare(skey, it.f.lo) >= 0 && bytes.Compare(skey, it.f.hi) < 0 {
				it.keys = append(it.keys, skey)
			}
		}
		slices.SortFunc(it.keys, bytes.Compare)
		it.keys = slices.CompactFunc(it.keys, bytes.Equal)
		if !it.f.asc {
			slices.Reverse(it.keys)
		}
	}
}

// sliceIter yields a fixed list (ID and reference lookups).
type sliceIter struct{ keys [][]byte }

func (it *sliceIter) overflow() bool { return false }
func (it *sliceIter) next() ([]byte, []byte) {
	if len(it.keys) == 0 {
		return nil, nil
	}
	k := it.keys[0]
	it.keys = it.keys[1:]
	return k, nil
}

// seek is never used: ID and reference lookups are plans of their own.
func (it *sliceIter) seek([]byte) ([]byte, []byte) { return it.next() }

// intersectIter yields the keys every one of its iterators yields: a
// leapfrog join. Each iterator seeks to the current candidate; one that
// lands past it makes its key the new candidate, until all agree. Two
// indexes of a few thousand entries each are joined by reading their pages
// in order, without looking up a summary for every entry of either (the
// random reads that made "user + preserved" slow on a cold cache).
type intersectIter struct {
	its  []iter
	done bool
}

func (x *intersectIter) overflow() bool {
	for _, it := range x.its {
		if it.overflow() {
			return true
		}
	}
	return false
}

func (x *intersectIter) next() ([]byte, []byte) {
	if x.done {
		return nil, nil
	}
	cand, _ := x.its[0].next()
	return x.agree(cand)
}

func (x *intersectIter) seek(target []byte) ([]byte, []byte) {
	if x.done {
		return nil, nil
	}
	cand, _ := x.its[0].seek(target)
	return x.agree(cand)
}

// agree leapfrogs from cand (where its[0] stands) until every iterator
// stands on the same key.
func (x *intersectIter) agree(cand []byte) ([]byte, []byte) {
	for agreed, i := 1, 1; cand != nil; i = (i + 1) % len(x.its) {
		if agreed == len(x.its) {
			return cand, nil
		}
		k, _ := x.its[i].seek(cand)
		if k == nil {
			break
		}
		if bytes.Equal(k, cand) {
			agreed++
		} else {
			cand, agreed = k, 1
		}
	}
	x.done = true
	return nil, nil
}

// ---- planner ----

type plan struct {
	name    string
	it      iter
	step    int
	matches [][]byte
	done    bool
}

// plans lists the ways to answer f, most selective first; the time walk is
// always last and always complete.
func (f *filter) plans(tx *bolt.Tx, collectLimit int) ([]*plan, error) {
	q := f.q
	var ps []*plan
	add := func(name string, it iter) { ps = append(ps, &plan{name: name, it: it, step: stepIndex}) }
	exact := func(b []byte, v string) iter { return newRangeIter(tx, b, v, f) }
	switch {
	case q.RecordingID != "":
		var keys [][]byte
		if u, err := parseRecID("recordingId", q.RecordingID); err == nil {
			var r Recording
			if getJSON(tx.Bucket(bRec), u[:], &r) == nil {
				keys = append(keys, makeSkey(r.Start, u))
			}
		}
		// An ID that cannot exist matches nothing; that is not an error.
		add("id", &sliceIter{keys: keys})
		return ps, nil
	case q.Reference != "":
		var keys [][]byte
		if skey := tx.Bucket(bRef).Get([]byte(q.Reference)); len(skey) == skeyLen {
			keys = append(keys, skey)
		}
		add("reference", &sliceIter{keys: keys})
		return ps, nil
	}
	// The indexed conditions, most selective first (a guess: the planner
	// keeps no statistics).
	// Each is a constructor: the intersection and the single plan each
	// need their own cursors.
	type cond struct {
		name string
		mk   func() iter
	}
	var conds []cond
	cand := func(name string, mk func() iter) { conds = append(conds, cond{name, mk}) }
	exactMk := func(b []byte, v string) func() iter { return func() iter { return exact(b, v) } }
	// Prefix walks are collected now: one that proves too big is left to
	// the post-filter instead of joining (and sinking) an intersection.
	collect := func(name string, b, prefix []byte) {
		it := &collectIter{limit: collectLimit, tx: tx, bucket: b, prefix: prefix, f: f}
		if it.collect(); !it.over {
			cand(name, func() iter { c := *it; return &c })
		}
	}
	if q.CallID != "" {
		cand("callid", exactMk(bCallID, q.CallID))
	}
	// Longer words tend to be rarer.
	nw := slices.Clone(f.noteWords)
	slices.SortStableFunc(nw, func(a, b string) int { return len(b) - len(a) })
	for _, w := range nw {
		cand("note", exactMk(bNote, w))
	}
	if q.LocalUser != "" {
		cand("user", exactMk(bUser, q.LocalUser))
	}
	if len(f.remoteName) > 0 {
		collect("remotename", bRemName, []byte(slices.MaxFunc(f.remoteName, func(a, b string) int { return len(a) - len(b) })))
	}
	nums := []struct {
		name string
		b    []byte
		p    []byte
	}{{"localnum", bLocNum, f.localNum}, {"remotenum", bRemNum, f.remoteNum}}
	if len(f.localNum) < len(f.remoteNum) {
		nums[0], nums[1] = nums[1], nums[0]
	}
	for _, n := range nums {
		if len(n.p) > 0 {
			collect(n.name, n.b, n.p)
		}
	}
	if q.Preserved {
		cand("preserved", exactMk(bAttr, attrPreserved()))
	}
	if q.BookmarkType != "" {
		cand("bookmark", exactMk(bAttr, attrBookmark(q.BookmarkType)))
	}
	if q.Category != "" {
		cand("category", exactMk(bAttr, attrCategory(q.Category)))
	}
	if q.Status != "" && q.Status != StatusComplete {
		cand("status", exactMk(bAttr, attrStatus(q.Status)))
	}
	if q.MinRating > 0 {
		cand("rating", func() iter {
			m := &mergeIter{asc: f.asc}
			for n := q.MinRating; n <= maxRating; n++ {
				m.its = append(m.its, exact(bAttr, attrRating(n)))
			}
			return m
		})
	}
	if q.Group != "" {
		cand("group", exactMk(bGroup, q.Group))
	}
	if sc := q.Scope; !sc.All && (len(sc.Groups) > 0 || sc.User != "") {
		cand("scope", func() iter {
			m := &mergeIter{asc: f.asc}
			for _, g := range sc.Groups {
				m.its = append(m.its, exact(bGroup, g))
			}
			if sc.User != "" {
				m.its = append(m.its, exact(bUser, sc.User))
			}
			return m
		})
	}
	// Race the intersection of every indexed condition and the most
	// selective one alone against the walk of the time index. The
	// intersection reads no summary for an entry another index rules out;
	// the single index wins when the others match nearly everything and
	// joining them only costs seeks.
	if len(conds) >= 2 {
		names := make([]string, len(conds))
		its := make([]iter, len(conds))
		for i, c := range conds {
			names[i], its[i] = c.name, c.mk()
		}
		add(strings.Join(names, "+"), &intersectIter{its: its})
	}
	if len(conds) > 0 {
		add(conds[0].name, conds[0].mk())
	}
	ps = append(ps, &plan{name: "time", it: newRangeIter(tx, bTime, "", f), step: stepTime})
	return ps, nil
}

// run advances p by up to p.step candidates.
func (p *plan) run(db *DB, tx *bolt.Tx, f *filter, timeB *bolt.Bucket) error {
	var s summary
	for range p.step {
		skey, v := p.it.next()
		if skey == nil {
			p.done = true
			return nil
		}
		if v == nil {
			if v = db.summaryOf(timeB, uint64(tx.ID()), skey); v == nil {
				return fmt.Errorf("%w: %s index entry %x has no recording", ErrCorrupt, p.name, skey)
			}
		}
		if err := decodeSummary(v, &s); err != nil {
			return err
		}
		if f.match(tx, skey, &s) {
			p.matches = append(p.matches, skey)
			if len(p.matches) > f.limit {
				p.done = true
				return nil
			}
		}
	}
	return nil
}

// Search answers q. The planner lists the indexed conditions, most
// selective first, and races the intersection of all of them and the most
// selective one alone against the walk of the time index, a step at a
// time: whichever completes the page first wins. Every plan post-filters with the full query, so the answer does not
// depend on which one wins; an index that proves huge simply loses the race.
func (db *DB) Search(q Query) (Page, error) {
	return db.search(&q, nil)
}

// search also reports the winning plan's name to tests and benchmarks.
func (db *DB) search(q *Query, winner *string) (Page, error) {
	sorted, sortKey, sortAsc := q.Sort != SortStart, q.Sort, q.Ascending
	offset := 0
	if sorted {
		if !slices.Contains(SortKeys, q.Sort) {
			return Page{}, fmt.Errorf("%w: sort %q", ErrInvalid, q.Sort)
		}
		if q.Cursor != "" {
			var err error
			if offset, err = decodeSortCursor(q.Cursor, q.Sort, q.Ascending); err != nil {
				return Page{}, err
			}
		}
		// The planner walks in time order, oldest or newest first as it
		// likes; the offset cursor is not a time key.
		tq := *q
		tq.Cursor, tq.Ascending = "", false
		q = &tq
	}
	f, err := newFilter(q)
	if err != nil {
		return Page{}, err
	}
	pageLimit := f.limit
	if sorted {
		f.limit = db.sortLimit
	}
	var page Page
	err = db.bolt.View(func(tx *bolt.Tx) error {
		ps, err := f.plans(tx, db.collectLimit)
		if err != nil {
			return err
		}
		timeB := tx.Bucket(bTime)
		var won *plan
		for won == nil {
			live := 0
			for _, p := range ps {
				if p.it.overflow() {
					continue
				}
				live++
				if err := p.run(db, tx, f, timeB); err != nil {
					return err
				}
				if p.it.overflow() {
					continue // gave up: not a complete answer
				}
				if p.done {
					won = p
					break
				}
			}
			if live == 0 {
				return fmt.Errorf("meta: search: every plan overflowed") // the time walk cannot
			}
		}
		if winner != nil {
			*winner = won.name
		}
		keys := won.matches
		switch {
		case sorted:
			if len(keys) > db.sortLimit {
				return fmt.Errorf("%w: %w: more than %d recordings match; narrow the filters (the time range first) to sort by %s", ErrInvalid, ErrTooManyToSort, db.sortLimit, sortKey)
			}
			all, err := sortMatches(tx, timeB, keys, sortKey, sortAsc)
			if err != nil {
				return err
			}
			end := min(len(all), offset+pageLimit)
			keys = all[min(offset, end):end]
			if end < len(all) {
				page.Next = encodeSortCursor(sortKey, sortAsc, end)
			}
		case len(keys) > f.limit:
			keys = keys[:f.limit]
			page.Next = encodeCursor(f.asc, keys[len(keys)-1])
		}
		page.Recordings = make([]Recording, len(keys))
		recB := tx.Bucket(bRec)
		for i, k := range keys {
			if db.recs.get(k[8:], &page.Recordings[i]) {
				continue
			}
			raw := recB.Get(k[8:])
			if raw == nil {
				return fmt.Errorf("%w: time index entry %x has no recording", ErrCorrupt, k)
			}
			if err := db.decodeRecording(k[8:], uint64(tx.ID()), raw, &page.Recordings[i]); err != nil {
				return fmt.Errorf("%w: recording %x: %w", ErrCorrupt, k[8:], err)
			}
		}
		return nil
	})
	return page, err
}
