// Package appliance is Callvault's composition root: it turns the
// configuration into each subsystem's own Config, builds the store, the
// web UI and (later) capture and cluster, starts them in order and stops
// them in reverse. Only cmd imports it.
package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/callvault/callvault/cluster"
	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/webui"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are what cmd hands to Serve.
type Options struct {
	Config     Config
	ConfigFile string
	Build      Build
	// Stderr receives the log and the one-time admin password.
	Stderr io.Writer
	// Environ is the process environment (os.Environ()), read here and
	// nowhere else, for CALLVAULT_ADMIN_PASSWORD and the master key.
	Environ []string
	// Ready, if set, receives the HTTP address once the appliance serves
	// (tests use it instead of parsing logs).
	Ready chan<- string
	// Now is the clock of the store and the web UI; nil is time.Now. Only
	// a binary built with -tags devclock sets it (serve --dev-clock-file,
	// devclock.go), so a production appliance always runs on the real one.
	Now func() time.Time
}

// Appliance holds the running subsystems.
type Appliance struct {
	cfg   Config
	log   *slog.Logger
	reg   *prometheus.Registry
	store *store.Store
	web   *webui.Server
	ln    net.Listener
	live  *liveCapture // nil without capture.interfaces
	// exports runs export jobs for the API; closed after HTTP, before the store.
	exports *store.ExportJobs
	node    *cluster.Node // nil without cluster.addr
}

// Serve runs the appliance until ctx is cancelled, then shuts down in
// order within the configured shutdown timeout.
func Serve(ctx context.Context, o Options) error {
	log := NewLogger(o.Config.Log, o.Stderr)
	a, err := open(o, log)
	if err != nil {
		return err
	}
	if o.ConfigFile != "" {
		log.Info("configuration loaded", "file", o.ConfigFile)
	}
	log.Info("callvault serving", "version", o.Build.Version, "commit", o.Build.Commit,
		"data_dir", o.Config.DataDir, "url", "http://"+a.ln.Addr().String())
	if o.Ready != nil {
		o.Ready <- a.ln.Addr().String()
	}
	<-ctx.Done()
	return a.shutdown(log)
}

func open(o Options, log *slog.Logger) (*Appliance, error) {
	cfg := o.Config
	a := &Appliance{cfg: cfg, log: log, reg: newRegistry(o.Build)}

	// A joining node fetches the cluster's metadata before its store
	// opens, so the store starts with the cluster's keyring (cluster.go).
	nodeID, joined, err := prepareCluster(context.Background(), cfg, log)
	if err != nil {
		return nil, err
	}
	// Storage first: nothing may accept traffic before recordings have a
	// place to go.
	sc := storeConfig(cfg, o.Environ, log)
	sc.Now = o.Now
	if nodeID != "" {
		sc.Node = nodeID // recordings name the node that holds their file
		// Recovered recordings are committed through raft (startCluster).
		sc.DeferRecovery = true
	}
	st, err := store.Open(sc)
	if err != nil {
		return nil, err
	}
	a.store = st
	announceCreated(st, o.Stderr)
	log.Info("storage open", "data_dir", cfg.DataDir, "master_key", st.KeySource)
	registerStoreMetrics(a.reg, st)
	// The raft node next: from here on every Command goes through it.
	if cfg.Cluster.Addr != "" {
		if a.node, err = startCluster(context.Background(), cfg, st, joined, log); err != nil {
			_ = st.Close()
			return nil, err
		}
		registerClusterMetrics(a.reg, a.node)
	}
	fail := func(err error) (*Appliance, error) {
		if a.exports != nil {
			_ = a.exports.Close()
		}
		a.stopFiles()
		_ = st.Close()
		if a.node != nil {
			a.node.Close()
		}
		return nil, err
	}
	if err := ensureAdmin(st, o.Environ, o.Stderr, log); err != nil {
		return fail(err)
	}
	if err := applyRetentionDefault(context.Background(), st, cfg.Storage.DefaultRetentionDays, log); err != nil {
		return fail(err)
	}

	// Export jobs write bundles in the background (store/exportjobs.go).
	if a.exports, err = st.NewExportJobs(store.ExportJobsConfig{}); err != nil {
		return fail(err)
	}
	data := a.webData()
	data.Exports = a.exports
	data.Storage = storageTiers(cfg)
	data.Imports = importer{cfg: cfg, st: st, log: log.With("subsystem", "import")}

	web, err := webui.New(webui.Config{
		SecureCookies:        cfg.HTTP.TLS,
		Version:              o.Build.Version,
		DefaultRetentionDays: cfg.Storage.DefaultRetentionDays,
		PreserveDays:         cfg.Storage.PreserveDays,
		Now:                  o.Now,
	}, log, a.reg, a.reg, accounts{st}, readiness{st, a.node}, data)
	if err != nil {
		return fail(err)
	}
	a.web = web

	// Live capture (live.go) needs the store and is stopped before it.
	if a.live, err = startLive(cfg, st, a.reg, log); err != nil {
		return fail(err)
	}

	// Listen last, so a port that is taken fails start-up before anything
	// else runs, and a listening port means the appliance is whole.
	ln, err := listen(cfg, o.Stderr, log)
	if err != nil {
		a.live.stop()
		return fail(err)
	}
	a.ln = ln
	web.Serve(ln)
	return a, nil
}

// shutdown stops intake first (HTTP), then the producers of recordings,
// then closes storage, so every recording in flight is sealed before the
// metadata database closes.
func (a *Appliance) shutdown(log *slog.Logger) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := a.web.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		errs = append(errs, fmt.Errorf("stop http: %w", err))
	}
	a.live.stop() // seals every open recording, so before the store closes
	// Export jobs read the store: stopped (and their files removed) before it closes.
	if err := a.exports.Close(); err != nil {
		errs = append(errs, fmt.Errorf("stop export jobs: %w", err))
	}
	// The file copier reads and writes the store: stopped before it.
	a.stopFiles()
	// The store before the raft node: closing it commits the audit
	// checkpoint, which goes through raft.
	if err := a.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	if a.node != nil {
		a.node.Close()
	}
	log.Info("callvault stopped", "took", time.Since(start).Round(time.Millisecond).String())
	return errors.Join(errs...)
}
