package webui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"

	"github.com/callvault/callvault/store/meta"
)

// Directory finds users and API tokens. *meta.DB satisfies it.
type Directory interface {
	User(id string) (meta.User, error)
	UserByName(tenant, username string) (meta.User, error)
	TokenByHash(h [32]byte) (meta.Token, error)
	Tokens(user string) ([]meta.Token, error)
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
	// Write appends the file's bytes as they arrive.
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
}

// Data is everything the API reads and writes, wired by the appliance.
type Data struct {
	Users      Directory
	Commands   Committer
	Recordings Recordings
}

// route is one API route: the action it needs is part of its definition,
// so authorization cannot be forgotten and a test can enumerate it.
type route struct {
	method, pattern string
	action          Action
	handle          func(w http.ResponseWriter, r *http.Request, p *Principal)
}

// RouteInfo describes an API route for tests and documentation.
type RouteInfo struct {
	Method, Pattern string
	Action          Action
}

// apiRoutes is the API. Add routes here; the route × role test picks them
// up by itself.
func (s *Server) apiRoutes() []route {
	return []route{
		// The Imagicle Call Recording upload route, kept verbatim so existing
		// integrations work unchanged, and the same under /api/v1.
		{http.MethodPost, "/fw/Apps/Recorder/WebAPI/Recordings", ActUpload, s.handleUpload},
		{http.MethodPost, "/api/v1/recordings", ActUpload, s.handleUpload},

		{http.MethodGet, "/api/v1/me", ActAccount, s.handleMe},
		{http.MethodGet, "/api/v1/tokens", ActAccount, s.handleListTokens},
		{http.MethodPost, "/api/v1/tokens", ActAccount, s.handleCreateToken},
		{http.MethodDelete, "/api/v1/tokens/{id}", ActAccount, s.handleRevokeToken},

		{http.MethodPost, "/api/v1/users", ActAdmin, s.handleCreateUser},
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
		if !p.Can(rt.action) {
			s.metrics.denied.WithLabelValues(rt.action.String()).Inc()
			writeError(w, http.StatusForbidden, "your account may not "+rt.action.String())
			return
		}
		rt.handle(w, r, p)
	}
}

// apiMessage is the body of every API error but the upload's 400s.
type apiMessage struct {
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId,omitempty"`
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
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
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
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request, p *Principal) {
	resp := meResponse{ID: p.User.ID, Username: p.User.Username, Tenant: p.User.Tenant, Role: p.User.Role,
		Permissions: p.User.Permissions, Method: p.Method, Actions: []string{}}
	for a := Action(0); a < numActions; a++ {
		if p.Can(a) {
			resp.Actions = append(resp.Actions, a.String())
		}
	}
	writeJSON(w, http.StatusOK, resp)
}
