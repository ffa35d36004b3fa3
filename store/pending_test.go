package store

import (
	"fmt"
	"testing"

	"github.com/callvault/callvault/store/meta"
)

// TestPendingStaysBounded: recordings that come and go while others stay
// pending (a long partition) do not grow the eviction order without end.
func TestPendingStaysBounded(t *testing.T) {
	var p pendingRecs
	p.add(meta.Recording{ID: "kept"})
	for i := range 10_000 {
		id := fmt.Sprintf("r%d", i)
		p.add(meta.Recording{ID: id})
		p.drop(id)
	}
	if _, ok := p.get("kept"); !ok {
		t.Fatal("the pending recording was forgotten")
	}
	if n := len(p.order); n > 2*len(p.m)+1025 {
		t.Fatalf("order holds %d IDs for %d pending recordings", n, len(p.m))
	}
}
