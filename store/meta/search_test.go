package meta

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// refMatch is the specification of Query written the slow, obvious way over
// the full Recording. Search must return exactly what it accepts.
func refMatch(q *Query, r *Recording) bool {
	ms := r.Start.UnixMilli()
	if !q.Start.IsZero() && ms < q.Start.UnixMilli() || !q.End.IsZero() && ms >= q.End.UnixMilli() {
		return false
	}
	if q.MinDurationMs > 0 && r.Duration < q.MinDurationMs || q.MaxDurationMs > 0 && r.Duration > q.MaxDurationMs {
		return false
	}
	if q.CallID != "" && !slices.Contains([]string{r.PBXCallID, r.SIPCallIDIngress, r.SIPCallIDEgress, r.SessionID}, q.CallID) {
		return false
	}
	if q.RecordingID != "" && !strings.EqualFold(q.RecordingID, r.ID) || q.Reference != "" && q.Reference != r.Reference {
		return false
	}
	if q.NoteWords != "" {
		var all []string
		for _, n := range r.Notes {
			all = append(all, words(n.Text)...)
		}
		for _, w := range words(q.NoteWords) {
			if !slices.Contains(all, w) {
				return false
			}
		}
	}
	if q.Direction != "" && r.Direction != q.Direction || q.LocalUser != "" && r.LocalParty.User != q.LocalUser {
		return false
	}
	if !strings.HasPrefix(normNumber(r.LocalParty.Number), normNumber(q.LocalNumber)) ||
		!strings.HasPrefix(normNumber(r.RemoteParty.Number), normNumber(q.RemoteNumber)) {
		return false
	}
	for _, qw := range words(q.RemoteName) {
		if !slices.ContainsFunc(strings.FieldsFunc(strings.ToLower(r.RemoteParty.Name), func(c rune) bool {
			return !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzäöüßéèçø0123456789", c)
		}), func(nw string) bool { return strings.HasPrefix(nw, qw) }) {
			return false
		}
	}
	if q.Group != "" && r.Group != q.Group || q.MinRating > 0 && r.Rating < q.MinRating {
		return false
	}
	if q.Category != "" && !strings.EqualFold(q.Category, r.Category) || q.Preserved && r.Preserved == nil {
		return false
	}
	if q.BookmarkType != "" && !slices.ContainsFunc(r.Bookmarks, func(b Bookmark) bool { return b.Type == q.BookmarkType }) {
		return false
	}
	if q.Status != "" && r.Status != q.Status || q.Status == "" && !q.IncludeDeleted && r.Status == StatusDeleted {
		return false
	}
	sc := q.Scope
	if !sc.All {
		if sc.Tenant != "" && r.Tenant != sc.Tenant {
			return false
		}
		if (len(sc.Groups) > 0 || sc.User != "") && !slices.Contains(sc.Groups, r.Group) && (sc.User == "" || r.LocalParty.User != sc.User) {
			return false
		}
	}
	return true
}

func allRecordings(t testing.TB, db *DB) []Recording {
	t.Helper()
	rs, err := listJSON[Recording](db, bRec, nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rs, func(a, b Recording) int {
		return cmp.Or(cmp.Compare(a.Start.UnixMilli(), b.Start.UnixMilli()), strings.Compare(a.ID, b.ID))
	})
	return rs
}

// randomQuery builds a query from values that occur in the data, so that
// most queries match something.
func randomQuery(rng *rand.Rand, rs []Recording) Query {
	r := rs[rng.IntN(len(rs))]
	q := Query{Ascending: rng.IntN(2) == 0, Limit: 1 + rng.IntN(20), Scope: Scope{All: true}}
	for range 1 + rng.IntN(3) {
		switch rng.IntN(20) {
		case 0:
			q.Start = r.Start.Add(-time.Duration(rng.IntN(48)) * time.Hour)
			q.End = q.Start.Add(time.Duration(1+rng.IntN(200)) * time.Hour)
		case 1:
			q.MinDurationMs, q.MaxDurationMs = int64(rng.IntN(120_000)), int64(120_000+rng.IntN(300_000))
		case 2:
			q.CallID = r.SIPCallIDIngress
		case 3:
			q.RecordingID = strings.ToUpper(r.ID)
		case 4:
			q.Reference = r.Reference
		case 5:
			q.NoteWords = "REFUND"
			if len(r.Notes) > 0 {
				q.NoteWords = r.Notes[0].Text
			}
		case 6:
			q.Direction = directionCodes[rng.IntN(3)]
		case 7:
			q.LocalUser = r.LocalParty.User
		case 8:
			q.LocalNumber = r.LocalParty.Number[:min(len(r.LocalParty.Number), 5+rng.IntN(12))]
		case 9:
			q.RemoteNumber = r.RemoteParty.Number[:min(len(r.RemoteParty.Number), 3+rng.IntN(12))]
		case 10:
			if n := r.RemoteParty.Name; n != "" {
				f := strings.Fields(n)
				w := f[rng.IntN(len(f))]
				rw := []rune(w)
				q.RemoteName = strings.ToUpper(string(rw[:min(len(rw), 1+rng.IntN(4))]))
			}
		case 11:
			q.Group = r.Group
		case 12:
			q.MinRating = 1 + rng.IntN(5)
		case 13:
			q.Category = strings.ToUpper(categories[rng.IntN(len(categories))])
		case 14:
			q.Preserved = true
		case 15:
			q.BookmarkType = bookmarkCodes[rng.IntN(len(bookmarkCodes))]
		case 16:
			q.Status = statusCodes[rng.IntN(len(statusCodes))]
		case 17:
			q.IncludeDeleted = true
		case 18:
			q.Scope = Scope{Tenant: r.Tenant, Groups: []string{r.Group, fmt.Sprintf("g%02d", rng.IntN(6))}}
		case 19:
			q.Scope = Scope{Tenant: r.Tenant, User: r.LocalParty.User, Groups: []string{fmt.Sprintf("g%02d", rng.IntN(6))}}
		}
	}
	return q
}

// TestSearchMatchesReference runs random queries, following cursors to the
// last page, and compares with a brute-force scan — once with the normal
// planner and once with a tiny prefix-walk limit so the fallback to the
// time walk is taken.
func TestSearchMatchesReference(t *testing.T) {
	db := mustOpen(t)
	applyLog(t, db, newWorld(7, 60, 6, 2, 60*24*time.Hour).log(2500, 1), 500)
	rs := allRecordings(t, db)
	rng := rand.New(rand.NewPCG(3, 4))
	winners := map[string]int{}
	for _, limit := range []int{defaultCollectLimit, 20} {
		db.collectLimit = limit
		for i := range 400 {
			q := randomQuery(rng, rs)
			var want []string
			for j := range rs {
				if refMatch(&q, &rs[j]) {
					want = append(want, rs[j].ID)
				}
			}
			if !q.Ascending {
				slices.Reverse(want)
			}
			var got []string
			for pages := 0; ; pages++ {
				var winner string
				p, err := db.search(&q, &winner)
				if err != nil {
					t.Fatalf("query %d %+v: %v", i, q, err)
				}
				winners[winner]++
				if len(p.Recordings) > q.Limit || (p.Next != "" && len(p.Recordings) != q.Limit) {
					t.Fatalf("query %d: page of %d with limit %d, next %q", i, len(p.Recordings), q.Limit, p.Next)
				}
				for _, r := range p.Recordings {
					got = append(got, r.ID)
				}
				if p.Next == "" || pages > len(rs)+1 {
					break
				}
				q.Cursor = p.Next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("query %d %+v:\n got %d %v\nwant %d %v", i, q, len(got), head(got), len(want), head(want))
			}
		}
	}
	t.Logf("winning plans: %v", winners)
	for _, p := range []string{"time", "note", "user", "callid", "remotenum", "scope", "id", "reference"} {
		if winners[p] == 0 {
			t.Errorf("plan %q never won: the test does not exercise it", p)
		}
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func TestSearchRejectsBadQueries(t *testing.T) {
	db := mustOpen(t)
	all := Scope{All: true}
	valid := encodeCursor(false, make([]byte, skeyLen))
	cases := map[string]Query{
		"empty scope":       {},
		"negative limit":    {Scope: all, Limit: -1},
		"rating 9":          {Scope: all, MinRating: 9},
		"direction":         {Scope: all, Direction: "up"},
		"status":            {Scope: all, Status: "gone"},
		"bookmark":          {Scope: all, BookmarkType: "nap"},
		"end before start":  {Scope: all, Start: jan, End: jan.Add(-time.Hour)},
		"duration range":    {Scope: all, MinDurationMs: 10, MaxDurationMs: 5},
		"NUL in call id":    {Scope: all, CallID: "a\x00b"},
		"garbage cursor":    {Scope: all, Cursor: "!!!"},
		"short cursor":      {Scope: all, Cursor: "AQA"},
		"cursor wrong sort": {Scope: all, Cursor: valid, Ascending: true},
		"no note words":     {Scope: all, NoteWords: "!!"},
	}
	for name, q := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := db.Search(q); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	// Limits are clamped, not rejected; an unknown ID is an empty page.
	if p, err := db.Search(Query{Scope: all, Limit: 10_000, RecordingID: uuid.NewString()}); err != nil || len(p.Recordings) != 0 {
		t.Fatalf("unknown id: %+v, %v", p, err)
	}
}
