package meta

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
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
// the summary each index entry already carries (users and groups by their
// names, looked up once per distinct ID), and pages through the
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
	SortUser         SortKey = "user"      // the local user's display name (else username)
	SortGroup        SortKey = "group"     // the group's name
	SortPreserved    SortKey = "preserved" // not held first
)

// SortKeys lists the keys a search may be sorted by, besides the start.
var SortKeys = []SortKey{SortDuration, SortRemoteNumber, SortRemoteName, SortLocalNumber, SortRating, SortDirection, SortUser, SortGroup, SortPreserved}

// SortLimit is how many matches a search sorted by anything but the start
// time may have: a busy day of a large contact centre. Sorting 8,000
// matches of the 1,000,000-recording test store takes 15 ms warm; the cost
// grows linearly, and searches are admitted two at a time.
const SortLimit = 50_000

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
func sortMatches(tx *bolt.Tx, timeB *bolt.Bucket, keys [][]byte, key SortKey, asc bool) ([][]byte, error) {
	items := make([]sortable, len(keys))
	var s summary
	// Users and groups sort by name, which the summaries do not carry:
	// each distinct ID is looked up once.
	names := map[string][]byte{}
	nameOf := func(id []byte, user bool) ([]byte, error) {
		if n, ok := names[string(id)]; ok || len(id) == 0 {
			return n, nil
		}
		var n string
		if user {
			var u User
			if err := getJSON(tx.Bucket(bUsers), id, &u); err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			n = cmp.Or(u.DisplayName, u.Username, string(id))
		} else {
			var g Group
			if err := getJSON(tx.Bucket(bGroups), id, &g); err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			n = cmp.Or(g.Name, string(id))
		}
		names[string(id)] = []byte(strings.ToLower(n))
		return names[string(id)], nil
	}
	for i, k := range keys {
		v := timeB.Get(k)
		if v == nil {
			return nil, fmt.Errorf("%w: time index entry %x is gone", ErrCorrupt, k)
		}
		err := decodeSummary(v, &s)
		if err != nil {
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
		case SortPreserved:
			it.n = int64(s.flags & flagPreserved)
		case SortUser:
			if it.s, err = nameOf(s.user, true); err != nil {
				return nil, err
			}
		case SortGroup:
			if it.s, err = nameOf(s.group, false); err != nil {
				return nil, err
			}
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
