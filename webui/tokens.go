package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/google/uuid"
)

// tokenInfo is a token as listed: never the secret, never the hash.
type tokenInfo struct {
	ID      string     `json:"id"`
	Label   string     `json:"label"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
}

type createTokenRequest struct {
	Label string `json:"label"`
	// ExpiresInDays: 0 = never.
	ExpiresInDays int `json:"expiresInDays"`
}

type createTokenResponse struct {
	tokenInfo
	// Token is the secret, shown this once.
	Token string `json:"token"`
}

func infoOf(tk meta.Token) tokenInfo {
	ti := tokenInfo{ID: tk.ID, Label: tk.Label, Created: tk.Created}
	if !tk.Expires.IsZero() {
		e := tk.Expires
		ti.Expires = &e
	}
	return ti
}

// handleCreateToken makes a token for the signed-in user. It needs a
// password or a browser session: a token cannot mint more tokens, so a
// leaked one can be revoked and stays revoked.
func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request, p *Principal) {
	if p.Method == AuthToken {
		writeError(w, http.StatusForbidden, "tokens are created with a password or a browser session, not with another token")
		return
	}
	var req createTokenRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	req.Label = strings.TrimSpace(req.Label)
	if err := checkField("label", req.Label, 256); err != nil {
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrInvalidMetadata.Error()+": "))
		return
	}
	if req.ExpiresInDays < 0 || req.ExpiresInDays > 3650 {
		writeError(w, http.StatusBadRequest, "expiresInDays must be 0 (never) to 3650")
		return
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		s.internalError(w, r, "token randomness", err)
		return
	}
	plain := tokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	id, err := uuid.NewV7()
	if err != nil {
		s.internalError(w, r, "token id", err)
		return
	}
	now := s.now().UTC().Truncate(time.Second)
	tk := meta.Token{ID: id.String(), User: p.User.ID, Hash: sha256.Sum256([]byte(plain)), Label: req.Label, Created: now}
	if req.ExpiresInDays > 0 {
		tk.Expires = now.Add(time.Duration(req.ExpiresInDays) * 24 * time.Hour)
	}
	if _, err := s.data.Commands.Apply(r.Context(), &meta.CreateToken{Token: tk}); err != nil {
		s.internalError(w, r, "store token", err)
		return
	}
	s.log.Info("API token created", "user", p.User.Username, "token_id", tk.ID, "label", tk.Label)
	if err := s.audit(r, p, auditEvent{action: meta.AuditToken, detail: "created " + tk.ID + " " + clip(tk.Label)}); err != nil {
		s.internalError(w, r, "the token was created but its audit entry failed", err)
		return
	}
	writeJSON(w, http.StatusCreated, createTokenResponse{tokenInfo: infoOf(tk), Token: plain})
}

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request, p *Principal) {
	tks, err := s.data.Users.Tokens(p.User.ID)
	if err != nil {
		s.internalError(w, r, "list tokens", err)
		return
	}
	out := make([]tokenInfo, 0, len(tks))
	for _, tk := range tks {
		out = append(out, infoOf(tk))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleRevokeToken deletes one of the user's own tokens. Someone else's
// token answers 404 like a missing one, so token IDs cannot be probed.
func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request, p *Principal) {
	id := r.PathValue("id")
	tks, err := s.data.Users.Tokens(p.User.ID)
	if err != nil {
		s.internalError(w, r, "list tokens", err)
		return
	}
	found := false
	for _, tk := range tks {
		found = found || tk.ID == id
	}
	if !found {
		writeError(w, http.StatusNotFound, "no such token")
		return
	}
	if _, err := s.data.Commands.Apply(r.Context(), &meta.RevokeToken{ID: id}); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			writeError(w, http.StatusNotFound, "no such token")
			return
		}
		s.internalError(w, r, "revoke token", err)
		return
	}
	s.log.Info("API token revoked", "user", p.User.Username, "token_id", id)
	if err := s.audit(r, p, auditEvent{action: meta.AuditToken, detail: "revoked " + id}); err != nil {
		s.internalError(w, r, "the token was revoked but its audit entry failed", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
