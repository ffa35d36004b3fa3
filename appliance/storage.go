package appliance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/meta"
	"github.com/prometheus/client_golang/prometheus"
)

// storeConfig builds the store's Config from the appliance configuration
// and the environment (the master key's sources).
func storeConfig(cfg Config, environ []string, log *slog.Logger) store.Config {
	env := envMap(environ)
	host, _ := os.Hostname()
	sc := store.Config{
		DataDir: cfg.DataDir,
		Keys: store.KeySource{
			Env:            env["CALLVAULT_MASTER_KEY"],
			CredentialsDir: env["CREDENTIALS_DIRECTORY"],
			Credential:     cfg.Keys.Credential,
			Passphrase:     cfg.Keys.Passphrase,
			KeyFile:        cfg.MasterKeyFile(),
		},
		FlushInterval: cfg.Storage.FlushInterval,
		MinFreeBytes:  cfg.Storage.MinFreeBytes,
		PurgeInterval: cfg.Storage.PurgeInterval,
		Node:          host,
		Log:           log.With("subsystem", "store"),
	}
	if cfg.Storage.ArchiveDir != "" {
		sc.Archive = store.ArchiveConfig{
			Dir:              cfg.Storage.ArchiveDir,
			AfterDays:        cfg.Storage.ArchiveAfterDays,
			HighWatermarkPct: cfg.Storage.HotHighWatermark,
			Interval:         cfg.Storage.TierInterval,
		}
	}
	return sc
}

// OpenStore opens the data directory for a CLI command (import, keys,
// user, ...) the way serve does, printing a newly created master key file.
func OpenStore(cfg Config, environ []string, stderr io.Writer) (*store.Store, error) {
	log := NewLogger(cfg.Log, stderr)
	st, err := store.Open(storeConfig(cfg, environ, log))
	if err != nil {
		return nil, err
	}
	announceCreated(st, stderr)
	return st, nil
}

func announceCreated(st *store.Store, stderr io.Writer) {
	for _, f := range st.Created {
		fmt.Fprintf(stderr, "\n  Created the master key file %s.\n  Back it up and keep it apart from the data: without it no recording can be read.\n\n", f)
	}
}

// registerStoreMetrics exports the store's counters.
func registerStoreMetrics(reg prometheus.Registerer, st *store.Store) {
	s := st.Stats()
	counter, gauge := counterFunc, gaugeFunc
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(
		gauge("callvault_store_recordings_open", "Recordings being written now.", func() float64 { return float64(s.RecordingsOpen.Load()) }),
		counter("callvault_store_recordings_created_total", "Recordings started.", s.RecordingsCreated.Load),
		counter("callvault_store_recordings_sealed_total", "Recordings sealed (complete or recovered).", s.RecordingsSealed.Load),
		counter("callvault_store_recordings_failed_total", "Recordings aborted or unrecoverable.", s.RecordingsFailed.Load),
		counter("callvault_store_recordings_recovered_total", "Recordings recovered after a crash.", s.Recovered.Load),
		counter("callvault_store_orphan_files_removed_total", "Hot-tier files a crash left without a recording, removed at start.", s.OrphansRemoved.Load),
		counter("callvault_store_recordings_deleted_total", "Recordings deleted (crypto-shredded).", s.Deleted.Load),
		counter("callvault_store_bytes_written_total", "Plaintext audio bytes written to encrypted files.", s.BytesWritten.Load),
		counter("callvault_store_write_errors_total", "Write, flush and seal errors other than a full disk.", s.WriteErrors.Load),
		counter("callvault_store_disk_full_errors_total", "Recordings refused or cut short because the hot tier was full.", s.DiskFullErrors.Load),
		gauge("callvault_store_disk_full", "1 while the hot tier is below storage.min_free_bytes.", func() float64 { return b2f(s.DiskFull.Load()) }),
		counter("callvault_store_read_errors_total", "Recordings that could not be opened for reading.", s.ReadErrors.Load),
		counter("callvault_retention_purged_total", "Recordings deleted because their retention ran out.", s.Purged.Load),
		counter("callvault_retention_purge_errors_total", "Deletions by retention that failed.", s.PurgeErrors.Load),
		gauge("callvault_export_jobs_queued", "Export jobs waiting to run.", func() float64 { return float64(s.ExportJobsQueued.Load()) }),
		gauge("callvault_export_jobs_running", "Export jobs running.", func() float64 { return float64(s.ExportJobsRunning.Load()) }),
		counter("callvault_export_jobs_done_total", "Export jobs that finished with a bundle.", s.ExportJobsDone.Load),
		counter("callvault_export_jobs_failed_total", "Export jobs that failed.", s.ExportJobsFailed.Load),
		counter("callvault_export_jobs_cancelled_total", "Export jobs cancelled before they finished.", s.ExportJobsCancelled.Load),
		counter("callvault_export_bytes_total", "Bytes of finished export bundles.", s.ExportBytes.Load),
		counter("callvault_signal_messages_total", "SIP messages stored beside recordings.", s.SignalMessages.Load),
		counter("callvault_store_flush_syncs_total", "fsync and syncfs calls of the once-a-second flusher of open recordings.", s.Syncs.Load),
		counter("callvault_tier_moved_total", "Recordings moved to the archive tier.", s.TierMoved.Load),
		counter("callvault_tier_moved_bytes_total", "Bytes moved to the archive tier.", s.TierMovedBytes.Load),
		counter("callvault_tier_errors_total", "Failed moves to the archive tier.", s.TierErrors.Load),
		gauge("callvault_tier_archive_down", "1 while the archive tier is unmounted or not writable.", func() float64 { return b2f(s.ArchiveDown.Load()) }),
	)
}

// applyRetentionDefault makes storage.default_retention_days the
// installation's retention policy when it is set (> 0): the configuration
// file is authoritative for it, so a fleet managed by configuration stays
// consistent. Tenants and groups get their own policies in the admin UI.
func applyRetentionDefault(ctx context.Context, st *store.Store, days int, log *slog.Logger) error {
	if days <= 0 {
		return nil
	}
	cur, ok, err := st.Meta().RetentionFor("", "")
	if err != nil {
		return err
	}
	if ok && cur == days {
		return nil
	}
	if _, err := st.Apply(ctx, &meta.SetRetention{Days: days}); err != nil {
		return fmt.Errorf("storage.default_retention_days: %w", err)
	}
	log.Info("installation retention policy set from the configuration", "days", days)
	return nil
}
