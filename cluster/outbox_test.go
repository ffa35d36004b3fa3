package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/google/uuid"
)

func outboxRecording(t *testing.T) (meta.Recording, []byte, []byte) {
	t.Helper()
	u, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	rec := meta.Recording{ID: u.String(), PBXCallID: "minority-" + u.String(), Start: time.Unix(1_760_000_000, 0).UTC(),
		Direction: meta.DirIncoming, Source: meta.SourceUpload, Node: "node-x", Status: meta.StatusRecording, Tier: meta.TierHot,
		LocalParty: meta.LocalParty{User: "u1", Number: "100"}, RemoteParty: meta.RemoteParty{Number: "+4930"},
		File: meta.FileInfo{Path: "2025/10/09/" + u.String() + ".cvr", Format: meta.FormatWAV, WrappedDEK: []byte("dek"), KeyTerm: 1}}
	create, err := meta.Encode(&meta.CreateRecording{Recording: rec})
	if err != nil {
		t.Fatal(err)
	}
	size := int64(4096)
	seal, err := meta.Encode(&meta.UpdateRecording{ID: rec.ID, Status: meta.StatusComplete, Size: &size,
		SealHash: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"})
	if err != nil {
		t.Fatal(err)
	}
	return rec, create, seal
}

// threeMembers forms a cluster of three members; a created it.
func threeMembers(t *testing.T) (a, b, c *member) {
	t.Helper()
	a = newMember(t)
	a.open(t)
	waitLeader(t, a)
	b = joinMember(t, a)
	c = joinMember(t, a)
	waitLeader(t, a, b, c)
	return a, b, c
}

func waitOutboxEmpty(t *testing.T, m *member) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for m.node.Outbox().Queued > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d commands", m.node.Outbox().Queued)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOutboxWithoutQuorum: a node whose two peers are down keeps taking
// the Commands that describe recordings (they wait, durably, in its
// outbox, across a restart of the node itself), refuses the others, and
// once the peers are back every member has the recording exactly once,
// sealed; a replay of an already committed Command changes nothing.
func TestOutboxWithoutQuorum(t *testing.T) {
	a, b, c := threeMembers(t)

	// Only a is left: no quorum.
	b.stop()
	c.stop()
	rec, create, seal := outboxRecording(t)
	start := time.Now()
	res, err := a.node.Commit(context.Background(), create)
	if err != nil || !res.Deferred {
		t.Fatalf("create without quorum: %+v, %v; want Deferred", res, err)
	}
	t.Logf("create deferred after %v (QuorumWait %v)", time.Since(start).Round(time.Millisecond), a.node.cfg.QuorumWait)
	// With a queue, the next one joins it at once: the seal never
	// overtakes the create.
	start = time.Now()
	if res, err := a.node.Commit(context.Background(), seal); err != nil || !res.Deferred {
		t.Fatalf("seal without quorum: %+v, %v", res, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second deferred command took %v; it should not wait for a leader again", d)
	}
	// An admin's decision is not deferred.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err = a.node.Commit(ctx, tenant(1))
	cancel()
	if err == nil || !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrNotLeader) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("tenant without quorum: %v, want no leader", err)
	}
	if q := a.node.Outbox().Queued; q != 2 {
		t.Fatalf("outbox holds %d, want 2", q)
	}
	if _, err := a.db.Recording(rec.ID); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("the deferred recording is in the local metadata already: %v", err)
	}
	_, heads, err := a.node.outbox.heads(1)
	if err != nil || len(heads) != 1 {
		t.Fatalf("outbox head: %v", err)
	}
	head := heads[0]

	// The outbox survives a restart of the node itself.
	a.node.Close()
	a.node = nil
	a.open(t)
	if q := a.node.Outbox().Queued; q != 2 {
		t.Fatalf("after restart the outbox holds %d, want 2", q)
	}

	// Quorum again.
	b.open(t)
	c.open(t)
	waitLeader(t, a, b, c)
	waitOutboxEmpty(t, a)
	converged(t, a, b, c)
	for _, m := range []*member{a, b, c} {
		got, err := m.db.Recording(rec.ID)
		if err != nil || got.Status != meta.StatusComplete {
			t.Fatalf("on %s: %+v, %v; want the sealed recording", m.node.ID(), got.Status, err)
		}
		page, err := m.db.Search(meta.Query{Scope: meta.Scope{All: true}, CallID: rec.PBXCallID, Limit: 10})
		if err != nil || len(page.Recordings) != 1 {
			t.Fatalf("on %s: %d recordings with the call ID, %v; want exactly 1", m.node.ID(), len(page.Recordings), err)
		}
	}
	if s := a.node.Outbox(); s.Drained != 2 || s.Rejected != 0 {
		t.Fatalf("outbox stats %+v", s)
	}

	// A crash between a commit and its removal replays the command: the
	// Once key makes the replay change nothing.
	before, err := b.db.Recording(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.node.outbox.push(head, false); err != nil {
		t.Fatal(err)
	}
	waitOutboxEmpty(t, a)
	converged(t, a, b, c)
	after, err := b.db.Recording(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	bj, _ := json.Marshal(before)
	aj, _ := json.Marshal(after)
	if !bytes.Equal(bj, aj) {
		t.Fatalf("replaying a committed create changed the recording:\n%s\n%s", bj, aj)
	}
	if s := a.node.Outbox(); s.Drained != 3 || s.Rejected != 0 {
		t.Fatalf("outbox stats after the replay %+v; want it drained as a duplicate, not refused", s)
	}
}

// TestOutboxDrainsInBatches: 300 recordings made without a quorum (600
// Commands: each one's create, then its seal) drain in order once the
// cluster is whole, in batches, every recording sealed on every member.
// With a queue left and a leader known, a new Command waits behind the
// queue and gets its real result, not Deferred.
func TestOutboxDrainsInBatches(t *testing.T) {
	a, b, c := threeMembers(t)
	b.stop()
	c.stop()
	const n = 300
	var recs []meta.Recording
	for range n {
		rec, create, seal := outboxRecording(t)
		for _, cmd := range [][]byte{create, seal} {
			if res, err := a.node.Commit(context.Background(), cmd); err != nil || !res.Deferred {
				t.Fatalf("without quorum: %+v, %v", res, err)
			}
		}
		recs = append(recs, rec)
	}
	if q := a.node.Outbox().Queued; q != 2*n {
		t.Fatalf("queued %d, want %d", q, 2*n)
	}
	b.open(t)
	c.open(t)
	waitLeader(t, a, b, c)
	start := time.Now()
	waitOutboxEmpty(t, a)
	t.Logf("%d queued commands committed in %v", 2*n, time.Since(start).Round(time.Millisecond))
	converged(t, a, b, c)
	for _, m := range []*member{a, b, c} {
		for _, rec := range recs {
			got, err := m.db.Recording(rec.ID)
			if err != nil || got.Status != meta.StatusComplete {
				t.Fatalf("on %s, %s: %s, %v; want sealed", m.node.ID(), rec.ID, got.Status, err)
			}
		}
	}
	if s := a.node.Outbox(); s.Drained != 2*n || s.Rejected != 0 {
		t.Fatalf("outbox stats %+v", s)
	}

	// A queue while the cluster is whole (left by a restart, say): a new
	// Command goes behind it and waits for its outcome.
	_, filler, _ := outboxRecording(t)
	wrapped, err := b.node.wrapOnce(filler)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.node.outbox.push(wrapped, false); err != nil {
		t.Fatal(err)
	}
	rec, create, _ := outboxRecording(t)
	res, err := b.node.Commit(context.Background(), create)
	if err != nil || res.Deferred || res.Reference == "" {
		t.Fatalf("behind a draining queue: %+v, %v; want the committed result", res, err)
	}
	if _, err := b.db.Recording(rec.ID); err != nil {
		t.Fatalf("not readable on the node that committed it: %v", err)
	}
}
