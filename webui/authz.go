package webui

import (
	"errors"
	"fmt"
	"slices"

	"github.com/callvault/callvault/store/meta"
)

// Action is something a route does that a principal may or may not be
// allowed to do. Every route names exactly one Action; the role table below
// is the only place that decides, so the route × role test can enumerate
// both and check every answer.
type Action uint8

// Actions. Permission-governed ones (Play … Upload) also need the matching
// meta.Permissions flag; the others follow the role alone.
const (
	// ActAccount: manage one's own account (API tokens). Every signed-in
	// user, record-only included: it touches no recording.
	ActAccount Action = iota
	// ActView: search recordings and read their metadata (within the view).
	ActView
	ActPlay
	ActDownload
	ActDelete
	ActPreserve
	ActNotes // notes and scoring
	ActBulkDownload
	ActUpload
	// ActAudit: read the audit log.
	ActAudit
	// ActAdmin: manage users, groups and settings of the tenant.
	ActAdmin

	numActions
)

var actionNames = [numActions]string{"account", "view", "play", "download", "delete", "preserve", "notes", "bulk-download", "upload", "audit", "admin"}

func (a Action) String() string {
	if a < numActions {
		return actionNames[a]
	}
	return "action(?)"
}

// Roles lists every role, in the order tests report them.
var Roles = []meta.Role{meta.RoleAdmin, meta.RoleSupervisor, meta.RoleUser, meta.RoleRecordOnly, meta.RoleAuditor}

// roleActions is what each role can do at most; permissions may take
// permission-governed actions away but never add one the role lacks.
//
//   - record-only is recorded and sees nothing: no recording action at all;
//   - auditor reads and exports preserved recordings and the audit log and
//     changes nothing (no delete, preserve, notes or upload);
//   - user and supervisor differ in what they see (the View), not in what
//     they may do with what they see.
var roleActions = map[meta.Role][]Action{
	meta.RoleAdmin:      {ActAccount, ActView, ActPlay, ActDownload, ActDelete, ActPreserve, ActNotes, ActBulkDownload, ActUpload, ActAudit, ActAdmin},
	meta.RoleSupervisor: {ActAccount, ActView, ActPlay, ActDownload, ActDelete, ActPreserve, ActNotes, ActBulkDownload, ActUpload},
	meta.RoleUser:       {ActAccount, ActView, ActPlay, ActDownload, ActDelete, ActPreserve, ActNotes, ActBulkDownload, ActUpload},
	meta.RoleRecordOnly: {ActAccount},
	meta.RoleAuditor:    {ActAccount, ActView, ActPlay, ActDownload, ActBulkDownload, ActAudit},
}

// permitted reports the permission flag that governs a, or true when a is
// governed by the role alone.
func permitted(perms meta.Permissions, a Action) bool {
	switch a {
	case ActPlay:
		return perms.Play
	case ActDownload:
		return perms.Download
	case ActDelete:
		return perms.Delete
	case ActPreserve:
		return perms.Preserve
	case ActNotes:
		return perms.Notes
	case ActBulkDownload:
		return perms.BulkDownload
	case ActUpload:
		return perms.Upload
	}
	return true
}

// AuthMethod is how a request proved who it is.
type AuthMethod string

// Authentication methods.
const (
	AuthSession AuthMethod = "session"
	AuthBasic   AuthMethod = "basic"
	AuthToken   AuthMethod = "token"
)

// Principal is the user behind a request, read fresh from the directory on
// every request, so a role change or a disabled account takes effect at once.
type Principal struct {
	// User is the account, with Permissions already narrowed by its
	// groups (effectiveUser).
	User   meta.User
	Method AuthMethod
	// TokenID is the token used, for AuthToken.
	TokenID string
}

// effectiveUser narrows u's permissions by its groups': a group with
// Permissions set restricts its members (a member may do what both the
// user's own flags and every such group allow); a group without them
// restricts nothing. A group that no longer exists restricts nothing
// either. The role still decides what is possible at all (roleActions).
func effectiveUser(dir Directory, u meta.User) (meta.User, error) {
	for _, gid := range u.Groups {
		g, err := dir.Group(gid)
		if errors.Is(err, meta.ErrNotFound) {
			continue
		}
		if err != nil {
			return u, fmt.Errorf("group %s of user %s: %w", gid, u.ID, err)
		}
		if g.Permissions != nil {
			u.Permissions = andPermissions(u.Permissions, *g.Permissions)
		}
	}
	return u, nil
}

func andPermissions(a, b meta.Permissions) meta.Permissions {
	return meta.Permissions{
		Play: a.Play && b.Play, Download: a.Download && b.Download, Delete: a.Delete && b.Delete,
		Preserve: a.Preserve && b.Preserve, Notes: a.Notes && b.Notes,
		BulkDownload: a.BulkDownload && b.BulkDownload, Upload: a.Upload && b.Upload,
	}
}

// Can reports whether the principal may do a: the role allows it and, for
// permission-governed actions, the account's permission flag is set. A
// disabled account can do nothing.
func (p *Principal) Can(a Action) bool {
	if p == nil || p.User.Disabled {
		return false
	}
	return slices.Contains(roleActions[p.User.Role], a) && permitted(p.User.Permissions, a)
}

// View is which recordings a principal sees: the meta.Scope for search plus
// what Scope cannot express. None means every recording route answers 403.
type View struct {
	Scope         meta.Scope
	PreservedOnly bool // auditor: only recordings under legal hold
	None          bool
}

// View derives what the principal may see:
//
//	admin       the tenant; an admin of the default tenant "" is the global
//	            admin of a single-customer (or shared) appliance: everything
//	supervisor  the groups they supervise and their own calls, in the tenant
//	user        their own calls
//	auditor     like admin, but only preserved recordings
//	record-only nothing
func (p *Principal) View() View {
	if p == nil || p.User.Disabled {
		return View{None: true}
	}
	u := p.User
	tenantWide := meta.Scope{Tenant: u.Tenant}
	if u.Tenant == "" {
		tenantWide = meta.Scope{All: true}
	}
	switch u.Role {
	case meta.RoleAdmin:
		return View{Scope: tenantWide}
	case meta.RoleAuditor:
		return View{Scope: tenantWide, PreservedOnly: true}
	case meta.RoleSupervisor:
		return View{Scope: meta.Scope{Tenant: u.Tenant, Groups: slices.Clone(u.SupervisedGroups), User: u.ID}}
	case meta.RoleUser:
		return View{Scope: meta.Scope{Tenant: u.Tenant, User: u.ID}}
	}
	return View{None: true}
}

// Sees reports whether rec is inside the view, with the same rules as
// meta's search scope, so a single-recording route never shows what search
// would hide.
func (v View) Sees(rec *meta.Recording) bool {
	if v.None || rec.Status == meta.StatusDeleted {
		return false
	}
	if v.PreservedOnly && rec.Preserved == nil {
		return false
	}
	sc := v.Scope
	if sc.All {
		return true
	}
	if sc.Tenant != "" && rec.Tenant != sc.Tenant {
		return false
	}
	if len(sc.Groups) == 0 && sc.User == "" {
		return sc.Tenant != "" // tenant-wide; the zero scope sees nothing
	}
	return (rec.Group != "" && slices.Contains(sc.Groups, rec.Group)) || (sc.User != "" && rec.LocalParty.User == sc.User)
}
