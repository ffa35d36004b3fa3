package webui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// TestAccountRoutes: listing users of one's own tenant, password changes
// (admin for others; users for themselves only with the current
// password), disable/enable and the last-admin guard.
func TestAccountRoutes(t *testing.T) {
	f := newFixture(t)
	r := f.send("admin", "GET", "/api/v1/users", "")
	var us []userJSON
	r.json(t, &us)
	for _, u := range us {
		if u.Tenant != "" {
			t.Errorf("admin lists a user of tenant %q", u.Tenant)
		}
	}
	if r.code != 200 || len(us) < 8 || strings.Contains(string(r.body), "argon2") {
		t.Errorf("list: %d %d users", r.code, len(us))
	}
	r = f.send(`t2\t2admin`, "GET", "/api/v1/users", "")
	us = nil
	if r.json(t, &us); len(us) != 3 {
		t.Errorf("t2 lists %d users", len(us))
	}

	alice := f.users["alice"].ID
	pw := "/api/v1/users/" + alice + "/password"
	if r := f.send("alice", "POST", pw, `{"password":"a brand new password"}`); r.code != http.StatusForbidden {
		t.Errorf("own change without the current password: %d", r.code)
	}
	if r := f.send("alice", "POST", pw, `{"password":"a brand new password","currentPassword":"guess guess guess"}`); r.code != http.StatusForbidden {
		t.Errorf("own change with a wrong current password: %d", r.code)
	}
	if r := f.send("bob", "POST", pw, `{"password":"a brand new password"}`); r.code != http.StatusNotFound {
		t.Errorf("bob changes alice's password: %d", r.code)
	}
	if r := f.send(`t2\t2admin`, "POST", pw, `{"password":"a brand new password"}`); r.code != http.StatusNotFound {
		t.Errorf("another tenant's admin changes alice's password: %d", r.code)
	}
	if r := f.send("alice", "POST", pw, `{"password":"short","currentPassword":"`+testPassword+`"}`); r.code != 400 {
		t.Errorf("weak password: %d", r.code)
	}
	if r := f.send("alice", "POST", pw, `{"password":"a brand new password","currentPassword":"`+testPassword+`"}`); r.code != 204 {
		t.Fatalf("own change: %d %s", r.code, r.body)
	}
	req := httptest.NewRequest("GET", "/api/v1/me", nil)
	req.SetBasicAuth("alice", "a brand new password")
	if r := f.do(req); r.code != 200 {
		t.Errorf("new password does not work: %d", r.code)
	}
	if r := f.send("alice", "GET", "/api/v1/me", ""); r.code != 401 {
		t.Errorf("old password still works: %d", r.code)
	}
	if r := f.send("admin", "POST", pw, `{"password":"`+testPassword+`"}`); r.code != 204 {
		t.Errorf("admin resets alice's password: %d %s", r.code, r.body)
	}

	victim := "/api/v1/users/" + f.users["victim"].ID
	if r := f.send("admin", "POST", victim+"/disable", ""); r.code != 204 {
		t.Fatalf("disable: %d", r.code)
	}
	if r := f.send("victim", "GET", "/api/v1/me", ""); r.code != 401 {
		t.Errorf("disabled user signs in: %d", r.code)
	}
	if r := f.send("admin", "POST", victim+"/enable", ""); r.code != 204 {
		t.Fatalf("enable: %d", r.code)
	}
	if r := f.send("victim", "GET", "/api/v1/me", ""); r.code != 200 {
		t.Errorf("enabled user: %d", r.code)
	}
	// np-admin is the other enabled admin of the default tenant: disabling
	// it works, then admin is the last one and cannot be disabled.
	if r := f.send("admin", "POST", "/api/v1/users/"+f.users["np-admin"].ID+"/disable", ""); r.code != 204 {
		t.Fatalf("disable np-admin: %d", r.code)
	}
	if r := f.send("admin", "POST", "/api/v1/users/"+f.users["admin"].ID+"/disable", ""); r.code != http.StatusConflict || !strings.Contains(string(r.body), "last enabled admin") {
		t.Errorf("disable the last admin: %d %s", r.code, r.body)
	}
	if r := f.send(`t2\t2admin`, "POST", victim+"/disable", ""); r.code != 404 {
		t.Errorf("another tenant disables: %d", r.code)
	}
	es := f.auditEntries(t, meta.AuditQuery{Action: meta.AuditUser})
	if len(es) < 5 {
		t.Errorf("%d user entries in the audit log", len(es))
	}
}

// TestGroupPermissions: a group with permissions restricts its members
// (AND with their own), one without restricts nothing.
func TestGroupPermissions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	noPlay := allPerms
	noPlay.Play, noPlay.Download = false, false
	if _, err := f.st.Apply(ctx, &meta.CreateGroup{Group: meta.Group{ID: "g1", Name: "Sales", Permissions: &noPlay}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Apply(ctx, &meta.CreateGroup{Group: meta.Group{ID: "g2", Name: "Support"}}); err != nil {
		t.Fatal(err)
	}
	audioOf := func(who ident, id string) int {
		return f.send(who, "GET", "/api/v1/recordings/"+id+"/audio", "").code
	}
	if c := audioOf("alice", f.target); c != http.StatusForbidden {
		t.Errorf("alice in a group without play: %d", c)
	}
	if c := f.send("alice", "POST", "/api/v1/recordings/"+f.target+"/notes", `{"text":"still allowed"}`).code; c != 200 {
		t.Errorf("alice's notes: %d", c)
	}
	if c := audioOf("bob", f.bobRec); c != 200 {
		t.Errorf("bob in a group without restrictions: %d", c)
	}
	var me meResponse
	f.send("alice", "GET", "/api/v1/me", "").json(t, &me)
	if me.Permissions.Play || !me.Permissions.Notes || strings.Contains(strings.Join(me.Actions, ","), "play") {
		t.Errorf("alice's effective permissions: %+v", me)
	}
	// A group cannot grant what the user lacks.
	u := f.users["np-user"]
	u.Groups = []string{"g2"}
	if _, err := f.st.Apply(ctx, &meta.UpdateUser{ID: u.ID, Role: u.Role, Groups: u.Groups}); err != nil {
		t.Fatal(err)
	}
	if c := f.send("np-user", "GET", "/api/v1/recordings/"+f.target+"/audio", "").code; c != http.StatusForbidden {
		t.Errorf("np-user in an unrestricted group: %d", c)
	}
}

// TestHSTS: Strict-Transport-Security only when the server runs behind TLS.
func TestHSTS(t *testing.T) {
	for _, secure := range []bool{false, true} {
		e := newEnv(t, func(c *Config, d *Data) { c.SecureCookies = secure })
		r := e.do(httptest.NewRequest("GET", "/healthz", nil))
		got := r.hdr.Get("Strict-Transport-Security")
		if secure && got != "max-age=31536000" || !secure && got != "" {
			t.Errorf("secure=%v: HSTS %q", secure, got)
		}
	}
}

// TestSignInAudited: the sign-in form's success, failure and sign-out, the
// search the landing page makes, and failed API credentials, are in the
// audit log.
func TestSignInAudited(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", meta.RoleUser)
	form := func(pw string) response {
		req := httptest.NewRequest("POST", "/login", strings.NewReader("username=alice&password="+strings.ReplaceAll(pw, " ", "+")))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return e.do(req)
	}
	form("wrong password here")
	r := form(testPassword)
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.hdr}).Cookies() {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("no session: %d", r.code)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(cookie)
	csrf := ""
	if body := string(e.do(req).body); strings.Contains(body, `name="csrf" value="`) {
		csrf = strings.SplitN(strings.SplitN(body, `name="csrf" value="`, 2)[1], `"`, 2)[0]
	}
	// The landing page's search entry is written behind the request; let
	// it land before the sign-out's, so the order below is fixed.
	if err := e.srv.auditQ.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	req = httptest.NewRequest("POST", "/logout", strings.NewReader("csrf="+csrf))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(cookie)
	e.do(req)
	e.clock.Add(time.Hour)
	req = httptest.NewRequest("GET", "/api/v1/me", nil)
	req.SetBasicAuth(`t9\mallory`, "whatever it is")
	e.do(req)
	req = httptest.NewRequest("GET", "/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer cvt_nope")
	e.do(req)
	page, err := e.st.Meta().SearchAudit(meta.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range page.Entries {
		got = append(got, string(en.Action)+"/"+en.Outcome+"/"+en.Tenant+"/"+en.ActorName)
	}
	want := []string{"login-failed/denied//", "login-failed/denied/t9/t9\\mallory", "logout/ok//alice", "search/ok//alice", "login/ok//alice", "login-failed/denied//alice"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("audit: %v\nwant   %v", got, want)
	}
}
