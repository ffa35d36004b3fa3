package webui

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestAuditQueue: entries queued from many goroutines are all committed,
// in one chain; flush waits for what was queued before it; a bad entry
// is counted and logged without losing its batch; close drains, and after
// close entries are committed at once.
func TestAuditQueue(t *testing.T) {
	e := newEnv(t, nil)
	failures := prometheus.NewCounter(prometheus.CounterOpts{Name: "f"})
	q := newAuditQueue(e.st, e.srv.log, failures)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				q.add(meta.AuditEntry{Time: time.Now(), Actor: fmt.Sprintf("u%d", g), Action: meta.AuditSearch, Detail: fmt.Sprint(i)})
			}
		}()
	}
	wg.Wait()
	q.add(meta.AuditEntry{Time: time.Now(), Actor: "u9", Action: "dance"}) // invalid
	q.add(meta.AuditEntry{Time: time.Now(), Actor: "u9", Action: meta.AuditView})
	if err := q.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		p, err := e.st.Meta().SearchAudit(meta.AuditQuery{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, en := range p.Entries {
			if en.Action == meta.AuditSearch || (en.Action == meta.AuditView && en.Actor == "u9") {
				n++
			}
		}
		return n
	}
	if n := count(); n != 401 {
		t.Fatalf("%d entries committed after flush, want 401", n)
	}
	var m dto.Metric
	if err := failures.Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Fatalf("failures %v (%v), want the one invalid entry", m.GetCounter().GetValue(), err)
	}
	q.add(meta.AuditEntry{Time: time.Now(), Actor: "u9", Action: meta.AuditView})
	q.close()
	q.add(meta.AuditEntry{Time: time.Now(), Actor: "u9", Action: meta.AuditView}) // after close: at once
	if n := count(); n != 403 {
		t.Fatalf("%d entries after close, want 403", n)
	}
	if v, err := e.st.Meta().VerifyAudit(); err != nil || v.Broken != 0 {
		t.Fatalf("%+v %v", v, err)
	}
}
