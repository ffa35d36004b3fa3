package webui

import (
	"net/http"
	"os"
)

// Storage tiers and their usage (GET /api/v1/storage, the admin page's
// storage panel).
//
// The web UI does not know where recordings lie: the appliance tells it
// through Data.Storage, a list of named paths (the hot tier under the data
// directory, the archive mount). The usage is the file system's, read
// with statfs at the time of the request, so it includes whatever else
// shares the disk; that is what an admin planning capacity needs. A tier
// that cannot be read (an unmounted NAS) is listed with its error rather
// than dropped, since a missing archive is exactly what the panel must
// show. How many recordings a tier holds is not given: the metadata keeps
// no per-tier count, and walking millions of files per page load is not
// cheap (StorageTier.Count lets a wiring that has a cheap count supply it).

// StorageTier is one place recordings are kept.
type StorageTier struct {
	// Name is "hot", "archive" or another short name the appliance picks.
	Name string
	// Path is a directory on the tier's file system.
	Path string
	// Count, when set, returns how many recordings the tier holds.
	Count func() (int64, error)
}

// Storage lists the tiers. TierPaths satisfies it; the appliance wires it.
type Storage interface {
	StorageTiers() []StorageTier
}

// TierPaths is a fixed list of tiers.
type TierPaths []StorageTier

// StorageTiers returns the list.
func (t TierPaths) StorageTiers() []StorageTier { return t }

var _ Storage = TierPaths{}

// diskUsage is a file system's size in bytes.
type diskUsage struct {
	Used, Free, Total uint64
}

type storageTierJSON struct {
	Name       string `json:"name"`
	Path       string `json:"path"`
	BytesUsed  uint64 `json:"bytesUsed"`
	BytesFree  uint64 `json:"bytesFree"`
	BytesTotal uint64 `json:"bytesTotal"`
	// Recordings is null when the count is not cheap to know.
	Recordings *int64 `json:"recordings"`
	// Error says why the tier could not be read (then the sizes are 0).
	Error string `json:"error,omitempty"`
}

// storageOf reads each tier's usage.
func storageOf(st Storage) []storageTierJSON {
	out := []storageTierJSON{}
	if st == nil {
		return out
	}
	for _, tier := range st.StorageTiers() {
		j := storageTierJSON{Name: tier.Name, Path: tier.Path}
		if fi, err := os.Stat(tier.Path); err != nil {
			j.Error = err.Error()
		} else if !fi.IsDir() {
			j.Error = tier.Path + " is not a directory"
		} else if u, err := statfs(tier.Path); err != nil {
			j.Error = err.Error()
		} else {
			j.BytesUsed, j.BytesFree, j.BytesTotal = u.Used, u.Free, u.Total
		}
		if tier.Count != nil && j.Error == "" {
			if n, err := tier.Count(); err == nil {
				j.Recordings = &n
			}
		}
		out = append(out, j)
	}
	return out
}

// handleStorage lists the storage tiers with their usage. The paths are
// the appliance's own, which only its admins see.
func (s *Server) handleStorage(w http.ResponseWriter, r *http.Request, p *Principal) {
	writeJSON(w, http.StatusOK, storageOf(s.data.Storage))
}
