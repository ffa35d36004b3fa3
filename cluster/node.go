package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Sentinel errors of the cluster. Every error this package returns wraps
// one of these or one of meta's (test with errors.Is).
var (
	// ErrNoLeader: no leader is known (an election is running, or there is
	// no quorum) and none appeared before the caller's deadline.
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrNotLeader: a request that only the leader answers reached a follower.
	ErrNotLeader = errors.New("cluster: not the leader")
	// ErrToken: a join token is malformed, unknown, used or expired.
	ErrToken = errors.New("cluster: invalid join token")
	// ErrJoin: joining failed (the peer refused, or its CA does not match the token).
	ErrJoin = errors.New("cluster: join failed")
	// ErrNoCA: this node does not hold the cluster CA, so it cannot issue tokens or certificates.
	ErrNoCA = errors.New("cluster: this node does not hold the cluster CA")
	// ErrIdentity: the node's certificate, key or ID in <data>/cluster is missing or unreadable.
	ErrIdentity = errors.New("cluster: node identity")
	// ErrProtocol: a peer sent a frame that does not parse.
	ErrProtocol = errors.New("cluster: protocol error")
	// ErrForbidden: the peer's certificate does not name the member it acts for.
	ErrForbidden = errors.New("cluster: forbidden")
	// ErrNotEmpty: --join was given for a data directory that already has metadata.
	ErrNotEmpty = errors.New("cluster: data directory is not empty")
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("cluster: node closed")
	// ErrNoHolder: no reachable member could send a recording's file.
	ErrNoHolder = errors.New("cluster: no member could send the file")
)

// Config is the node's configuration, built by the appliance.
type Config struct {
	// DataDir is the appliance's data directory: raft keeps its log and
	// snapshots in <data>/raft, the identity in <data>/cluster.
	DataDir string
	// Addr is the cluster port to listen on (host:port).
	Addr string
	// Advertise is the address peers dial; default: Addr.
	Advertise string
	// DB is the metadata database the FSM applies to.
	DB *meta.DB
	// Log receives the node's log lines (raft's own at warning and above).
	Log *slog.Logger

	// Raft timing; zero values take raft's defaults (1 s heartbeat and
	// election timeouts), which elect a new leader in 1-3 s.
	HeartbeatTimeout, ElectionTimeout time.Duration
	// SnapshotThreshold: entries since the last snapshot that trigger one
	// (log compaction); default 8192. TrailingLogs kept after it: 10240.
	SnapshotThreshold, TrailingLogs uint64
	// SnapshotInterval: how often the threshold is checked; default 2 min.
	SnapshotInterval time.Duration
	// QuorumWait is how long a Command describing a recording waits for a
	// leader before it goes to the durable outbox; default 4 s (outbox.go).
	QuorumWait time.Duration
	// OnOutboxDrained, if set, is called (on the drainer's goroutine)
	// each time the outbox has committed its last queued Command.
	OnOutboxDrained func()
}

// Node is a running raft member.
type Node struct {
	cfg    Config
	log    *slog.Logger
	id     *identity
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	mux    *mux
	boltLS *raftboltdb.BoltStore
	tokens *tokenStore
	pool   *pool
	now    func() time.Time
	// batches gathers concurrent Commands into one RPC or raft entry (batch.go).
	batches batches

	closeOnce sync.Once
	closed    chan struct{}

	// repl is the file copier, once started (replicate.go); kick wakes it
	// when the FSM applies a command that may seal or delete a recording.
	repl  atomic.Pointer[Replicator]
	kick  chan struct{}
	dirty dirtySet // recordings changed since the copier's last pass

	fsm *fsm
	// outbox keeps deferrable Commands while there is no quorum (outbox.go);
	// outboxDone closes when its drainer has stopped.
	outbox     *outbox
	outboxDone chan struct{}
}

// Open starts the node. A data directory without a cluster identity is
// bootstrapped as a new one-node cluster (creating the CA); one with an
// identity (from an earlier start, or from Join) starts with its raft state.
func Open(cfg Config) (*Node, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Advertise == "" {
		cfg.Advertise = cfg.Addr
	}
	if cfg.QuorumWait <= 0 {
		cfg.QuorumWait = quorumWait
	}
	n := &Node{cfg: cfg, log: cfg.Log, now: time.Now, closed: make(chan struct{}), kick: make(chan struct{}, 1)}
	if _, err := Prepare(cfg.DataDir); err != nil {
		return nil, err
	}
	id, err := loadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n.id = id
	n.tokens = newTokenStore(cfg.DataDir)
	n.pool = newPool(id)
	if n.outbox, err = openOutbox(cfg.DataDir); err != nil {
		return nil, err
	}

	rdir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	if n.boltLS, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(rdir, "raft.db")}); err != nil {
		return nil, fmt.Errorf("cluster: raft log: %w", err)
	}
	logs, err := raft.NewLogCache(1024, n.boltLS)
	if err != nil {
		return nil, err
	}
	raftLog := slogWriter{n.log}
	snaps, err := raft.NewFileSnapshotStore(rdir, 2, raftLog)
	if err != nil {
		return nil, fmt.Errorf("cluster: snapshot store: %w", err)
	}
	if n.mux, err = newMux(cfg.Addr, id); err != nil {
		return nil, err
	}
	n.mux.rpc, n.mux.join, n.mux.file = n.serveRPC, n.serveJoin, n.serveFile
	n.trans = raft.NewNetworkTransport(streamLayer{n.mux}, 5, 10*time.Second, raftLog)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id.id)
	rc.LogOutput = raftLog
	rc.LogLevel = "WARN"
	// The database is always at least as new as the latest snapshot
	// (ApplyLog records its index), so restoring one at start would only
	// go back in time; entries after it are skipped by index.
	rc.NoSnapshotRestoreOnStart = true
	// Followers learn the commit index from the next AppendEntries; a
	// forwarded write waits for its follower to apply it (read your own
	// writes), so an idle leader sends one every 5 ms instead of 50.
	rc.CommitTimeout = 5 * time.Millisecond
	if cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.HeartbeatTimeout
		rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	}
	if cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	// Only the node that made the CA bootstraps, and only once: a joined
	// node starts with an empty configuration and waits to be added.
	bootstrap := false
	if id.caKey != nil {
		has, err := raft.HasExistingState(logs, n.boltLS, snaps)
		if err != nil {
			return nil, err
		}
		if !has {
			bootstrap = true
			conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: raft.ServerAddress(cfg.Advertise), Suffrage: raft.Voter}}}
			if err := raft.BootstrapCluster(rc, logs, n.boltLS, snaps, n.trans, conf); err != nil {
				return nil, fmt.Errorf("cluster: bootstrap: %w", err)
			}
		}
	}
	n.fsm = &fsm{db: cfg.DB, log: n.log, kick: n.kick, dirty: &n.dirty}
	if i, err := cfg.DB.AppliedIndex(); err == nil {
		n.fsm.done.Store(i)
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, logs, n.boltLS, snaps, n.trans); err != nil {
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	// Only now the port answers: a peer's forwarded commit or heartbeat
	// arriving before n.raft was set dereferenced nil (found by the
	// restart tests). Connections made meanwhile wait in the backlog.
	n.mux.start()
	n.outboxDone = make(chan struct{})
	go n.drainOutbox()
	ok = true
	if q := n.outbox.depth.Load(); q > 0 {
		n.log.Info("outbox: commands queued while there was no quorum will commit", "queued", q)
	}
	n.log.Info("cluster node started", "id", id.id, "addr", cfg.Advertise, "bootstrap", bootstrap, "ca", id.caKey != nil)
	return n, nil
}

// Prepare makes sure the data directory has a cluster identity, creating
// a new cluster's CA and this node's certificate if it has none (the
// first node; a joining node gets its identity from Join instead), and
// returns the node ID. The appliance calls it before opening the store, so
// recordings are stamped with the node ID from the start.
func Prepare(dataDir string) (string, error) {
	if !hasIdentity(dataDir) {
		if err := bootstrapIdentity(dataDir, time.Now()); err != nil {
			return "", err
		}
	}
	b, err := os.ReadFile(filepath.Join(clusterDir(dataDir), fileNodeID))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	return string(b), nil
}

// ID is this node's ID (also its certificate's common name).
func (n *Node) ID() string { return n.id.id }

// Close leaves raft running no more: it stops raft, the transport and the
// cluster port, and closes the raft log. The metadata database is the
// caller's.
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		close(n.closed)
		if n.outboxDone != nil {
			<-n.outboxDone
		}
		if n.raft != nil && n.raft.State() == raft.Leader && len(n.members()) > 1 {
			// A leader that stops hands over first: the others need not
			// wait out an election timeout (a rolling restart, a
			// shutdown for maintenance).
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				n.log.Warn("leadership transfer before stopping", "err", err)
			}
		}
		// The transport and the port close before raft shuts down: raft
		// handles heartbeats on the transport's goroutines, and one that
		// arrived after the raft log below was closed would panic raft;
		// replication goroutines blocked on a peer also return at once.
		if n.trans != nil {
			_ = n.trans.Close()
		}
		if n.mux != nil {
			n.mux.close()
		}
		stopped := true
		if n.raft != nil {
			// hashicorp/raft's Shutdown can wait for ever on a replication
			// pipeline whose responses stopped (seen under -race with a
			// peer going away): bounded, and the raft log is then left
			// open rather than pulled from under a goroutine still running.
			done := make(chan error, 1)
			go func() { done <- n.raft.Shutdown().Error() }()
			select {
			case err := <-done:
				if err != nil {
					n.log.Warn("raft shutdown", "err", err)
				}
			case <-time.After(shutdownWait):
				stopped = false
				n.log.Error("raft shutdown did not finish; leaving its log open", "waited", shutdownWait)
			}
		}
		n.pool.close()
		if n.boltLS != nil && stopped {
			_ = n.boltLS.Close()
		}
		if n.outbox != nil {
			_ = n.outbox.close()
		}
	})
}

// slogWriter sends raft's log lines (hclog text) to slog.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Warn("raft", "msg", string(trimNL(p)))
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

// applyTimeout bounds a raft.Apply when the context has no deadline.
const applyTimeout = 10 * time.Second

// shutdownWait bounds raft's Shutdown in Close.
const shutdownWait = 5 * time.Second

func timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return applyTimeout
}

// Commit implements store.Committer: the command is committed through raft
// and applied on every member; the result is the leader's Apply result.
// A follower forwards it to the leader. Without a leader it waits (an
// election takes a second or two) until ctx ends or applyTimeout passes,
// except that a Command describing a recording goes to the durable outbox
// after Config.QuorumWait and answers Result.Deferred (outbox.go).
func (n *Node) Commit(ctx context.Context, cmd []byte) (meta.Result, error) {
	if len(cmd) == 0 {
		return meta.Result{}, fmt.Errorf("%w: empty command", meta.ErrMalformed)
	}
	if deferrable(cmd) {
		return n.commitDeferrable(ctx, cmd)
	}
	return n.commit(ctx, cmd)
}

// commit commits cmd through the leader, retrying while there is none.
func (n *Node) commit(ctx context.Context, cmd []byte) (meta.Result, error) {
	var res meta.Result
	err := n.withLeader(ctx, func(leader string) error {
		if leader == "" {
			r, err := n.applyLocal(ctx, cmd)
			res = r
			return err
		}
		resp, err := n.forwardWatched(ctx, leader, cmd)
		if err != nil {
			return err
		}
		res = meta.Result{ID: resp.ID, Reference: resp.Reference, AuditSeq: resp.AuditSeq}
		// Read your own writes: the caller reads the local database next
		// (the upload handler opens the recording it just created), so
		// return once this node has applied the entry too.
		if werr := n.waitApplied(ctx, resp.Index); werr != nil {
			return fmt.Errorf("cluster: committed at %d but not yet applied here: %w", resp.Index, werr)
		}
		if e := resp.err(); e != nil {
			res.Err = e
			return e
		}
		return nil
	})
	return res, err
}

// errLeaderMoved: this node learned of another leader while a forward to
// the old one was in flight.
var errLeaderMoved = errors.New("cluster: the leader changed during the forward")

// forwardWatched forwards cmd to the leader at addr, and gives up on it as
// soon as this node learns of a different leader: a leader cut off from
// the rest never answers, and the forward would otherwise hold the caller
// until its deadline although a new leader exists a second or two later
// (the netns partition test). The error is then ErrNotLeader, so
// withLeader tries the new one. If the old leader did append the Command,
// it cannot commit it without the majority; Commands describing recordings
// carry a meta.Once key besides.
func (n *Node) forwardWatched(ctx context.Context, addr string, cmd []byte) (rpcResponse, error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-actx.Done():
				return
			case <-t.C:
				if now, _ := n.raft.LeaderWithID(); now != "" && string(now) != addr {
					cancel(errLeaderMoved)
					return
				}
			}
		}
	}()
	resp, err := n.forward(actx, addr, cmd)
	if err != nil && errors.Is(context.Cause(actx), errLeaderMoved) && ctx.Err() == nil {
		return resp, fmt.Errorf("%w: %w (was %s)", ErrNotLeader, errLeaderMoved, addr)
	}
	return resp, err
}

// waitApplied waits until this node has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	// raft counts an entry applied once it has handed it to the FSM's
	// goroutine, not once the FSM is done with it; the database records
	// the index in the transaction that applies the entry (a command, as
	// here), so it is the one that says the caller can read it.
	target := uint64(0) // the last entry ≤ index the FSM gets, once known
	applied := func() bool {
		if n.raft.AppliedIndex() < index {
			return false
		}
		done := n.fsm.done.Load()
		if done >= index {
			return true
		}
		if i, err := n.cfg.DB.AppliedIndex(); err == nil && i >= index {
			return true
		}
		// index may be an entry raft keeps from the FSM (the no-op a new
		// leader appends, a barrier): then the last one before it counts.
		if target == 0 {
			target = n.fsmIndex(index)
		}
		return done >= target
	}
	if applied() {
		return nil
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for !applied() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.closed:
			return ErrClosed
		case <-t.C:
		}
	}
	return nil
}

// fsmIndex is the last index at or below index whose entry raft hands to
// the FSM (a command or a configuration change; not a no-op or barrier).
// 1 when it cannot tell (the entries were compacted into a snapshot,
// which the FSM has restored): then any progress counts.
func (n *Node) fsmIndex(index uint64) uint64 {
	for i := index; i > 0 && index-i < 1024; i-- {
		var l raft.Log
		if err := n.boltLS.GetLog(i, &l); err != nil {
			return 1
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return 1
}

// applyLocal applies on this node, which must be the leader.
func (n *Node) applyLocal(ctx context.Context, cmd []byte) (meta.Result, error) {
	res, _, err := n.applyIndexed(ctx, cmd)
	return res, err
}

// applyIndexed is applyLocal that also says at which log index the entry
// is. Commands applied at the same moment share one raft entry (batch.go).
func (n *Node) applyIndexed(ctx context.Context, cmd []byte) (meta.Result, uint64, error) {
	res, err := n.batches.apply.do(ctx, cmd, n.applyBatch)
	return res.Result, res.index, err
}

type indexedResult struct {
	meta.Result
	index uint64
}

func (n *Node) applyFuture(f raft.ApplyFuture) (indexedResult, error) {
	if err := f.Error(); err != nil {
		// A leadership transfer refuses new entries before appending them:
		// like a lost leadership, the caller tries the next leader.
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return indexedResult{}, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return indexedResult{}, fmt.Errorf("cluster: apply: %w", err)
	}
	switch r := f.Response().(type) {
	case meta.Result:
		return indexedResult{r, f.Index()}, r.Err
	case error:
		return indexedResult{meta.Result{Err: r}, f.Index()}, r
	default:
		return indexedResult{}, fmt.Errorf("cluster: apply: unexpected response %T", r)
	}
}

// withLeader runs fn with "" when this node leads, or the leader's
// address; it retries while there is no leader or leadership moves.
func (n *Node) withLeader(ctx context.Context, fn func(leader string) error) error {
	deadline := time.Now().Add(timeout(ctx))
	for {
		var err error
		addr, id := n.raft.LeaderWithID()
		switch {
		case n.raft.State() == raft.Leader:
			err = fn("")
		case addr != "" && string(id) != n.id.id:
			err = fn(string(addr))
		default:
			err = fmt.Errorf("%w (this node is %s)", ErrNoLeader, n.raft.State())
		}
		if err == nil || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", err, ctx.Err())
		case <-n.closed:
			return ErrClosed
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// retryable: the write did not reach a leader's log, so sending it again
// cannot apply it twice. (A leader that dies after appending but before
// answering is the one case where a retry may duplicate: the Commands that
// describe recordings are wrapped in a meta.Once key for it (outbox.go);
// an admin's Command retried that way is refused as a duplicate or repeats
// a change that is the same twice.)
func retryable(err error) bool {
	if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, errDial)
}

// WaitCommitted returns once this node has applied every entry committed
// before the call, so a read that follows sees every earlier write (the
// API's "read after latest commit"). On the leader it is a raft Barrier; a
// follower asks the leader's commit index and waits to apply it.
func (n *Node) WaitCommitted(ctx context.Context) error {
	return n.withLeader(ctx, func(leader string) error {
		if leader == "" {
			if err := n.raft.Barrier(timeout(ctx)).Error(); err != nil {
				if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
					return fmt.Errorf("%w: %w", ErrNotLeader, err)
				}
				return err
			}
			return nil
		}
		resp, err := n.pool.call(ctx, leader, opCommitIndex, nil)
		if err != nil {
			return err
		}
		if err := resp.err(); err != nil {
			return err
		}
		return n.waitApplied(ctx, resp.Index)
	})
}

// AddVoter adds a member (on the leader, or forwarded to it).
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	body, _ := json.Marshal(memberRequest{ID: id, Address: addr})
	return n.membership(ctx, opAddVoter, body, func() error {
		return n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout(ctx)).Error()
	})
}

// Remove removes a member from the configuration.
func (n *Node) Remove(ctx context.Context, id string) error {
	found := false
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			found = found || string(s.ID) == id
		}
	}
	if !found {
		return fmt.Errorf("%w: no member %q", meta.ErrNotFound, id)
	}
	body, _ := json.Marshal(memberRequest{ID: id})
	return n.membership(ctx, opRemove, body, func() error {
		return n.raft.RemoveServer(raft.ServerID(id), 0, timeout(ctx)).Error()
	})
}

func (n *Node) membership(ctx context.Context, op byte, body []byte, local func() error) error {
	return n.withLeader(ctx, func(leader string) error {
		if leader == "" {
			if err := local(); err != nil {
				if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
					return fmt.Errorf("%w: %w", ErrNotLeader, err)
				}
				return fmt.Errorf("cluster: membership change: %w", err)
			}
			return nil
		}
		resp, err := n.pool.call(ctx, leader, op, body)
		if err != nil {
			return err
		}
		return resp.err()
	})
}

// IssueToken makes a join token (only on the node holding the CA).
func (n *Node) IssueToken() (string, time.Time, error) {
	if n.id.caKey == nil {
		return "", time.Time{}, ErrNoCA
	}
	return n.tokens.issue(caFingerprint(n.id.ca), n.cfg.Advertise, n.now())
}

// Member is one server of the raft configuration as seen by itself.
type Member struct {
	ID          string `json:"id"`
	Address     string `json:"address"`
	State       string `json:"state"` // Leader, Follower, Candidate, or "unreachable"
	Voter       bool   `json:"voter"`
	LastContact string `json:"last_contact"` // with the leader, from the member's view; "" on the leader
	Term        uint64 `json:"term,omitempty"`
	Commit      uint64 `json:"commit_index,omitempty"`
	Applied     uint64 `json:"applied_index,omitempty"`
	// Files is the member's view of recording file replication.
	Files *FileStats `json:"files,omitempty"`
	// Outbox is the member's queue of Commands made without a quorum.
	Outbox *OutboxStats `json:"outbox,omitempty"`
}

// Status is the cluster as this node sees it, every member asked for its own state.
type Status struct {
	ID           string   `json:"id"`
	Leader       string   `json:"leader"`
	LeaderAddr   string   `json:"leader_address"`
	State        string   `json:"state"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Nodes        []Member `json:"nodes"`
}

// Metrics is what the appliance exports as callvault_raft_*; cheap to read.
type Metrics struct {
	State        raft.RaftState
	Term         uint64
	LastContact  time.Duration // since the last contact with the leader; 0 on the leader
	CommitIndex  uint64
	AppliedIndex uint64
}

// Metrics reads the node's raft gauges.
func (n *Node) Metrics() Metrics {
	m := Metrics{State: n.raft.State(), Term: n.raft.CurrentTerm(), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.raft.AppliedIndex()}
	if m.State != raft.Leader {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			m.LastContact = time.Since(lc)
		}
	}
	return m
}

// Ready reports whether the node can take writes: a leader is known.
func (n *Node) Ready(context.Context) error {
	if addr, _ := n.raft.LeaderWithID(); addr == "" {
		return fmt.Errorf("%w: raft state %s, term %d", ErrNoLeader, n.raft.State(), n.raft.CurrentTerm())
	}
	return nil
}

func (n *Node) self() Member {
	m := n.Metrics()
	lc := ""
	if m.State != raft.Leader && m.LastContact > 0 {
		lc = m.LastContact.Round(time.Millisecond).String()
	}
	me := Member{ID: n.id.id, Address: n.cfg.Advertise, State: m.State.String(), LastContact: lc,
		Term: m.Term, Commit: m.CommitIndex, Applied: m.AppliedIndex}
	if r := n.repl.Load(); r != nil {
		fs := r.Stats()
		me.Files = &fs
	}
	ob := n.Outbox()
	me.Outbox = &ob
	return me
}

// Status asks every member of the configuration for its own state (1 s
// each, in parallel); one that does not answer is "unreachable".
func (n *Node) Status(ctx context.Context) (Status, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return Status{}, fmt.Errorf("cluster: configuration: %w", err)
	}
	addr, lid := n.raft.LeaderWithID()
	me := n.self()
	st := Status{ID: n.id.id, Leader: string(lid), LeaderAddr: string(addr), State: me.State, Term: me.Term,
		CommitIndex: me.Commit, AppliedIndex: me.Applied}
	servers := f.Configuration().Servers
	st.Nodes = make([]Member, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		voter := s.Suffrage == raft.Voter
		if string(s.ID) == n.id.id {
			st.Nodes[i] = me
			st.Nodes[i].Voter = voter
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := Member{ID: string(s.ID), Address: string(s.Address), Voter: voter, State: "unreachable"}
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if resp, err := n.pool.call(cctx, string(s.Address), opStatus, nil); err == nil && resp.err() == nil {
				var peer Member
				if json.Unmarshal(resp.Status, &peer) == nil && peer.ID == m.ID {
					peer.Address, peer.Voter = m.Address, voter
					m = peer
				}
			}
			st.Nodes[i] = m
		}()
	}
	wg.Wait()
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].ID < st.Nodes[j].ID })
	return st, nil
}

// Snapshot takes a raft snapshot now and compacts the log behind it.
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }
