package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/callvault/callvault/cluster"
	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/webui"
	"github.com/prometheus/client_golang/prometheus"
)

// ClusterConfig makes the appliance a raft member (issue 8).
type ClusterConfig struct {
	// Addr is the cluster port (mutual TLS between nodes); empty: a single node.
	Addr string `mapstructure:"addr" yaml:"addr"`
	// Advertise is the address the other nodes dial; default Addr.
	Advertise string `mapstructure:"advertise" yaml:"advertise"`
	// Join is the HTTP(S) URL of the member that issued JoinToken; used
	// once, on an empty data directory.
	Join string `mapstructure:"join" yaml:"join"`
	// JoinToken comes from `callvault cluster token`.
	JoinToken string `mapstructure:"join_token" yaml:"join_token"`
	// Replicas is how many nodes hold each sealed recording file (all
	// nodes if fewer); default 3.
	Replicas int `mapstructure:"replicas" yaml:"replicas"`
}

// prepareCluster runs before the store opens: a joining node fetches its
// certificate and the cluster's metadata into the empty data directory
// (so its store opens the cluster's keyring, not a fresh one); the first
// node creates the cluster CA. It returns the node ID, which the store
// writes into every recording it creates (where the file is).
func prepareCluster(ctx context.Context, cfg Config, log *slog.Logger) (nodeID string, joined bool, err error) {
	c := cfg.Cluster
	if c.Addr == "" {
		if c.Join != "" || c.JoinToken != "" {
			return "", false, fmt.Errorf("--join needs --cluster-addr (this node's cluster port)")
		}
		return "", false, nil
	}
	if cluster.NeedsJoin(cfg.DataDir) && c.Join != "" {
		if c.JoinToken == "" {
			return "", false, fmt.Errorf("--join %s needs --join-token (from `callvault cluster token`)", c.Join)
		}
		jctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		id, err := cluster.Join(jctx, cluster.JoinConfig{DataDir: cfg.DataDir, Advertise: advertise(c), Token: c.JoinToken})
		if err != nil {
			return "", false, err
		}
		log.Info("joined cluster: certificate and metadata received", "node", id, "via", c.Join)
		return id, true, nil
	}
	id, err := cluster.Prepare(cfg.DataDir)
	return id, false, err
}

func advertise(c ClusterConfig) string {
	if c.Advertise != "" {
		return c.Advertise
	}
	return c.Addr
}

// startCluster starts the raft node over the store's metadata and makes it
// the store's Committer. A node that just joined asks to become a voter.
func startCluster(ctx context.Context, cfg Config, st *store.Store, joined bool, log *slog.Logger) (*cluster.Node, error) {
	n, err := cluster.Open(cluster.Config{
		DataDir: cfg.DataDir, Addr: cfg.Cluster.Addr, Advertise: advertise(cfg.Cluster),
		DB: st.Meta(), Log: log.With("subsystem", "cluster"),
		// A recording created without a quorum and cut off by a crash is
		// in the metadata only once the outbox has drained: recover it then.
		OnOutboxDrained: func() {
			if err := st.Recover(context.Background()); err != nil {
				log.Error("recover recordings after the outbox drained", "err", err)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	st.SetCommitter(n)
	// Recordings a crash left open are recovered through raft, not in this
	// node's metadata alone (store.Config.DeferRecovery), once this node has
	// applied what the cluster committed meanwhile (perhaps their seal).
	// Without a quorum it goes on after a few seconds: its recoveries then
	// wait in the outbox.
	// With Commands still in the outbox it waits for the outbox to drain
	// (OnOutboxDrained): a recording whose seal is queued there would look
	// left open.
	switch q := n.Outbox().Queued; {
	case joined:
		// A node that just joined has recorded nothing yet; it is not a
		// voter either, so no leader would answer the wait below.
	case q > 0:
		log.Info("recovery of recordings left open waits for the outbox to drain", "queued", q)
	default:
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := n.WaitCommitted(wctx); err != nil {
			log.Warn("recovering recordings left open before catching up with the cluster", "err", err)
		}
		cancel()
		if err := st.Recover(ctx); err != nil {
			n.Close()
			return nil, fmt.Errorf("recover recordings left open: %w", err)
		}
	}
	// Copy sealed recording files between nodes, and let playback fetch a
	// file this node lacks (cluster/replicate.go). Stopped by stopFiles
	// before the store closes.
	repl := n.StartReplication(st, cluster.ReplicationConfig{Replicas: cfg.Cluster.Replicas})
	st.SetRemoteFiles(repl)
	if joined {
		via, err := cluster.JoinAddress(cfg.Cluster.JoinToken)
		if err == nil {
			vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = n.RequestVoter(vctx, via)
			cancel()
		}
		if err != nil {
			st.SetRemoteFiles(nil)
			repl.Stop()
			n.Close()
			return nil, fmt.Errorf("join as a voter: %w", err)
		}
		log.Info("added to the cluster as a voter", "node", n.ID())
	}
	return n, nil
}

// stopFiles stops copying and serving recording files: before the store
// closes, since both read and write it.
func (a *Appliance) stopFiles() {
	if a.node == nil {
		return
	}
	if r := a.node.Replication(); r != nil {
		a.store.SetRemoteFiles(nil)
		r.Stop()
	}
}

// clusterAdmin is the web UI's Admin plus the cluster routes (webui.ClusterAdmin).
type clusterAdmin struct {
	webui.Admin
	n *cluster.Node
}

var _ webui.ClusterAdmin = clusterAdmin{}

func (c clusterAdmin) ClusterStatus(ctx context.Context) (any, error) { return c.n.Status(ctx) }
func (c clusterAdmin) ClusterToken() (string, time.Time, error)       { return c.n.IssueToken() }
func (c clusterAdmin) ClusterRemove(ctx context.Context, id string) error {
	return c.n.Remove(ctx, id)
}
func (c clusterAdmin) WaitCommitted(ctx context.Context) error { return c.n.WaitCommitted(ctx) }

// readiness is the store's and, in a cluster, the raft node's: /readyz
// answers 503 with the raft state while no leader is known.
type readiness struct {
	st *store.Store
	n  *cluster.Node
}

func (r readiness) Ready(ctx context.Context) error {
	if err := r.st.Ready(ctx); err != nil {
		return err
	}
	if r.n != nil {
		return r.n.Ready(ctx)
	}
	return nil
}

// registerClusterMetrics exports callvault_raft_*.
func registerClusterMetrics(reg prometheus.Registerer, n *cluster.Node) {
	m := func(f func(cluster.Metrics) float64) func() float64 { return func() float64 { return f(n.Metrics()) } }
	reg.MustRegister(
		gaugeFunc("callvault_raft_state", "Raft state of this node: 0 follower, 1 candidate, 2 leader, 3 shutdown.",
			m(func(x cluster.Metrics) float64 { return float64(x.State) })),
		gaugeFunc("callvault_raft_term", "Current raft term.", m(func(x cluster.Metrics) float64 { return float64(x.Term) })),
		gaugeFunc("callvault_raft_last_contact_seconds", "Seconds since this follower last heard from the leader (0 on the leader).",
			m(func(x cluster.Metrics) float64 { return x.LastContact.Seconds() })),
		gaugeFunc("callvault_raft_commit_index", "Raft commit index.", m(func(x cluster.Metrics) float64 { return float64(x.CommitIndex) })),
		gaugeFunc("callvault_raft_applied_index", "Raft index applied to the metadata database.",
			m(func(x cluster.Metrics) float64 { return float64(x.AppliedIndex) })),
		gaugeFunc("callvault_raft_apply_lag", "Committed entries not yet applied here.", m(func(x cluster.Metrics) float64 {
			if x.CommitIndex < x.AppliedIndex {
				return 0
			}
			return float64(x.CommitIndex - x.AppliedIndex)
		})),
	)
	f := func(g func(cluster.FileStats) float64) func() float64 {
		return func() float64 {
			if r := n.Replication(); r != nil {
				return g(r.Stats())
			}
			return 0
		}
	}
	reg.MustRegister(
		gaugeFunc("callvault_cluster_replication_backlog", "Recording files this node should hold but does not yet.",
			f(func(s cluster.FileStats) float64 { return float64(s.Backlog) })),
		gaugeFunc("callvault_cluster_under_replicated_files", "Sealed recordings held by fewer members than cluster.replicas (this node's view).",
			f(func(s cluster.FileStats) float64 { return float64(s.UnderReplicated) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "callvault_cluster_file_copies_total", Help: "Recording files copied to this node, verified."},
			f(func(s cluster.FileStats) float64 { return float64(s.Copied) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "callvault_cluster_file_copy_failures_total", Help: "Copies of recording files to this node that failed (retried)."},
			f(func(s cluster.FileStats) float64 { return float64(s.Failed) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "callvault_cluster_file_copy_bytes_total", Help: "Bytes of recording files copied to this node."},
			f(func(s cluster.FileStats) float64 { return float64(s.Bytes) })),
	)
	reg.MustRegister(
		gaugeFunc("callvault_cluster_outbox_queued", "Commands this node made without a quorum, waiting in its durable outbox.",
			func() float64 { return float64(n.Outbox().Queued) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "callvault_cluster_outbox_committed_total", Help: "Commands from the outbox committed once the cluster was whole again."},
			func() float64 { return float64(n.Outbox().Drained) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "callvault_cluster_outbox_refused_total", Help: "Commands from the outbox the metadata refused when they were committed (logged, dropped)."},
			func() float64 { return float64(n.Outbox().Rejected) }),
	)
}

// webData is the web UI's Data; a cluster member's Admin also answers the
// cluster routes.
func (a *Appliance) webData() webui.Data {
	d := webData(a.store)
	if a.node != nil {
		d.Admin = clusterAdmin{Admin: d.Admin, n: a.node}
		d.Library = peerLibrary{Library: d.Library, st: a.store, self: a.node.ID()}
	}
	return d
}

// peerLibrary answers a clear error for a recording whose file another
// node holds when this node cannot get it: the store fetches a sealed file
// from a peer (cluster/replicate.go), so this is left for a recording still
// being written on another node (live audio is not streamed between nodes)
// and for a file whose holders are all unreachable.
type peerLibrary struct {
	webui.Library
	st   *store.Store
	self string
}

func (l peerLibrary) OpenSource(ctx context.Context, id string) (*audio.Source, io.Closer, error) {
	src, c, err := l.Library.OpenSource(ctx, id)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		if rec, rerr := l.st.Meta().Recording(id); rerr == nil && rec.Node != "" && rec.Node != l.self {
			return nil, nil, fmt.Errorf("%w: the audio of %s is on cluster node %s, not on this one (%s); play it there",
				store.ErrNoFile, id, rec.Node, l.self)
		}
	}
	return src, c, err
}
