package webui

import (
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/webui/i18n"
)

// apiAs sends an API request with Basic credentials user:password.
func (e *testEnv) apiAs(method, path, user, password, body string) response {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.SetBasicAuth(user, password)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.do(req)
}

func (e *testEnv) mustChange(id string) bool {
	e.t.Helper()
	u, err := e.st.Meta().User(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return u.MustChangePassword
}

// TestMustChangePassword: a password an admin set must be replaced at the
// next sign-in. Until then the pages lead only to the account page (with
// the reason, in the user's language) and the API answers 403 to all but
// GET /api/v1/me and setting one's own password; the user's own change
// clears it.
func TestMustChangePassword(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.addUser("admin", meta.RoleAdmin)
	bob := e.addUser("bob", meta.RoleUser)
	const reset, own = "reset by the admin!", "bob's very own passphrase"

	// The admin resets bob's password: bob must change it.
	if r := e.apiAs(http.MethodPost, "/api/v1/users/"+bob.ID+"/password", "admin", testPassword, `{"password":"`+reset+`"}`); r.code != http.StatusNoContent {
		t.Fatalf("admin reset: %d %s", r.code, r.body)
	}
	if !e.mustChange(bob.ID) {
		t.Fatal("an admin's reset did not set MustChangePassword")
	}

	// The API: only /me and bob's own password.
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/recordings", ""},
		{http.MethodGet, "/api/v1/tokens", ""},
		{http.MethodPost, "/api/v1/tokens", `{"label":"x"}`},
		{http.MethodGet, "/api/v1/openapi.json", ""},
		{http.MethodPost, "/api/v1/users/" + admin.ID + "/password", `{"password":"someone else's pw","currentPassword":"x"}`},
	} {
		r := e.apiAs(c.method, c.path, "bob", reset, c.body)
		if r.code != http.StatusForbidden || !strings.Contains(string(r.body), "must be changed") || !strings.Contains(string(r.body), bob.ID+"/password") {
			t.Errorf("%s %s while bob must change his password: %d %s, want 403 naming the way out", c.method, c.path, r.code, r.body)
		}
	}
	var me meResponse
	r := e.apiAs(http.MethodGet, "/api/v1/me", "bob", reset, "")
	r.json(t, &me)
	if r.code != http.StatusOK || !me.MustChangePassword || me.Username != "bob" {
		t.Fatalf("GET /api/v1/me: %d %s", r.code, r.body)
	}

	// The pages: everything leads to the account page, which explains why
	// and offers nothing but the password form.
	if _, err := e.st.Apply(t.Context(), &meta.SetPassword{ID: bob.ID, PasswordHash: testHash(t, testPassword), MustChange: true}); err != nil {
		t.Fatal(err) // so signIn (testPassword) works; the flag stays set
	}
	ck := e.signIn("bob")
	for _, path := range []string{"/", "/recordings", "/recordings/all", "/admin", "/exports"} {
		if p := e.page(ck, path); p.code != http.StatusSeeOther || p.hdr.Get("Location") != "/account" {
			t.Errorf("GET %s: %d to %q, want 303 to /account", path, p.code, p.hdr.Get("Location"))
		}
	}
	b, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, l := range i18n.Languages() {
		p := e.page(ck, "/account", func(r *http.Request) { r.Header.Set("Accept-Language", l.Code) })
		cat, _ := b.Get(l.Code)
		msg := cat.T("account.mustChange")
		if p.code != http.StatusOK || !has(p.body, "must-change") || !strings.Contains(string(p.body), html.EscapeString(msg)) {
			t.Errorf("%s account page: %d, no translated explanation %q", l.Code, p.code, msg)
		}
		if has(p.body, "token-form") || has(p.body, "nav-mine") || !has(p.body, "password-form") {
			t.Errorf("%s account page of a must-change user offers more than the password form", l.Code)
		}
		if other, dup := seen[msg]; dup {
			t.Errorf("%s and %s share the explanation %q (untranslated)", l.Code, other, msg)
		}
		seen[msg] = l.Code
	}

	// bob sets his own password: the flag is cleared, everything opens.
	if r := e.apiAs(http.MethodPost, "/api/v1/users/"+bob.ID+"/password", "bob", testPassword,
		`{"password":"`+own+`","currentPassword":"`+testPassword+`"}`); r.code != http.StatusNoContent {
		t.Fatalf("own change: %d %s", r.code, r.body)
	}
	if e.mustChange(bob.ID) {
		t.Fatal("the user's own change kept MustChangePassword")
	}
	if r := e.apiAs(http.MethodGet, "/api/v1/recordings", "bob", own, ""); r.code != http.StatusOK {
		t.Fatalf("search after the change: %d %s", r.code, r.body)
	}
	if p := e.page(ck, "/recordings"); p.code != http.StatusOK || has(p.body, "must-change") {
		t.Fatalf("recordings page after the change: %d", p.code)
	}
	if p := e.page(ck, "/account"); has(p.body, "must-change") || !has(p.body, "token-form") {
		t.Fatal("account page after the change still in must-change mode")
	}

	// An admin setting their own password is not forced to change it.
	if r := e.apiAs(http.MethodPost, "/api/v1/users/"+admin.ID+"/password", "admin", testPassword, `{"password":"`+own+`"}`); r.code != http.StatusNoContent || e.mustChange(admin.ID) {
		t.Fatalf("admin's own change: %d %s, flag %v", r.code, r.body, e.mustChange(admin.ID))
	}

	// Creating a user: the admin page asks for the flag; the API default is off.
	for _, c := range []struct {
		name, extra string
		want        bool
	}{{"carol", `,"mustChangePassword":true`, true}, {"dave", "", false}} {
		r := e.apiAs(http.MethodPost, "/api/v1/users", "admin", own, `{"username":"`+c.name+`","password":"`+testPassword+`","role":"user"`+c.extra+`}`)
		if r.code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", c.name, r.code, r.body)
		}
		u, err := e.st.Meta().UserByName("", c.name)
		if err != nil || u.MustChangePassword != c.want {
			t.Errorf("created %s: MustChangePassword %v (%v), want %v", c.name, u.MustChangePassword, err, c.want)
		}
	}
}
