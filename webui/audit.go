package webui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// The audit log. Every access to a recording (details, play, download,
// zip) and every change (notes, scores, holds, deletion), every search,
// sign-in and sign-out, failed sign-in, upload, token and account change
// is appended to the hash-chained log in store/meta through the
// Committer, which group-commits concurrent appends (one fsync for many
// requests).
//
// Audio is audited BEFORE its first byte leaves: if the entry cannot be
// written, the caller gets a 500 and no audio. A change is audited after
// it was applied (an entry must not claim a change that failed); if that
// append fails, the answer is a 500 that says so, and the log has the
// detail under its correlation ID.
//
// An entry about a recording carries the recording's tenant, so that
// tenant's admins and auditors see every access to their calls, also a
// global admin's. Other entries carry the actor's tenant.

// auditEvent is what a handler knows of an event; audit adds who, when
// and from where.
type auditEvent struct {
	action    meta.AuditAction
	outcome   string // "" = ok
	recording string
	tenant    *string // nil: the actor's tenant
	detail    string
}

// tenantOf returns a pointer for auditEvent.tenant.
func tenantOf(t string) *string { return &t }

func (s *Server) audit(r *http.Request, p *Principal, ev auditEvent) error {
	e := s.auditEntry(r, p, ev)
	// The entry is written even if the client hangs up meanwhile.
	_, err := s.data.Commands.Apply(context.WithoutCancel(r.Context()), &meta.AppendAudit{Entry: e})
	if err != nil {
		return fmt.Errorf("append audit entry (%s): %w", ev.action, err)
	}
	return nil
}

func (s *Server) auditEntry(r *http.Request, p *Principal, ev auditEvent) meta.AuditEntry {
	e := meta.AuditEntry{
		Time: s.now().UTC(), Actor: p.User.ID, ActorName: p.User.Username, Tenant: p.User.Tenant,
		Action: ev.action, Outcome: ev.outcome, Recording: ev.recording, Address: clientAddr(r), Detail: ev.detail,
	}
	if ev.tenant != nil {
		e.Tenant = *ev.tenant
	}
	return e
}

// auditAnon records an event without a signed-in principal (a failed
// sign-in): the actor is "anonymous" and the name is what was tried.
func (s *Server) auditAnon(r *http.Request, action meta.AuditAction, tenant, name, detail string) {
	e := meta.AuditEntry{
		Time: s.now().UTC(), Actor: "anonymous", ActorName: clip(name), Tenant: clipN(tenant, 128),
		Action: action, Outcome: "denied", Address: clientAddr(r), Detail: detail,
	}
	if _, err := s.data.Commands.Apply(context.WithoutCancel(r.Context()), &meta.AppendAudit{Entry: e}); err != nil {
		s.log.Error("append audit entry", "action", action, "err", err)
	}
}

// auditBestEffort appends an entry where the answer does not depend on it
// (sign-in, sign-out, refusals): a failure is logged, not answered.
func (s *Server) auditBestEffort(r *http.Request, p *Principal, ev auditEvent) {
	if err := s.audit(r, p, ev); err != nil {
		s.log.Error("audit", "action", ev.action, "user", p.User.Username, "err", err)
	}
}

// auditDenied records a refused request (403 by the role table, or 404 for
// a recording the caller may not see) in the caller's own tenant.
// recording is the ID the caller asked for, if any: it goes into the
// entry's recording field, so readers of the log who may not see that
// recording do not see the entry either (handleAudit).
func (s *Server) auditDenied(r *http.Request, p *Principal, recording, detail string) {
	action := deniedAction(r)
	if len(recording) > 64 {
		recording = recording[:64]
	}
	s.auditBestEffort(r, p, auditEvent{action: action, outcome: "denied", recording: strings.ToValidUTF8(recording, "?"), detail: r.Method + " " + r.Pattern + ": " + detail})
}

// deniedAction files a refusal under the action the request tried.
func deniedAction(r *http.Request) meta.AuditAction {
	for _, rt := range auditActionByPattern {
		if rt.pattern == r.Pattern {
			return rt.action
		}
	}
	return meta.AuditView
}

var auditActionByPattern = []struct {
	pattern string
	action  meta.AuditAction
}{
	{"GET /api/v1/recordings", meta.AuditSearch},
	{"GET /api/v1/recordings/{id}/audio", meta.AuditPlay},
	{"GET /api/v1/recordings/{id}/download", meta.AuditDownload},
	{"POST /api/v1/recordings/download", meta.AuditDownload},
	{"DELETE /api/v1/recordings/{id}", meta.AuditDelete},
	{"POST /api/v1/recordings/delete", meta.AuditDelete},
	{"POST /api/v1/recordings/{id}/preserve", meta.AuditPreserve},
	{"POST /api/v1/recordings/{id}/release", meta.AuditRelease},
	{"POST /api/v1/recordings/{id}/notes", meta.AuditNote},
	{"PUT /api/v1/recordings/{id}/rating", meta.AuditRating},
	{"POST /fw/Apps/Recorder/WebAPI/Recordings", meta.AuditUpload},
	{"POST /api/v1/recordings", meta.AuditUpload},
	{"POST /api/v1/tokens", meta.AuditToken},
	{"DELETE /api/v1/tokens/{id}", meta.AuditToken},
	{"POST /api/v1/users", meta.AuditUser},
	{"GET /api/v1/users", meta.AuditUser},
	{"POST /api/v1/users/{id}/password", meta.AuditUser},
	{"POST /api/v1/users/{id}/disable", meta.AuditUser},
	{"POST /api/v1/users/{id}/enable", meta.AuditUser},
}

// auditEntryJSON is an audit entry as the API shows it.
type auditEntryJSON struct {
	Seq       uint64           `json:"seq"`
	Time      time.Time        `json:"time"`
	Actor     string           `json:"actor"`
	ActorName string           `json:"actorName,omitempty"`
	Tenant    string           `json:"tenant"`
	Action    meta.AuditAction `json:"action"`
	Outcome   string           `json:"outcome"`
	Recording string           `json:"recording,omitempty"`
	Address   string           `json:"address,omitempty"`
	Detail    string           `json:"detail,omitempty"`
	Hash      string           `json:"hash"`
}

type auditResponse struct {
	Entries []auditEntryJSON `json:"entries"`
	// Next is the cursor of the next (older) page; empty on the last one.
	Next string `json:"next"`
}

var auditParams = []paramDoc{
	{name: "user", typ: "string", desc: "the acting user's ID"},
	{name: "recording", typ: "string", desc: "the recording ID"},
	{name: "action", typ: "string", desc: "what happened", enum: auditActionNames()},
	{name: "from", typ: "date-time", desc: "entries at or after this time"},
	{name: "to", typ: "date-time", desc: "entries before this time"},
	{name: "limit", typ: "integer", desc: "entries per page, 1 to 1000 (default 100)"},
	{name: "cursor", typ: "string", desc: "the `next` value of the previous page"},
}

// auditActionNames lists meta's audit actions.
func auditActionNames() []string {
	as := meta.AuditActions()
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	return out
}

// parseAuditQuery reads the audit route's query string.
func parseAuditQuery(raw string) (meta.AuditQuery, error) {
	var q meta.AuditQuery
	vals, err := parseStrictQuery(raw, auditParams)
	if err != nil {
		return q, err
	}
	for name, v := range vals {
		switch name {
		case "user":
			q.Actor = v
		case "recording":
			q.Recording = v
		case "action":
			if !containsString(auditActionNames(), v) {
				return q, badParam(name, "unknown action %q", clip(v))
			}
			q.Action = meta.AuditAction(v)
		case "from", "to":
			t, err := parseTimeParam(v)
			if err != nil {
				return q, &paramError{param: name, err: err}
			}
			if name == "from" {
				q.Start = t
			} else {
				q.End = t
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return q, badParam(name, "must be an integer from 1 to 1000")
			}
			q.Limit = n
		case "cursor":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n == 0 {
				return q, badParam(name, "must be the next value of a previous page")
			}
			q.Before = n
		}
	}
	return q, nil
}

// auditReaderSees decides whether an audit reader may see entries about
// recording id: an entry names a recording and says what was done to it,
// so it is shown only to who may know of the recording. A global reader
// sees all; a tenant admin every recording of the tenant, deleted ones
// too (their tombstones keep the tenant, and the delete must stay
// auditable); an auditor what their view shows. Entries about IDs that
// never existed (probes) are shown only to global readers.
func (s *Server) auditReaderSees(p *Principal, id string) (bool, error) {
	v := p.View()
	if v.Scope.All && !v.PreservedOnly {
		return true, nil
	}
	rec, err := s.data.Catalog.Recording(id)
	if errors.Is(err, meta.ErrNotFound) || errors.Is(err, meta.ErrInvalid) {
		return v.Scope.All, nil
	}
	if err != nil {
		return false, err
	}
	if v.PreservedOnly {
		return v.Sees(&rec), nil
	}
	return rec.Tenant == p.User.Tenant, nil
}

// handleAudit lists audit entries of the caller's tenant (every tenant for
// an admin or auditor of the default tenant, who administer the appliance).
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request, p *Principal) {
	q, err := parseAuditQuery(r.URL.RawQuery)
	if err != nil {
		writeParamError(w, err)
		return
	}
	// Every search made before this read is in the answer.
	if err := s.auditQ.flush(r.Context()); err != nil {
		s.internalError(w, r, "flush queued audit entries", err)
		return
	}
	if t := p.User.Tenant; t != "" {
		q.Tenant = &t
	}
	page, err := s.data.Catalog.SearchAudit(q)
	if err != nil {
		s.internalError(w, r, "search audit log", err)
		return
	}
	resp := auditResponse{Entries: make([]auditEntryJSON, 0, len(page.Entries))}
	if page.Next != 0 {
		resp.Next = strconv.FormatUint(page.Next, 10)
	}
	seen := map[string]bool{}
	for _, e := range page.Entries {
		if e.Recording != "" {
			ok, known := seen[e.Recording]
			if !known {
				if ok, err = s.auditReaderSees(p, e.Recording); err != nil {
					s.internalError(w, r, "audit entry visibility", err)
					return
				}
				seen[e.Recording] = ok
			}
			if !ok {
				continue
			}
		}
		resp.Entries = append(resp.Entries, auditEntryJSON{Seq: e.Seq, Time: e.Time, Actor: e.Actor, ActorName: e.ActorName,
			Tenant: e.Tenant, Action: e.Action, Outcome: e.Outcome, Recording: e.Recording, Address: e.Address, Detail: e.Detail, Hash: e.Hash})
	}
	writeJSON(w, http.StatusOK, resp)
}
