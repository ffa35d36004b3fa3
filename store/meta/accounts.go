package meta

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Role is what a user may do in general; Permissions refine it per action.
type Role string

// Roles.
const (
	RoleAdmin      Role = "admin"
	RoleSupervisor Role = "supervisor"
	RoleUser       Role = "user"
	RoleRecordOnly Role = "record-only"
	RoleAuditor    Role = "auditor"
)

func (r Role) valid() bool {
	switch r {
	case RoleAdmin, RoleSupervisor, RoleUser, RoleRecordOnly, RoleAuditor:
		return true
	}
	return false
}

// Permissions are the per-action grants checked by the web UI.
type Permissions struct {
	Play         bool `json:"play"`
	Download     bool `json:"download"`
	Delete       bool `json:"delete"`
	Preserve     bool `json:"preserve"`
	Notes        bool `json:"notes"` // add notes and scores
	BulkDownload bool `json:"bulkDownload"`
	Upload       bool `json:"upload"`
}

// Tenant is a customer of a shared appliance; users, groups and recordings
// belong to one. The empty tenant ID is the default tenant of a
// single-customer installation.
type Tenant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Group is a team of users; supervisors see the group's recordings.
type Group struct {
	ID          string   `json:"id"`
	Tenant      string   `json:"tenant"`
	Name        string   `json:"name"`
	Supervisors []string `json:"supervisors"` // user IDs
	// Permissions, when set, restrict the group's members: a member may do
	// what both their own permissions and every one of their groups'
	// allow. Nil: the group restricts nothing.
	Permissions *Permissions `json:"permissions,omitempty"`
}

// User is an account. PasswordHash is an argon2id PHC string computed by the
// caller (hashing is randomized and slow, so it never happens inside Apply).
type User struct {
	ID               string      `json:"id"`
	Tenant           string      `json:"tenant"`
	Username         string      `json:"username"`
	DisplayName      string      `json:"displayName"`
	Role             Role        `json:"role"`
	Groups           []string    `json:"groups"`
	SupervisedGroups []string    `json:"supervisedGroups"`
	Permissions      Permissions `json:"permissions"`
	PasswordHash     string      `json:"passwordHash"`
	Disabled         bool        `json:"disabled"`
	Created          time.Time   `json:"created"`
	// MustChangePassword: the password was generated or set by someone
	// else (an admin), so the web UI lets the user do nothing but change
	// it. SetPassword sets or clears it; omitted when false, so records
	// and commands written before the field existed encode the same.
	MustChangePassword bool `json:"mustChangePassword,omitempty"`
}

// Token is an API token. Only the SHA-256 of the secret is stored; the
// caller checks Expires against its clock.
type Token struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Hash    [32]byte  `json:"hash"`
	Label   string    `json:"label"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"` // zero: never
}

// Limits on identifiers and names: they become bbolt keys (max 32 KiB) and
// index entries, and no legitimate value comes near them.
const (
	maxIDLen   = 128
	maxNameLen = 256
	maxTextLen = 64 << 10
	maxListLen = 1000
)

// checkID validates an identifier: non-empty, bounded, no NUL (the index
// separator), valid UTF-8.
func checkID(field, v string) error {
	if v == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, field)
	}
	return checkKeyText(field, v, maxIDLen)
}

// checkKeyText validates a string that may be empty but will become part of a key.
func checkKeyText(field, v string, limit int) error {
	if len(v) > limit {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrInvalid, field, len(v), limit)
	}
	if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s contains NUL or invalid UTF-8", ErrInvalid, field)
	}
	return nil
}

func checkList(field string, vs []string) error {
	if len(vs) > maxListLen {
		return fmt.Errorf("%w: %s has %d entries, limit %d", ErrInvalid, field, len(vs), maxListLen)
	}
	for i, v := range vs {
		if err := checkID(fmt.Sprintf("%s[%d]", field, i), v); err != nil {
			return err
		}
	}
	return nil
}

// checkTime rejects times JSON cannot round-trip (years outside 0..9999).
func checkTime(field string, v time.Time) error {
	if y := v.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%w: %s year %d outside 0..9999", ErrInvalid, field, y)
	}
	return nil
}

// nameKey is the case-folded unique-name key within a tenant.
func nameKey(tenant, name string) []byte {
	k := make([]byte, 0, len(tenant)+1+len(name))
	k = append(k, tenant...)
	k = append(k, 0)
	return append(k, strings.ToLower(name)...)
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return storageError{fmt.Errorf("decode %q: %w", key, err)}
	}
	return nil
}

func (t *txn) putJSON(bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return storageError{err}
	}
	return t.put(bucket, key, raw)
}

// ---- tenants ----

// CreateTenant adds a tenant. Names are unique, case-insensitively.
type CreateTenant struct {
	Tenant Tenant `json:"tenant"`
}

// UpdateTenant renames a tenant.
type UpdateTenant struct {
	Tenant Tenant `json:"tenant"`
}

func (*CreateTenant) commandType() CommandType { return TypeCreateTenant }
func (*UpdateTenant) commandType() CommandType { return TypeUpdateTenant }

func (c *CreateTenant) apply(t *txn) (Result, error) {
	return t.putTenant(c.Tenant, true)
}

func (c *UpdateTenant) apply(t *txn) (Result, error) {
	return t.putTenant(c.Tenant, false)
}

func (t *txn) putTenant(tn Tenant, create bool) (Result, error) {
	if err := checkID("tenant.id", tn.ID); err != nil {
		return Result{}, err
	}
	if err := checkID("tenant.name", tn.Name); err != nil {
		return Result{}, err
	}
	var old Tenant
	err := getJSON(t.b(bTenants), []byte(tn.ID), &old)
	switch {
	case create && err == nil:
		return Result{}, fmt.Errorf("%w: tenant %q", ErrExists, tn.ID)
	case !create && err != nil:
		return Result{}, fmt.Errorf("tenant %q: %w", tn.ID, err)
	case create && err != ErrNotFound:
		return Result{}, err
	}
	newKey := []byte(strings.ToLower(tn.Name))
	if id := t.b(bTenantNames).Get(newKey); id != nil && string(id) != tn.ID {
		return Result{}, fmt.Errorf("%w: tenant name %q", ErrExists, tn.Name)
	}
	if !create {
		if err := t.del(bTenantNames, []byte(strings.ToLower(old.Name))); err != nil {
			return Result{}, err
		}
	}
	if err := t.put(bTenantNames, newKey, []byte(tn.ID)); err != nil {
		return Result{}, err
	}
	return Result{ID: tn.ID}, t.putJSON(bTenants, []byte(tn.ID), tn)
}

// ---- groups ----

// CreateGroup adds a group. Names are unique per tenant, case-insensitively.
type CreateGroup struct {
	Group Group `json:"group"`
}

// UpdateGroup replaces a group's name and supervisors. The tenant cannot change.
type UpdateGroup struct {
	Group Group `json:"group"`
}

func (*CreateGroup) commandType() CommandType { return TypeCreateGroup }
func (*UpdateGroup) commandType() CommandType { return TypeUpdateGroup }

func (c *CreateGroup) apply(t *txn) (Result, error) { return t.putGroup(c.Group, true) }
func (c *UpdateGroup) apply(t *txn) (Result, error) { return t.putGroup(c.Group, false) }

func (t *txn) putGroup(g Group, create bool) (Result, error) {
	if err := checkID("group.id", g.ID); err != nil {
		return Result{}, err
	}
	if err := checkID("group.name", g.Name); err != nil {
		return Result{}, err
	}
	if err := checkKeyText("group.tenant", g.Tenant, maxIDLen); err != nil {
		return Result{}, err
	}
	if err := checkList("group.supervisors", g.Supervisors); err != nil {
		return Result{}, err
	}
	var old Group
	err := getJSON(t.b(bGroups), []byte(g.ID), &old)
	switch {
	case create && err == nil:
		return Result{}, fmt.Errorf("%w: group %q", ErrExists, g.ID)
	case !create && err != nil:
		return Result{}, fmt.Errorf("group %q: %w", g.ID, err)
	case create && err != ErrNotFound:
		return Result{}, err
	case !create && old.Tenant != g.Tenant:
		return Result{}, fmt.Errorf("%w: group.tenant cannot change (%q → %q)", ErrInvalid, old.Tenant, g.Tenant)
	}
	newKey := nameKey(g.Tenant, g.Name)
	if id := t.b(bGroupNames).Get(newKey); id != nil && string(id) != g.ID {
		return Result{}, fmt.Errorf("%w: group name %q in tenant %q", ErrExists, g.Name, g.Tenant)
	}
	if !create {
		if err := t.del(bGroupNames, nameKey(old.Tenant, old.Name)); err != nil {
			return Result{}, err
		}
	}
	if err := t.put(bGroupNames, newKey, []byte(g.ID)); err != nil {
		return Result{}, err
	}
	return Result{ID: g.ID}, t.putJSON(bGroups, []byte(g.ID), g)
}

// ---- users ----

// CreateUser adds a user. ErrExists if the ID or the username (within the
// tenant, case-insensitively) is taken.
type CreateUser struct {
	User User `json:"user"`
}

// UpdateUser replaces the mutable profile of a user: display name, role,
// groups, supervised groups, permissions and the disabled flag. Username,
// tenant, password and creation time are kept.
type UpdateUser struct {
	ID               string      `json:"id"`
	DisplayName      string      `json:"displayName"`
	Role             Role        `json:"role"`
	Groups           []string    `json:"groups"`
	SupervisedGroups []string    `json:"supervisedGroups"`
	Permissions      Permissions `json:"permissions"`
	Disabled         bool        `json:"disabled"`
}

// SetPassword replaces a user's argon2id hash and sets the user's
// MustChangePassword to MustChange: true when someone else (an admin) set
// the password, false when users set their own.
type SetPassword struct {
	ID           string `json:"id"`
	PasswordHash string `json:"passwordHash"`
	MustChange   bool   `json:"mustChange,omitempty"`
}

func (*CreateUser) commandType() CommandType  { return TypeCreateUser }
func (*UpdateUser) commandType() CommandType  { return TypeUpdateUser }
func (*SetPassword) commandType() CommandType { return TypeSetPassword }

func checkPasswordHash(h string) error {
	// A PHC string: $argon2id$v=19$m=...,t=...,p=...$salt$hash. The empty hash
	// means "no password login" (token-only or SSO accounts).
	if h != "" && !strings.HasPrefix(h, "$argon2id$") {
		return fmt.Errorf("%w: passwordHash is not an argon2id PHC string", ErrInvalid)
	}
	return checkKeyText("passwordHash", h, maxNameLen)
}

func checkUser(u *User) error {
	checks := []error{
		checkID("user.id", u.ID),
		checkKeyText("user.tenant", u.Tenant, maxIDLen),
		checkID("user.username", u.Username),
		checkKeyText("user.displayName", u.DisplayName, maxNameLen),
		checkList("user.groups", u.Groups),
		checkList("user.supervisedGroups", u.SupervisedGroups),
		checkPasswordHash(u.PasswordHash),
		checkTime("user.created", u.Created),
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	if !u.Role.valid() {
		return fmt.Errorf("%w: user.role %q", ErrInvalid, u.Role)
	}
	return nil
}

func (c *CreateUser) apply(t *txn) (Result, error) {
	u := c.User
	u.Created = u.Created.UTC()
	if err := checkUser(&u); err != nil {
		return Result{}, err
	}
	if t.b(bUsers).Get([]byte(u.ID)) != nil {
		return Result{}, fmt.Errorf("%w: user id %q", ErrExists, u.ID)
	}
	key := nameKey(u.Tenant, u.Username)
	if t.b(bUserNames).Get(key) != nil {
		return Result{}, fmt.Errorf("%w: username %q in tenant %q", ErrExists, u.Username, u.Tenant)
	}
	if err := t.put(bUserNames, key, []byte(u.ID)); err != nil {
		return Result{}, err
	}
	return Result{ID: u.ID}, t.putJSON(bUsers, []byte(u.ID), u)
}

func (t *txn) updateUser(id string, fn func(u *User) error) (Result, error) {
	if err := checkID("id", id); err != nil {
		return Result{}, err
	}
	var u User
	if err := getJSON(t.b(bUsers), []byte(id), &u); err != nil {
		return Result{}, fmt.Errorf("user %q: %w", id, err)
	}
	if err := fn(&u); err != nil {
		return Result{}, err
	}
	if err := checkUser(&u); err != nil {
		return Result{}, err
	}
	return Result{ID: id}, t.putJSON(bUsers, []byte(id), u)
}

func (c *UpdateUser) apply(t *txn) (Result, error) {
	return t.updateUser(c.ID, func(u *User) error {
		u.DisplayName, u.Role, u.Groups, u.SupervisedGroups = c.DisplayName, c.Role, c.Groups, c.SupervisedGroups
		u.Permissions, u.Disabled = c.Permissions, c.Disabled
		return nil
	})
}

func (c *SetPassword) apply(t *txn) (Result, error) {
	return t.updateUser(c.ID, func(u *User) error {
		u.PasswordHash, u.MustChangePassword = c.PasswordHash, c.MustChange
		return nil
	})
}

// ---- tokens ----

// CreateToken stores an API token's hash.
type CreateToken struct {
	Token Token `json:"token"`
}

// RevokeToken deletes a token; TokenByHash no longer finds it.
type RevokeToken struct {
	ID string `json:"id"`
}

func (*CreateToken) commandType() CommandType { return TypeCreateToken }
func (*RevokeToken) commandType() CommandType { return TypeRevokeToken }

func (c *CreateToken) apply(t *txn) (Result, error) {
	tk := c.Token
	tk.Created, tk.Expires = tk.Created.UTC(), tk.Expires.UTC()
	for _, err := range []error{
		checkID("token.id", tk.ID), checkID("token.user", tk.User),
		checkKeyText("token.label", tk.Label, maxNameLen),
		checkTime("token.created", tk.Created), checkTime("token.expires", tk.Expires),
	} {
		if err != nil {
			return Result{}, err
		}
	}
	if tk.Hash == ([32]byte{}) {
		return Result{}, fmt.Errorf("%w: token.hash is zero", ErrInvalid)
	}
	if t.b(bUsers).Get([]byte(tk.User)) == nil {
		return Result{}, fmt.Errorf("%w: token.user %q", ErrNotFound, tk.User)
	}
	if t.b(bTokens).Get([]byte(tk.ID)) != nil {
		return Result{}, fmt.Errorf("%w: token id %q", ErrExists, tk.ID)
	}
	if t.b(bTokenHashes).Get(tk.Hash[:]) != nil {
		return Result{}, fmt.Errorf("%w: token hash %s", ErrExists, hex.EncodeToString(tk.Hash[:4]))
	}
	if err := t.put(bTokenHashes, tk.Hash[:], []byte(tk.ID)); err != nil {
		return Result{}, err
	}
	return Result{ID: tk.ID}, t.putJSON(bTokens, []byte(tk.ID), tk)
}

func (c *RevokeToken) apply(t *txn) (Result, error) {
	if err := checkID("id", c.ID); err != nil {
		return Result{}, err
	}
	var tk Token
	if err := getJSON(t.b(bTokens), []byte(c.ID), &tk); err != nil {
		return Result{}, fmt.Errorf("token %q: %w", c.ID, err)
	}
	if err := t.del(bTokenHashes, tk.Hash[:]); err != nil {
		return Result{}, err
	}
	return Result{ID: c.ID}, t.del(bTokens, []byte(c.ID))
}

// ---- settings ----

// PutSetting stores a small value (the sealed keyring blob, salts, policy).
// A nil Value deletes the key.
type PutSetting struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

func (*PutSetting) commandType() CommandType { return TypePutSetting }

const maxSettingLen = 1 << 20

func (c *PutSetting) apply(t *txn) (Result, error) {
	if err := checkID("key", c.Key); err != nil {
		return Result{}, err
	}
	if len(c.Value) > maxSettingLen {
		return Result{}, fmt.Errorf("%w: value is %d bytes, limit %d", ErrInvalid, len(c.Value), maxSettingLen)
	}
	if c.Value == nil {
		return Result{ID: c.Key}, t.del(bSettings, []byte(c.Key))
	}
	return Result{ID: c.Key}, t.put(bSettings, []byte(c.Key), c.Value)
}

// ---- reads ----

func (db *DB) viewJSON(bucket []byte, key []byte, v any, what string) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		if err := getJSON(tx.Bucket(bucket), key, v); err != nil {
			return fmt.Errorf("%s %q: %w", what, key, err)
		}
		return nil
	})
}

// viewByIndex resolves a unique index key to an ID and reads the record.
func (db *DB) viewByIndex(idx, key, primary []byte, v any, what string) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(idx).Get(key)
		if id == nil {
			return fmt.Errorf("%s %q: %w", what, key, ErrNotFound)
		}
		return getJSON(tx.Bucket(primary), id, v)
	})
}

// Tenant returns a tenant by ID.
func (db *DB) Tenant(id string) (Tenant, error) {
	var tn Tenant
	return tn, db.viewJSON(bTenants, []byte(id), &tn, "tenant")
}

// Tenants returns all tenants ordered by ID.
func (db *DB) Tenants() ([]Tenant, error) { return listJSON[Tenant](db, bTenants, nil) }

// Group returns a group by ID.
func (db *DB) Group(id string) (Group, error) {
	var g Group
	return g, db.viewJSON(bGroups, []byte(id), &g, "group")
}

// Groups returns the groups of a tenant ordered by ID.
func (db *DB) Groups(tenant string) ([]Group, error) {
	return listJSON(db, bGroups, func(g *Group) bool { return g.Tenant == tenant })
}

// User returns a user by ID.
func (db *DB) User(id string) (User, error) {
	var u User
	return u, db.viewJSON(bUsers, []byte(id), &u, "user")
}

// UserByName returns a user by username within a tenant (case-insensitive).
func (db *DB) UserByName(tenant, username string) (User, error) {
	var u User
	return u, db.viewByIndex(bUserNames, nameKey(tenant, username), bUsers, &u, "user")
}

// Users returns the users of a tenant ordered by username.
func (db *DB) Users(tenant string) ([]User, error) {
	us, err := listJSON(db, bUsers, func(u *User) bool { return u.Tenant == tenant })
	slices.SortFunc(us, func(a, b User) int {
		return strings.Compare(strings.ToLower(a.Username), strings.ToLower(b.Username))
	})
	return us, err
}

// CountUsers returns the number of users in all tenants (zero means the
// first-run admin has not been created yet).
func (db *DB) CountUsers() (int, error) {
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bUsers).Stats().KeyN
		return nil
	})
	return n, err
}

// TokenByHash returns the token whose secret hashes to h. The caller checks expiry.
func (db *DB) TokenByHash(h [32]byte) (Token, error) {
	var tk Token
	return tk, db.viewByIndex(bTokenHashes, h[:], bTokens, &tk, "token")
}

// Tokens returns the tokens of a user ordered by ID.
func (db *DB) Tokens(user string) ([]Token, error) {
	return listJSON(db, bTokens, func(tk *Token) bool { return tk.User == user })
}

// Setting returns a copy of a setting's value.
func (db *DB) Setting(key string) ([]byte, error) {
	var v []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bSettings).Get([]byte(key))
		if raw == nil {
			return fmt.Errorf("setting %q: %w", key, ErrNotFound)
		}
		v = bytes.Clone(raw) // raw is only valid inside the transaction
		return nil
	})
	return v, err
}

func listJSON[T any](db *DB, bucket []byte, keep func(*T) bool) ([]T, error) {
	var out []T
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("meta: decode %s %q: %w", bucket, k, err)
			}
			if keep == nil || keep(&x) {
				out = append(out, x)
			}
			return nil
		})
	})
	return out, err
}

// checkAccounts verifies the unique-name and token indexes.
func checkAccounts(tx *bolt.Tx) error {
	checks := []struct {
		primary, idx []byte
		keyOf        func(v []byte) ([]byte, error)
	}{
		{bTenants, bTenantNames, func(v []byte) ([]byte, error) {
			var x Tenant
			err := json.Unmarshal(v, &x)
			return []byte(strings.ToLower(x.Name)), err
		}},
		{bGroups, bGroupNames, func(v []byte) ([]byte, error) {
			var x Group
			err := json.Unmarshal(v, &x)
			return nameKey(x.Tenant, x.Name), err
		}},
		{bUsers, bUserNames, func(v []byte) ([]byte, error) {
			var x User
			err := json.Unmarshal(v, &x)
			return nameKey(x.Tenant, x.Username), err
		}},
		{bTokens, bTokenHashes, func(v []byte) ([]byte, error) {
			var x Token
			err := json.Unmarshal(v, &x)
			return x.Hash[:], err
		}},
	}
	for _, c := range checks {
		if err := checkUnique(tx, c.primary, c.idx, c.keyOf); err != nil {
			return err
		}
	}
	return nil
}
