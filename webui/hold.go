package webui

import (
	"fmt"
	"net/http"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// casePreserveRequest puts a case on hold at once: every recording a
// search finds (Query, the search route's query string) or the IDs named.
type casePreserveRequest struct {
	Query string     `json:"query,omitempty"`
	IDs   []string   `json:"ids,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	Case  string     `json:"case,omitempty"` // a case name for the audit log
}

type casePreserveResponse struct {
	Held    int          `json:"held"`
	Results []bulkResult `json:"results"`
}

// maxCaseHold bounds how many recordings one call holds; a bigger case is
// held in several calls (the search's cursor narrows it).
const maxCaseHold = 10_000

// handleCasePreserve holds every recording of a search result (or a list
// of IDs) the caller may see, each one audited with the case name. The
// visibility is the caller's: recordings they may not see are neither
// held nor named.
func (s *Server) handleCasePreserve(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req casePreserveRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if (req.Query == "") == (len(req.IDs) == 0) {
		writeError(w, http.StatusBadRequest, "name the recordings: query (a search's query string) or ids, not both")
		return
	}
	now := s.now().UTC()
	var until time.Time
	if req.Until != nil {
		if until = req.Until.UTC(); !until.After(now) {
			writeError(w, http.StatusBadRequest, "until: "+until.Format(time.RFC3339)+" is not in the future")
			return
		}
	}
	ids := dedupe(req.IDs)
	if req.Query != "" {
		q, err := parseSearchQuery(req.Query, now)
		if err != nil {
			writeParamError(w, err)
			return
		}
		v := p.View()
		q.Scope, q.Preserved = v.Scope, q.Preserved || v.PreservedOnly
		found, err := s.searchIDs(q, maxCaseHold-len(ids))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if found == nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("the search finds more than %d recordings: narrow it (e.g. by time) and hold it in parts", maxCaseHold))
			return
		}
		ids = append(ids, found...)
	} else if len(ids) > maxCaseHold {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ids: %d recordings, at most %d", len(ids), maxCaseHold))
		return
	}
	detail := "case hold"
	if req.Case != "" {
		detail += " " + clip(req.Case)
	}
	if until.IsZero() {
		detail += ", indefinitely"
	} else {
		detail += ", until " + until.Format(time.RFC3339)
	}
	resp := casePreserveResponse{Results: make([]bulkResult, 0, len(ids))}
	for _, id := range ids {
		res := bulkResult{ID: clip(id), Status: "preserved"}
		rec, ok, err := s.lookupVisible(p, id)
		switch {
		case err != nil:
			res.Status = "failed"
			s.log.Error("case hold", "id", clip(id), "err", err)
		case !ok || rec.Status == meta.StatusDeleted:
			res.Status = "not-found"
		default:
			if _, err := s.data.Commands.Apply(r.Context(), &meta.Preserve{ID: rec.ID, By: p.User.ID, At: now, Until: until}); err != nil {
				res.Status, res.Message = "failed", "could not be held"
				s.log.Error("case hold", "id", rec.ID, "err", err)
				break
			}
			resp.Held++
			s.auditBestEffort(r, p, auditEvent{action: meta.AuditPreserve, recording: rec.ID, tenant: tenantOf(rec.Tenant), detail: detail})
		}
		resp.Results = append(resp.Results, res)
	}
	writeJSON(w, http.StatusOK, resp)
}

// searchIDs returns the IDs of every recording q finds (q's scope set by
// the caller), page after page, or nil when there are more than max: a
// case hold or an export of a search is refused rather than cut short.
// It never returns nil without an error otherwise (no match: empty).
func (s *Server) searchIDs(q meta.Query, max int) ([]string, error) {
	q.Limit, q.Cursor = meta.MaxLimit, ""
	ids := []string{}
	for {
		page, err := s.data.Catalog.Search(q)
		if err != nil {
			return nil, err
		}
		for _, rec := range page.Recordings {
			ids = append(ids, rec.ID)
		}
		if len(ids) > max {
			return nil, nil
		}
		if page.Next == "" {
			return ids, nil
		}
		q.Cursor = page.Next
	}
}
