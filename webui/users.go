package webui

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/google/uuid"
)

type createUserRequest struct {
	Username         string           `json:"username"`
	DisplayName      string           `json:"displayName"`
	Password         string           `json:"password"`
	Role             meta.Role        `json:"role"`
	Groups           []string         `json:"groups"`
	SupervisedGroups []string         `json:"supervisedGroups"`
	Permissions      meta.Permissions `json:"permissions"`
}

// handleCreateUser adds a user to the admin's own tenant. The password is
// hashed here, before the command is built, because hashing is random and
// slow and Apply must be deterministic.
func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req createUserRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	req.Username = strings.TrimSpace(req.Username)
	if err := checkField("username", req.Username, maxUsernameLen); err != nil || req.Username == "" || strings.Contains(req.Username, `\`) {
		writeError(w, http.StatusBadRequest, `username must be 1 to 256 printable characters without "\"`)
		return
	}
	if !validRole(req.Role) {
		writeError(w, http.StatusBadRequest, "role must be one of admin, supervisor, user, record-only, auditor")
		return
	}
	s.argonSlots <- struct{}{}
	hash, err := HashPassword(req.Password)
	<-s.argonSlots
	if errors.Is(err, ErrWeakPassword) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.internalError(w, r, "hash password", err)
		return
	}
	id, err := uuid.NewV7()
	if err != nil {
		s.internalError(w, r, "user id", err)
		return
	}
	u := meta.User{
		ID: id.String(), Tenant: p.User.Tenant, Username: req.Username, DisplayName: req.DisplayName, Role: req.Role,
		Groups: req.Groups, SupervisedGroups: req.SupervisedGroups, Permissions: req.Permissions,
		PasswordHash: hash, Created: s.now().UTC().Truncate(time.Millisecond),
	}
	if _, err := s.data.Commands.Apply(r.Context(), &meta.CreateUser{User: u}); err != nil {
		switch {
		case errors.Is(err, meta.ErrExists):
			writeError(w, http.StatusConflict, "user name "+req.Username+" is taken")
		case errors.Is(err, meta.ErrInvalid):
			writeError(w, http.StatusBadRequest, err.Error())
		default:
			s.internalError(w, r, "create user", err)
		}
		return
	}
	s.log.Info("user created", "by", p.User.Username, "user", u.Username, "role", u.Role)
	writeJSON(w, http.StatusCreated, map[string]string{"id": u.ID})
}

func validRole(r meta.Role) bool {
	for _, x := range Roles {
		if x == r {
			return true
		}
	}
	return false
}
