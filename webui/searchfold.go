package webui

// Folding repeated searches in the audit log.
//
// Every search is audited (issue 6), but the recordings page refreshes
// itself every 15 seconds with the same query: left alone, one open tab
// writes 240 identical search entries an hour, and the accesses an auditor
// looks for drown in them. An identical query (the same raw query string)
// from the same principal (the same browser session, the same API token,
// or the same account over Basic) within searchFoldWindow of the entry
// written for it is not a new access: the person already saw that result
// set and is looking at it again, which is exactly what the auto-refresh
// does. So the first search writes an entry, repeats within the window
// write none, and the first repeat after the window writes the next one
// (the window runs from the written entry, not from the last repeat, so an
// open page leaves one entry per window rather than one per day). Any
// other query, or the same query from another session or token, is
// audited as always.
//
// The memory is bounded: at most searchFoldMax entries of 32 bytes plus a
// time. When it is full, expired entries are swept; if all are live, the
// memory is dropped whole. Forgetting only ever costs an extra audit
// entry, never a missing one.

import (
	"crypto/sha256"
	"net/http"
	"strconv"
	"sync"
	"time"
)

const (
	// searchFoldWindow is how long an identical search is not audited again.
	searchFoldWindow = 5 * time.Minute
	// searchFoldMax bounds the remembered (principal, query) pairs.
	searchFoldMax = 10_000
)

// searchFold remembers which (principal, query) pairs were audited when.
// It is safe for concurrent use.
type searchFold struct {
	mu     sync.Mutex
	m      map[[32]byte]time.Time // key → when its entry was written
	window time.Duration
	max    int
	now    func() time.Time
}

func newSearchFold(window time.Duration, maxEntries int, now func() time.Time) *searchFold {
	return &searchFold{m: make(map[[32]byte]time.Time), window: window, max: maxEntries, now: now}
}

// foldKey names the principal and the query. A session is named by its
// ID, a token by its ID, Basic by the account: two browser tabs share a
// session and so fold together, a second sign-in does not. The parts are
// hashed with their lengths, so no two different pairs collide by
// concatenation, and no session ID is kept in the clear.
func foldKey(principal, rawQuery string) [32]byte {
	h := sha256.New()
	for _, s := range []string{principal, rawQuery} {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// audit reports whether this search must be audited, and if so remembers
// that it was.
func (f *searchFold) audit(principal, rawQuery string) bool {
	k := foldKey(principal, rawQuery)
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if at, ok := f.m[k]; ok && now.Sub(at) < f.window && !now.Before(at) {
		return false
	}
	if len(f.m) >= f.max {
		for k2, at := range f.m {
			if now.Sub(at) >= f.window {
				delete(f.m, k2)
			}
		}
		if len(f.m) >= f.max {
			clear(f.m)
		}
	}
	f.m[k] = now
	return true
}

// len is how many pairs are remembered (for tests).
func (f *searchFold) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

// searchPrincipal names who searched, for foldKey.
func (s *Server) searchPrincipal(r *http.Request, p *Principal) string {
	switch p.Method {
	case AuthSession:
		if _, id, ok := s.currentSession(r); ok {
			return "session:" + id
		}
	case AuthToken:
		return "token:" + p.TokenID
	}
	return string(p.Method) + ":" + p.User.ID
}
