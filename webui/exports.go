package webui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/meta"
)

// Export jobs (POST /api/v1/exports and friends) and running the retention
// purge on demand (POST /api/v1/retention/purge): the evidence routes.
//
// An export names its recordings by IDs, by a search (the query string of
// GET /api/v1/recordings) or as "all preserved". The handler resolves them
// against the caller's view before the job is queued, so a job never
// holds a recording its owner may not see (an auditor's view holds only
// preserved recordings), and then the store's ExportJobs writes the
// bundle in the background, encrypted at rest. Exports are for the
// evidence roles, the same as the audit log: admin and auditor
// (ActAudit). A job is its owner's; an admin sees the jobs of the tenant.

// ExportJobs runs export bundles in the background. *store.ExportJobs
// satisfies it.
type ExportJobs interface {
	Submit(req store.ExportRequest) (store.ExportJob, error)
	Get(id string) (store.ExportJob, error)
	List(keep func(store.ExportJob) bool) []store.ExportJob
	Delete(id string) error
	Open(id string) (*store.ExportFile, store.ExportJob, error)
}

// Purger deletes recordings whose retention ran out. *store.Store
// satisfies it.
type Purger interface {
	Purge(ctx context.Context, now time.Time, max int) (int, error)
}

// maxExport bounds the recordings of one export job; a bigger case is
// exported in parts (narrowed by time).
const maxExport = 10_000

// exportRequest is POST /api/v1/exports: exactly one of the three.
type exportRequest struct {
	IDs       []string `json:"ids,omitempty"`
	Query     string   `json:"query,omitempty"`
	Preserved bool     `json:"preserved,omitempty"`
}

// purgeResponse answers POST /api/v1/retention/purge.
type purgeResponse struct {
	Deleted int `json:"deleted"`
}

func (s *Server) handleCreateExport(w http.ResponseWriter, r *http.Request, p *Principal) {
	if s.data.Exports == nil {
		writeError(w, http.StatusServiceUnavailable, "export jobs are not available on this appliance")
		return
	}
	var req exportRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	n := 0
	for _, set := range []bool{len(req.IDs) > 0, req.Query != "", req.Preserved} {
		if set {
			n++
		}
	}
	if n != 1 {
		writeError(w, http.StatusBadRequest, "name the recordings: ids, query (a search's query string) or preserved, exactly one of them")
		return
	}
	v := p.View()
	var ids []string
	switch {
	case len(req.IDs) > 0:
		if len(req.IDs) > maxExport {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("ids: %d recordings, at most %d", len(req.IDs), maxExport))
			return
		}
		for _, id := range dedupe(req.IDs) {
			rec, ok, err := s.lookupVisible(p, id)
			if err != nil {
				s.internalError(w, r, "export: look up recording", err)
				return
			}
			if !ok {
				writeError(w, http.StatusNotFound, "recording "+clip(id)+" not found")
				return
			}
			ids = append(ids, rec.ID)
		}
	default:
		q := meta.Query{Preserved: true}
		if req.Query != "" {
			var err error
			if q, err = parseSearchQuery(req.Query, s.now()); err != nil {
				writeParamError(w, err)
				return
			}
		}
		q.Scope, q.Preserved = v.Scope, q.Preserved || v.PreservedOnly
		found, err := s.searchIDs(q, maxExport)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if found == nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("the selection holds more than %d recordings: narrow it (e.g. by time) and export it in parts", maxExport))
			return
		}
		ids = append(ids, found...)
	}
	if len(ids) == 0 {
		writeError(w, http.StatusBadRequest, "the selection holds no recordings")
		return
	}
	job, err := s.data.Exports.Submit(store.ExportRequest{IDs: ids, By: p.User.ID, Tenant: p.User.Tenant, Address: clientAddr(r)})
	switch {
	case errors.Is(err, store.ErrJobQueueFull):
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusServiceUnavailable, "too many export jobs are waiting; try again later")
		return
	case err != nil:
		s.internalError(w, r, "export: submit job", err)
		return
	}
	if err := s.audit(r, p, auditEvent{action: meta.AuditExport, detail: fmt.Sprintf("export job %s queued: %d recordings", job.ID, len(ids))}); err != nil {
		_ = s.data.Exports.Delete(job.ID) // an export that is not on record does not run
		s.internalError(w, r, "export: audit", err)
		return
	}
	w.Header().Set("Location", "/api/v1/exports/"+job.ID)
	writeJSON(w, http.StatusAccepted, job)
}

// ownsJob: a job is its owner's; an admin sees the tenant's (the default
// tenant's admin: all).
func ownsJob(p *Principal, j store.ExportJob) bool {
	if j.By == p.User.ID {
		return true
	}
	return p.User.Role == meta.RoleAdmin && (p.User.Tenant == "" || p.User.Tenant == j.Tenant)
}

func (s *Server) handleListExports(w http.ResponseWriter, r *http.Request, p *Principal) {
	if s.data.Exports == nil {
		writeJSON(w, http.StatusOK, []store.ExportJob{})
		return
	}
	writeJSON(w, http.StatusOK, s.data.Exports.List(func(j store.ExportJob) bool { return ownsJob(p, j) }))
}

// visibleJob finds a job the caller owns; anything else is 404, so job
// IDs of others do not leak.
func (s *Server) visibleJob(w http.ResponseWriter, r *http.Request, p *Principal) (store.ExportJob, bool) {
	if s.data.Exports == nil {
		writeError(w, http.StatusNotFound, "export job not found")
		return store.ExportJob{}, false
	}
	j, err := s.data.Exports.Get(r.PathValue("id"))
	if err != nil || !ownsJob(p, j) {
		writeError(w, http.StatusNotFound, "export job not found")
		return store.ExportJob{}, false
	}
	return j, true
}

func (s *Server) handleGetExport(w http.ResponseWriter, r *http.Request, p *Principal) {
	if j, ok := s.visibleJob(w, r, p); ok {
		writeJSON(w, http.StatusOK, j)
	}
}

func (s *Server) handleDownloadExport(w http.ResponseWriter, r *http.Request, p *Principal) {
	j, ok := s.visibleJob(w, r, p)
	if !ok {
		return
	}
	f, info, err := s.data.Exports.Open(j.ID)
	switch {
	case errors.Is(err, store.ErrJobNotDone):
		writeError(w, http.StatusConflict, "export job "+j.ID+" is "+info.State+", not done")
		return
	case errors.Is(err, store.ErrJobNotFound):
		writeError(w, http.StatusNotFound, "export job not found")
		return
	case err != nil:
		s.internalError(w, r, "export: open bundle", err)
		return
	}
	defer f.Close()
	// Audited before the first byte leaves, like every download of audio.
	if err := s.audit(r, p, auditEvent{action: meta.AuditExport, detail: fmt.Sprintf("export job %s downloaded: %d recordings, %d bytes", j.ID, j.Total, f.Size())}); err != nil {
		s.internalError(w, r, "export: audit", err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="callvault-export-`+j.ID+`.zip"`)
	w.Header().Set("Cache-Control", "no-store")
	modified := j.Created
	if j.Finished != nil {
		modified = *j.Finished
	}
	http.ServeContent(w, r, "", modified, io.NewSectionReader(f, 0, f.Size()))
}

func (s *Server) handleDeleteExport(w http.ResponseWriter, r *http.Request, p *Principal) {
	j, ok := s.visibleJob(w, r, p)
	if !ok {
		return
	}
	if err := s.data.Exports.Delete(j.ID); err != nil && !errors.Is(err, store.ErrJobNotFound) {
		s.internalError(w, r, "export: delete job", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handlePurge runs the retention purge now (it also runs on its own every
// storage.purge_interval): what an operator does after shortening a
// policy, and what the end-to-end tests do after moving the clock.
func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request, p *Principal) {
	if s.data.Retention == nil {
		writeError(w, http.StatusServiceUnavailable, "retention is not available on this appliance")
		return
	}
	if p.User.Tenant != "" {
		// The purge is the installation's: it deletes every tenant's due recordings.
		writeError(w, http.StatusForbidden, "the retention purge is run by the installation's admins")
		return
	}
	n, err := s.data.Retention.Purge(r.Context(), s.now(), 0)
	if err != nil {
		s.internalError(w, r, "retention purge", err)
		return
	}
	if err := s.audit(r, p, auditEvent{action: meta.AuditPurge, detail: fmt.Sprintf("retention purge run by hand: %d recordings deleted", n)}); err != nil {
		s.internalError(w, r, "retention purge: audit", err)
		return
	}
	writeJSON(w, http.StatusOK, purgeResponse{Deleted: n})
}

// ParseSearchQuery parses a query string of GET /api/v1/recordings (the
// filters, sort and time range; the last 7 days unless from or to is
// given) into a meta.Query, for `callvault export --query` on a stopped
// appliance: the console selects recordings with the same syntax as the
// API. The caller sets the scope.
func ParseSearchQuery(raw string, now time.Time) (meta.Query, error) {
	return parseSearchQuery(raw, now)
}
