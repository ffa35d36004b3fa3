package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// threeNodes starts a three-node cluster and returns the leader and the
// two followers.
func threeNodes(t *testing.T) (leader *member, followers []*member) {
	t.Helper()
	a := newMember(t)
	a.open(t)
	waitLeader(t, a)
	b, c := joinMember(t, a), joinMember(t, a)
	leader = waitLeader(t, a, b, c)
	for _, m := range []*member{a, b, c} {
		if m != leader {
			followers = append(followers, m)
		}
	}
	return leader, followers
}

func pendings[T any](cmds ...[]byte) []*pending[T] {
	ps := make([]*pending[T], len(cmds))
	for i, c := range cmds {
		ps[i] = &pending[T]{ctx: context.Background(), cmd: c, done: make(chan struct{})}
	}
	return ps
}

func noteOnMissing(t *testing.T) []byte {
	t.Helper()
	b, err := meta.Encode(&meta.AddNote{ID: "0198a000-0000-7000-8000-0000000000ff", Note: meta.Note{ID: "n1", Author: "u1", Time: time.Unix(1_760_000_000, 0).UTC(), Text: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// batchMix is a batch whose commands succeed and fail in different ways,
// with the error each must get.
func batchMix(t *testing.T, base int) ([][]byte, []error) {
	return [][]byte{tenant(base), tenant(base), tenant(base + 1), {200, '{', '}'}, noteOnMissing(t), tenant(base + 2)},
		[]error{nil, meta.ErrExists, nil, meta.ErrUnknownCommand, meta.ErrNotFound, nil}
}

func checkTenants(t *testing.T, db *meta.DB, want ...int) {
	t.Helper()
	got, err := db.Tenants()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d tenants, want %d: %+v", len(got), len(want), got)
	}
	for _, i := range want {
		if _, err := db.Tenant(fmt.Sprintf("t%04d", i)); err != nil {
			t.Fatalf("tenant %d: %v", i, err)
		}
	}
}

// TestForwardBatchEachOwnResult: one forwarded RPC carries six Commands;
// each caller gets its own result and its own error (errors.Is works
// across the trip), all at the same log index (one raft entry), and
// the follower has applied that entry once it waited for the index.
func TestForwardBatchEachOwnResult(t *testing.T) {
	leader, fs := threeNodes(t)
	cmds, want := batchMix(t, 10)
	ps := pendings[rpcResponse](cmds...)
	fs[0].node.forwardBatch(leader.addr)(ps)
	idx := ps[0].out.Index
	for i, p := range ps {
		if p.err != nil {
			t.Fatalf("command %d: transport error %v", i, p.err)
		}
		err := p.out.err()
		if want[i] == nil && err != nil || want[i] != nil && !errors.Is(err, want[i]) {
			t.Errorf("command %d: %v, want %v", i, err, want[i])
		}
		if p.out.Index != idx || idx == 0 {
			t.Errorf("command %d at index %d, command 0 at %d: want one entry", i, p.out.Index, idx)
		}
	}
	if ps[0].out.ID != "t0010" || ps[2].out.ID != "t0011" || ps[5].out.ID != "t0012" {
		t.Errorf("IDs %q %q %q, want t0010 t0011 t0012", ps[0].out.ID, ps[2].out.ID, ps[5].out.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fs[0].node.waitApplied(ctx, idx); err != nil {
		t.Fatal(err)
	}
	checkTenants(t, fs[0].db, 10, 11, 12)
	converged(t, leader, fs[0], fs[1])
}

// TestApplyBatchEachOwnResult: the leader's own coalesced apply, the same.
func TestApplyBatchEachOwnResult(t *testing.T) {
	leader, fs := threeNodes(t)
	cmds, want := batchMix(t, 20)
	ps := pendings[indexedResult](cmds...)
	leader.node.applyBatch(ps)
	for i, p := range ps {
		if want[i] == nil && p.err != nil || want[i] != nil && !errors.Is(p.err, want[i]) {
			t.Errorf("command %d: %v, want %v", i, p.err, want[i])
		}
		if !errors.Is(p.out.Err, want[i]) && (want[i] != nil || p.out.Err != nil) {
			t.Errorf("command %d: Result.Err %v, want %v", i, p.out.Err, want[i])
		}
		if p.out.index != ps[0].out.index || p.out.index == 0 {
			t.Errorf("command %d at index %d, command 0 at %d: want one entry", i, p.out.index, ps[0].out.index)
		}
	}
	if ps[0].out.ID != "t0020" || ps[5].out.ID != "t0022" {
		t.Errorf("IDs %q %q", ps[0].out.ID, ps[5].out.ID)
	}
	converged(t, leader, fs[0], fs[1])
	checkTenants(t, fs[1].db, 20, 21, 22)
}

// TestBatchNotLeader: a batch that reaches a node which does not lead
// (the leader changed between the follower's look and the send, or during
// the apply) fails as a whole with a retryable ErrNotLeader for every
// command, and nothing of it is applied anywhere.
func TestBatchNotLeader(t *testing.T) {
	leader, fs := threeNodes(t)
	cmds, _ := batchMix(t, 30)

	fwd := pendings[rpcResponse](cmds...)
	fs[0].node.forwardBatch(fs[1].addr)(fwd) // fs[1] is not the leader
	for i, p := range fwd {
		err := p.err
		if err == nil {
			err = p.out.err()
		}
		if !errors.Is(err, ErrNotLeader) || !retryable(err) {
			t.Errorf("forwarded command %d to a follower: %v, want a retryable ErrNotLeader", i, err)
		}
	}
	local := pendings[indexedResult](cmds...)
	fs[1].node.applyBatch(local)
	for i, p := range local {
		if !errors.Is(p.err, ErrNotLeader) || !retryable(p.err) {
			t.Errorf("command %d applied on a follower: %v, want a retryable ErrNotLeader", i, p.err)
		}
	}
	converged(t, leader, fs[0], fs[1])
	checkTenants(t, leader.db)
}

// TestCommitConcurrentBatched: many writers on every node at once, some
// Commands refused; every caller gets its own answer through Commit, and
// the queues did gather (more than one Command per RPC and per entry).
func TestCommitConcurrentBatched(t *testing.T) {
	leader, fs := threeNodes(t)
	ms := []*member{leader, fs[0], fs[1]}
	const writers = 48
	var wg sync.WaitGroup
	errs := make([]error, writers)
	ids := make([]string, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := tenant(100 + w)
			if w%8 == 7 {
				cmd = noteOnMissing(t)
			}
			res, err := ms[w%3].node.Commit(context.Background(), cmd)
			errs[w], ids[w] = err, res.ID
		}()
	}
	wg.Wait()
	var want []int
	for w := range writers {
		if w%8 == 7 {
			if !errors.Is(errs[w], meta.ErrNotFound) {
				t.Errorf("writer %d: %v, want ErrNotFound", w, errs[w])
			}
			continue
		}
		if errs[w] != nil || ids[w] != fmt.Sprintf("t%04d", 100+w) {
			t.Errorf("writer %d: %q, %v", w, ids[w], errs[w])
		}
		want = append(want, 100+w)
	}
	converged(t, ms...)
	checkTenants(t, fs[1].db, want...)
	for _, m := range ms {
		a, f := m.node.batches.perSend()
		t.Logf("%s: %.1f commands per raft entry, %.1f per forward", m.node.ID(), a, f)
	}
}

// TestBatchLeaderChange: writers on every node commit recordings while the
// leadership moves twice. Every Commit succeeds (a batch caught by the
// change fails as a whole with a retryable error and is sent again; one
// slower than QuorumWait finishes from the outbox), and every recording is
// there exactly once on every node (Commit wraps them in meta.Once, so a
// batch appended by a leader that died before answering and sent again
// applies once).
func TestBatchLeaderChange(t *testing.T) {
	leader, fs := threeNodes(t)
	ms := []*member{leader, fs[0], fs[1]}
	const writers, each = 24, 15
	var (
		wg     sync.WaitGroup
		seq    atomic.Int64
		mu     sync.Mutex
		done   []string
		failed []error
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				cmd := recordingCmd(t, seq.Add(1))
				var c struct {
					Recording struct{ ID string } `json:"recording"`
				}
				if err := json.Unmarshal(cmd[1:], &c); err != nil {
					t.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := ms[w%3].node.Commit(ctx, cmd)
				cancel()
				mu.Lock()
				// Deferred (slow under -race: past QuorumWait) is a
				// commit the outbox finishes later; it must appear too.
				if err != nil {
					failed = append(failed, err)
				} else {
					done = append(done, c.Recording.ID)
				}
				mu.Unlock()
			}
		}()
	}
	for range 2 {
		time.Sleep(150 * time.Millisecond)
		l := waitLeader(t, ms...)
		if err := l.node.raft.LeadershipTransfer().Error(); err != nil {
			t.Logf("leadership transfer: %v", err)
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d commits failed, first: %v", len(failed), failed[0])
	}
	for _, m := range ms {
		waitFor(t, "the outbox to drain", func() bool { return m.node.outbox.depth.Load() == 0 })
	}
	converged(t, ms...)
	for _, m := range ms {
		for _, id := range done {
			if _, err := m.db.Recording(id); err != nil {
				t.Fatalf("%s: recording %s: %v", m.node.ID(), id, err)
			}
		}
		n := 0
		for q := (meta.Query{Scope: meta.Scope{All: true}, Limit: meta.MaxLimit}); ; {
			p, err := m.db.Search(q)
			if err != nil {
				t.Fatal(err)
			}
			n += len(p.Recordings)
			if q.Cursor = p.Next; q.Cursor == "" {
				break
			}
		}
		if n != writers*each {
			t.Fatalf("%s holds %d recordings, want %d (each once)", m.node.ID(), n, writers*each)
		}
	}
}

// TestQueueGivesUpUnsent: a caller whose context ends while its Command is
// still queued gets an error, and the Command is never sent.
func TestQueueGivesUpUnsent(t *testing.T) {
	var q queue[int]
	release, inSend := make(chan struct{}), make(chan struct{}, 1)
	var mu sync.Mutex
	var sent [][]byte
	send := func(ps []*pending[int]) {
		mu.Lock()
		for _, p := range ps {
			sent = append(sent, p.cmd)
			p.out = len(p.cmd)
		}
		mu.Unlock()
		inSend <- struct{}{}
		<-release
	}
	first := make(chan error, 1)
	go func() { _, err := q.do(context.Background(), []byte("a"), send); first <- err }()
	<-inSend // "a" is being sent and holds one of the two turns
	go func() { _, err := q.do(context.Background(), []byte("bb"), send); first <- err }()
	<-inSend // "bb" holds the other: the next ones wait in the queue
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { _, err := q.do(ctx, []byte("ccc"), send); gaveUp <- err }()
	waitQueued := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		n := len(q.waiting)
		q.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(waitQueued) {
			t.Fatal("the third command never queued")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while queued: %v, want context.Canceled", err)
	}
	// A later command is sent once a turn is free.
	go func() { _, err := q.do(context.Background(), []byte("dddd"), send); first <- err }()
	close(release)
	for range 3 {
		if err := <-first; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range sent {
		if string(c) == "ccc" {
			t.Fatalf("a command given up while queued was sent: %q", sent)
		}
	}
	if len(sent) != 3 {
		t.Fatalf("sent %q, want a, bb and dddd", sent)
	}
}

// FuzzBatchResponse: a leader's answer to a batch, as bytes off the wire,
// never panics and is accepted only with one result per command.
func FuzzBatchResponse(f *testing.F) {
	ok, _ := json.Marshal(batchResponse{Index: 7, Results: []rpcResponse{{ID: "a"}, {Error: "meta: already exists", Kind: "exists"}}})
	whole, _ := json.Marshal(batchError(ErrNotLeader))
	f.Add(ok, 2)
	f.Add(ok, 3)
	f.Add(whole, 5)
	f.Add([]byte(`{"results":null}`), 0)
	f.Add([]byte(`{"index":-1}`), 1)
	f.Add([]byte{}, 1)
	f.Fuzz(func(t *testing.T, b []byte, want int) {
		r, err := decodeBatchResponse(b, want)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if r.Error == "" && len(r.Results) != want {
			t.Fatalf("accepted %d results for %d commands", len(r.Results), want)
		}
		for _, x := range r.Results {
			_ = x.err()
		}
	})
}
