package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/webui/i18n"
)

// signIn posts the sign-in form and returns the session cookie.
func (e *testEnv) signIn(username string) *http.Cookie {
	e.t.Helper()
	form := url.Values{"username": {username}, "password": {testPassword}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := e.do(req)
	for _, c := range (&http.Response{Header: r.hdr}).Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	e.t.Fatalf("sign-in of %s: %d %s", username, r.code, r.body)
	return nil
}

// page GETs path with the session (and extra cookies/headers).
func (e *testEnv) page(c *http.Cookie, path string, mod ...func(*http.Request)) response {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if c != nil {
		req.AddCookie(c)
	}
	for _, m := range mod {
		m(req)
	}
	return e.do(req)
}

// uploadFor uploads a one-second call of username through the upload API
// and returns its ID.
func (e *testEnv) uploadFor(uploader, username string, start time.Time) string {
	e.t.Helper()
	r := e.do(basic(uploadRequest(e.t, imagicle, metaJSON(username, start, "PT1S", ""), "a.wav", "audio/wave", readTestdata(e.t, "jfk_8k_pcm16.wav")), uploader))
	var out struct{ ID string }
	if r.code != http.StatusCreated {
		e.t.Fatalf("upload: %d %s", r.code, r.body)
	}
	r.json(e.t, &out)
	return out.ID
}

func has(body []byte, id string) bool { return strings.Contains(string(body), `id="`+id+`"`) }

// TestPagesPerRole: each role sees the pages and controls it may use, and
// the others are absent from the HTML, not disabled.
func TestPagesPerRole(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	e.addUser("sup", meta.RoleSupervisor)
	e.addUser("alice", meta.RoleUser)
	e.addUser("rec", meta.RoleRecordOnly)
	e.addUser("aud", meta.RoleAuditor)
	e.addUser("viewer", meta.RoleUser, func(u *meta.User) { u.Permissions = meta.Permissions{Play: true} })
	rid := e.uploadFor("admin", "alice", e.clock.Now().Add(-time.Hour))
	vid := e.uploadFor("admin", "viewer", e.clock.Now().Add(-time.Hour))

	type want struct {
		present, absent []string
		status          map[string]int
	}
	cases := map[string]want{
		"admin": {present: []string{"nav-mine", "nav-all", "nav-admin", "nav-audit", "download-selected", "delete-selected", "recordings"},
			status: map[string]int{"/admin": 200, "/audit": 200, "/recordings/all": 200, "/account": 200, "/recordings/" + rid: 200}},
		"sup": {present: []string{"nav-mine", "nav-all", "delete-selected"}, absent: []string{"nav-admin", "nav-audit"},
			status: map[string]int{"/admin": 404, "/audit": 404, "/recordings/all": 200, "/recordings/" + rid: 404}},
		"alice": {present: []string{"nav-mine", "delete-selected", "download-selected"}, absent: []string{"nav-all", "nav-admin", "nav-audit", "no-access"},
			status: map[string]int{"/admin": 404, "/audit": 404, "/recordings/all": 404, "/recordings/" + rid: 200, "/recordings/" + vid: 404}},
		"rec": {present: []string{"no-access", "nav-account"}, absent: []string{"nav-mine", "nav-all", "recordings", "filters"},
			status: map[string]int{"/admin": 404, "/recordings/" + rid: 404, "/account": 200}},
		"aud": {present: []string{"nav-all", "nav-audit", "download-selected"}, absent: []string{"nav-admin", "delete-selected"},
			status: map[string]int{"/audit": 200, "/admin": 404, "/recordings/" + rid: 404}},
		"viewer": {present: []string{"nav-mine"}, absent: []string{"delete-selected", "download-selected", "nav-all"},
			status: map[string]int{"/recordings/" + vid: 200}},
	}
	for user, w := range cases {
		t.Run(user, func(t *testing.T) {
			c := e.signIn(user)
			r := e.page(c, "/")
			if r.code != 200 {
				t.Fatalf("/: %d", r.code)
			}
			for _, id := range w.present {
				if !has(r.body, id) {
					t.Errorf("/ lacks #%s", id)
				}
			}
			for _, id := range w.absent {
				if has(r.body, id) {
					t.Errorf("/ has #%s", id)
				}
			}
			for path, code := range w.status {
				if got := e.page(c, path).code; got != code {
					t.Errorf("%s: %d, want %d", path, got, code)
				}
			}
		})
	}

	// The detail page: alice (all permissions) gets every control; viewer
	// (play only) gets the player and nothing that changes or exports.
	alice := e.page(e.signIn("alice"), "/recordings/"+rid).body
	for _, id := range []string{"audio", "play", "seek", "speed", "volume", "wave", "preserve", "release", "note-form", "rating", "dl-mp3", "dl-wav", "delete", "transcript"} {
		if !has(alice, id) {
			t.Errorf("alice's detail page lacks #%s", id)
		}
	}
	viewer := e.page(e.signIn("viewer"), "/recordings/"+vid).body
	for _, id := range []string{"audio", "play", "annotations-ro", "transcript-ro"} {
		if !has(viewer, id) {
			t.Errorf("viewer's detail page lacks #%s", id)
		}
	}
	for _, id := range []string{"preserve", "release", "note-form", "rating", "dl-mp3", "dl-wav", "delete", "category", "complete"} {
		if has(viewer, id) {
			t.Errorf("viewer's detail page has #%s", id)
		}
	}
	// Anonymous: to the sign-in page.
	if r := e.page(nil, "/recordings"); r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/login" {
		t.Errorf("anonymous /recordings: %d %s", r.code, r.hdr.Get("Location"))
	}
}

// TestPagesFirstPage: the server renders the first page of the table with
// what the user may see, filtered by the page's query string.
func TestPagesFirstPage(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	e.addUser("alice", meta.RoleUser)
	e.addUser("bob", meta.RoleUser)
	now := e.clock.Now()
	a1 := e.uploadFor("admin", "alice", now.Add(-2*time.Hour))
	a2 := e.uploadFor("admin", "alice", now.Add(-time.Hour))
	old := e.uploadFor("admin", "alice", now.Add(-10*24*time.Hour))
	b1 := e.uploadFor("admin", "bob", now.Add(-time.Hour))
	rows := regexp.MustCompile(`<tr data-id="([0-9a-f-]{36})"`)
	ids := func(body []byte) []string {
		var out []string
		for _, m := range rows.FindAllSubmatch(body, -1) {
			out = append(out, string(m[1]))
		}
		return out
	}
	alice := e.signIn("alice")
	if got := ids(e.page(alice, "/").body); strings.Join(got, ",") != a2+","+a1 {
		t.Errorf("alice's first page %v, want newest first [%s %s] (not %s: older than 7 days, not %s: bob's)", got, a2, a1, old, b1)
	}
	if got := ids(e.page(alice, "/recordings?sort=oldest").body); strings.Join(got, ",") != a1+","+a2 {
		t.Errorf("oldest first: %v", got)
	}
	if got := ids(e.page(alice, "/recordings?from="+now.Add(-30*24*time.Hour).UTC().Format(time.RFC3339)).body); len(got) != 3 {
		t.Errorf("30 days: %v", got)
	}
	if got := ids(e.page(alice, "/recordings?limit=1").body); len(got) != 1 {
		t.Errorf("limit=1: %v", got)
	} else if b := e.page(alice, "/recordings?limit=1").body; !regexp.MustCompile(`data-next="[^"]+"`).Match(b) {
		t.Error("a first page with more results has no next cursor")
	}
	admin := e.signIn("admin")
	if got := ids(e.page(admin, "/").body); len(got) != 3 {
		t.Errorf("admin's landing page (all recordings) %v", got)
	}
	if got := ids(e.page(admin, "/recordings").body); len(got) != 0 {
		t.Errorf("admin's own recordings %v (admin made no calls)", got)
	}
	// A bad query is reported, not a 500, and the default list is shown.
	r := e.page(alice, "/recordings?direction=sideways")
	if r.code != 200 || !strings.Contains(string(r.body), `role="alert"`) || len(ids(r.body)) != 2 {
		t.Errorf("bad query: %d, %v", r.code, ids(r.body))
	}
	// The browser's zone (cookie set by common.js) is used for the times.
	zone := e.page(alice, "/", func(q *http.Request) { q.AddCookie(&http.Cookie{Name: tzCookie, Value: url.QueryEscape("Asia/Tokyo")}) }).body
	rec, _ := e.st.Meta().Recording(a2)
	if want := rec.Start.In(mustZone(t, "Asia/Tokyo")).Format("2006-01-02 15:04:05"); !strings.Contains(string(zone), want) {
		t.Errorf("Tokyo time %s not on the page", want)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestPagesI18n: the language follows Accept-Language until one is
// picked; the pick is remembered in a cookie; Arabic is right to left.
func TestPagesI18n(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", meta.RoleUser)
	b, _ := i18n.Load()
	de, _ := b.Get("de")
	ar, _ := b.Get("ar")
	lang := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Accept-Language", v) }
	}
	r := e.page(nil, "/login", lang("de-DE,de;q=0.9"))
	if !strings.Contains(string(r.body), `<html lang="de" dir="ltr">`) || !strings.Contains(string(r.body), de.T("login.submit")) {
		t.Errorf("German sign-in page not German: %.200s", r.body)
	}
	r = e.page(nil, "/login", lang("ar"))
	if !strings.Contains(string(r.body), `<html lang="ar" dir="rtl">`) || !strings.Contains(string(r.body), ar.T("login.title")) {
		t.Errorf("Arabic sign-in page: %.200s", r.body)
	}
	// Picking a language sets the cookie and goes back to a local page only.
	for next, want := range map[string]string{"/recordings?x=1": "/recordings?x=1", "//evil.example/": "/", "https://evil.example/": "/", "/\\evil": "/", "": "/"} {
		r = e.page(nil, "/language?lang=fr&next="+url.QueryEscape(next))
		var ck *http.Cookie
		for _, c := range (&http.Response{Header: r.hdr}).Cookies() {
			if c.Name == langCookie {
				ck = c
			}
		}
		if r.code != http.StatusSeeOther || r.hdr.Get("Location") != want || ck == nil || ck.Value != "fr" {
			t.Errorf("next=%q: %d %q %v", next, r.code, r.hdr.Get("Location"), ck)
		}
	}
	if r := e.page(nil, "/language?lang=xx"); r.code != http.StatusBadRequest {
		t.Errorf("unknown language: %d", r.code)
	}
	// The cookie beats Accept-Language, on signed-in pages too, and the
	// page script gets the same catalog.
	c := e.signIn("alice")
	r = e.page(c, "/", lang("de"), func(q *http.Request) { q.AddCookie(&http.Cookie{Name: langCookie, Value: "ar"}) })
	body := string(r.body)
	if !strings.Contains(body, `<html lang="ar" dir="rtl">`) || !strings.Contains(body, ar.T("nav.mine")) {
		t.Errorf("picked Arabic not used: %.300s", body)
	}
	m := regexp.MustCompile(`(?s)<script type="application/json" id="messages">(.*?)</script>`).FindStringSubmatch(body)
	var msgs map[string]string
	if m == nil || json.Unmarshal([]byte(m[1]), &msgs) != nil || msgs["nav.mine"] != ar.T("nav.mine") {
		t.Errorf("embedded catalog missing or wrong: %v", m != nil)
	}
}

// TestPagesSecurityHeaders: every page carries the CSP without inline
// script, runs no inline script, and loads nothing from outside.
func TestPagesSecurityHeaders(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	id := e.uploadFor("admin", "admin", e.clock.Now().Add(-time.Hour))
	c := e.signIn("admin")
	scripts := regexp.MustCompile(`<script[^>]*>`)
	for _, path := range []string{"/login", "/", "/recordings", "/recordings/all", "/recordings/" + id, "/account", "/admin", "/audit", "/recordings/nope"} {
		ck := c
		if path == "/login" {
			ck = nil
		}
		r := e.page(ck, path)
		csp := r.hdr.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		body := string(r.body)
		for _, tag := range scripts.FindAllString(body, -1) {
			if !strings.Contains(tag, `src="/static/`) && !strings.Contains(tag, `type="application/json"`) {
				t.Errorf("%s: inline script %s", path, tag)
			}
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, " on") && regexp.MustCompile(` on[a-z]+=`).MatchString(body) {
			t.Errorf("%s: external resource or inline handler", path)
		}
	}
	// The static files are served and are not HTML-with-script surprises.
	for _, f := range []string{"common.js", "recordings.js", "detail.js", "admin.js", "audit.js", "account.js", "callvault.css"} {
		if r := e.page(nil, "/static/"+f); r.code != 200 || len(r.body) < 100 {
			t.Errorf("/static/%s: %d", f, r.code)
		}
	}
}

// TestI18nKeysUsed: every message key the templates and page scripts use
// is in the English catalog (and so, by TestCatalogsComplete, in all), and
// every value of the enumerations the pages translate by prefix has its
// message.
func TestI18nKeysUsed(t *testing.T) {
	b, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	en, _ := b.Get("en")
	namespaces := map[string]bool{}
	for _, k := range en.Keys() {
		namespaces[k[:strings.IndexByte(k, '.')]] = true
	}
	used := map[string]string{}
	tmplKey := regexp.MustCompile(`\.L\.T "([^"]+)"`)
	jsKey := regexp.MustCompile(`'([a-zA-Z]+\.[a-zA-Z-]+)'`)
	goKey := regexp.MustCompile(`\.T\("([a-zA-Z]+\.[a-zA-Z-]+)"\)|"(login\.[a-zA-Z]+)"`)
	scan := func(glob string, re *regexp.Regexp) {
		files, _ := filepath.Glob(glob)
		if len(files) == 0 {
			t.Fatalf("no files %s", glob)
		}
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range re.FindAllStringSubmatch(string(src), -1) {
				k := m[1]
				if k == "" && len(m) > 2 {
					k = m[2]
				}
				if ns, _, _ := strings.Cut(k, "."); namespaces[ns] && !strings.HasSuffix(k, ".html") {
					used[k] = f
				}
			}
		}
	}
	scan("templates/*.html", tmplKey)
	scan("static/*.js", jsKey)
	scan("pages*.go", goKey)
	if len(used) < 150 {
		t.Errorf("only %d keys found in use: the scan is broken", len(used))
	}
	for k, f := range used {
		if !en.Has(k) {
			t.Errorf("%s uses %q, which the English catalog lacks", f, k)
		}
	}
	families := map[string][]string{
		"role.":         rolesOf(Roles),
		"dir.":          directionValues,
		"status.":       statusValues,
		"bookmark.":     bookmarkValues,
		"auditAction.":  auditActionNames(),
		"auditOutcome.": {"ok", "denied", "failed"},
		"perm.":         {"play", "download", "delete", "preserve", "notes", "bulkDownload", "upload"},
	}
	for prefix, values := range families {
		for _, v := range values {
			if !en.Has(prefix + v) {
				t.Errorf("no message %s%s", prefix, v)
			}
		}
	}
}

func rolesOf(rs []meta.Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// BenchmarkRecordingsPage renders the first page of All recordings for an
// admin with CALLVAULT_PAGE_N recordings in the store (default 10,000; the
// issue's figure is CALLVAULT_PAGE_N=1000000), spread over 90 days, and
// reports the server time per page. CALLVAULT_PAGE_DB keeps the store
// directory between runs (building a million takes minutes).
func BenchmarkRecordingsPage(b *testing.B) {
	n := 10_000
	if s := os.Getenv("CALLVAULT_PAGE_N"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil {
			b.Fatal(err)
		}
	}
	e := newEnv(b, nil)
	admin := e.addUser("admin", meta.RoleAdmin)
	users := make([]meta.User, 50)
	for i := range users {
		users[i] = e.addUser(fmt.Sprintf("agent%02d", i), meta.RoleUser, func(u *meta.User) { u.DisplayName = fmt.Sprintf("Agent %02d", i) })
	}
	now := e.clock.Now()
	span := 90 * 24 * time.Hour
	const batch = 20_000
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < n; {
		cmds := make([]meta.Command, 0, batch)
		for j := 0; j < batch && i < n; j, i = j+1, i+1 {
			u := users[i%len(users)]
			at := now.Add(-time.Duration(int64(span) / int64(n) * int64(n-i)))
			id := fmt.Sprintf("%08x-0000-7000-8000-%012x", at.UnixMilli()>>16, i)
			cmds = append(cmds, &meta.CreateRecording{Recording: meta.Recording{
				ID: id, Start: at, Duration: int64(30_000 + i%600_000), Direction: meta.DirIncoming, Source: meta.SourceUpload,
				LocalParty:  meta.LocalParty{User: u.ID, Username: u.Username, Name: u.DisplayName, Number: fmt.Sprintf("2%03d", i%1000)},
				RemoteParty: meta.RemoteParty{Number: fmt.Sprintf("+4144%07d", i%9_999_999), Name: "Customer"},
				Status:      meta.StatusComplete,
			}})
		}
		if err := applyAll(ctx, e, cmds); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("built %d recordings in %v", n, time.Since(start).Round(time.Millisecond))
	_ = admin
	c := e.signIn("admin")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := e.page(c, "/")
		if r.code != 200 || strings.Count(string(r.body), "<tr data-id=") != firstPageRows {
			b.Fatalf("%d, %d rows", r.code, strings.Count(string(r.body), "<tr data-id="))
		}
	}
}

// applyAll applies cmds in one transaction (meta's bulk-import path).
func applyAll(_ context.Context, e *testEnv, cmds []meta.Command) error {
	enc := make([][]byte, len(cmds))
	for i, c := range cmds {
		b, err := meta.Encode(c)
		if err != nil {
			return err
		}
		enc[i] = b
	}
	res, err := e.st.Meta().ApplyBatch(enc)
	if err != nil {
		return err
	}
	for i, r := range res {
		if r.Err != nil {
			return fmt.Errorf("command %d: %w", i, r.Err)
		}
	}
	return nil
}

// TestAdminPage: the admin page has every section an admin works with;
// the tenants section only for the installation's admins (the API
// refuses tenant admins anyway); the role table is the one the API
// enforces (roleActions).
func TestAdminPage(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	if _, err := e.st.Apply(context.Background(), &meta.CreateTenant{Tenant: meta.Tenant{ID: "acme", Name: "Acme"}}); err != nil {
		t.Fatal(err)
	}
	acme := e.addUser("acme-admin", meta.RoleAdmin, func(u *meta.User) { u.Tenant = "acme" })
	r := e.page(e.signIn("admin"), "/admin")
	if r.code != 200 {
		t.Fatalf("%d", r.code)
	}
	for _, id := range []string{"users", "user-form", "u-groups", "u-supervised", "groups", "group-form", "g-supervisors", "g-members", "g-restrict",
		"roles", "tenants", "tenant-form", "retention", "retention-form", "storage"} {
		if !has(r.body, id) {
			t.Errorf("admin page lacks #%s", id)
		}
	}
	body := string(r.body)
	for _, role := range Roles {
		i := strings.Index(body, `<tr data-role="`+string(role)+`">`)
		if i < 0 {
			t.Fatalf("no role row %s", role)
		}
		row := body[i : i+strings.Index(body[i:], "</tr>")]
		if got, want := strings.Count(row, "✓"), len(roleActions[role]); got != want {
			t.Errorf("role %s shows %d allowed actions, roleActions has %d", role, got, want)
		}
	}
	// The test's sign-in knows the default tenant only: the tenant admin's
	// session is made directly.
	sid, _ := e.srv.sess.create(acme.ID, acme.Username, string(acme.Role))
	r = e.page(&http.Cookie{Name: sessionCookie, Value: sid}, "/admin")
	if r.code != 200 || has(r.body, "tenants") || has(r.body, "tenant-form") || !has(r.body, "groups") {
		t.Errorf("tenant admin: %d, tenants section present: %v", r.code, has(r.body, "tenants"))
	}
}

// TestExportsPage: the exports page and its link exist for the roles the
// export routes allow (ActAudit: admin, auditor) and for no one else; a
// selection or a search handed over by the recordings page pre-fills it.
func TestExportsPage(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("admin", meta.RoleAdmin)
	e.addUser("aud", meta.RoleAuditor)
	e.addUser("sup", meta.RoleSupervisor)
	e.addUser("alice", meta.RoleUser)
	for user, ok := range map[string]bool{"admin": true, "aud": true, "sup": false, "alice": false} {
		c := e.signIn(user)
		home := e.page(c, "/")
		r := e.page(c, "/exports?ids=a1,b2&query=direction%3Dincoming")
		if got := r.code == 200 && has(r.body, "jobs") && has(home.body, "nav-exports") && has(home.body, "export-search"); got != ok {
			t.Errorf("%s: exports page %d, link %v, want allowed=%v", user, r.code, has(home.body, "nav-exports"), ok)
		}
		if !ok && (r.code != 404 || has(r.body, "jobs") || has(home.body, "export-selected")) {
			t.Errorf("%s: %d, or an export control is present", user, r.code)
		}
		if ok && (!strings.Contains(string(r.body), ">a1\nb2</textarea>") || !strings.Contains(string(r.body), `value="direction=incoming"`)) {
			t.Errorf("%s: the hand-over is not pre-filled", user)
		}
	}
}
