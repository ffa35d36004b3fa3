package webui

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// searchEntries flushes the audit queue and returns the actor's search
// entries.
func (e *testEnv) searchEntries(actor string) []meta.AuditEntry {
	e.t.Helper()
	if err := e.srv.auditQ.flush(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	page, err := e.st.Meta().SearchAudit(meta.AuditQuery{Actor: actor, Action: meta.AuditSearch, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return page.Entries
}

// TestSearchAuditFolds: the recordings page's auto-refresh repeats the same
// search every 15 s; identical searches by the same principal within 5
// minutes write one audit entry, any other query or principal writes its
// own, and after 5 minutes (the test clock) the repeat is audited again.
func TestSearchAuditFolds(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.addUser("alice", meta.RoleUser)
	bob := e.addUser("bob", meta.RoleUser)
	search := func(user, query string, mod ...func(*http.Request)) {
		t.Helper()
		req := basic(httptest.NewRequest(http.MethodGet, "/api/v1/recordings?"+query, nil), user)
		for _, m := range mod {
			m(req)
		}
		if r := e.do(req); r.code != http.StatusOK {
			t.Fatalf("search %s as %s: %d %s", query, user, r.code, r.body)
		}
	}
	want := func(actor string, n int, after string) {
		t.Helper()
		if es := e.searchEntries(actor); len(es) != n {
			t.Fatalf("after %s: %d search entries, want %d: %+v", after, len(es), n, es)
		}
	}
	const q1, q2 = "direction=incoming&limit=25", "direction=outgoing&limit=25"
	for range 3 {
		search("alice", q1)
	}
	want(alice.ID, 1, "three identical searches")
	search("alice", q2)
	want(alice.ID, 2, "a different query")
	e.clock.Add(4*time.Minute + 59*time.Second)
	search("alice", q1)
	want(alice.ID, 2, "the repeat 4:59 later")
	e.clock.Add(time.Second)
	search("alice", q1)
	want(alice.ID, 3, "the repeat 5 minutes after the entry")
	// The window runs from the written entry: the repeat at 4:59 did not
	// extend it.
	search("alice", q1)
	want(alice.ID, 3, "a repeat right after")

	// The same query by another person, or by alice in a browser session,
	// is a separate access.
	search("bob", q1)
	want(bob.ID, 1, "bob's search")
	ck := e.signIn("alice")
	for range 2 {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/recordings?"+q1, nil)
		req.AddCookie(ck)
		if r := e.do(req); r.code != http.StatusOK {
			t.Fatalf("session search: %d %s", r.code, r.body)
		}
	}
	want(alice.ID, 4, "two identical searches in a new session")
}

// TestSearchFoldBounded: the memory never holds more than its maximum,
// expired pairs make room first, a full memory of live pairs is dropped
// (costing an extra entry, never a missing one), and concurrent use is
// safe (run with -race).
func TestSearchFoldBounded(t *testing.T) {
	clock := &testClock{t: time.Unix(1_700_000_000, 0)}
	f := newSearchFold(5*time.Minute, 4, clock.Now)
	for i := range 4 {
		if !f.audit("u", fmt.Sprint(i)) {
			t.Fatalf("first search %d not audited", i)
		}
	}
	if f.audit("u", "0") || f.len() != 4 {
		t.Fatalf("repeat audited or memory %d", f.len())
	}
	clock.Add(3 * time.Minute)
	f.audit("u", "new") // full of live pairs: dropped whole, then this one
	if f.len() != 1 {
		t.Fatalf("memory after overflow: %d, want 1", f.len())
	}
	clock.Add(2 * time.Minute)
	if !f.audit("u", "0") {
		t.Fatal("a forgotten pair was folded: an access would go unaudited")
	}
	f.audit("u", "a")
	f.audit("u", "b")
	clock.Add(3 * time.Minute) // "new" (5 min old) has expired, the rest (3 min) not
	f.audit("u", "c")
	if f.len() != 4 {
		t.Fatalf("memory after sweeping the expired: %d, want 4", f.len())
	}
	if f.audit("u", "a") {
		t.Fatal("a live pair was lost by the sweep")
	}

	var wg sync.WaitGroup
	g := newSearchFold(time.Minute, 100, clock.Now)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				g.audit(fmt.Sprint("u", w), fmt.Sprint(i%150))
			}
		}()
	}
	wg.Wait()
	if n := g.len(); n > 100 {
		t.Fatalf("memory grew to %d, bound 100", n)
	}
}
