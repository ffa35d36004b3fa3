package meta

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// refSortValue is what a recording sorts by, from the recording itself
// (the reference the index summaries must agree with).
func refSortValue(db *DB, r *Recording, key SortKey) (int64, string) {
	switch key {
	case SortPreserved:
		if r.Preserved != nil {
			return 1, ""
		}
		return 0, ""
	case SortUser, SortGroup:
		id := r.LocalParty.User
		if key == SortGroup {
			id = r.Group
		}
		if id == "" {
			return 0, ""
		}
		name := id
		_ = db.bolt.View(func(tx *bolt.Tx) error {
			if key == SortUser {
				var u User
				if getJSON(tx.Bucket(bUsers), []byte(id), &u) == nil {
					name = cmp.Or(u.DisplayName, u.Username, id)
				}
			} else {
				var g Group
				if getJSON(tx.Bucket(bGroups), []byte(id), &g) == nil {
					name = cmp.Or(g.Name, id)
				}
			}
			return nil
		})
		return 0, strings.ToLower(name)
	case SortDuration:
		return r.Duration, ""
	case SortRating:
		return int64(r.Rating), ""
	case SortDirection:
		return 0, string(r.Direction)
	case SortRemoteNumber:
		return 0, normNumber(r.RemoteParty.Number)
	case SortRemoteName:
		return 0, strings.ToLower(r.RemoteParty.Name)
	case SortLocalNumber:
		return 0, normNumber(r.LocalParty.Number)
	}
	panic(key)
}

// TestSearchSorted: a search sorted by duration, numbers, name, rating or
// direction, in either order and with random filters, pages through
// exactly the matching recordings in the order the recordings themselves
// give (ties newest first); over the limit it is refused with a message
// that says what to do; cursors do not cross sorts.
func TestSearchSorted(t *testing.T) {
	db := mustOpen(t)
	applyLog(t, db, newWorld(5, 40, 5, 2, 40*24*time.Hour).log(1500, 1), 500)
	rs := allRecordings(t, db)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range 120 {
		q := randomQuery(rng, rs)
		q.Cursor = ""
		q.Sort = SortKeys[i%len(SortKeys)]
		q.Ascending = rng.IntN(2) == 0
		q.Limit = 1 + rng.IntN(40)
		var want []*Recording
		for j := range rs {
			if refMatch(&q, &rs[j]) {
				want = append(want, &rs[j])
			}
		}
		slices.SortStableFunc(want, func(a, b *Recording) int {
			an, as := refSortValue(db, a, q.Sort)
			bn, bs := refSortValue(db, b, q.Sort)
			c := cmp.Or(cmp.Compare(an, bn), strings.Compare(as, bs))
			if !q.Ascending {
				c = -c
			}
			return cmp.Or(c, -cmp.Compare(a.Start.UnixMilli(), b.Start.UnixMilli()), -strings.Compare(a.ID, b.ID))
		})
		var got []string
		for pages := 0; ; pages++ {
			p, err := db.Search(q)
			if err != nil {
				t.Fatalf("query %d %+v: %v", i, q, err)
			}
			for _, r := range p.Recordings {
				got = append(got, r.ID)
			}
			if p.Next == "" {
				break
			}
			if pages > len(rs) {
				t.Fatal("paging does not end")
			}
			q.Cursor = p.Next
		}
		if len(got) != len(want) {
			t.Fatalf("query %d (sort %s asc %v): %d results, want %d", i, q.Sort, q.Ascending, len(got), len(want))
		}
		for k := range want {
			if got[k] != want[k].ID {
				t.Fatalf("query %d (sort %s asc %v): result %d is %s, want %s", i, q.Sort, q.Ascending, k, got[k], want[k].ID)
			}
		}
	}

	all := Query{Scope: Scope{All: true}, Sort: SortDuration, Limit: 10}
	p, err := db.Search(all)
	if err != nil || p.Next == "" {
		t.Fatalf("first page: %v", err)
	}
	other := all
	other.Sort, other.Cursor = SortRating, p.Next
	if _, err := db.Search(other); !errors.Is(err, ErrInvalid) {
		t.Errorf("a duration cursor for a rating sort: %v", err)
	}
	timeQ := Query{Scope: Scope{All: true}, Limit: 10, Cursor: p.Next}
	if _, err := db.Search(timeQ); !errors.Is(err, ErrInvalid) {
		t.Errorf("a sorted cursor for a time search: %v", err)
	}
	if _, err := db.Search(Query{Scope: Scope{All: true}, Sort: "nonsense"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown sort: %v", err)
	}
	db.sortLimit = 100
	_, err = db.Search(all)
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrTooManyToSort) || !strings.Contains(err.Error(), "narrow the filters") {
		t.Errorf("over the limit: %v", err)
	}
}
