package webui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sync"

	"github.com/callvault/callvault/store/meta"
)

// Importer reconstructs the calls of one capture file (pcap or pcapng,
// read as a stream, never spooled to disk: it holds audio in the clear)
// into recordings, as `callvault import` does offline. The appliance wires
// a capture engine over its store, so on a cluster member the recordings
// are committed through raft like live capture's. The result is encoded
// as is (appliance.ImportResult).
type Importer interface {
	Import(ctx context.Context, name string, r io.Reader) (result any, calls int, err error)
}

// ErrBadCapture marks an Importer error caused by the file (not a pcap, a
// broken record): the route answers 400 with it.
var ErrBadCapture = errors.New("webui: not a readable capture file")

// maxImportBytes bounds one imported capture file.
const maxImportBytes = 16 << 30

// importing admits one import at a time: an import runs a whole capture
// engine and writes as fast as the disk allows.
type importing struct{ mu sync.Mutex }

// handleImport runs POST /api/v1/imports?name=FILE: the request body is
// the capture file. Installation admins only: capture assigns recordings
// to tenants by the configured numbers and networks, across tenants.
func (s *Server) handleImport(w http.ResponseWriter, r *http.Request, p *Principal) {
	if p.User.Tenant != "" {
		writeError(w, http.StatusForbidden, "captures are imported by the installation's admins")
		return
	}
	if s.data.Imports == nil {
		writeError(w, http.StatusServiceUnavailable, "importing captures is not available on this appliance")
		return
	}
	if !s.importing.mu.TryLock() {
		writeError(w, http.StatusConflict, "another capture is being imported; try again when it has finished")
		return
	}
	defer s.importing.mu.Unlock()
	name := path.Base(r.URL.Query().Get("name"))
	if name == "." || name == "/" {
		name = "upload.pcap"
	}
	body := http.MaxBytesReader(w, r.Body, maxImportBytes)
	res, calls, err := s.data.Imports.Import(r.Context(), name, body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a capture file may have at most %d bytes", int64(maxImportBytes)))
		return
	case errors.Is(err, ErrBadCapture):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.internalError(w, r, "import capture", err)
		return
	}
	if err := s.audit(r, p, auditEvent{action: meta.AuditUpload, detail: fmt.Sprintf("capture %q imported: %d calls", name, calls)}); err != nil {
		s.internalError(w, r, "import capture: audit", err)
		return
	}
	writeJSON(w, http.StatusCreated, res)
}
