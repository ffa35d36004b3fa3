package meta

import (
	"bytes"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

// fill gives every slice, map and pointer reachable in v one element, so
// that a clone has something to share or not.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i))
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.String:
		v.SetString("x")
	}
}

// shared names the first slice, map or pointer that a and b share, or "".
func shared(path string, a, b reflect.Value) string {
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				if s := shared(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i)); s != "" {
					return s
				}
			}
		}
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range min(a.Len(), b.Len()) {
			if s := shared(path+"[]", a.Index(i), b.Index(i)); s != "" {
				return s
			}
		}
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
	case reflect.Pointer:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			return path
		}
		if !a.IsNil() && !b.IsNil() {
			return shared(path+"*", a.Elem(), b.Elem())
		}
	}
	return ""
}

// TestRecordingCloneSharesNothing: a clone of a recording with every
// reference field set shares no memory with it, so a caller changing the
// recording it got can never change the cache. It fails when a field is
// added to Recording (or a type inside it) that clone does not copy.
func TestRecordingCloneSharesNothing(t *testing.T) {
	var r Recording
	fill(reflect.ValueOf(&r).Elem())
	c := r.clone()
	if s := shared("Recording", reflect.ValueOf(r), reflect.ValueOf(c)); s != "" {
		t.Fatalf("the clone shares %s with the original", s)
	}
	if !reflect.DeepEqual(r, c) {
		t.Fatal("the clone differs from the original")
	}
}

// TestSearchCacheNeverStale: searches answer from the decode cache, and
// what they answer is always what is stored: after notes, ratings, holds
// and deletions, and after a caller changed a recording it was given.
func TestSearchCacheNeverStale(t *testing.T) {
	db := mustOpen(t)
	applyLog(t, db, newWorld(11, 30, 4, 2, 10*24*time.Hour).log(600, 1), 200)
	q := Query{Limit: 50, Scope: Scope{All: true}}
	check := func(what string) []Recording {
		t.Helper()
		p, err := db.Search(q)
		if err != nil {
			t.Fatal(err)
		}
		for i := range p.Recordings {
			want, err := db.Recording(p.Recordings[i].ID) // decoded afresh, no cache
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Recordings[i], want) {
				t.Fatalf("%s: search gave recording %s as %+v, stored is %+v", what, want.ID, p.Recordings[i], want)
			}
		}
		return p.Recordings
	}
	first := check("first search")
	if len(first) != 50 {
		t.Fatalf("%d results", len(first))
	}
	// The caller scribbles on what it got: the next search is not affected.
	first[0].Notes = append(first[0].Notes[:0], Note{ID: "scribble", Text: "scribble"})
	first[1].Codecs = append(first[1].Codecs[:0], "SCRIBBLE")
	if first[2].CustomFields != nil {
		first[2].CustomFields["scribble"] = "x"
	}
	check("after the caller changed its copies")

	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, r := range first[:10] {
		cmds := []Command{
			&AddNote{ID: r.ID, Note: Note{ID: "cache-" + r.ID, Author: "u", Text: "a new note", Time: at}},
			&SetRating{ID: r.ID, Rating: 1 + i%5},
		}
		for _, c := range cmds {
			mustApply(t, db, c)
		}
	}
	after := check("after notes and ratings")
	if !slices.ContainsFunc(after, func(r Recording) bool {
		return slices.ContainsFunc(r.Notes, func(n Note) bool { return n.Text == "a new note" })
	}) {
		t.Fatal("no search result shows the new notes")
	}
	hits := len(db.recs.m)
	if hits == 0 {
		t.Fatal("the cache holds nothing after searches")
	}
}

// TestSearchCacheOlderViewCannotAddStale: a search that read a recording
// in a view from before a write, and decodes it after the write
// committed, cannot put the old version into the cache; a search after
// the write can. Eviction and Restore keep that true.
func TestSearchCacheOlderViewCannotAddStale(t *testing.T) {
	db := mustOpen(t)
	applyLog(t, db, newWorld(12, 20, 3, 2, 5*24*time.Hour).log(100, 1), 100)
	p, err := db.Search(Query{Limit: 5, Scope: Scope{All: true}})
	if err != nil || len(p.Recordings) != 5 {
		t.Fatalf("search: %v, %d results", err, len(p.Recordings))
	}
	target := p.Recordings[0].ID
	u, err := parseRecID("id", target)
	if err != nil {
		t.Fatal(err)
	}
	id := u[:]

	// A search's view, taken before the write, with its raw bytes.
	old, err := db.bolt.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	raw := slices.Clone(old.Bucket(bRec).Get(id))
	view := uint64(old.ID())
	mustApply(t, db, &AddNote{ID: target, Note: Note{ID: "n-stale", Author: "u", Text: "after the view", Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}})
	var r Recording
	if err := db.decodeRecording(id, view, raw, &r); err != nil {
		t.Fatal(err)
	}
	old.Rollback()
	if db.recs.get(id, &r) {
		t.Fatal("a view from before the write put the old recording into the cache")
	}
	hasNote := func() bool {
		p, err := db.Search(Query{Limit: 5, Scope: Scope{All: true}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Recordings {
			if r.ID == target {
				return slices.ContainsFunc(r.Notes, func(n Note) bool { return n.ID == "n-stale" })
			}
		}
		t.Fatal("the recording left the first page")
		return false
	}
	for i := range 2 { // the second answer is from the cache
		if !hasNote() {
			t.Fatalf("search %d does not show the note", i+1)
		}
	}
	if !db.recs.get(id, &r) {
		t.Fatal("a search after the write did not cache the recording")
	}

	// A dropped tombstone raises the floor: a view older than it adds nothing.
	c := newViewCache[Recording](8, nil)
	c.written([]byte("a"), 50)
	for i := range 16 {
		c.written([]byte{byte(i)}, 60+uint64(i))
	}
	c.add([]byte("a"), 55, r)
	if c.get([]byte("a"), &r) {
		t.Fatal("an entry from a view older than a dropped tombstone was added")
	}
	// Restore: nothing from before it.
	c.reset(100)
	c.add([]byte("b"), 99, r)
	if c.get([]byte("b"), &r) {
		t.Fatal("an entry from a view before a Restore was added")
	}
	c.add([]byte("b"), 100, r)
	if !c.get([]byte("b"), &r) {
		t.Fatal("an entry from a view after a Restore was not added")
	}
}

// TestSearchCacheConcurrentWrites: searches running while notes and ratings
// are written (run it with -race) never leave the cache serving an old
// version: once the writers stop, every search answers what is stored.
func TestSearchCacheConcurrentWrites(t *testing.T) {
	db := mustOpen(t)
	applyLog(t, db, newWorld(13, 20, 3, 2, 5*24*time.Hour).log(200, 1), 200)
	q := Query{Limit: 20, Scope: Scope{All: true}}
	p, err := db.Search(q)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(p.Recordings))
	for i, r := range p.Recordings {
		ids[i] = r.ID
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.Search(q); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range 300 {
		mustApply(t, db, &SetRating{ID: ids[i%len(ids)], Rating: 1 + i%5})
	}
	close(stop)
	wg.Wait()
	got, err := db.Search(q)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got.Recordings {
		want, err := db.Recording(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("after concurrent writes the search gives %s with rating %d, stored is %d", r.ID, r.Rating, want.Rating)
		}
	}
}

// TestSearchCacheRestore: after a Restore to a snapshot taken before a
// note, searches show the recordings as the snapshot has them, not as the
// cache had them.
func TestSearchCacheRestore(t *testing.T) {
	db := mustOpen(t)
	applyLog(t, db, newWorld(14, 10, 2, 1, 2*24*time.Hour).log(50, 1), 50)
	q := Query{Limit: 10, Scope: Scope{All: true}}
	snap, err := db.BeginSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = snap.WriteTo(&buf)
	snap.Release()
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.Search(q)
	if err != nil {
		t.Fatal(err)
	}
	target := p.Recordings[0].ID
	mustApply(t, db, &AddNote{ID: target, Note: Note{ID: "n-restore", Author: "u", Text: "gone after restore", Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}})
	for range 2 { // the second search answers from the cache
		if p, err = db.Search(q); err != nil || len(p.Recordings[0].Notes) == 0 {
			t.Fatalf("search before the restore: %v, notes %v", err, p.Recordings[0].Notes)
		}
	}
	if err := db.Restore(bytes.NewReader(buf.Bytes()), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if p, err = db.Search(q); err != nil {
		t.Fatal(err)
	}
	if p.Recordings[0].ID != target || len(p.Recordings[0].Notes) != 0 {
		t.Fatalf("after the restore the search shows %s with notes %v", p.Recordings[0].ID, p.Recordings[0].Notes)
	}
}

// TestSummaryCacheFollowsWrites: an index plan's search caches the
// summaries of its candidates; a rating written afterwards changes what
// the same search matches at once.
func TestSummaryCacheFollowsWrites(t *testing.T) {
	db := mustOpen(t)
	applyLog(t, db, newWorld(15, 10, 2, 1, 5*24*time.Hour).log(300, 1), 100)
	all, err := db.Search(Query{Limit: 1, Scope: Scope{All: true}})
	if err != nil || len(all.Recordings) == 0 {
		t.Fatalf("search: %v", err)
	}
	user := all.Recordings[0].LocalParty.User
	q := Query{Limit: 100, Scope: Scope{All: true}, LocalUser: user, MinRating: 5}
	var winner string
	before, err := db.search(&q, &winner)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := db.Search(Query{Limit: 100, Scope: Scope{All: true}, LocalUser: user})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(mine.Recordings, func(r Recording) bool { return r.Rating < 5 })
	if i < 0 {
		t.Fatal("every recording of the user is rated 5")
	}
	if db.sums.get(makeSkey(mine.Recordings[i].Start, uuidOf(t, mine.Recordings[i].ID)), new([]byte)) == false {
		t.Fatalf("the %s plan cached no summary of the user's recordings", winner)
	}
	mustApply(t, db, &SetRating{ID: mine.Recordings[i].ID, Rating: 5})
	after, err := db.Search(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Recordings) != len(before.Recordings)+1 || !slices.ContainsFunc(after.Recordings, func(r Recording) bool { return r.ID == mine.Recordings[i].ID }) {
		t.Fatalf("after rating a recording 5 the search finds %d (before %d), without it", len(after.Recordings), len(before.Recordings))
	}
}

func uuidOf(t *testing.T, id string) [16]byte {
	t.Helper()
	u, err := parseRecID("id", id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestViewCacheKeepsWhatIsHit: entries that searches keep hitting survive
// a stream of entries nobody asks for again (the clock), where dropping at
// random lost them.
func TestViewCacheKeepsWhatIsHit(t *testing.T) {
	c := newViewCache[[]byte](100, nil)
	hot := func(i int) []byte { return []byte{'h', byte(i)} }
	for i := range 60 {
		c.add(hot(i), 1, []byte{byte(i)})
	}
	var v []byte
	for round := range 200 {
		for i := range 60 {
			if !c.get(hot(i), &v) || v[0] != byte(i) {
				t.Fatalf("round %d: hot entry %d was dropped", round, i)
			}
		}
		for j := range 30 {
			c.add([]byte{'c', byte(round), byte(j)}, 1, nil)
		}
	}
	if len(c.m) != 100 || len(c.slots) != 100 {
		t.Fatalf("the cache holds %d keys in %d slots, want 100", len(c.m), len(c.slots))
	}
}
