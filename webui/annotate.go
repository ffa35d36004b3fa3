package webui

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/google/uuid"
)

// Changes to recordings: deletion, notes and scores, annotations, holds
// and links. Each route's Action (apiRoutes) is checked by guard; each
// handler then checks visibility (404), applies one meta command through
// the Committer, and audits it. IDs and clocks are decided here, before
// the command is built, because Apply must be deterministic.

type noteRequest struct {
	Text string `json:"text"`
}

type ratingRequest struct {
	Rating int `json:"rating"`
}

type categoryRequest struct {
	Category string `json:"category"`
}

type fieldRequest struct {
	// Value "" removes the field.
	Value string `json:"value"`
}

type completeRequest struct {
	Complete bool `json:"complete"`
}

type reviewRequest struct {
	Minutes int `json:"minutes"`
}

type transcriptRequest struct {
	Transcript string `json:"transcript"`
}

type bookmarkRequest struct {
	Type     meta.BookmarkType `json:"type"`
	OffsetMs int64             `json:"offsetMs"`
	Label    string            `json:"label,omitempty"`
}

type preserveRequest struct {
	// Until ends the hold by itself. Absent: the installation's
	// preservation period (storage.preserve_days) past the later of now
	// and the recording's deletion date, or indefinitely when none is set.
	Until *time.Time `json:"until,omitempty"`
	// Indefinite holds the recording until someone releases it (two
	// people), whatever the preservation period.
	Indefinite bool `json:"indefinite,omitempty"`
}

type relatedRequest struct {
	Other    string `json:"other"`
	Relation string `json:"relation"`
}

type idsRequest struct {
	IDs []string `json:"ids"`
}

// bulkResult is one ID's outcome of a bulk change.
type bulkResult struct {
	ID string `json:"id"`
	// Status is deleted, preserved (refused: legal hold), busy (still
	// being recorded), not-found (missing or not the caller's to see) or
	// failed.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

type bulkResponse struct {
	Results []bulkResult `json:"results"`
}

// maxBulk bounds a bulk delete.
const maxBulk = 500

// change is the common path of the single-recording changes: visibility,
// apply, audit, answer with the updated recording.
func (s *Server) change(w http.ResponseWriter, r *http.Request, p *Principal, action meta.AuditAction, detail string, cmd func(rec *meta.Recording) meta.Command) {
	rec, ok := s.visible(w, r, p)
	if !ok {
		return
	}
	if _, err := s.data.Commands.Apply(r.Context(), cmd(&rec)); err != nil {
		switch {
		case errors.Is(err, meta.ErrInvalid), errors.Is(err, meta.ErrExists):
			writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "meta: "))
		case errors.Is(err, meta.ErrNotFound), errors.Is(err, meta.ErrDeleted):
			writeError(w, http.StatusNotFound, errNoRecording)
		default:
			s.internalError(w, r, "apply "+string(action), err)
		}
		return
	}
	if err := s.audit(r, p, auditEvent{action: action, recording: rec.ID, tenant: tenantOf(rec.Tenant), detail: detail}); err != nil {
		s.internalError(w, r, "the change was applied but its audit entry failed", err)
		return
	}
	s.answerRecording(w, r, p, rec.ID, http.StatusOK)
}

// answerRecording re-reads the recording after a change and answers it.
func (s *Server) answerRecording(w http.ResponseWriter, r *http.Request, p *Principal, id string, code int) {
	rec, ok, err := s.lookupVisible(p, id)
	if err != nil {
		s.internalError(w, r, "read recording", err)
		return
	}
	if !ok { // released by this very change (an auditor cannot, but be safe)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	related, err := s.visibleRelated(p, &rec)
	if err != nil {
		s.internalError(w, r, "related recordings", err)
		return
	}
	writeJSON(w, code, toJSON(&rec, related))
}

func newID(w http.ResponseWriter, r *http.Request, s *Server) (string, bool) {
	id, err := uuid.NewV7()
	if err != nil {
		s.internalError(w, r, "new id", err)
		return "", false
	}
	return id.String(), true
}

func (s *Server) handleAddNote(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req noteRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	req.Text = strings.TrimSpace(req.Text)
	if req.Text == "" || len(req.Text) > maxNoteLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("text: 1 to %d bytes", maxNoteLen))
		return
	}
	nid, ok := newID(w, r, s)
	if !ok {
		return
	}
	note := meta.Note{ID: nid, Author: p.User.ID, Time: s.now().UTC(), Text: req.Text}
	s.change(w, r, p, meta.AuditNote, "note "+nid, func(rec *meta.Recording) meta.Command {
		return &meta.AddNote{ID: rec.ID, Note: note}
	})
}

func (s *Server) handleSetRating(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req ratingRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Rating < 1 || req.Rating > 5 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("rating: %d is outside 1..5", req.Rating))
		return
	}
	s.change(w, r, p, meta.AuditRating, fmt.Sprintf("rating %d", req.Rating), func(rec *meta.Recording) meta.Command {
		return &meta.SetRating{ID: rec.ID, Rating: req.Rating}
	})
}

func (s *Server) handleSetCategory(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req categoryRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	s.change(w, r, p, meta.AuditAnnotate, "category "+clip(req.Category), func(rec *meta.Recording) meta.Command {
		return &meta.SetCategory{ID: rec.ID, Category: req.Category}
	})
}

func (s *Server) handleSetField(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req fieldRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	key := r.PathValue("key")
	s.change(w, r, p, meta.AuditAnnotate, "custom field "+clip(key), func(rec *meta.Recording) meta.Command {
		return &meta.SetCustomField{ID: rec.ID, Key: key, Value: req.Value}
	})
}

func (s *Server) handleSetComplete(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req completeRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	s.change(w, r, p, meta.AuditAnnotate, fmt.Sprintf("complete transaction %v", req.Complete), func(rec *meta.Recording) meta.Command {
		return &meta.SetComplete{ID: rec.ID, Complete: req.Complete}
	})
}

func (s *Server) handleSetReviewMinutes(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req reviewRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Minutes < 0 || req.Minutes > 100_000 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("minutes: %d is outside 0..100000", req.Minutes))
		return
	}
	s.change(w, r, p, meta.AuditAnnotate, fmt.Sprintf("review minutes %d", req.Minutes), func(rec *meta.Recording) meta.Command {
		return &meta.SetReviewMinutes{ID: rec.ID, Minutes: req.Minutes}
	})
}

func (s *Server) handleSetTranscript(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req transcriptRequest
	if !decodeJSONLimit(w, r, &req, 2<<20) { // transcripts may be up to 1 MiB
		return
	}
	s.change(w, r, p, meta.AuditAnnotate, fmt.Sprintf("transcript of %d bytes", len(req.Transcript)), func(rec *meta.Recording) meta.Command {
		return &meta.SetTranscript{ID: rec.ID, Transcript: req.Transcript}
	})
}

func (s *Server) handleAddBookmark(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req bookmarkRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if !containsString(bookmarkValues, string(req.Type)) {
		writeError(w, http.StatusBadRequest, "type: must be one of "+strings.Join(bookmarkValues, ", "))
		return
	}
	if req.OffsetMs < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("offsetMs: %d is negative", req.OffsetMs))
		return
	}
	bid, ok := newID(w, r, s)
	if !ok {
		return
	}
	bm := meta.Bookmark{ID: bid, Type: req.Type, OffsetMs: req.OffsetMs, Author: p.User.ID, Label: req.Label, Time: s.now().UTC()}
	s.change(w, r, p, meta.AuditAnnotate, fmt.Sprintf("bookmark %s at %d ms", req.Type, req.OffsetMs), func(rec *meta.Recording) meta.Command {
		return &meta.AddBookmark{ID: rec.ID, Bookmark: bm}
	})
}

func (s *Server) handlePreserve(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req preserveRequest
	if !decodeOptionalJSON(w, r, &req) {
		return
	}
	now := s.now().UTC()
	var until time.Time
	if req.Until != nil {
		if req.Indefinite {
			writeError(w, http.StatusBadRequest, "until and indefinite exclude each other")
			return
		}
		until = req.Until.UTC()
		if !until.After(now) {
			writeError(w, http.StatusBadRequest, "until: "+until.Format(time.RFC3339)+" is not in the future")
			return
		}
	}
	period := req.Until == nil && !req.Indefinite && s.cfg.PreserveDays > 0
	detail := "indefinitely"
	switch {
	case !until.IsZero():
		detail = "until " + until.Format(time.RFC3339)
	case period:
		detail = "for the preservation period: " + strconv.Itoa(s.cfg.PreserveDays) + " days past its deletion date"
	}
	s.change(w, r, p, meta.AuditPreserve, detail, func(rec *meta.Recording) meta.Command {
		if period {
			// The preservation period counts from the later of now and
			// the date retention would delete the recording.
			base := now
			if rec.DeleteAfter.After(base) {
				base = rec.DeleteAfter
			}
			until = base.AddDate(0, 0, s.cfg.PreserveDays)
		}
		return &meta.Preserve{ID: rec.ID, By: p.User.ID, At: now, Until: until}
	})
}

// handleRelease lifts a hold. A hold until a date is lifted at once. An
// indefinite one follows the two-person rule: the first call records the
// request (202), and an admin other than the requester approves it with a
// second call (200). Both are audited.
func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request, p *Principal) {
	rec, ok := s.visible(w, r, p)
	if !ok {
		return
	}
	now := s.now().UTC()
	hold := rec.Preserved
	if hold == nil || !hold.Until.IsZero() {
		s.change(w, r, p, meta.AuditRelease, "", func(rec *meta.Recording) meta.Command {
			return &meta.Release{ID: rec.ID, By: p.User.ID, At: now}
		})
		return
	}
	switch {
	case hold.ReleaseRequestedBy == "":
		if _, err := s.data.Commands.Apply(r.Context(), &meta.RequestRelease{ID: rec.ID, By: p.User.ID, At: now}); err != nil {
			s.internalError(w, r, "request release", err)
			return
		}
		if err := s.audit(r, p, auditEvent{action: meta.AuditRelease, recording: rec.ID, tenant: tenantOf(rec.Tenant),
			detail: "release of an indefinite hold requested; needs a second admin's approval"}); err != nil {
			s.internalError(w, r, "the request was recorded but its audit entry failed", err)
			return
		}
		s.answerRecording(w, r, p, rec.ID, http.StatusAccepted)
	case hold.ReleaseRequestedBy == p.User.ID:
		writeError(w, http.StatusConflict, "you requested this release: it needs another admin's approval")
	case p.User.Role != meta.RoleAdmin:
		s.auditDenied(r, p, rec.ID, "release of an indefinite hold by a non-admin")
		writeError(w, http.StatusForbidden, "releasing an indefinite hold needs an admin's approval")
	default:
		detail := "release approved; requested by " + hold.ReleaseRequestedBy + " at " + hold.ReleaseRequestedAt.Format(time.RFC3339)
		s.change(w, r, p, meta.AuditRelease, detail, func(rec *meta.Recording) meta.Command {
			return &meta.Release{ID: rec.ID, By: p.User.ID, At: now}
		})
	}
}

func (s *Server) handleListRelated(w http.ResponseWriter, r *http.Request, p *Principal) {
	rec, ok := s.visible(w, r, p)
	if !ok {
		return
	}
	related, err := s.visibleRelated(p, &rec)
	if err != nil {
		s.internalError(w, r, "related recordings", err)
		return
	}
	writeJSON(w, http.StatusOK, related)
}

func (s *Server) handleLinkRelated(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req relatedRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	req.Relation = strings.TrimSpace(req.Relation)
	if req.Relation == "" || len(req.Relation) > 64 {
		writeError(w, http.StatusBadRequest, "relation: 1 to 64 bytes (e.g. transfer, consultation)")
		return
	}
	// Both ends must be visible; the other one answers like the first, so
	// neither route probes IDs.
	other, ok, err := s.lookupVisible(p, req.Other)
	if err != nil {
		s.internalError(w, r, "read recording", err)
		return
	}
	if !ok {
		s.auditDenied(r, p, req.Other, "link to a recording that is not visible")
		writeError(w, http.StatusNotFound, errNoRecording)
		return
	}
	s.change(w, r, p, meta.AuditAnnotate, "related "+other.ID+" ("+req.Relation+")", func(rec *meta.Recording) meta.Command {
		return &meta.LinkRelated{ID: rec.ID, Other: other.ID, Relation: req.Relation}
	})
}

// deleteOne crypto-shreds one visible recording and audits it; the result
// is ready for a bulk answer.
func (s *Server) deleteOne(r *http.Request, p *Principal, id string) (bulkResult, error) {
	rec, ok, err := s.lookupVisible(p, id)
	if err != nil {
		return bulkResult{ID: id, Status: "failed", Message: "internal error"}, err
	}
	if !ok {
		return bulkResult{ID: id, Status: "not-found", Message: errNoRecording}, nil
	}
	refused := func(status, msg string) (bulkResult, error) {
		s.auditBestEffort(r, p, auditEvent{action: meta.AuditDelete, outcome: "denied", recording: rec.ID, tenant: tenantOf(rec.Tenant), detail: msg})
		return bulkResult{ID: id, Status: status, Message: msg}, nil
	}
	if rec.Preserved != nil {
		return refused("preserved", "under legal hold: release it before deleting")
	}
	err = s.data.Library.Delete(r.Context(), rec.ID, p.User.ID)
	switch {
	case errors.Is(err, meta.ErrPreserved):
		return refused("preserved", "under legal hold: release it before deleting")
	case errors.Is(err, meta.ErrInvalid):
		return refused("busy", "still being recorded")
	case errors.Is(err, meta.ErrNotFound), errors.Is(err, meta.ErrDeleted):
		return bulkResult{ID: id, Status: "not-found", Message: errNoRecording}, nil
	case err != nil:
		return bulkResult{ID: id, Status: "failed", Message: "internal error"}, err
	}
	if err := s.audit(r, p, auditEvent{action: meta.AuditDelete, recording: rec.ID, tenant: tenantOf(rec.Tenant), detail: "reference " + rec.Reference}); err != nil {
		return bulkResult{ID: id, Status: "deleted", Message: "deleted, but the audit entry failed"}, err
	}
	return bulkResult{ID: id, Status: "deleted"}, nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, p *Principal) {
	res, err := s.deleteOne(r, p, r.PathValue("id"))
	if err != nil {
		s.internalError(w, r, "delete recording", err)
		return
	}
	switch res.Status {
	case "deleted":
		w.WriteHeader(http.StatusNoContent)
	case "not-found":
		s.auditDenied(r, p, r.PathValue("id"), "no visible recording")
		writeError(w, http.StatusNotFound, errNoRecording)
	default:
		writeError(w, http.StatusConflict, "the recording is "+res.Message)
	}
}

func (s *Server) handleBulkDelete(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req idsRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	ids := dedupe(req.IDs)
	if len(ids) == 0 || len(ids) > maxBulk {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ids: %d recordings, name 1 to %d", len(ids), maxBulk))
		return
	}
	resp := bulkResponse{Results: make([]bulkResult, 0, len(ids))}
	for _, id := range ids {
		res, err := s.deleteOne(r, p, id)
		if err != nil {
			s.log.Error("bulk delete", "id", clip(id), "err", err)
		}
		res.ID = clip(id)
		resp.Results = append(resp.Results, res)
	}
	writeJSON(w, http.StatusOK, resp)
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
