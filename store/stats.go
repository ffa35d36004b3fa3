package store

import "sync/atomic"

// Stats are the store's counters and gauges. They are plain atomics so the
// store stays free of Prometheus (and so of net/http); the appliance
// registers collectors that read them.
type Stats struct {
	RecordingsOpen    atomic.Int64 // recordings being written now
	RecordingsCreated atomic.Int64
	RecordingsSealed  atomic.Int64
	RecordingsFailed  atomic.Int64 // aborted or unrecoverable
	Recovered         atomic.Int64 // recovered after a crash
	OrphansRemoved    atomic.Int64 // hot-tier files a crash left without a recording, removed
	BytesWritten      atomic.Int64 // plaintext bytes accepted
	WriteErrors       atomic.Int64 // write/flush/seal errors other than a full disk
	DiskFullErrors    atomic.Int64 // recordings refused or cut short for lack of space
	DiskFull          atomic.Bool  // the hot tier is below storage.min_free_bytes now
	Deleted           atomic.Int64
	TierMoved         atomic.Int64 // recordings moved to the archive tier
	TierMovedBytes    atomic.Int64
	TierErrors        atomic.Int64 // failed moves (archive unmounted, read-only, hash mismatch)
	ArchiveDown       atomic.Bool  // the archive tier is unavailable now
	ReadErrors        atomic.Int64 // recordings that could not be opened for reading
	Syncs             atomic.Int64 // fsync/syncfs calls of the once-a-second flusher
	Purged            atomic.Int64 // recordings deleted because their retention ran out
	PurgeErrors       atomic.Int64 // deletions by retention that failed
	SignalMessages    atomic.Int64 // SIP messages stored beside recordings

	ExportJobsQueued    atomic.Int64 // export jobs waiting now
	ExportJobsRunning   atomic.Int64 // export jobs running now
	ExportJobsDone      atomic.Int64
	ExportJobsFailed    atomic.Int64
	ExportJobsCancelled atomic.Int64
	ExportBytes         atomic.Int64 // bytes of finished export bundles
}
