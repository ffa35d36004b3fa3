package meta

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Sorting by something other than the start time.
//
// The indexes are ordered by start time, so a search sorted by duration,
// number, name, rating or direction first finds every match (the planner
// races as usual, asked for up to SortLimit results), then sorts them by
// the summary each index entry already carries, and pages through the
// sorted list with an offset cursor. No recording is decoded but the ones
// on the page. Past SortLimit matches it refuses (ErrInvalid) and asks for
// narrower filters rather than sort a million recordings per page.

// SortKey is what a search is ordered by.
type SortKey string

// Sort keys. Ascending picks the order; ties go newest first.
const (
	SortStart        SortKey = "" // the start time (the default)
	SortDuration     SortKey = "duration"
	SortRemoteNumber SortKey = "remoteNumber"
	SortRemoteName   SortKey = "remoteName"
	SortLocalNumber  SortKey = "localNumber"
	SortRating       SortKey = "rating"
	SortDirection    SortKey = "direction"
)

// SortKeys lists the keys a search may be sorted by, besides the start.
var SortKeys = []SortKey{SortDuration, SortRemoteNumber, SortRemoteName, SortLocalNumber, SortRating, SortDirection}

// SortLimit is how many matches a search sorted by anything but the start
// time may have.
const SortLimit = 10_000

// sortCursorPrefix marks an offset cursor; a time cursor is raw base64url
// and never contains '.'.
const sortCursorPrefix = "s."

func encodeSortCursor(key SortKey, asc bool, offset int) string {
	dir := "d"
	if asc {
		dir = "a"
	}
	return sortCursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(string(key)+"."+dir+"."+strconv.Itoa(offset)))
}

func decodeSortCursor(s string, key SortKey, asc bool) (int, error) {
	if len(s) > 96 || !strings.HasPrefix(s, sortCursorPrefix) {
		return 0, fmt.Errorf("%w: cursor was made for another sort", ErrInvalid)
	}
	b, err := base64.RawURLEncoding.DecodeString(s[len(sortCursorPrefix):])
	if err != nil {
		return 0, fmt.Errorf("%w: cursor: %w", ErrInvalid, err)
	}
	parts := strings.Split(string(b), ".")
	if len(parts) != 3 {
		return 0, fmt.Errorf("%w: cursor has %d parts", ErrInvalid, len(parts))
	}
	dir := "d"
	if asc {
		dir = "a"
	}
	if SortKey(parts[0]) != key || parts[1] != dir {
		return 0, fmt.Errorf("%w: cursor was made for another sort", ErrInvalid)
	}
	off, err := strconv.Atoi(parts[2])
	if err != nil || off < 0 || off > SortLimit {
		return 0, fmt.Errorf("%w: cursor offset %q", ErrInvalid, parts[2])
	}
	return off, nil
}

// sortable is a match with what it sorts by.
type sortable struct {
	skey []byte
	n    int64
	s    []byte
}

// sortMatches orders keys (matches in time order, as the planner found
// them) by key, reading each one's summary from the time index.
func sortMatches(timeB *bolt.Bucket, keys [][]byte, key SortKey, asc bool) ([][]byte, error) {
	items := make([]sortable, len(keys))
	var s summary
	for i, k := range keys {
		v := timeB.Get(k)
		if v == nil {
			return nil, fmt.Errorf("%w: time index entry %x is gone", ErrCorrupt, k)
		}
		if err := decodeSummary(v, &s); err != nil {
			return nil, err
		}
		it := sortable{skey: k}
		switch key {
		case SortDuration:
			it.n = s.duration
		case SortRating:
			it.n = int64(s.rating)
		case SortDirection:
			it.s = []byte(directionCodes[min(int(s.direction), len(directionCodes)-1)])
		case SortRemoteNumber:
			it.s = s.remoteNum
		case SortRemoteName:
			it.s = s.remoteName
		case SortLocalNumber:
			it.s = s.localNum
		}
		items[i] = it
	}
	slices.SortStableFunc(items, func(a, b sortable) int {
		c := cmp.Compare(a.n, b.n)
		if c == 0 {
			c = bytes.Compare(a.s, b.s)
		}
		if !asc {
			c = -c
		}
		if c == 0 {
			c = bytes.Compare(b.skey, a.skey) // ties: newest first
		}
		return c
	})
	out := make([][]byte, len(items))
	for i := range items {
		out[i] = items[i].skey
	}
	return out, nil
}
