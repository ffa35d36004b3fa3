package webui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
)

// Directory finds users, their groups and API tokens. *meta.DB satisfies it.
type Directory interface {
	User(id string) (meta.User, error)
	UserByName(tenant, username string) (meta.User, error)
	Users(tenant string) ([]meta.User, error)
	Group(id string) (meta.Group, error)
	TokenByHash(h [32]byte) (meta.Token, error)
	Tokens(user string) ([]meta.Token, error)
}

// Catalog reads recordings and the audit log. *meta.DB satisfies it.
type Catalog interface {
	Recording(id string) (meta.Recording, error)
	Search(q meta.Query) (meta.Page, error)
	SearchAudit(q meta.AuditQuery) (meta.AuditPage, error)
}

// Library opens recordings' audio and deletes recordings. The appliance
// wires it to the store (OpenAudio + Source, and the crypto-shredding
// Delete).
type Library interface {
	// OpenSource opens the recording's decrypted file for rendering; the
	// closer releases the file.
	OpenSource(ctx context.Context, id string) (*audio.Source, io.Closer, error)
	// Delete crypto-shreds the recording; a preserved one is refused with
	// meta.ErrPreserved.
	Delete(ctx context.Context, id, by string) error
}

// Committer applies metadata commands (tokens, users, notes, holds).
// *store.Store satisfies it.
type Committer interface {
	Apply(ctx context.Context, cmd meta.Command) (meta.Result, error)
}

// Recordings creates recordings from uploads. The appliance wires it to
// the store's encrypted writer.
type Recordings interface {
	CreateUpload(ctx context.Context, rec meta.Recording) (UploadWriter, error)
}

// UploadWriter is one upload being written to the store.
type UploadWriter interface {
	ID() string
	// Write appends the file's bytes as they arrive. An UploadWriter that
	// is also an io.ReaderFrom is given the rest of the attachment to read
	// for itself (the store reads it straight into its chunk buffer); its
	// ReadFrom must return the reader's errors as the reader returned them.
	Write(p []byte) (int, error)
	// Audio makes what was written readable and opens it, decrypted, so the
	// duration is measured from the stored bytes themselves.
	Audio(ctx context.Context) (AudioFile, error)
	// Seal completes the recording with what was measured.
	Seal(ctx context.Context, f UploadFinal) error
	// Abort removes the file and its metadata; after Seal (even a failed
	// one) it deletes the sealed recording instead.
	Abort(ctx context.Context, by string) error
}

// AudioFile is a stored file opened for reading.
type AudioFile interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// UploadFinal is what the upload handler learned from the audio.
type UploadFinal struct {
	DurationMs      int64
	DurationFlagged bool
	Channels        int
	Codecs          []string
	// Audit entries to commit in the seal's own transaction (the upload's
	// entry: one commit instead of two, and never one without the other).
	Audit []meta.AuditEntry
}

// Data is everything the API reads and writes, wired by the appliance.
type Data struct {
	Users      Directory
	Commands   Committer
	Recordings Recordings
	Catalog    Catalog
	Library    Library
	Admin      Admin
	// Storage lists the storage tiers for the admin page (storage.go);
	// nil lists none.
	Storage Storage
	// Exports runs export jobs (exports.go); nil answers 503.
	Exports ExportJobs
	// Retention runs the purge on demand (exports.go); nil answers 503.
	Retention Purger
	// Imports reconstructs calls from capture files (imports.go); nil answers 503.
	Imports Importer
}

// route is one API route: the action it needs is part of its definition,
// so authorization cannot be forgotten and a test can enumerate it.
type route struct {
	method, pattern string
	action          Action
	handle          func(w http.ResponseWriter, r *http.Request, p *Principal)
	// doc describes the route in the OpenAPI document (openapi.go); it sits
	// here so a route cannot be added without saying what it answers.
	doc routeDoc
}

// RouteInfo describes an API route for tests and documentation.
type RouteInfo struct {
	Method, Pattern string
	Action          Action
}

// apiRoutes is the API. Add routes here; the route × role test picks them
// up by itself, and the OpenAPI document is generated from the docs.
func (s *Server) apiRoutes() []route {
	const (
		GET, POST, PUT, DELETE = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	)
	upload := routeDoc{summary: "Upload a recording (Imagicle Call Recording API): multipart/form-data with the parts jsondata and attachment",
		bodyCT: "multipart/form-data", ok: 201, resp: map[string]string{}, errs: []int{400, 409}, badRequest: uploadError{}}
	peaks := newPeakCache(peakCacheSize) // the peaks route's cache (peaks.go)
	change := func(summary string, body any) routeDoc {
		return routeDoc{summary: summary, body: body, ok: 200, resp: recordingJSON{}, errs: []int{400, 404}}
	}
	return []route{
		// The Imagicle Call Recording upload route, kept verbatim so existing
		// integrations work unchanged, and the same under /api/v1.
		{POST, "/fw/Apps/Recorder/WebAPI/Recordings", ActUpload, s.handleUpload, upload},
		{POST, "/api/v1/recordings", ActUpload, s.handleUpload, upload},

		{GET, "/api/v1/recordings", ActView, s.handleSearch, routeDoc{summary: "Search recordings (what the caller may see; last 7 days unless from/to is given)",
			params: searchParamDocs(), ok: 200, resp: searchResponse{}, errs: []int{400}}},
		{GET, "/api/v1/recordings/{id}", ActView, s.handleRecording, routeDoc{summary: "A recording's details: notes, bookmarks, quality, retention, related recordings",
			ok: 200, resp: recordingJSON{}, errs: []int{404}}},
		{GET, "/api/v1/recordings/{id}/audio", ActPlay, s.handleAudio, routeDoc{summary: "Play: the audio as WAV (with HTTP Range) or MP3",
			params: audioParams, ok: 200, respCT: []string{"audio/wav", "audio/mpeg"}, errs: []int{206, 400, 404, 409, 416, 501, 503}}},
		{GET, "/api/v1/recordings/{id}/download", ActDownload, s.handleDownload, routeDoc{summary: "Download as <yyyymmdd>_<hhmm>_<reference>.mp3 or .wav",
			params: downloadParams, ok: 200, respCT: []string{"audio/mpeg", "audio/wav"}, errs: []int{400, 404, 409, 501, 503}}},
		{POST, "/api/v1/recordings/download", ActBulkDownload, s.handleZip, routeDoc{summary: "Download up to 20 recordings as one zip",
			body: zipRequest{}, ok: 200, respCT: []string{"application/zip"}, errs: []int{400, 404, 409, 501, 503}}},
		{DELETE, "/api/v1/recordings/{id}", ActDelete, s.handleDelete, routeDoc{summary: "Delete (crypto-shred) a recording; a preserved one is refused with 409",
			ok: 204, errs: []int{404, 409}}},
		{POST, "/api/v1/recordings/delete", ActDelete, s.handleBulkDelete, routeDoc{summary: "Delete several recordings; the answer has a result per ID",
			body: idsRequest{}, ok: 200, resp: bulkResponse{}, errs: []int{400}}},
		{POST, "/api/v1/recordings/{id}/notes", ActNotes, s.handleAddNote, change("Add a note", noteRequest{})},
		{PUT, "/api/v1/recordings/{id}/rating", ActNotes, s.handleSetRating, change("Score the call, 1 to 5", ratingRequest{})},
		{PUT, "/api/v1/recordings/{id}/category", ActNotes, s.handleSetCategory, change("Set the category (empty clears it)", categoryRequest{})},
		{PUT, "/api/v1/recordings/{id}/fields/{key}", ActNotes, s.handleSetField, change("Set a custom field (an empty value removes it)", fieldRequest{})},
		{PUT, "/api/v1/recordings/{id}/complete", ActNotes, s.handleSetComplete, change("Set the complete-transaction flag", completeRequest{})},
		{PUT, "/api/v1/recordings/{id}/review-minutes", ActNotes, s.handleSetReviewMinutes, change("Record the minutes spent reviewing", reviewRequest{})},
		{PUT, "/api/v1/recordings/{id}/transcript", ActNotes, s.handleSetTranscript, change("Replace the transcript", transcriptRequest{})},
		{POST, "/api/v1/recordings/{id}/bookmarks", ActNotes, s.handleAddBookmark, change("Add a bookmark", bookmarkRequest{})},
		{POST, "/api/v1/recordings/{id}/preserve", ActPreserve, s.handlePreserve, routeDoc{summary: "Put under legal hold (optionally until a time)",
			body: preserveRequest{}, bodyOptional: true, ok: 200, resp: recordingJSON{}, errs: []int{204, 400, 404}}},
		{POST, "/api/v1/recordings/preserve", ActPreserve, s.handleCasePreserve, routeDoc{summary: "Hold a case at once: every recording a search finds (query) or the IDs named",
			body: casePreserveRequest{}, ok: 200, resp: casePreserveResponse{}, errs: []int{400}}},
		{POST, "/api/v1/recordings/{id}/release", ActPreserve, s.handleRelease, routeDoc{summary: "Lift the legal hold (an indefinite one: the first call requests, 202; another admin's call approves, 200)",
			ok: 200, alsoOK: []int{202}, resp: recordingJSON{}, errs: []int{204, 404, 409}}},
		{GET, "/api/v1/recordings/{id}/related", ActView, s.handleListRelated, routeDoc{summary: "Related recordings the caller may see",
			ok: 200, resp: []relatedJSON{}, errs: []int{404}}},
		{POST, "/api/v1/recordings/{id}/related", ActNotes, s.handleLinkRelated, change("Link another recording (both ways)", relatedRequest{})},

		{GET, "/api/v1/audit", ActAudit, s.handleAudit, routeDoc{summary: "The audit log of the caller's tenant, newest first",
			params: auditParams, ok: 200, resp: auditResponse{}, errs: []int{400}}},

		{GET, "/api/v1/me", ActAccount, s.handleMe, routeDoc{summary: "The signed-in account and what it may do", ok: 200, resp: meResponse{}}},
		{GET, "/api/v1/tokens", ActAccount, s.handleListTokens, routeDoc{summary: "The caller's API tokens", ok: 200, resp: []tokenInfo{}}},
		{POST, "/api/v1/tokens", ActAccount, s.handleCreateToken, routeDoc{summary: "Create an API token (with a password or a session, not with a token)",
			body: createTokenRequest{}, ok: 201, resp: createTokenResponse{}, errs: []int{400}}},
		{DELETE, "/api/v1/tokens/{id}", ActAccount, s.handleRevokeToken, routeDoc{summary: "Revoke one of the caller's tokens", ok: 204, errs: []int{404}}},

		{GET, "/api/v1/users", ActAdmin, s.handleListUsers, routeDoc{summary: "The users of the admin's tenant", ok: 200, resp: []userJSON{}}},
		{POST, "/api/v1/users", ActAdmin, s.handleCreateUser, routeDoc{summary: "Create a user in the admin's tenant",
			body: createUserRequest{}, ok: 201, resp: map[string]string{}, errs: []int{400, 409}}},
		{POST, "/api/v1/users/{id}/password", ActAccount, s.handleSetPassword, routeDoc{summary: "Set a password: an admin for a user of the tenant, or users for themselves with currentPassword",
			body: passwordRequest{}, ok: 204, errs: []int{400, 404}}},
		{PUT, "/api/v1/users/{id}", ActAdmin, s.handleUpdateUser, routeDoc{summary: "Change a user's name, role, groups and permissions (not the tenant's last admin's role)",
			body: updateUserRequest{}, ok: 200, resp: userJSON{}, errs: []int{400, 404, 409}}},
		{GET, "/api/v1/groups", ActAdmin, s.handleListGroups, routeDoc{summary: "The groups of the admin's tenant", ok: 200, resp: []meta.Group{}}},
		{POST, "/api/v1/groups", ActAdmin, s.handleCreateGroup, routeDoc{summary: "Create a group (supervisors, restricted permissions)",
			body: groupRequest{}, ok: 201, resp: meta.Group{}, errs: []int{400, 409}}},
		{PUT, "/api/v1/groups/{id}", ActAdmin, s.handleUpdateGroup, routeDoc{summary: "Change a group", body: groupRequest{}, ok: 200, resp: meta.Group{}, errs: []int{400, 404}}},
		{GET, "/api/v1/tenants", ActAdmin, s.handleListTenants, routeDoc{summary: "Tenants (the installation's admins only)", ok: 200, resp: []meta.Tenant{}}},
		{POST, "/api/v1/tenants", ActAdmin, s.handleCreateTenant, routeDoc{summary: "Create a tenant (the installation's admins only)",
			body: meta.Tenant{}, ok: 201, resp: meta.Tenant{}, errs: []int{400, 409}}},
		{GET, "/api/v1/retention", ActAdmin, s.handleGetRetention, routeDoc{summary: "Retention policies of the admin's tenant", ok: 200, resp: retentionJSON{}}},
		{PUT, "/api/v1/retention", ActAdmin, s.handleSetRetention, routeDoc{summary: "Set the retention of the tenant or of one group (days; 0 keeps; -1 removes)",
			body: retentionRequest{}, ok: 200, resp: retentionJSON{}, errs: []int{400}}},
		{POST, "/api/v1/users/{id}/disable", ActAdmin, s.handleDisableUser, routeDoc{summary: "Disable a user (not the tenant's last enabled admin)", ok: 204, errs: []int{404, 409}}},
		{POST, "/api/v1/users/{id}/enable", ActAdmin, s.handleEnableUser, routeDoc{summary: "Enable a user", ok: 204, errs: []int{404}}},

		// The web UI's admin and player routes (issue 6: storage.go, peaks.go).
		{GET, "/api/v1/storage", ActAdmin, s.handleStorage, routeDoc{summary: "Storage tiers with their file system's usage (statfs at the time of the request)",
			ok: 200, resp: []storageTierJSON{}}},
		{GET, "/api/v1/recordings/{id}/peaks", ActPlay, s.handlePeaks(peaks), routeDoc{summary: "The waveform: min and max sample per bucket and channel (stereo: local left), for n buckets",
			params: peaksParams, ok: 200, resp: peaksJSON{}, errs: []int{400, 404, 409, 503}}},

		// Cluster (issue 8): members, join tokens, removal, read-after-commit.
		{GET, "/api/v1/cluster", ActAdmin, s.handleClusterStatus, routeDoc{summary: "Cluster members as each sees itself: state, voter, last contact, term, commit and applied index",
			ok: 200, resp: map[string]any{}, errs: []int{404}}},
		{POST, "/api/v1/cluster/tokens", ActAdmin, s.handleClusterToken, routeDoc{summary: "A single-use join token (10 minutes) for `callvault serve --join`; only on the node holding the cluster CA",
			ok: 201, resp: tokenResponse{}, errs: []int{404, 409}}},
		{DELETE, "/api/v1/cluster/nodes/{id}", ActAdmin, s.handleClusterRemove, routeDoc{summary: "Remove a member from the cluster",
			ok: 204, errs: []int{404}}},
		{GET, "/api/v1/cluster/wait", ActView, s.handleClusterWait, routeDoc{summary: "Return once this node has applied every write committed before the call (read after the latest commit)",
			ok: 200, resp: waitResponse{}, errs: []int{404, 503}}},

		// Capture files imported through a running appliance (imports.go).
		{POST, "/api/v1/imports", ActAdmin, s.handleImport, routeDoc{summary: "Import a capture file (pcap or pcapng, the request body; ?name= its file name): its calls become recordings, as `callvault import` does offline; installation admins only, one at a time",
			bodyCT: "application/vnd.tcpdump.pcap", ok: 201, resp: map[string]any{}, errs: []int{400, 409, 413, 503}}},

		// Evidence (issue 7, exports.go): export jobs, the purge on demand.
		{POST, "/api/v1/exports", ActAudit, s.handleCreateExport, routeDoc{summary: "Start an export job: a signed bundle of the recordings named by ids, by a search (query) or all preserved ones (an auditor's: preserved only)",
			body: exportRequest{}, ok: 202, resp: store.ExportJob{}, errs: []int{400, 404, 503}}},
		{GET, "/api/v1/exports", ActAudit, s.handleListExports, routeDoc{summary: "The caller's export jobs (an admin: the tenant's), oldest first",
			ok: 200, resp: []store.ExportJob{}}},
		{GET, "/api/v1/exports/{id}", ActAudit, s.handleGetExport, routeDoc{summary: "An export job: state (queued, running, done, failed, cancelled), progress, bytes, error, the signing key's fingerprint",
			ok: 200, resp: store.ExportJob{}, errs: []int{404}}},
		{GET, "/api/v1/exports/{id}/download", ActAudit, s.handleDownloadExport, routeDoc{summary: "Download a finished job's bundle (zip, with HTTP Range); 409 before it is done",
			ok: 200, respCT: []string{"application/zip"}, errs: []int{206, 404, 409}}},
		{DELETE, "/api/v1/exports/{id}", ActAudit, s.handleDeleteExport, routeDoc{summary: "Cancel an export job and remove its bundle",
			ok: 204, errs: []int{404}}},
		{POST, "/api/v1/retention/purge", ActAdmin, s.handlePurge, routeDoc{summary: "Run the retention purge now (the installation's admins): delete every recording whose retention ran out and that is not held",
			ok: 200, resp: purgeResponse{}, errs: []int{503}}},

		{GET, "/api/v1/openapi.json", ActAccount, s.handleOpenAPI, routeDoc{summary: "This document", ok: 200, resp: map[string]any{}}},
	}
}

// Routes lists the API routes with the action each needs.
func (s *Server) Routes() []RouteInfo {
	rs := s.apiRoutes()
	out := make([]RouteInfo, len(rs))
	for i, r := range rs {
		out[i] = RouteInfo{Method: r.method, Pattern: r.pattern, Action: r.action}
	}
	return out
}

func (s *Server) registerAPI() {
	for _, rt := range s.apiRoutes() {
		s.mux.HandleFunc(rt.method+" "+rt.pattern, s.guard(rt))
	}
}

// guard authenticates, checks the CSRF token of a browser session on a
// state-changing request, and checks the route's action, before the
// handler reads a byte of the body.
func (s *Server) guard(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		if p.Method == AuthSession && r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !s.sessionCSRF(r) {
				writeError(w, http.StatusForbidden, "missing or wrong X-CSRF-Token header")
				return
			}
		}
		if p.User.MustChangePassword && !passwordChangeRoute(rt, r, p) {
			writeError(w, http.StatusForbidden, errMustChangePassword+": POST /api/v1/users/"+p.User.ID+"/password first (GET /api/v1/me answers meanwhile)")
			return
		}
		if !p.Can(rt.action) {
			s.metrics.denied.WithLabelValues(rt.action.String()).Inc()
			s.auditDenied(r, p, "", "your account may not "+rt.action.String())
			writeError(w, http.StatusForbidden, "your account may not "+rt.action.String())
			return
		}
		rt.handle(w, r, p)
	}
}

// errMustChangePassword begins the 403 of every route but the two a user
// whose password was generated or set by an admin may use: until they
// choose their own, the password is one someone else knows.
const errMustChangePassword = "your password was set by an administrator or generated and must be changed before anything else"

// passwordChangeRoute reports whether rt is open to a user who must change
// the password: reading the account (the page needs to know who it is) and
// setting one's own password.
func passwordChangeRoute(rt route, r *http.Request, p *Principal) bool {
	switch rt.pattern {
	case "/api/v1/me":
		return true
	case "/api/v1/users/{id}/password":
		return r.PathValue("id") == p.User.ID
	}
	return false
}

// apiMessage is the body of every API error but the upload's 400s.
type apiMessage struct {
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId,omitempty"`
	// Parameter names the query parameter a 400 is about.
	Parameter string `json:"parameter,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiMessage{Message: msg})
}

// internalError logs err under a fresh correlation ID and answers 500 with
// that ID only: the client can quote it, the log has the detail, and no
// internal detail (paths, IDs of other tenants) leaks into the response.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	s.log.Error(what, "correlation_id", id, "route", r.Pattern, "err", err)
	writeJSON(w, http.StatusInternalServerError, apiMessage{Message: "internal error", CorrelationID: id})
}

// decodeJSON reads a small JSON request body.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeJSONLimit(w, r, v, 64<<10)
}

// decodeJSONLimit reads a JSON request body of at most limit bytes; unknown
// fields are refused, so a misspelt field is an error, not a silent no-op.
func decodeJSONLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "request body: more than one JSON value")
		return false
	}
	return true
}

// decodeOptionalJSON is decodeJSON for a body that may be empty.
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && err != io.EOF {
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

type meResponse struct {
	ID          string           `json:"id"`
	Username    string           `json:"username"`
	Tenant      string           `json:"tenant"`
	Role        meta.Role        `json:"role"`
	Permissions meta.Permissions `json:"permissions"`
	Actions     []string         `json:"actions"`
	Method      AuthMethod       `json:"authMethod"`
	// MustChangePassword: every other route answers 403 until the user
	// sets a new password.
	MustChangePassword bool `json:"mustChangePassword"`
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request, p *Principal) {
	resp := meResponse{ID: p.User.ID, Username: p.User.Username, Tenant: p.User.Tenant, Role: p.User.Role,
		Permissions: p.User.Permissions, Method: p.Method, Actions: []string{},
		MustChangePassword: p.User.MustChangePassword}
	for a := Action(0); a < numActions; a++ {
		if p.Can(a) {
			resp.Actions = append(resp.Actions, a.String())
		}
	}
	writeJSON(w, http.StatusOK, resp)
}
