package meta

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// The search caches keep what searches read of recordings, so that a page
// asked for again reads nothing from the database: recs the decoded
// recordings of result pages, sums the summaries (the time index's values)
// that an index plan looks up for each candidate. Pages are asked for
// again all the time: the recordings page refreshes every 15 seconds for
// every signed-in user, and an integrator polls the newest calls. Decoding
// the 50 rows of a page was two thirds of a search's CPU
// (BenchmarkSearchAPI in webui), and reading them and their summaries,
// when a user's newest recordings lie scattered through a database larger
// than the page cache keeps, most of a slow search's time: over 1,000,000
// recordings with another process writing, the localUser filter's p99 was
// 875 ms (docs/PERFORMANCE.md).
//
// So a hit reads nothing from the database, and an entry must never
// outlive the stored value it came from. Every write of a recording or a
// summary that already exists goes through txn.put or txn.del, which
// replace its entry with a tombstone naming the writing transaction
// (written); a Restore empties the caches (reset). A search reads in a
// read transaction and may add what it read only if its view already
// holds the last write of that key (add): a search that began before a
// write, and read the old value, cannot bring it back after the write
// dropped it. A new key needs no tombstone, since no older view has it. A
// write in a transaction that rolls back leaves a tombstone too; it only
// costs misses until the next commit.
//
// Entries never change once stored; get hands out copies (clone) where
// the caller may modify them. Past maxEntries a clock (second chance)
// picks the entry to drop: a hit marks its entry, the hand clears marks
// until it finds an unmarked one. Random eviction, which came first, kept
// dropping the entries of a filter in use for those of filters run before
// it (with 200 users' pages in turn, localUser's p99 was 148 ms). A
// tombstone that goes raises floor to its transaction, since what it
// guarded against is no longer known.
type viewCache[T any] struct {
	mu         sync.Mutex
	maxEntries int
	m          map[string]int // key → index in slots
	slots      []viewSlot[T]
	hand       int
	// floor: no view older than this may add entries (the newest
	// transaction whose tombstone was dropped, or a Restore's).
	floor uint64
	clone func(*T) T // the copy get hands out; nil for values nobody modifies
}

// viewSlot is a place in the clock: its key, its entry (never changed once
// made, so get may copy from it without the lock) and whether it was hit
// since the hand last passed.
type viewSlot[T any] struct {
	key  string
	e    *viewEntry[T]
	used bool
}

// viewEntry is a cached value, or a tombstone: dead is the write
// transaction that last changed the key, and v is unset.
type viewEntry[T any] struct {
	v    T
	dead uint64
}

const (
	// recCacheEntries bounds recs: 32,768 decoded recordings of about
	// 1.1 kB (measured; no stored bytes are kept), about 40 MB: the first
	// pages of several hundred users.
	recCacheEntries = 32768
	// sumCacheEntries bounds sums: summaries are about 100 bytes, 65,536
	// of them about 15 MB with the map.
	sumCacheEntries = 65536
)

func newViewCache[T any](n int, clone func(*T) T) *viewCache[T] {
	return &viewCache[T]{maxEntries: n, m: make(map[string]int, n), clone: clone}
}

// get fills dst with the value cached for key and reports whether there
// was one.
func (c *viewCache[T]) get(key []byte, dst *T) bool {
	c.mu.Lock()
	i, ok := c.m[string(key)]
	var e *viewEntry[T]
	if ok {
		e = c.slots[i].e
		if e.dead == 0 {
			c.slots[i].used = true
		}
	}
	c.mu.Unlock()
	if e == nil || e.dead != 0 {
		return false
	}
	if c.clone != nil {
		*dst = c.clone(&e.v)
	} else {
		*dst = e.v
	}
	return true
}

// add keeps v, read for key in the read transaction view (its bbolt ID:
// the last commit it sees), unless key was written after view. v must be
// the cache's own: nobody may modify it afterwards.
func (c *viewCache[T]) add(key []byte, view uint64, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if view < c.floor {
		return
	}
	if i, ok := c.m[string(key)]; ok {
		if view < c.slots[i].e.dead {
			return
		}
		c.slots[i].e = &viewEntry[T]{v: v}
		return
	}
	c.place(string(key), &viewEntry[T]{v: v})
}

// written drops the entry of key, which write transaction txid changes or
// deletes, and keeps a tombstone so that no search reading it in an older
// view adds it back.
func (c *viewCache[T]) written(key []byte, txid uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.m[string(key)]; ok {
		c.slots[i].e = &viewEntry[T]{dead: max(c.slots[i].e.dead, txid)}
		c.slots[i].used = false
		return
	}
	c.place(string(key), &viewEntry[T]{dead: txid})
}

// reset drops every entry: write transaction txid replaced every key
// (Restore).
func (c *viewCache[T]) reset(txid uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.slots, c.hand = c.slots[:0], 0
	c.floor = max(c.floor, txid)
}

// place adds a new key, in a free slot or in the first unmarked one the
// hand reaches. c.mu is held.
func (c *viewCache[T]) place(key string, e *viewEntry[T]) {
	if len(c.slots) < c.maxEntries {
		c.m[key] = len(c.slots)
		c.slots = append(c.slots, viewSlot[T]{key: key, e: e})
		return
	}
	for {
		s := &c.slots[c.hand]
		if s.used {
			s.used = false
			c.hand = (c.hand + 1) % len(c.slots)
			continue
		}
		c.floor = max(c.floor, s.e.dead)
		delete(c.m, s.key)
		*s = viewSlot[T]{key: key, e: e}
		c.m[key] = c.hand
		c.hand = (c.hand + 1) % len(c.slots)
		return
	}
}

// decodeRecording fills dst from raw, the stored bytes of the recording
// keyed id as the read transaction view reads them, and caches it.
func (db *DB) decodeRecording(id []byte, view uint64, raw []byte, dst *Recording) error {
	*dst = Recording{}
	if err := json.Unmarshal(raw, dst); err != nil {
		return err
	}
	db.recs.add(id, view, dst.clone())
	return nil
}

// summaryOf returns the summary of the recording at skey, from sums or
// from the time index; the bytes are valid inside the read transaction
// tx (view: its ID).
func (db *DB) summaryOf(timeB *bolt.Bucket, view uint64, skey []byte) []byte {
	var v []byte
	if db.sums.get(skey, &v) {
		return v
	}
	if v = timeB.Get(skey); v != nil {
		db.sums.add(skey, view, bytes.Clone(v))
	}
	return v
}

// clone returns a copy of r that shares no slice, map or pointer with it
// (strings are immutable and shared). TestRecordingCloneSharesNothing
// fails when a field is added that this misses.
func (r Recording) clone() Recording {
	r.Codecs = slices.Clone(r.Codecs)
	r.Quality = slices.Clone(r.Quality)
	r.Notes = slices.Clone(r.Notes)
	r.CustomFields = maps.Clone(r.CustomFields)
	r.Bookmarks = slices.Clone(r.Bookmarks)
	r.Related = slices.Clone(r.Related)
	if r.Preserved != nil {
		p := *r.Preserved
		r.Preserved = &p
	}
	if r.Deleted != nil {
		d := *r.Deleted
		r.Deleted = &d
	}
	r.File.WrappedDEK = slices.Clone(r.File.WrappedDEK)
	r.Replicas = slices.Clone(r.Replicas)
	return r
}
