package meta

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"sync"
)

// recCache keeps recently decoded recordings, so that a page of search
// results asked for again costs a byte comparison per row instead of a JSON
// decode. Pages are asked for again all the time: the recordings page
// refreshes every 15 seconds for every signed-in user, and an integrator
// polls the newest calls; decoding the 50 rows of a page was two thirds of
// a search's CPU (BenchmarkSearchAPI in webui).
//
// An entry is used only when the bytes stored now equal the bytes it was
// decoded from, so a changed recording is never served stale, whatever
// changed it (a command, a restored snapshot, raft entries applied on a
// follower). Entries never change once stored; callers get clones, which
// they may modify. Past maxEntries, an eighth of the entries, picked by
// map order (random), make room: the cache needs no bookkeeping per hit.
type recCache struct {
	mu         sync.Mutex
	maxEntries int
	m          map[string]*recEntry
}

type recEntry struct {
	raw []byte
	rec Recording
}

// recCacheEntries bounds the cache: about 4 MB of stored bytes plus the
// decoded recordings, 80 pages of 50.
const recCacheEntries = 4096

func newRecCache(n int) *recCache {
	return &recCache{maxEntries: n, m: make(map[string]*recEntry, n)}
}

// decode fills dst from raw, the stored bytes of the recording keyed id.
func (c *recCache) decode(id, raw []byte, dst *Recording) error {
	c.mu.Lock()
	e := c.m[string(id)]
	c.mu.Unlock()
	if e != nil && bytes.Equal(e.raw, raw) {
		*dst = e.rec.clone()
		return nil
	}
	*dst = Recording{}
	if err := json.Unmarshal(raw, dst); err != nil {
		return err
	}
	e = &recEntry{raw: bytes.Clone(raw), rec: dst.clone()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.maxEntries {
		drop := max(1, c.maxEntries/8)
		for k := range c.m {
			delete(c.m, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	c.m[string(id)] = e
	return nil
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
