package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/callvault/callvault/store/meta"
)

// Batching of Commands. Many writers commit at once (64 upload handlers,
// the flushers sealing calls); one raft entry or one forwarding RPC per
// Command makes raft store, send and fsync each one and the follower pay
// one leader round trip each. Two queues gather them instead:
//
//   - on every node, forwards to the leader: the Commands queued for the
//     same leader go in ONE opCommitBatch RPC carrying a meta.Batch; the
//     answer has each Command's own result and error and the batch's log
//     index, which each caller waits to apply (read your own writes);
//   - on the leader, applies: the Commands its own writers and the single
//     forwards commit at once go into ONE raft entry, a meta.Batch, whose
//     Apply gives each inner command its own Result and Err.
//
// Neither waits for company: a caller queues its Command, and if fewer
// than batchSenders sends are in flight it becomes a sender itself and
// sends whatever is queued, again and again until the queue is empty (or
// its own Command is done and another sender carries on). An idle node
// thus sends a lone Command at once, alone and in its plain form (not
// wrapped), exactly as before; under load the queue fills while the
// senders wait on raft, and each send takes all of it. No goroutine is
// started: the callers do the sending.
//
// A batch fails or succeeds as a whole with respect to raft: if the
// leader is lost before the entry commits, every caller of the batch gets
// the same retryable ErrNotLeader, as a lone Command would.

const (
	// opCommitBatch: payload an encoded meta.Batch; answer batchResponse.
	opCommitBatch byte = 6
	// batchSenders is how many sends of one queue may be in flight: one
	// sends while the next fills, and raft pipelines the entries.
	batchSenders = 2
	// maxBatchBytes bounds one batch's encoded commands (a raft entry, an
	// RPC frame well below maxFrame even after base64).
	maxBatchBytes = 4 << 20
	// maxBatchCmds bounds one batch's commands.
	maxBatchCmds = 512
)

// batchResponse answers opCommitBatch: the batch's log index and each
// command's result (ID, Reference, Error, Kind), or one error for all.
type batchResponse struct {
	Index   uint64        `json:"index,omitempty"`
	Error   string        `json:"error,omitempty"`
	Kind    string        `json:"kind,omitempty"`
	Results []rpcResponse `json:"results,omitempty"`
}

// decodeBatchResponse parses a leader's answer to a batch of want commands.
func decodeBatchResponse(b []byte, want int) (batchResponse, error) {
	var r batchResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: batch answer: %w", ErrProtocol, err)
	}
	if r.Error == "" && len(r.Results) != want {
		return r, fmt.Errorf("%w: batch answer has %d results for %d commands", ErrProtocol, len(r.Results), want)
	}
	return r, nil
}

// pending is one queued Command and, once done is closed, its outcome.
type pending[T any] struct {
	ctx  context.Context
	cmd  []byte
	done chan struct{}
	out  T
	err  error
}

// queue gathers concurrent Commands for one destination (see above).
type queue[T any] struct {
	mu      sync.Mutex
	waiting []*pending[T]
	senders int

	// sends and sent count batches and their commands (the benchmark
	// reports commands per send).
	sends, sent atomic.Uint64
}

// do queues cmd, takes a turn at sending if one is free, and returns its
// outcome. send fills in out and err of every pending it gets.
func (q *queue[T]) do(ctx context.Context, cmd []byte, send func([]*pending[T])) (T, error) {
	p := &pending[T]{ctx: ctx, cmd: cmd, done: make(chan struct{})}
	q.mu.Lock()
	q.waiting = append(q.waiting, p)
	sender := q.senders < batchSenders
	if sender {
		q.senders++
	}
	q.mu.Unlock()
	if sender {
		q.send(p, send)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		if q.withdraw(p) {
			var zero T
			return zero, fmt.Errorf("cluster: command not sent: %w", ctx.Err())
		}
		// Already on its way: its outcome is unknown to the caller, who
		// no longer waits (a lone forward with an expired deadline is in
		// the same place).
		var zero T
		return zero, fmt.Errorf("cluster: command sent, caller stopped waiting: %w", ctx.Err())
	}
	return p.out, p.err
}

// send sends batches until the queue is empty, or until own is done and
// another sender is still at it (it sees the queue before it stops, so
// nothing is left behind).
func (q *queue[T]) send(own *pending[T], send func([]*pending[T])) {
	for {
		q.mu.Lock()
		if len(q.waiting) == 0 || isDone(own.done) && q.senders > 1 {
			q.senders--
			q.mu.Unlock()
			return
		}
		batch := q.take()
		q.mu.Unlock()
		if len(batch) > 0 {
			q.sends.Add(1)
			q.sent.Add(uint64(len(batch)))
			send(batch)
			for _, p := range batch {
				close(p.done)
			}
		}
	}
}

// take removes up to maxBatchCmds (and maxBatchBytes) from the queue;
// a Command whose caller has given up is answered and dropped unsent.
// q.mu is held.
func (q *queue[T]) take() []*pending[T] {
	var batch []*pending[T]
	size, i := 0, 0
	for ; i < len(q.waiting) && len(batch) < maxBatchCmds; i++ {
		p := q.waiting[i]
		if err := p.ctx.Err(); err != nil {
			p.err = fmt.Errorf("cluster: command not sent: %w", err)
			close(p.done)
			continue
		}
		if len(batch) > 0 && size+len(p.cmd) > maxBatchBytes {
			break
		}
		size += len(p.cmd)
		batch = append(batch, p)
	}
	n := copy(q.waiting, q.waiting[i:])
	clear(q.waiting[n:])
	q.waiting = q.waiting[:n]
	return batch
}

// withdraw removes p if it is still queued.
func (q *queue[T]) withdraw(p *pending[T]) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, w := range q.waiting {
		if w == p {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			return true
		}
	}
	return false
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// batches is a node's queues: one for its applies while it leads, one per
// leader address for its forwards. The zero value is ready.
type batches struct {
	apply queue[indexedResult]

	mu  sync.Mutex
	fwd map[string]*queue[rpcResponse]
}

func (b *batches) forwardQueue(addr string) *queue[rpcResponse] {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.fwd[addr]
	if q == nil {
		if b.fwd == nil {
			b.fwd = map[string]*queue[rpcResponse]{}
		}
		// Leaders change rarely and the cluster is small: a queue per
		// address ever led by is a handful.
		q = &queue[rpcResponse]{}
		b.fwd[addr] = q
	}
	return q
}

// perSend is the mean commands per raft entry (applies) and per RPC
// (forwards, all leaders) so far.
func (b *batches) perSend() (apply, forward float64) {
	ratio := func(cmds, sends uint64) float64 {
		if sends == 0 {
			return 0
		}
		return float64(cmds) / float64(sends)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var cmds, sends uint64
	for _, q := range b.fwd {
		cmds, sends = cmds+q.sent.Load(), sends+q.sends.Load()
	}
	return ratio(b.apply.sent.Load(), b.apply.sends.Load()), ratio(cmds, sends)
}

// encodeBatch wraps the batch's commands in one meta.Batch.
func encodeBatch[T any](ps []*pending[T]) ([]byte, error) {
	cmds := make([][]byte, len(ps))
	for i, p := range ps {
		cmds[i] = p.cmd
	}
	return meta.Encode(&meta.Batch{Cmds: cmds})
}

// applyBatch is the leader's send: one raft entry for the whole batch.
func (n *Node) applyBatch(ps []*pending[indexedResult]) {
	if len(ps) == 1 {
		ps[0].out, ps[0].err = n.applyFuture(n.raft.Apply(ps[0].cmd, timeout(ps[0].ctx)))
		return
	}
	b, err := encodeBatch(ps)
	if err != nil {
		fail(ps, err)
		return
	}
	res, err := n.applyFuture(n.raft.Apply(b, applyTimeout))
	if err == nil && len(res.Batch) != len(ps) {
		err = fmt.Errorf("cluster: apply: a batch of %d commands answered %d results", len(ps), len(res.Batch))
	}
	if err != nil {
		fail(ps, err)
		return
	}
	for i, p := range ps {
		p.out, p.err = indexedResult{Result: res.Batch[i], index: res.index}, res.Batch[i].Err
	}
}

// forwardBatch returns the follower's send to the leader at addr: one RPC
// for the whole batch.
func (n *Node) forwardBatch(addr string) func([]*pending[rpcResponse]) {
	return func(ps []*pending[rpcResponse]) {
		if len(ps) == 1 {
			ps[0].out, ps[0].err = n.pool.call(ps[0].ctx, addr, opCommit, ps[0].cmd)
			return
		}
		b, err := encodeBatch(ps)
		if err != nil {
			fail(ps, err)
			return
		}
		// The senders' contexts may end sooner than the others': the batch
		// gets the full apply timeout, and a caller that stops waiting
		// leaves (queue.do).
		ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
		defer cancel()
		raw, err := n.pool.callRaw(ctx, addr, opCommitBatch, b)
		if err != nil {
			fail(ps, err)
			return
		}
		resp, err := decodeBatchResponse(raw, len(ps))
		if err != nil {
			fail(ps, err)
			return
		}
		if resp.Error != "" {
			whole := rpcResponse{Error: resp.Error, Kind: resp.Kind, Index: resp.Index}
			for _, p := range ps {
				p.out = whole
			}
			return
		}
		for i, p := range ps {
			p.out = resp.Results[i]
			p.out.Index = resp.Index
		}
	}
}

func fail[T any](ps []*pending[T], err error) {
	for _, p := range ps {
		p.err = err
	}
}

// forward sends cmd to the leader at addr, in a batch with the Commands
// other writers forward at the same time. Like pool.call: a transport
// failure is the error, the leader's answer (with its own error) the
// response.
func (n *Node) forward(ctx context.Context, addr string, cmd []byte) (rpcResponse, error) {
	return n.batches.forwardQueue(addr).do(ctx, cmd, n.forwardBatch(addr))
}

// commitBatchRPC is the leader's side of opCommitBatch.
func (n *Node) commitBatchRPC(body []byte) batchResponse {
	if len(body) == 0 || meta.CommandType(body[0]) != meta.TypeBatch {
		return batchError(fmt.Errorf("%w: a batch request must carry a meta.Batch", ErrProtocol))
	}
	res, err := n.applyFuture(n.raft.Apply(body, applyTimeout))
	if err != nil {
		// Not leader (retryable), a refused batch, or a failed transaction:
		// the same for every command.
		r := batchError(err)
		r.Index = res.index
		return r
	}
	out := batchResponse{Index: res.index, Results: make([]rpcResponse, len(res.Batch))}
	for i, r := range res.Batch {
		out.Results[i] = rpcResponse{ID: r.ID, Reference: r.Reference, AuditSeq: r.AuditSeq}
		if r.Err != nil {
			out.Results[i].Error, out.Results[i].Kind = r.Err.Error(), errorKind(r.Err)
		}
	}
	return out
}

func batchError(err error) batchResponse {
	return batchResponse{Error: err.Error(), Kind: errorKind(err)}
}

// appendRecordings adds the recordings cmd may seal or delete to touched,
// looking inside a Batch (the file copier's hint; see recordingOf).
func appendRecordings(touched []string, cmd []byte) []string {
	if len(cmd) == 0 || meta.CommandType(cmd[0]) != meta.TypeBatch {
		if id := recordingOf(cmd); id != "" {
			touched = append(touched, id)
		}
		return touched
	}
	b, err := meta.DecodeBatch(cmd)
	if err != nil {
		return touched
	}
	for _, c := range b.Cmds {
		if id := recordingOf(c); id != "" {
			touched = append(touched, id)
		}
	}
	return touched
}
