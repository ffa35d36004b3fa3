package cluster

// File replication: every node copies the sealed recording files it should
// hold from a node that has them, over the cluster port ('F' streams).
//
// Pull, not push: each node decides for itself, from the replicated
// metadata alone, which files it should hold, so a node that was down, or
// just joined, catches up by the same pass that copies new recordings, and
// a copy cut off by a crash is simply pulled again. A recording is held by
// its writer (Recording.Node) and by the nodes listed in
// Recording.Replicas, each added by an AddReplica command that the
// receiving node commits only once its copy is verified and in place
// (store.InstallReplica). Holders that are no longer members do not count.
//
// A node pulls a sealed recording when fewer than `replicas` members hold
// it (cluster.replicas, or all members if fewer) and it is among the
// missing ones that rendezvous hashing of (recording ID, node ID) ranks
// first, so with five nodes and three replicas the same two nodes copy a
// file instead of all four racing. It also pulls a file the metadata says
// it holds but that is missing on disk, commits AddReplica for a verified
// file it holds but is not listed for (a crash between rename and commit),
// and removes its copies of deleted recordings.
//
// A full pass walks every recording in ID order (meta.RecordingsAfter, a
// read transaction per page): at start, every Interval (30 s), after a
// membership change, and when more than maxDirty recordings changed. In
// between, the FSM notes the ID of every recording a create, update or
// delete touched and kicks the copier, whose pass then looks at those
// alone (and at earlier failures, retried with a backoff up to Interval);
// passes are at least minPassGap apart.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// FileStore is what replication needs of the store (*store.Store).
type FileStore interface {
	// OpenSealedFile opens a sealed recording's encrypted file as stored.
	OpenSealedFile(id string) (*os.File, meta.Recording, error)
	// HasFile reports whether this node holds rec's file.
	HasFile(rec meta.Recording) bool
	// InstallReplica verifies a received copy against the seal hash,
	// installs it atomically and commits AddReplica.
	InstallReplica(ctx context.Context, rec meta.Recording, r io.Reader) (int64, error)
	// DropPartialReplicas removes half-received copies left by a crash.
	DropPartialReplicas() (int, error)
	// DropDeletedReplica removes this node's copy of a deleted recording.
	DropDeletedReplica(rec meta.Recording) (bool, error)
	// SignallingFile reads a recording's SIP side file as stored (nil if none).
	SignallingFile(id string) ([]byte, error)
	// InstallSignalling keeps a copy of a side file if every record
	// authenticates and it holds more messages than the local one.
	InstallSignalling(rec meta.Recording, b []byte) (bool, error)
}

// ReplicationConfig configures the copier.
type ReplicationConfig struct {
	// Replicas is how many nodes should hold each file (cluster.replicas);
	// 0 means DefaultReplicas. Capped at the number of members.
	Replicas int
	// Interval between full passes over every recording; 0: 30 s.
	Interval time.Duration
	// Workers is how many copies run at once; 0: 4. Each copy ends in two
	// fsyncs and a raft commit, so a few in flight share them.
	Workers int
}

// DefaultReplicas is cluster.replicas when not set.
const DefaultReplicas = 3

const (
	minPassGap = 250 * time.Millisecond
	// fileIdle: a file transfer that makes no progress this long is cut.
	fileIdle = 30 * time.Second
)

// FileStats is the replication state of recording files as this node sees
// it (cluster status, metrics).
type FileStats struct {
	// Replicas is the target number of copies (capped at the members).
	Replicas int `json:"replicas"`
	// Backlog: files this node should hold but does not yet (found by the
	// last pass, counting down as copies finish).
	Backlog int64 `json:"backlog"`
	// UnderReplicated: sealed recordings held by fewer members than
	// Replicas (counted by the last full pass, less the copies since).
	UnderReplicated int64 `json:"under_replicated"`
	// Copied, Failed and Bytes count this node's copies since it started.
	Copied uint64 `json:"copied"`
	Failed uint64 `json:"failed"`
	Bytes  uint64 `json:"bytes"`
	// Passes is the number of passes finished.
	Passes uint64 `json:"passes"`
}

// Replicator copies recording files to this node; see the top of this file.
type Replicator struct {
	n    *Node
	fs   FileStore
	cfg  ReplicationConfig
	stop chan struct{}
	done chan struct{}
	once sync.Once

	target                                atomic.Int64
	backlog, under                        atomic.Int64
	copied, failed, bytes, passes, served atomic.Uint64
	cancel                                context.CancelFunc

	// serveMu: serving a file holds it shared; Stop takes it to wait for
	// them and sets stopped, so no file is read after the store closes.
	serveMu sync.RWMutex
	stopped bool
}

// StartReplication starts the copier over fs, and serves this node's files
// to peers. Stop it before the store closes.
func (n *Node) StartReplication(fs FileStore, cfg ReplicationConfig) *Replicator {
	if cfg.Replicas <= 0 {
		cfg.Replicas = DefaultReplicas
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	r := &Replicator{n: n, fs: fs, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	n.repl.Store(r)
	go r.loop(ctx)
	return r
}

// Replication is the running copier, or nil.
func (n *Node) Replication() *Replicator { return n.repl.Load() }

// Stop stops the copier (a copy in flight is cut; its partial file is
// removed) and stops serving files; it waits for both.
func (r *Replicator) Stop() {
	r.once.Do(func() {
		r.n.repl.CompareAndSwap(r, nil)
		close(r.stop)
		r.cancel()
		<-r.done
		r.serveMu.Lock()
		r.stopped = true
		r.serveMu.Unlock()
	})
}

// Stats reads the counters.
func (r *Replicator) Stats() FileStats {
	return FileStats{Replicas: int(r.target.Load()), Backlog: r.backlog.Load(), UnderReplicated: r.under.Load(),
		Copied: r.copied.Load(), Failed: r.failed.Load(), Bytes: r.bytes.Load(), Passes: r.passes.Load()}
}

// maxRetryWait caps the wait before failed copies are tried again. The
// usual failure is a holder that is down; once it is back, its files
// should follow within seconds (a cap of cluster.replicas' Interval, 30 s,
// left a restarted node's files 13-17 s behind its metadata), and a copy
// from a holder still down fails at once (connection refused).
const maxRetryWait = 2 * time.Second

func (r *Replicator) loop(ctx context.Context) {
	defer close(r.done)
	if n, err := r.fs.DropPartialReplicas(); err != nil {
		r.n.log.Warn("remove partial copies", "err", err)
	} else if n > 0 {
		r.n.log.Info("removed partial copies left by a crash", "files", n)
	}
	var (
		retry       []string // copies that failed, tried again after backoff
		backoff     = time.Second
		lastFull    time.Time
		lastMembers string
		wait        time.Duration // 0: a full pass at once
	)
	for {
		t := time.NewTimer(wait)
		select {
		case <-r.stop:
			t.Stop()
			return
		case <-t.C:
		case <-r.n.kick:
			t.Stop()
		}
		ids, overflow := r.n.dirty.take()
		var failed []string
		// A node that joins learns the configuration from a raft snapshot,
		// not from a configuration entry the FSM sees: compare members.
		m := memberKey(r.n.members())
		if overflow || m != lastMembers || time.Since(lastFull) >= r.cfg.Interval {
			var ok bool
			if failed, ok = r.pass(ctx); ok {
				lastFull, lastMembers = time.Now(), m
			}
		} else {
			failed = r.passIDs(ctx, append(ids, retry...))
		}
		r.passes.Add(1)
		retry = failed
		wait = r.cfg.Interval - time.Since(lastFull)
		if lastMembers == "" {
			wait = time.Second // not a member yet: look again soon
		}
		if len(retry) > 0 {
			wait = min(wait, backoff)
			backoff = min(2*backoff, r.cfg.Interval, maxRetryWait)
		} else {
			backoff = time.Second
		}
		select { // keep kicks from running passes back to back
		case <-r.stop:
			return
		case <-time.After(minPassGap):
		}
	}
}

// dirtySet collects the recordings that committed commands touched since
// the last pass (the FSM adds them), so a pass after a seal looks at those
// alone instead of walking every recording.
type dirtySet struct {
	mu       sync.Mutex
	ids      map[string]struct{}
	overflow bool // more than maxDirty: the next pass walks everything
}

const maxDirty = 50_000

func (d *dirtySet) add(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.overflow {
		return
	}
	if len(d.ids) >= maxDirty {
		d.overflow, d.ids = true, nil
		return
	}
	if d.ids == nil {
		d.ids = map[string]struct{}{}
	}
	d.ids[id] = struct{}{}
}

// all marks that the next pass must walk everything (a membership change).
func (d *dirtySet) all() {
	d.mu.Lock()
	d.overflow, d.ids = true, nil
	d.mu.Unlock()
}

func (d *dirtySet) take() ([]string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.ids))
	for id := range d.ids {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	over := d.overflow
	d.ids, d.overflow = nil, false
	return ids, over
}

// members maps the raft configuration's server IDs to their addresses.
func (n *Node) members() map[string]string {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	m := map[string]string{}
	for _, s := range f.Configuration().Servers {
		m[string(s.ID)] = string(s.Address)
	}
	return m
}

// memberKey is the membership as one comparable string ("" for none).
func memberKey(m map[string]string) string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(ids, "\x00")
}

// pass walks every recording once and copies what this node lacks. It
// returns the IDs whose copy failed, and false if it could not walk (no
// configuration yet, or the database failed).
func (r *Replicator) pass(ctx context.Context) ([]string, bool) {
	v, ok := r.view()
	if !ok {
		return nil, false
	}
	var todo []string
	var under int64
	after := ""
	for {
		recs, err := r.n.cfg.DB.RecordingsAfter(after, 500)
		if err != nil {
			r.n.log.Error("replication pass: read recordings", "err", err)
			return nil, false
		}
		for _, rec := range recs {
			after = rec.ID
			need, short := r.consider(ctx, v, rec)
			if short {
				under++
			}
			if need {
				todo = append(todo, rec.ID)
			}
		}
		if len(recs) < 500 || ctx.Err() != nil {
			break
		}
	}
	r.under.Store(under)
	return r.copyAll(ctx, todo), ctx.Err() == nil
}

// passIDs looks at the given recordings only (those the FSM saw change,
// and earlier failures).
func (r *Replicator) passIDs(ctx context.Context, ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	v, ok := r.view()
	if !ok {
		return ids
	}
	var todo []string
	for _, id := range ids {
		rec, err := r.n.cfg.DB.Recording(id)
		if err != nil {
			continue // discarded, or not a recording
		}
		if need, _ := r.consider(ctx, v, rec); need {
			todo = append(todo, id)
		}
	}
	return r.copyAll(ctx, todo)
}

// clusterView is what a pass decides by: the members and the target.
type clusterView struct {
	self    string
	members map[string]string
	want    int
}

func (r *Replicator) view() (clusterView, bool) {
	v := clusterView{self: r.n.ID(), members: r.n.members()}
	v.want = min(r.cfg.Replicas, len(v.members))
	r.target.Store(int64(v.want))
	return v, v.want > 0
}

// consider decides about one recording: whether this node must copy its
// file, and whether it is under-replicated. On the way it removes the copy
// of a deleted recording and records a verified copy the metadata misses.
func (r *Replicator) consider(ctx context.Context, v clusterView, rec meta.Recording) (need, short bool) {
	if rec.Status == meta.StatusDeleted {
		if ok, err := r.fs.DropDeletedReplica(rec); err != nil {
			r.n.log.Warn("remove copy of a deleted recording", "id", rec.ID, "err", err)
		} else if ok {
			r.n.log.Info("removed copy of a deleted recording", "id", rec.ID)
		}
		return false, false
	}
	if !sealedRec(rec) {
		return false, false
	}
	holders := holdersOf(rec, v.members)
	short = len(holders) < v.want
	if rec.Node == v.self {
		return false, short
	}
	listed := slices.Contains(rec.Replicas, v.self)
	have := r.fs.HasFile(rec)
	switch {
	case listed && have:
		return false, short
	case have:
		// Verified and in place, but the commit was lost.
		r.record(ctx, rec.ID)
		return false, short
	case listed:
		return true, short // the metadata says we hold it, the disk disagrees
	}
	return short && chosen(rec.ID, v.self, holders, v.members, v.want), short
}

// copyAll copies the files, Workers at a time, and returns the failures.
func (r *Replicator) copyAll(ctx context.Context, todo []string) []string {
	r.backlog.Store(int64(len(todo)))
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
		next   = make(chan string)
	)
	for range min(r.cfg.Workers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				if err := r.copyOne(ctx, id); err != nil {
					mu.Lock()
					failed = append(failed, id)
					mu.Unlock()
					if ctx.Err() == nil {
						r.failed.Add(1)
						r.n.log.Warn("copy recording file", "id", id, "err", err)
					}
					continue
				}
				r.backlog.Add(-1)
				if r.under.Add(-1) < 0 {
					r.under.Store(0)
				}
			}
		}()
	}
	for _, id := range todo {
		if ctx.Err() != nil {
			break
		}
		next <- id
	}
	close(next)
	wg.Wait()
	return failed
}

func (r *Replicator) record(ctx context.Context, id string) {
	b, err := meta.Encode(&meta.AddReplica{ID: id, Node: r.n.ID()})
	if err == nil {
		_, err = r.n.Commit(ctx, b)
	}
	if err != nil && ctx.Err() == nil {
		r.n.log.Warn("record copy of recording file", "id", id, "err", err)
	}
}

func sealedRec(rec meta.Recording) bool {
	return (rec.Status == meta.StatusComplete || rec.Status == meta.StatusRecovered) && rec.File.SHA256 != "" && rec.File.Path != ""
}

// holdersOf lists the members that hold rec's file: its writer first, then
// the replicas in order.
func holdersOf(rec meta.Recording, members map[string]string) []string {
	var h []string
	if _, ok := members[rec.Node]; ok && rec.Node != "" {
		h = append(h, rec.Node)
	}
	for _, n := range rec.Replicas {
		if _, ok := members[n]; ok && n != rec.Node {
			h = append(h, n)
		}
	}
	return h
}

// chosen: is self among the first want-len(holders) non-holders in the
// rendezvous order of the recording?
func chosen(id, self string, holders []string, members map[string]string, want int) bool {
	type cand struct {
		node  string
		score [32]byte
	}
	var cs []cand
	for m := range members {
		if !slices.Contains(holders, m) {
			cs = append(cs, cand{m, sha256.Sum256([]byte(id + "\x00" + m))})
		}
	}
	sort.Slice(cs, func(i, j int) bool { return string(cs[i].score[:]) < string(cs[j].score[:]) })
	for i := 0; i < len(cs) && i < want-len(holders); i++ {
		if cs[i].node == self {
			return true
		}
	}
	return false
}

// copyOne pulls one file from a holder.
func (r *Replicator) copyOne(ctx context.Context, id string) error {
	rec, err := r.n.cfg.DB.Recording(id)
	if err != nil {
		return err
	}
	if !sealedRec(rec) || r.fs.HasFile(rec) {
		return nil
	}
	rc, err := r.FetchFile(ctx, rec)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := r.fs.InstallReplica(ctx, rec, rc)
	if err != nil {
		return err
	}
	r.copied.Add(1)
	r.bytes.Add(uint64(n))
	// The call's SIP messages travel with it, so an export here carries
	// them even if the writer is gone; a later read asks the writer again
	// for messages that came after the seal (store.Signalling).
	if b, err := r.FetchSignalling(ctx, rec); err != nil {
		r.n.log.Warn("copy of a recording's SIP messages", "id", rec.ID, "err", err)
	} else if len(b) > 0 {
		if _, err := r.fs.InstallSignalling(rec, b); err != nil {
			r.n.log.Warn("copy of a recording's SIP messages", "id", rec.ID, "err", err)
		}
	}
	return nil
}

// FetchSignalling reads rec's SIP side file from its writer, or, if the
// writer does not answer, from a member holding a copy (the store's
// RemoteFiles). nil without error: no member has any.
func (r *Replicator) FetchSignalling(ctx context.Context, rec meta.Recording) ([]byte, error) {
	members := r.n.members()
	var errs []error
	for _, h := range holdersOf(rec, members) {
		if h == r.n.ID() {
			continue
		}
		b, err := r.n.fetchRemoteSignalling(ctx, members[h], rec)
		if err == nil && len(b) > 0 {
			return b, nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: SIP of recording %s: %w", ErrNoHolder, rec.ID, errors.Join(errs...))
	}
	return nil, nil
}

// fetchRemoteSignalling asks the member at addr for rec's side file.
func (n *Node) fetchRemoteSignalling(ctx context.Context, addr string, rec meta.Recording) ([]byte, error) {
	c, err := dialMember(addr, n.id, streamFile, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errDial, addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	req, _ := json.Marshal(fileRequest{ID: rec.ID, Kind: fileKindSIP})
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeFrame(c, req); err != nil {
		return nil, err
	}
	b, err := readFrame(c)
	if err != nil {
		return nil, err
	}
	h, err := decodeFileHeader(b, fileKindSIP)
	if err != nil {
		return nil, err
	}
	if h.Error != "" {
		return nil, fmt.Errorf("%w: %s", ErrNoHolder, h.Error)
	}
	out := make([]byte, h.Size)
	if _, err := io.ReadFull(c, out); err != nil {
		return nil, fmt.Errorf("side file of %s from %s: %w", rec.ID, addr, err)
	}
	return out, nil
}

// FetchFile opens rec's encrypted file on a member that holds it (the
// store's RemoteFiles): the writer first, then the replicas. The caller
// verifies what it reads against the seal hash.
func (r *Replicator) FetchFile(ctx context.Context, rec meta.Recording) (io.ReadCloser, error) {
	members := r.n.members()
	var errs []error
	for _, h := range holdersOf(rec, members) {
		if h == r.n.ID() {
			continue
		}
		rc, err := r.n.openRemoteFile(ctx, members[h], rec)
		if err == nil {
			return rc, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", h, err))
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w: no member holds recording %s (writer %q, replicas %q)", ErrNoHolder, rec.ID, rec.Node, rec.Replicas)
	}
	return nil, fmt.Errorf("%w: recording %s: %w", ErrNoHolder, rec.ID, errors.Join(errs...))
}

// openRemoteFile asks the member at addr for rec's file.
func (n *Node) openRemoteFile(ctx context.Context, addr string, rec meta.Recording) (io.ReadCloser, error) {
	c, err := dialMember(addr, n.id, streamFile, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errDial, addr, err)
	}
	req, _ := json.Marshal(fileRequest{ID: rec.ID})
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var h fileHeader
	if err = writeFrame(c, req); err == nil {
		var b []byte
		if b, err = readFrame(c); err == nil {
			h, err = decodeFileHeader(b, "")
		}
	}
	if err == nil && h.Error != "" {
		err = fmt.Errorf("%w: %s", ErrNoHolder, h.Error)
	}
	if err == nil && h.SHA256 != rec.File.SHA256 {
		err = fmt.Errorf("%w: peer has seal hash %s, metadata here says %s", ErrProtocol, h.SHA256, rec.File.SHA256)
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	return &fileStream{c: c, r: io.LimitReader(c, h.Size), stop: stop}, nil
}

// fileStream reads a file transfer, cutting it when it stalls.
type fileStream struct {
	c    net.Conn
	r    io.Reader
	stop func() bool
}

func (f *fileStream) Read(p []byte) (int, error) {
	_ = f.c.SetReadDeadline(time.Now().Add(fileIdle))
	return f.r.Read(p)
}

func (f *fileStream) Close() error {
	f.stop()
	return f.c.Close()
}

// serveFile answers one 'F' connection: [frame request] -> [frame header][bytes].
func (n *Node) serveFile(c net.Conn) {
	r := n.repl.Load()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := readFrame(c)
	if err != nil {
		return
	}
	req, err := decodeFileRequest(b)
	var (
		f    *os.File
		rec  meta.Recording
		size int64
	)
	switch {
	case err != nil:
	case r == nil:
		err = errors.New("this node does not serve files (replication not running)")
	case req.Kind == fileKindSIP:
		r.serveSignalling(c, req.ID)
		return
	default:
		r.serveMu.RLock()
		defer r.serveMu.RUnlock()
		if r.stopped {
			err = errors.New("this node stopped serving files")
			break
		}
		if f, rec, err = r.fs.OpenSealedFile(req.ID); err == nil {
			defer f.Close()
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil {
				size = fi.Size()
			}
		}
	}
	h := fileHeader{Size: size, SHA256: rec.File.SHA256}
	if err != nil {
		h = fileHeader{Error: err.Error()}
	}
	out, _ := json.Marshal(h)
	if err := writeFrame(c, out); err != nil || h.Error != "" {
		return
	}
	// The reader cuts a stalled transfer; the writer gives each write a
	// generous deadline rather than one for the whole file.
	buf := make([]byte, 256<<10)
	var sent int64
	for sent < size {
		m, rerr := f.Read(buf[:min(int64(len(buf)), size-sent)])
		if m > 0 {
			_ = c.SetWriteDeadline(time.Now().Add(fileIdle))
			if _, err := c.Write(buf[:m]); err != nil {
				return
			}
			sent += int64(m)
		}
		if rerr != nil {
			return
		}
	}
	r.served.Add(1)
}

// serveSignalling answers a request for a recording's SIP side file.
func (r *Replicator) serveSignalling(c net.Conn, id string) {
	r.serveMu.RLock()
	defer r.serveMu.RUnlock()
	var h fileHeader
	var b []byte
	var err error
	if r.stopped {
		err = errors.New("this node stopped serving files")
	} else {
		b, err = r.fs.SignallingFile(id)
	}
	if err != nil {
		h.Error = err.Error()
	}
	h.Size = int64(len(b))
	out, _ := json.Marshal(h)
	if err := writeFrame(c, out); err != nil || h.Error != "" {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(fileIdle))
	_, _ = c.Write(b)
}
