package appliance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/webui"
	"github.com/google/uuid"
)

// Permission names as the console and the API spell them.
var permissionNames = []string{"play", "download", "delete", "preserve", "notes", "bulk-download", "upload"}

// DefaultPermissions is what a new account of a role may do unless the
// admin says otherwise: what a commercial recorder grants out of the box.
// Deleting and bulk downloads are granted explicitly, except to admins.
func DefaultPermissions(role meta.Role) meta.Permissions {
	switch role {
	case meta.RoleAdmin:
		return meta.Permissions{Play: true, Download: true, Delete: true, Preserve: true, Notes: true, BulkDownload: true, Upload: true}
	case meta.RoleSupervisor:
		return meta.Permissions{Play: true, Download: true, Preserve: true, Notes: true}
	case meta.RoleUser:
		return meta.Permissions{Play: true, Download: true, Notes: true}
	case meta.RoleAuditor:
		return meta.Permissions{Play: true, Download: true}
	}
	return meta.Permissions{} // record-only: is recorded, sees nothing
}

// ParsePermissions reads a comma-separated list of permission names
// ("play,download"); "none" grants nothing.
func ParsePermissions(s string) (meta.Permissions, error) {
	var p meta.Permissions
	if strings.TrimSpace(s) == "none" {
		return p, nil
	}
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(strings.ToLower(name)) {
		case "play":
			p.Play = true
		case "download":
			p.Download = true
		case "delete":
			p.Delete = true
		case "preserve":
			p.Preserve = true
		case "notes":
			p.Notes = true
		case "bulk-download":
			p.BulkDownload = true
		case "upload":
			p.Upload = true
		case "":
		default:
			return p, fmt.Errorf("unknown permission %q (known: %s, or none)", name, strings.Join(permissionNames, ", "))
		}
	}
	return p, nil
}

// PermissionList spells p the way ParsePermissions reads it.
func PermissionList(p meta.Permissions) string {
	var out []string
	for i, on := range []bool{p.Play, p.Download, p.Delete, p.Preserve, p.Notes, p.BulkDownload, p.Upload} {
		if on {
			out = append(out, permissionNames[i])
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// ParseRole checks a role name.
func ParseRole(s string) (meta.Role, error) {
	r := meta.Role(strings.ToLower(strings.TrimSpace(s)))
	switch r {
	case meta.RoleAdmin, meta.RoleSupervisor, meta.RoleUser, meta.RoleRecordOnly, meta.RoleAuditor:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (known: admin, supervisor, user, record-only, auditor)", s)
}

// NewUser is what `callvault user add` creates.
type NewUser struct {
	Username    string
	Tenant      string
	DisplayName string
	Role        meta.Role
	Groups      []string
	Supervises  []string
	Permissions *meta.Permissions // nil: DefaultPermissions(Role)
	Password    string
	// MustChangePassword makes the user replace the password at the first
	// sign-in: `callvault user add` sets it when it made the password up
	// (printed on a console, so someone else has seen it).
	MustChangePassword bool
}

// Users manages accounts in a store opened by the console commands (the
// server is stopped; while it runs, the data directory is locked and the
// API is the way in).
type Users struct{ st *store.Store }

// NewUsers wraps an open store.
func NewUsers(st *store.Store) Users { return Users{st} }

// Add creates an account. The groups must exist in the user's tenant.
func (u Users) Add(ctx context.Context, n NewUser) (meta.User, error) {
	if err := u.checkGroups(n.Tenant, append(slices.Clone(n.Groups), n.Supervises...)); err != nil {
		return meta.User{}, err
	}
	if len(n.Supervises) > 0 && n.Role != meta.RoleSupervisor && n.Role != meta.RoleAdmin {
		return meta.User{}, fmt.Errorf("--supervises is for supervisors (role %s)", n.Role)
	}
	hash, err := webui.HashPassword(n.Password)
	if err != nil {
		return meta.User{}, fmt.Errorf("password: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return meta.User{}, err
	}
	perms := DefaultPermissions(n.Role)
	if n.Permissions != nil {
		perms = *n.Permissions
	}
	user := meta.User{
		ID: id.String(), Tenant: n.Tenant, Username: n.Username, DisplayName: n.DisplayName, Role: n.Role,
		Groups: n.Groups, SupervisedGroups: n.Supervises, Permissions: perms, PasswordHash: hash,
		Created: time.Now().UTC().Truncate(time.Millisecond), MustChangePassword: n.MustChangePassword,
	}
	if _, err := u.st.Apply(ctx, &meta.CreateUser{User: user}); err != nil {
		if errors.Is(err, meta.ErrExists) {
			return meta.User{}, fmt.Errorf("user %q already exists in tenant %q", n.Username, n.Tenant)
		}
		return meta.User{}, err
	}
	user.PasswordHash = ""
	return user, nil
}

func (u Users) checkGroups(tenant string, groups []string) error {
	have, err := u.st.Meta().Groups(tenant)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, g := range have {
		known[g.ID] = true
	}
	for _, g := range groups {
		if !known[g] {
			names := make([]string, 0, len(have))
			for _, g := range have {
				names = append(names, g.ID)
			}
			sort.Strings(names)
			return fmt.Errorf("group %q does not exist in tenant %q (groups: %s)", g, tenant, orNone(names))
		}
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// List returns the accounts of a tenant, without password hashes.
func (u Users) List(tenant string) ([]meta.User, error) {
	us, err := u.st.Meta().Users(tenant)
	for i := range us {
		us[i].PasswordHash = ""
	}
	return us, err
}

func (u Users) find(tenant, username string) (meta.User, error) {
	user, err := u.st.Meta().UserByName(tenant, username)
	if errors.Is(err, meta.ErrNotFound) {
		return user, fmt.Errorf("no user %q in tenant %q", username, tenant)
	}
	return user, err
}

// SetPassword replaces an account's password.
func (u Users) SetPassword(ctx context.Context, tenant, username, password string) error {
	user, err := u.find(tenant, username)
	if err != nil {
		return err
	}
	hash, err := webui.HashPassword(password)
	if err != nil {
		return fmt.Errorf("password: %w", err)
	}
	_, err = u.st.Apply(ctx, &meta.SetPassword{ID: user.ID, PasswordHash: hash})
	return err
}

// SetDisabled disables an account (it can no longer sign in or use its
// tokens; its recordings stay) or enables it again.
func (u Users) SetDisabled(ctx context.Context, tenant, username string, disabled bool) error {
	user, err := u.find(tenant, username)
	if err != nil {
		return err
	}
	if disabled && user.Role == meta.RoleAdmin {
		// Nobody could administer the tenant any more.
		others, err := u.st.Meta().Users(tenant)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(others, func(o meta.User) bool { return o.ID != user.ID && o.Role == meta.RoleAdmin && !o.Disabled }) {
			return fmt.Errorf("%q is the last enabled admin of tenant %q: add another admin first", username, tenant)
		}
	}
	_, err = u.st.Apply(ctx, &meta.UpdateUser{ID: user.ID, DisplayName: user.DisplayName, Role: user.Role, Groups: user.Groups,
		SupervisedGroups: user.SupervisedGroups, Permissions: user.Permissions, Disabled: disabled})
	return err
}
