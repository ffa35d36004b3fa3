package meta

import (
	"reflect"
	"slices"
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
