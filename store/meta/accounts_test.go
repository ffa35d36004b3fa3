package meta

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

const testHash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"

func testUser(id, tenant, name string) User {
	return User{
		ID: id, Tenant: tenant, Username: name, DisplayName: "User " + name, Role: RoleUser,
		Groups: []string{"g1"}, Permissions: Permissions{Play: true}, PasswordHash: testHash,
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func TestOpenLockedByOtherHandle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	// flock is per open file description, so a second Open in the same
	// process behaves like a second process.
	_, err = Open(path, Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second open took %v, the timeout is 100ms", d)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, db, &CreateUser{User: testUser("u1", "", "admin")})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.UserByName("", "ADMIN")
	if err != nil || u.ID != "u1" {
		t.Fatalf("after reopen: %+v, %v", u, err)
	}
}

func TestApplyRejectsBadEnvelopes(t *testing.T) {
	db := mustOpen(t)
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"type zero", []byte{0, '{', '}'}, ErrUnknownCommand},
		{"type 255", []byte{255, '{', '}'}, ErrUnknownCommand},
		{"bad json", []byte{byte(TypeCreateUser), '{'}, ErrMalformed},
		{"trailing garbage", []byte{byte(TypeCreateUser), '{', '}', 'x'}, ErrMalformed},
		{"empty user", []byte{byte(TypeCreateUser), '{', '}'}, ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := db.Apply(c.b); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestEncodeIsDeterministic(t *testing.T) {
	cmd := &CreateUser{User: testUser("u1", "t", "alice")}
	a, err := Encode(cmd)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Encode(cmd)
	if !bytes.Equal(a, b) || a[0] != byte(TypeCreateUser) {
		t.Fatalf("encodings differ or wrong type byte: %q vs %q", a, b)
	}
}

func TestUsers(t *testing.T) {
	db := mustOpen(t)
	if n, _ := db.CountUsers(); n != 0 {
		t.Fatalf("fresh db has %d users", n)
	}
	res := mustApply(t, db, &CreateUser{User: testUser("u1", "t1", "Alice")})
	if res.ID != "u1" {
		t.Fatalf("result ID %q", res.ID)
	}
	mustApply(t, db, &CreateUser{User: testUser("u2", "t1", "bob")})
	mustApply(t, db, &CreateUser{User: testUser("u3", "t2", "alice")}) // same name, other tenant

	wantErr(t, db, &CreateUser{User: testUser("u4", "t1", "ALICE")}, ErrExists)
	wantErr(t, db, &CreateUser{User: testUser("u1", "t9", "zed")}, ErrExists)
	bad := testUser("u5", "t1", "carol")
	bad.Role = "root"
	wantErr(t, db, &CreateUser{User: bad}, ErrInvalid)
	bad = testUser("u5", "t1", "carol")
	bad.PasswordHash = "plaintext"
	wantErr(t, db, &CreateUser{User: bad}, ErrInvalid)
	bad = testUser("u5", "t1", "ca\x00rol")
	wantErr(t, db, &CreateUser{User: bad}, ErrInvalid)

	if n, _ := db.CountUsers(); n != 3 {
		t.Fatalf("CountUsers = %d, want 3", n)
	}
	u, err := db.UserByName("t1", "alice")
	if err != nil || u.ID != "u1" || u.Username != "Alice" || !u.Created.Equal(testUser("", "", "").Created) {
		t.Fatalf("UserByName: %+v, %v", u, err)
	}
	if _, err := db.UserByName("t3", "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UserByName in other tenant: %v", err)
	}
	us, err := db.Users("t1")
	if err != nil || len(us) != 2 || us[0].ID != "u1" || us[1].ID != "u2" {
		t.Fatalf("Users(t1) = %+v, %v", us, err)
	}

	mustApply(t, db, &UpdateUser{ID: "u2", DisplayName: "Robert", Role: RoleSupervisor,
		Groups: []string{"g1", "g2"}, SupervisedGroups: []string{"g2"},
		Permissions: Permissions{Play: true, Download: true}, Disabled: true})
	u, _ = db.User("u2")
	if u.DisplayName != "Robert" || u.Role != RoleSupervisor || !u.Disabled || !u.Permissions.Download ||
		len(u.SupervisedGroups) != 1 || u.Username != "bob" || u.PasswordHash != testHash {
		t.Fatalf("after UpdateUser: %+v", u)
	}
	wantErr(t, db, &UpdateUser{ID: "nope", Role: RoleUser}, ErrNotFound)
	wantErr(t, db, &UpdateUser{ID: "u2", Role: "boss"}, ErrInvalid)

	newHash := "$argon2id$v=19$m=65536,t=3,p=4$bmV3$bmV3aGFzaA"
	mustApply(t, db, &SetPassword{ID: "u2", PasswordHash: newHash})
	if u, _ = db.User("u2"); u.PasswordHash != newHash || u.DisplayName != "Robert" {
		t.Fatalf("after SetPassword: %+v", u)
	}
	wantErr(t, db, &SetPassword{ID: "u2", PasswordHash: "md5:abc"}, ErrInvalid)

	// An admin's reset makes the user change the password at the next
	// sign-in; profile edits keep the flag; the user's own change clears it.
	mustApply(t, db, &SetPassword{ID: "u2", PasswordHash: testHash, MustChange: true})
	if u, _ = db.User("u2"); !u.MustChangePassword || u.PasswordHash != testHash {
		t.Fatalf("after an admin's SetPassword: %+v", u)
	}
	mustApply(t, db, &UpdateUser{ID: "u2", DisplayName: "Bob", Role: RoleUser})
	if u, _ = db.User("u2"); !u.MustChangePassword {
		t.Fatalf("UpdateUser cleared MustChangePassword: %+v", u)
	}
	mustApply(t, db, &SetPassword{ID: "u2", PasswordHash: newHash})
	if u, _ = db.User("u2"); u.MustChangePassword {
		t.Fatalf("the user's own SetPassword kept MustChangePassword: %+v", u)
	}
	// The flag is omitted when false, so commands from before it existed
	// encode to the same bytes.
	if b, _ := Encode(&SetPassword{ID: "u2", PasswordHash: newHash}); bytes.Contains(b, []byte("mustChange")) {
		t.Fatalf("encoded %s", b)
	}
}

func TestTenantsAndGroups(t *testing.T) {
	db := mustOpen(t)
	mustApply(t, db, &CreateTenant{Tenant: Tenant{ID: "t1", Name: "Acme"}})
	mustApply(t, db, &CreateTenant{Tenant: Tenant{ID: "t2", Name: "Globex"}})
	wantErr(t, db, &CreateTenant{Tenant: Tenant{ID: "t3", Name: "acme"}}, ErrExists)
	wantErr(t, db, &UpdateTenant{Tenant: Tenant{ID: "t2", Name: "ACME"}}, ErrExists)
	wantErr(t, db, &UpdateTenant{Tenant: Tenant{ID: "t9", Name: "X"}}, ErrNotFound)
	mustApply(t, db, &UpdateTenant{Tenant: Tenant{ID: "t1", Name: "Acme Corp"}})
	// The old name is free again after the rename.
	mustApply(t, db, &CreateTenant{Tenant: Tenant{ID: "t3", Name: "Acme"}})
	if tn, err := db.Tenant("t1"); err != nil || tn.Name != "Acme Corp" {
		t.Fatalf("Tenant(t1) = %+v, %v", tn, err)
	}
	if ts, _ := db.Tenants(); len(ts) != 3 {
		t.Fatalf("Tenants = %+v", ts)
	}

	mustApply(t, db, &CreateGroup{Group: Group{ID: "g1", Tenant: "t1", Name: "Sales", Supervisors: []string{"u1"}}})
	mustApply(t, db, &CreateGroup{Group: Group{ID: "g2", Tenant: "t2", Name: "sales"}})
	wantErr(t, db, &CreateGroup{Group: Group{ID: "g3", Tenant: "t1", Name: "SALES"}}, ErrExists)
	wantErr(t, db, &UpdateGroup{Group: Group{ID: "g1", Tenant: "t2", Name: "Sales"}}, ErrInvalid)
	mustApply(t, db, &UpdateGroup{Group: Group{ID: "g1", Tenant: "t1", Name: "Support", Supervisors: []string{"u1", "u2"}}})
	g, err := db.Group("g1")
	if err != nil || g.Name != "Support" || len(g.Supervisors) != 2 {
		t.Fatalf("Group(g1) = %+v, %v", g, err)
	}
	if gs, _ := db.Groups("t1"); len(gs) != 1 || gs[0].ID != "g1" {
		t.Fatalf("Groups(t1) = %+v", gs)
	}
}

func TestTokens(t *testing.T) {
	db := mustOpen(t)
	mustApply(t, db, &CreateUser{User: testUser("u1", "", "alice")})
	h := sha256.Sum256([]byte("secret-token"))
	tk := Token{ID: "tok1", User: "u1", Hash: h, Label: "ci", Created: time.Unix(100, 0), Expires: time.Unix(200, 0)}
	mustApply(t, db, &CreateToken{Token: tk})
	wantErr(t, db, &CreateToken{Token: Token{ID: "tok2", User: "u1", Hash: h}}, ErrExists)
	wantErr(t, db, &CreateToken{Token: Token{ID: "tok3", User: "ghost", Hash: sha256.Sum256([]byte("x"))}}, ErrNotFound)
	wantErr(t, db, &CreateToken{Token: Token{ID: "tok4", User: "u1"}}, ErrInvalid)

	got, err := db.TokenByHash(h)
	if err != nil || got.ID != "tok1" || got.Label != "ci" || !got.Expires.Equal(tk.Expires) {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if ts, _ := db.Tokens("u1"); len(ts) != 1 {
		t.Fatalf("Tokens(u1) = %+v", ts)
	}
	mustApply(t, db, &RevokeToken{ID: "tok1"})
	if _, err := db.TokenByHash(h); !errors.Is(err, ErrNotFound) {
		t.Fatalf("TokenByHash after revoke: %v", err)
	}
	wantErr(t, db, &RevokeToken{ID: "tok1"}, ErrNotFound)
}

func TestSettings(t *testing.T) {
	db := mustOpen(t)
	mustApply(t, db, &PutSetting{Key: "keyring", Value: []byte{1, 2, 3}})
	v, err := db.Setting("keyring")
	if err != nil || !bytes.Equal(v, []byte{1, 2, 3}) {
		t.Fatalf("Setting = %v, %v", v, err)
	}
	mustApply(t, db, &PutSetting{Key: "keyring"})
	if _, err := db.Setting("keyring"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	wantErr(t, db, &PutSetting{Key: "", Value: []byte{1}}, ErrInvalid)
	wantErr(t, db, &PutSetting{Key: "big", Value: make([]byte, maxSettingLen+1)}, ErrInvalid)
}

func TestApplyBatchReportsPerCommand(t *testing.T) {
	db := mustOpen(t)
	var cmds [][]byte
	for _, c := range []Command{
		&CreateUser{User: testUser("u1", "", "alice")},
		&CreateUser{User: testUser("u2", "", "ALICE")}, // rejected: duplicate name
		&CreateUser{User: testUser("u3", "", "bob")},
	} {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, b)
	}
	cmds = append(cmds, []byte{250})
	res, err := db.ApplyBatch(cmds)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || res[0].Err != nil || !errors.Is(res[1].Err, ErrExists) || res[2].Err != nil ||
		!errors.Is(res[3].Err, ErrUnknownCommand) {
		t.Fatalf("results: %+v", res)
	}
	if n, _ := db.CountUsers(); n != 2 {
		t.Fatalf("CountUsers = %d, want 2", n)
	}
}
