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
	// MustChangePassword makes the user change the password the admin
	// chose at the first sign-in. The admin page always asks for it; the
	// API leaves it to the caller (false by default), so integrations that
	// provision service accounts keep working.
	MustChangePassword bool `json:"mustChangePassword,omitempty"`
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
		PasswordHash: hash, Created: s.now().UTC().Truncate(time.Millisecond), MustChangePassword: req.MustChangePassword,
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
	if err := s.audit(r, p, auditEvent{action: meta.AuditUser, detail: "created " + u.Username + " (" + string(u.Role) + ")"}); err != nil {
		s.internalError(w, r, "the user was created but its audit entry failed", err)
		return
	}
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

// userJSON is an account as the API lists it: never the password hash.
type userJSON struct {
	ID               string           `json:"id"`
	Tenant           string           `json:"tenant"`
	Username         string           `json:"username"`
	DisplayName      string           `json:"displayName"`
	Role             meta.Role        `json:"role"`
	Groups           []string         `json:"groups"`
	SupervisedGroups []string         `json:"supervisedGroups"`
	Permissions      meta.Permissions `json:"permissions"`
	Disabled         bool             `json:"disabled"`
	HasPassword      bool             `json:"hasPassword"`
	Created          time.Time        `json:"created"`
	// MustChangePassword: the user has not yet replaced a password set by
	// an admin or generated.
	MustChangePassword bool `json:"mustChangePassword"`
}

func userOf(u meta.User) userJSON {
	return userJSON{ID: u.ID, Tenant: u.Tenant, Username: u.Username, DisplayName: u.DisplayName, Role: u.Role,
		Groups: nonNil(u.Groups), SupervisedGroups: nonNil(u.SupervisedGroups), Permissions: u.Permissions,
		Disabled: u.Disabled, HasPassword: u.PasswordHash != "", Created: u.Created, MustChangePassword: u.MustChangePassword}
}

// handleListUsers lists the users of the admin's own tenant.
func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request, p *Principal) {
	us, err := s.data.Users.Users(p.User.Tenant)
	if err != nil {
		s.internalError(w, r, "list users", err)
		return
	}
	out := make([]userJSON, 0, len(us))
	for _, u := range us {
		out = append(out, userOf(u))
	}
	writeJSON(w, http.StatusOK, out)
}

// sameTenantUser loads the path's {id} if it is a user of p's tenant; any
// other user answers 404 like a missing one.
func (s *Server) sameTenantUser(w http.ResponseWriter, r *http.Request, p *Principal) (meta.User, bool) {
	u, err := s.data.Users.User(r.PathValue("id"))
	if err != nil && !errors.Is(err, meta.ErrNotFound) && !errors.Is(err, meta.ErrInvalid) {
		s.internalError(w, r, "read user", err)
		return u, false
	}
	if err != nil || u.Tenant != p.User.Tenant {
		writeError(w, http.StatusNotFound, "no such user")
		return u, false
	}
	return u, true
}

type passwordRequest struct {
	Password string `json:"password"`
	// CurrentPassword is required when users change their own password.
	CurrentPassword string `json:"currentPassword,omitempty"`
}

// handleSetPassword sets a user's password: an admin for any user of the
// tenant, anyone for themself with their current password (so a stolen
// session or token cannot lock the owner out).
func (s *Server) handleSetPassword(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req passwordRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	self := r.PathValue("id") == p.User.ID
	admin := p.Can(ActAdmin)
	if !self && !admin {
		// Not theirs and not an admin: the same answer as a missing user,
		// so user IDs cannot be probed.
		writeError(w, http.StatusNotFound, "no such user")
		return
	}
	u, ok := s.sameTenantUser(w, r, p)
	if !ok {
		return
	}
	if self && !admin {
		if req.CurrentPassword == "" || !s.verify(u, req.CurrentPassword) {
			s.auditBestEffort(r, p, auditEvent{action: meta.AuditUser, outcome: "denied", detail: "password change: wrong current password"})
			writeError(w, http.StatusForbidden, "currentPassword is wrong")
			return
		}
	}
	s.argonSlots <- struct{}{}
	hash, err := HashPassword(req.Password)
	<-s.argonSlots
	if errors.Is(err, ErrWeakPassword) {
		writeError(w, http.StatusBadRequest, "password: "+err.Error())
		return
	}
	if err != nil {
		s.internalError(w, r, "hash password", err)
		return
	}
	// A password someone else set is known to them: the user must replace
	// it at the next sign-in. Users setting their own clear the flag.
	if _, err := s.data.Commands.Apply(r.Context(), &meta.SetPassword{ID: u.ID, PasswordHash: hash, MustChange: !self}); err != nil {
		s.internalError(w, r, "set password", err)
		return
	}
	s.log.Info("password changed", "by", p.User.Username, "user", u.Username)
	if err := s.audit(r, p, auditEvent{action: meta.AuditUser, detail: "password of " + u.Username}); err != nil {
		s.internalError(w, r, "the password was changed but its audit entry failed", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleDisableUser(w http.ResponseWriter, r *http.Request, p *Principal) {
	s.setDisabled(w, r, p, true)
}

func (s *Server) handleEnableUser(w http.ResponseWriter, r *http.Request, p *Principal) {
	s.setDisabled(w, r, p, false)
}

// setDisabled disables or enables a user of the admin's tenant. Disabling
// the tenant's last enabled admin is refused: nobody could undo it but
// the console.
func (s *Server) setDisabled(w http.ResponseWriter, r *http.Request, p *Principal, disabled bool) {
	u, ok := s.sameTenantUser(w, r, p)
	if !ok {
		return
	}
	if disabled && u.Role == meta.RoleAdmin && !u.Disabled {
		us, err := s.data.Users.Users(u.Tenant)
		if err != nil {
			s.internalError(w, r, "list users", err)
			return
		}
		admins := 0
		for _, x := range us {
			if x.Role == meta.RoleAdmin && !x.Disabled {
				admins++
			}
		}
		if admins <= 1 {
			writeError(w, http.StatusConflict, u.Username+" is the last enabled admin of the tenant")
			return
		}
	}
	cmd := &meta.UpdateUser{ID: u.ID, DisplayName: u.DisplayName, Role: u.Role, Groups: u.Groups,
		SupervisedGroups: u.SupervisedGroups, Permissions: u.Permissions, Disabled: disabled}
	if _, err := s.data.Commands.Apply(r.Context(), cmd); err != nil {
		s.internalError(w, r, "update user", err)
		return
	}
	verb := "enabled"
	if disabled {
		verb = "disabled"
	}
	s.log.Info("user "+verb, "by", p.User.Username, "user", u.Username)
	if err := s.audit(r, p, auditEvent{action: meta.AuditUser, detail: verb + " " + u.Username}); err != nil {
		s.internalError(w, r, "the account was changed but its audit entry failed", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
