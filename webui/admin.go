package webui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/callvault/callvault/store/meta"
)

// The administration routes the admin pages need: groups (with their
// supervisors and the permissions they restrict), editing a user's role,
// groups and permissions, tenants (global admins only) and retention
// policies. Every change is audited (action "user" or "config").

// Admin reads what the administration routes list. *meta.DB satisfies it.
type Admin interface {
	Groups(tenant string) ([]meta.Group, error)
	Tenants() ([]meta.Tenant, error)
	RetentionPolicies() ([]meta.RetentionPolicy, error)
	RetentionFor(tenant, group string) (int, bool, error)
}

type groupRequest struct {
	ID          string            `json:"id,omitempty"` // on create; derived from the name when empty
	Name        string            `json:"name"`
	Supervisors []string          `json:"supervisors"`
	Permissions *meta.Permissions `json:"permissions,omitempty"`
}

func (s *Server) handleListGroups(w http.ResponseWriter, r *http.Request, p *Principal) {
	gs, err := s.data.Admin.Groups(p.User.Tenant)
	if err != nil {
		s.internalError(w, r, "list groups", err)
		return
	}
	writeJSON(w, http.StatusOK, nonNilGroups(gs))
}

func nonNilGroups(gs []meta.Group) []meta.Group {
	if gs == nil {
		return []meta.Group{}
	}
	for i := range gs {
		if gs[i].Supervisors == nil {
			gs[i].Supervisors = []string{}
		}
	}
	return gs
}

func (s *Server) handleCreateGroup(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req groupRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.ID == "" {
		req.ID = slug(req.Name)
	}
	if !s.checkSupervisors(w, p, req.Supervisors) {
		return
	}
	g := meta.Group{ID: req.ID, Tenant: p.User.Tenant, Name: req.Name, Supervisors: req.Supervisors, Permissions: req.Permissions}
	if !s.applyAdmin(w, r, p, &meta.CreateGroup{Group: g}, "created group "+g.ID) {
		return
	}
	g.Supervisors = nonNil(g.Supervisors)
	writeJSON(w, http.StatusCreated, g)
}

func (s *Server) handleUpdateGroup(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req groupRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	g, err := s.data.Users.Group(r.PathValue("id"))
	if err != nil || g.Tenant != p.User.Tenant {
		writeError(w, http.StatusNotFound, "no such group")
		return
	}
	if !s.checkSupervisors(w, p, req.Supervisors) {
		return
	}
	g.Name, g.Supervisors, g.Permissions = strings.TrimSpace(req.Name), req.Supervisors, req.Permissions
	if !s.applyAdmin(w, r, p, &meta.UpdateGroup{Group: g}, "changed group "+g.ID) {
		return
	}
	g.Supervisors = nonNil(g.Supervisors)
	writeJSON(w, http.StatusOK, g)
}

// checkSupervisors requires the supervisors to be users of the admin's
// tenant.
func (s *Server) checkSupervisors(w http.ResponseWriter, p *Principal, ids []string) bool {
	for _, id := range ids {
		if u, err := s.data.Users.User(id); err != nil || u.Tenant != p.User.Tenant {
			writeJSON(w, http.StatusBadRequest, apiMessage{Message: "supervisors: no user " + clip(id) + " in your tenant", Parameter: "supervisors"})
			return false
		}
	}
	return true
}

// slug makes a group ID from its name: lower case letters, digits and
// dashes.
func slug(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

type updateUserRequest struct {
	DisplayName      string           `json:"displayName"`
	Role             meta.Role        `json:"role"`
	Groups           []string         `json:"groups"`
	SupervisedGroups []string         `json:"supervisedGroups"`
	Permissions      meta.Permissions `json:"permissions"`
}

// handleUpdateUser changes a user's profile, role, groups and permissions
// (not the password, not the disabled flag: their own routes). The
// tenant's last enabled admin cannot be demoted.
func (s *Server) handleUpdateUser(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req updateUserRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	u, ok := s.sameTenantUser(w, r, p)
	if !ok {
		return
	}
	if !validRole(req.Role) {
		writeError(w, http.StatusBadRequest, "role must be one of admin, supervisor, user, record-only, auditor")
		return
	}
	for _, g := range append(slices.Clone(req.Groups), req.SupervisedGroups...) {
		if grp, err := s.data.Users.Group(g); err != nil || grp.Tenant != p.User.Tenant {
			writeJSON(w, http.StatusBadRequest, apiMessage{Message: "groups: no group " + clip(g) + " in your tenant", Parameter: "groups"})
			return
		}
	}
	if u.Role == meta.RoleAdmin && req.Role != meta.RoleAdmin && !u.Disabled {
		us, err := s.data.Users.Users(u.Tenant)
		if err != nil {
			s.internalError(w, r, "list users", err)
			return
		}
		if !slices.ContainsFunc(us, func(x meta.User) bool { return x.ID != u.ID && x.Role == meta.RoleAdmin && !x.Disabled }) {
			writeError(w, http.StatusConflict, "the tenant's last enabled admin cannot be given another role")
			return
		}
	}
	cmd := &meta.UpdateUser{ID: u.ID, DisplayName: strings.TrimSpace(req.DisplayName), Role: req.Role, Groups: req.Groups,
		SupervisedGroups: req.SupervisedGroups, Permissions: req.Permissions, Disabled: u.Disabled}
	if !s.applyAdmin(w, r, p, cmd, "changed "+u.Username+" (role "+string(req.Role)+")") {
		return
	}
	u, err := s.data.Users.User(u.ID)
	if err != nil {
		s.internalError(w, r, "read user", err)
		return
	}
	writeJSON(w, http.StatusOK, userOf(u))
}

// applyAdmin applies an administration command and audits it; false when
// it answered an error.
func (s *Server) applyAdmin(w http.ResponseWriter, r *http.Request, p *Principal, cmd meta.Command, detail string) bool {
	if _, err := s.data.Commands.Apply(r.Context(), cmd); err != nil {
		switch {
		case errors.Is(err, meta.ErrExists):
			writeError(w, http.StatusConflict, strings.TrimPrefix(err.Error(), "meta: "))
		case errors.Is(err, meta.ErrInvalid), errors.Is(err, meta.ErrNotFound):
			writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "meta: "))
		default:
			s.internalError(w, r, "administration change", err)
		}
		return false
	}
	action := meta.AuditUser
	if _, ok := cmd.(*meta.SetRetention); ok {
		action = meta.AuditConfig
	}
	if err := s.audit(r, p, auditEvent{action: action, detail: detail}); err != nil {
		s.internalError(w, r, "the change was applied but its audit entry failed", err)
		return false
	}
	return true
}

// Tenants: only a global admin (an admin of the default tenant "", who
// sees every tenant) lists and creates them.
func (s *Server) globalAdmin(w http.ResponseWriter, p *Principal) bool {
	if p.User.Tenant != "" {
		writeError(w, http.StatusForbidden, "tenants are managed by the installation's admins")
		return false
	}
	return true
}

func (s *Server) handleListTenants(w http.ResponseWriter, r *http.Request, p *Principal) {
	if !s.globalAdmin(w, p) {
		return
	}
	ts, err := s.data.Admin.Tenants()
	if err != nil {
		s.internalError(w, r, "list tenants", err)
		return
	}
	if ts == nil {
		ts = []meta.Tenant{}
	}
	writeJSON(w, http.StatusOK, ts)
}

func (s *Server) handleCreateTenant(w http.ResponseWriter, r *http.Request, p *Principal) {
	if !s.globalAdmin(w, p) {
		return
	}
	var t meta.Tenant
	if !decodeJSON(w, r, &t) {
		return
	}
	if t.ID == "" {
		t.ID = slug(t.Name)
	}
	if !s.applyAdmin(w, r, p, &meta.CreateTenant{Tenant: t}, "created tenant "+t.ID) {
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

// retentionJSON is the admin's view of retention: the policies of their
// tenant (and, for a global admin, the installation's) and what applies
// to new recordings of the tenant.
type retentionJSON struct {
	Policies []meta.RetentionPolicy `json:"policies"`
	// TenantDays applies to the tenant's recordings without a group
	// policy; null: kept until deleted.
	TenantDays *int `json:"tenantDays"`
	// Recomputed is how many existing recordings got a new delete-after
	// date, when the change asked for it (PUT with recompute).
	Recomputed *int `json:"recomputed,omitempty"`
}

type retentionRequest struct {
	Group string `json:"group,omitempty"` // empty: the tenant's default
	// Days after the start; 0 keeps recordings until deleted; -1 removes
	// the policy (the less specific one applies again).
	Days int `json:"days"`
	// Recompute applies the policies to the existing recordings of the
	// tenant (or group) too; a preserved one's date only moves later.
	Recompute bool `json:"recompute,omitempty"`
}

func (s *Server) handleGetRetention(w http.ResponseWriter, r *http.Request, p *Principal) {
	s.writeRetention(w, r, p, nil)
}

func (s *Server) writeRetention(w http.ResponseWriter, r *http.Request, p *Principal, recomputed *int) {
	ps, err := s.data.Admin.RetentionPolicies()
	if err != nil {
		s.internalError(w, r, "retention policies", err)
		return
	}
	out := retentionJSON{Policies: []meta.RetentionPolicy{}}
	for _, pol := range ps {
		if pol.Tenant == p.User.Tenant {
			out.Policies = append(out.Policies, pol)
		}
	}
	days, ok, err := s.data.Admin.RetentionFor(p.User.Tenant, "")
	if err != nil {
		s.internalError(w, r, "retention", err)
		return
	}
	if ok {
		out.TenantDays = &days
	}
	out.Recomputed = recomputed
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleSetRetention(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req retentionRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Group != "" {
		if g, err := s.data.Users.Group(req.Group); err != nil || g.Tenant != p.User.Tenant {
			writeJSON(w, http.StatusBadRequest, apiMessage{Message: "group: no group " + clip(req.Group) + " in your tenant", Parameter: "group"})
			return
		}
	}
	what := "retention of the tenant"
	if req.Group != "" {
		what = "retention of group " + req.Group
	}
	cmd := &meta.SetRetention{Tenant: p.User.Tenant, Group: req.Group, Days: req.Days}
	if !s.applyAdmin(w, r, p, cmd, what+" set to "+strconv.Itoa(req.Days)+" days") {
		return
	}
	var recomputed *int
	if req.Recompute {
		n, err := s.recomputeRetention(r.Context(), p.User.Tenant, req.Group)
		if err != nil {
			s.internalError(w, r, "recompute retention", err)
			return
		}
		if err := s.audit(r, p, auditEvent{action: meta.AuditConfig, detail: fmt.Sprintf("%s applied to %d existing recordings", what, n)}); err != nil {
			s.internalError(w, r, "the change was applied but its audit entry failed", err)
			return
		}
		recomputed = &n
	}
	s.writeRetention(w, r, p, recomputed)
}

// recomputeBatch is how many recordings one RecomputeRetention command
// walks: a transaction of a few milliseconds, so capture and uploads
// never wait long behind it.
const recomputeBatch = 2000

// recomputeRetention applies the policies in force to the existing
// recordings of tenant (or of one group), batch after batch, and returns
// how many got a new date.
func (s *Server) recomputeRetention(ctx context.Context, tenant, group string) (int, error) {
	total, after := 0, ""
	for {
		res, err := s.data.Commands.Apply(ctx, &meta.RecomputeRetention{Tenant: tenant, Group: group, After: after, Limit: recomputeBatch})
		if err != nil {
			return total, err
		}
		n, err := strconv.Atoi(res.Reference)
		if err != nil {
			return total, fmt.Errorf("recompute retention: count %q: %w", res.Reference, err)
		}
		total += n
		if after = res.ID; after == "" {
			return total, nil
		}
	}
}
