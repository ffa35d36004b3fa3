package webui

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

func TestTokenLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.addUser("alice", meta.RoleUser)
	e.addUser("bob", meta.RoleUser)

	create := func(auth func(*http.Request), body string) response {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/tokens", strings.NewReader(body))
		auth(req)
		return e.do(req)
	}
	r := create(func(r *http.Request) { basic(r, "alice") }, `{"label":"pbx","expiresInDays":30}`)
	if r.code != http.StatusCreated {
		t.Fatalf("create token: %d %s", r.code, r.body)
	}
	var tok createTokenResponse
	r.json(t, &tok)
	if !strings.HasPrefix(tok.Token, tokenPrefix) || len(tok.Token) != len(tokenPrefix)+43 || tok.Label != "pbx" || tok.Expires == nil {
		t.Fatalf("token response %+v", tok)
	}
	// Stored hashed: the store holds the SHA-256, never the secret.
	stored, err := e.st.Meta().Tokens(alice.ID)
	if err != nil || len(stored) != 1 || stored[0].Hash != sha256.Sum256([]byte(tok.Token)) {
		t.Fatalf("stored tokens %+v %v", stored, err)
	}
	raw, _ := json.Marshal(stored[0])
	if strings.Contains(string(raw), strings.TrimPrefix(tok.Token, tokenPrefix)) {
		t.Fatal("the token secret is stored")
	}

	bearer := func(method, path, secret string) response {
		req := httptest.NewRequest(method, path, strings.NewReader(`{"label":"x"}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		return e.do(req)
	}
	r = bearer(http.MethodGet, "/api/v1/me", tok.Token)
	var me meResponse
	r.json(t, &me)
	if r.code != 200 || me.Username != "alice" || me.Method != AuthToken {
		t.Fatalf("me with token: %d %+v", r.code, me)
	}
	r = bearer(http.MethodGet, "/api/v1/tokens", tok.Token)
	var list []map[string]any
	r.json(t, &list)
	if len(list) != 1 || list[0]["id"] != tok.ID || strings.Contains(string(r.body), tok.Token) || strings.Contains(string(r.body), "hash") {
		t.Fatalf("list: %s", r.body)
	}
	if r := bearer(http.MethodPost, "/api/v1/tokens", tok.Token); r.code != http.StatusForbidden {
		t.Errorf("a token minted a token: %d", r.code)
	}
	// Bob cannot revoke (or learn of) Alice's token.
	req := basic(httptest.NewRequest(http.MethodDelete, "/api/v1/tokens/"+tok.ID, nil), "bob")
	if r := e.do(req); r.code != http.StatusNotFound {
		t.Errorf("bob revoked alice's token: %d", r.code)
	}
	for _, bad := range []string{"", "cvt_", tok.Token + "x", "cvt_" + strings.Repeat("A", 43), strings.TrimPrefix(tok.Token, tokenPrefix)} {
		if r := bearer(http.MethodGet, "/api/v1/me", bad); r.code != http.StatusUnauthorized {
			t.Errorf("bearer %q: %d", bad, r.code)
		}
	}
	// Expiry against the server's clock.
	e.clock.Add(31 * 24 * time.Hour)
	if r := bearer(http.MethodGet, "/api/v1/me", tok.Token); r.code != http.StatusUnauthorized || !strings.Contains(string(r.body), "expired") {
		t.Errorf("expired token: %d %s", r.code, r.body)
	}
	e.clock.Add(-31 * 24 * time.Hour)
	// Revoke: 204, then the token is dead.
	req = basic(httptest.NewRequest(http.MethodDelete, "/api/v1/tokens/"+tok.ID, nil), "alice")
	if r := e.do(req); r.code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.code, r.body)
	}
	if r := bearer(http.MethodGet, "/api/v1/me", tok.Token); r.code != http.StatusUnauthorized {
		t.Errorf("revoked token: %d", r.code)
	}
	// A token whose account is disabled stops working at once.
	r = create(func(r *http.Request) { basic(r, "alice") }, `{"label":"second"}`)
	tok = createTokenResponse{}
	r.json(t, &tok)
	if tok.Expires != nil {
		t.Error("expiresInDays 0 gave an expiry")
	}
	disable(t, e, alice)
	if r := bearer(http.MethodGet, "/api/v1/me", tok.Token); r.code != http.StatusUnauthorized {
		t.Errorf("token of a disabled account: %d", r.code)
	}
	for _, body := range []string{`{"label":"x","expiresInDays":-1}`, `{"label":"` + strings.Repeat("x", 300) + `"}`, `{"lable":"typo"}`, `not json`} {
		if r := create(func(r *http.Request) { basic(r, "bob") }, body); r.code != http.StatusBadRequest {
			t.Errorf("create token %s: %d", body, r.code)
		}
	}
}

func disable(t *testing.T, e *testEnv, u meta.User) {
	t.Helper()
	if _, err := e.st.Apply(context.Background(), &meta.UpdateUser{ID: u.ID, Role: u.Role, Permissions: u.Permissions, Disabled: true}); err != nil {
		t.Fatal(err)
	}
}

// TestBasicCache checks that the verify cache never lets a changed
// password, a disabled account or a wrong password through.
func TestBasicCache(t *testing.T) {
	e := newEnv(t, nil)
	u := e.addUser("alice", meta.RoleUser)
	me := func(pw string) int {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
		req.SetBasicAuth("alice", pw)
		return e.do(req).code
	}
	if me(testPassword) != 200 {
		t.Fatal("first sign-in")
	}
	start := time.Now()
	for range 20 {
		if me(testPassword) != 200 {
			t.Fatal("cached sign-in")
		}
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("20 cached Basic checks took %v: the cache does not work", el)
	}
	if me("correct horse batterz") != http.StatusUnauthorized {
		t.Error("wrong password accepted")
	}
	newHash, _ := HashPassword("a new password!")
	if _, err := e.st.Apply(context.Background(), &meta.SetPassword{ID: u.ID, PasswordHash: newHash}); err != nil {
		t.Fatal(err)
	}
	if me(testPassword) != http.StatusUnauthorized {
		t.Error("old password still accepted after a change (stale cache)")
	}
	if me("a new password!") != 200 {
		t.Error("new password refused")
	}
	disable(t, e, u)
	if me("a new password!") != http.StatusUnauthorized {
		t.Error("disabled account accepted from the cache")
	}
	if strings.Contains(e.log.String(), testPassword) || strings.Contains(e.log.String(), "a new password") {
		t.Error("a password reached the log")
	}
	// Tenants: "tenant\user" signs in a user of another tenant.
	e.addUser("carol", meta.RoleUser, func(x *meta.User) { x.Tenant = "t2" })
	req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
	req.SetBasicAuth(`t2\carol`, testPassword)
	r := e.do(req)
	var m meResponse
	r.json(t, &m)
	if r.code != 200 || m.Tenant != "t2" {
		t.Errorf("tenant sign-in: %d %s", r.code, r.body)
	}
	req = httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
	req.SetBasicAuth("carol", testPassword)
	if r := e.do(req); r.code != http.StatusUnauthorized {
		t.Errorf("carol found in the default tenant: %d", r.code)
	}
}

func TestThrottle(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", meta.RoleAdmin)
	try := func(user, pw, addr string) response {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
		req.SetBasicAuth(user, pw)
		req.RemoteAddr = addr
		return e.do(req)
	}
	// Per account: five failures from five addresses, then even the right
	// password is refused with 429 and a Retry-After.
	for i := range accountBurst {
		if r := try("alice", "wrong password!", "203.0.113."+strconv.Itoa(i)+":1"); r.code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, r.code)
		}
	}
	r := try("alice", testPassword, "203.0.113.99:1")
	if r.code != http.StatusTooManyRequests {
		t.Fatalf("account not throttled: %d", r.code)
	}
	if ra, err := strconv.Atoi(r.hdr.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", r.hdr.Get("Retry-After"))
	}
	if got := e.counter("callvault_login_throttled_total", "limit", "account"); got != 1 {
		t.Errorf("throttled{limit=account} = %v", got)
	}
	// Another account from the same addresses is not affected.
	e.addUser("bob", meta.RoleAdmin)
	if r := try("bob", testPassword, "203.0.113.0:1"); r.code != 200 {
		t.Errorf("bob throttled by alice's failures: %d", r.code)
	}
	// One refill later, one more try; the right password then clears it.
	e.clock.Add(accountRefill)
	if r := try("alice", testPassword, "203.0.113.99:1"); r.code != 200 {
		t.Fatalf("after the refill: %d", r.code)
	}
	for range accountBurst {
		if r := try("alice", testPassword, "203.0.113.99:1"); r.code != 200 {
			t.Fatalf("after success the account is still throttled: %d", r.code)
		}
	}

	// Per address: many accounts guessed from one address.
	for i := range addressBurst {
		if r := try("nobody"+strconv.Itoa(i), "guess", "198.51.100.7:1"); r.code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, r.code)
		}
	}
	if r := try("alice", testPassword, "198.51.100.7:2"); r.code != http.StatusTooManyRequests {
		t.Errorf("address not throttled: %d", r.code)
	}
	if r := try("alice", testPassword, "198.51.100.8:1"); r.code != 200 {
		t.Errorf("another address throttled: %d", r.code)
	}
	if got := e.counter("callvault_login_throttled_total", "limit", "address"); got != 1 {
		t.Errorf("throttled{limit=address} = %v", got)
	}
	// Bad bearer tokens count against the address too.
	for range addressBurst {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
		req.Header.Set("Authorization", "Bearer cvt_guess")
		req.RemoteAddr = "198.51.100.9:1"
		e.do(req)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer cvt_guess")
	req.RemoteAddr = "198.51.100.9:1"
	if r := e.do(req); r.code != http.StatusTooManyRequests {
		t.Errorf("token guessing not throttled: %d", r.code)
	}

	// The sign-in form shares the limits.
	for range accountBurst {
		form := url.Values{"username": {"bob"}, "password": {"wrong password!"}}
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		e.do(req)
	}
	form := url.Values{"username": {"bob"}, "password": {testPassword}}
	req = httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := e.do(req); r.code != http.StatusTooManyRequests || r.hdr.Get("Retry-After") == "" {
		t.Errorf("sign-in form not throttled: %d", r.code)
	}
}

func TestThrottleBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	th := newThrottle(2, time.Minute, 3, func() time.Time { return now })
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		th.fail(k)
		th.fail(k)
	}
	if n := th.size(); n != 4 { // a, b, c and the shared overflow bucket
		t.Fatalf("%d buckets, want 4", n)
	}
	if th.blocked("a") <= 0 || th.blocked("zzz") <= 0 {
		t.Error("full keys or overflow not blocked")
	}
	if w := th.blocked("a"); w != time.Minute {
		t.Errorf("wait %v, want one refill", w)
	}
	now = now.Add(30 * time.Second)
	if w := th.blocked("a"); w != 30*time.Second {
		t.Errorf("wait %v after half a refill", w)
	}
	now = now.Add(2 * time.Minute)
	th.sweep()
	if n := th.size(); n != 0 {
		t.Errorf("%d buckets after they refilled", n)
	}
}

// TestSessionAPI checks that a browser session works for the API, and that
// a state-changing request needs the CSRF token in the header.
func TestSessionAPI(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", meta.RoleUser)
	form := url.Values{"username": {"alice"}, "password": {testPassword}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := e.do(req)
	if r.code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", r.code)
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.hdr}).Cookies() {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie")
	}
	sess, _ := e.srv.sess.get(cookie.Value)
	send := func(method, path, csrf string) response {
		req := httptest.NewRequest(method, path, strings.NewReader(`{"label":"ui"}`))
		req.AddCookie(cookie)
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		return e.do(req)
	}
	if r := send(http.MethodGet, "/api/v1/me", ""); r.code != 200 || !strings.Contains(string(r.body), `"authMethod":"session"`) {
		t.Errorf("GET with session: %d %s", r.code, r.body)
	}
	if r := send(http.MethodPost, "/api/v1/tokens", ""); r.code != http.StatusForbidden {
		t.Errorf("POST without CSRF: %d", r.code)
	}
	if r := send(http.MethodPost, "/api/v1/tokens", sess.csrf+"x"); r.code != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d", r.code)
	}
	if r := send(http.MethodPost, "/api/v1/tokens", sess.csrf); r.code != http.StatusCreated {
		t.Errorf("POST with CSRF: %d %s", r.code, r.body)
	}
}

func TestCreateUser(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("boss", meta.RoleAdmin, func(u *meta.User) { u.Tenant = "t2" })
	post := func(body string) response {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/users", strings.NewReader(body))
		req.SetBasicAuth(`t2\boss`, testPassword)
		return e.do(req)
	}
	r := post(`{"username":"rec1","password":"long enough pw","role":"record-only","permissions":{"upload":true}}`)
	if r.code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	u, err := e.st.Meta().UserByName("t2", "rec1")
	if err != nil || u.Role != meta.RoleRecordOnly || !u.Permissions.Upload || VerifyPassword(u.PasswordHash, "long enough pw") != nil {
		t.Fatalf("stored user %+v %v", u, err)
	}
	for body, want := range map[string]int{
		`{"username":"rec1","password":"long enough pw","role":"user"}`:    http.StatusConflict,
		`{"username":"x","password":"short","role":"user"}`:                http.StatusBadRequest,
		`{"username":"x","password":"long enough pw","role":"root"}`:       http.StatusBadRequest,
		`{"username":"a\\b","password":"long enough pw","role":"user"}`:    http.StatusBadRequest,
		`{"username":"","password":"long enough pw","role":"user"}`:        http.StatusBadRequest,
		`{"username":"x","password":"long enough pw","role":"user","z":1}`: http.StatusBadRequest,
	} {
		if r := post(body); r.code != want {
			t.Errorf("%s: %d, want %d (%s)", body, r.code, want, r.body)
		}
	}
}
