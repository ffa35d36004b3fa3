package webui

// The pages: server-rendered html/template shells, one ES module each
// (static/*.js) that talks to /api/v1 with fetch. The server renders what
// must be fast or must not depend on script: the language, the signed-in
// account, which controls exist at all, and the first page of the
// recordings table. Everything after that (filters, paging, refresh,
// annotations, playback) goes through the same JSON API an integrator
// uses, so the pages can do nothing the API would not let the user do.
//
// A control the user may not use is left out of the HTML (Principal.Can,
// the same check the API makes), never merely disabled.

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/webui/i18n"
)

const (
	// langCookie remembers the language picked in the UI; without it the
	// browser's Accept-Language decides.
	langCookie = "callvault_lang"
	// tzCookie is the browser's IANA time zone, set by the page script, so
	// the first page of the table is rendered in the user's zone.
	tzCookie = "callvault_tz"
	// firstPageRows is how many rows the server renders (the API's default).
	firstPageRows = meta.DefaultLimit
)

// pages renders the UI. It holds the catalogs; everything else it reads
// through the Server.
type pages struct {
	s    *Server
	i18n *i18n.Bundle
}

// registerPages loads the catalogs and registers the page routes.
func (s *Server) registerPages() error {
	b, err := i18n.Load()
	if err != nil {
		return err
	}
	pg := &pages{s: s, i18n: b}
	s.mux.HandleFunc("GET /login", pg.handleLoginPage)
	s.mux.HandleFunc("POST /login", pg.handleLogin)
	s.mux.HandleFunc("POST /logout", s.requireSession(pg.handleLogout))
	s.mux.HandleFunc("GET /language", pg.handleLanguage)
	s.mux.HandleFunc("GET /{$}", pg.page(pg.handleHome))
	s.mux.HandleFunc("GET /recordings", pg.page(pg.handleMine))
	s.mux.HandleFunc("GET /recordings/all", pg.page(pg.handleAll))
	s.mux.HandleFunc("GET /recordings/{id}", pg.page(pg.handleDetail))
	s.mux.HandleFunc("GET /account", pg.page(pg.handleAccount))
	s.mux.HandleFunc("GET /admin", pg.page(pg.handleAdmin))
	s.mux.HandleFunc("GET /audit", pg.page(pg.handleAudit))
	s.mux.HandleFunc("GET /exports", pg.page(pg.handleExports))
	return nil
}

// pageData is what every template gets.
type pageData struct {
	Title    string
	L        *i18n.Catalog
	Langs    []i18n.Lang
	Path     string // the request's path and query, for the language picker
	Error    string
	Notice   string
	Username string // the sign-in form's user name field

	// Signed-in pages.
	User    string
	UserID  string
	Role    string
	CSRF    string
	Version string
	Can     map[string]bool // action name → allowed (Principal.Can)
	SeesAll bool            // admin, supervisor, auditor: the All recordings page
	Nav     string          // which navigation entry is current
	Script  string          // the page's module under /static/
	// Messages is the catalog for the page script, embedded as JSON.
	Messages map[string]string

	// MustChange: the password must be changed before anything else (the
	// account page explains why and hides the rest).
	MustChange bool

	// Recordings pages.
	Mine   bool
	Table  *tableView
	Filter filterView

	// Detail page.
	RecID string

	// Admin page.
	GlobalAdmin bool // an admin of the default tenant: manages tenants
	RoleTable   roleTable
	// Cluster: the installation's admins on a cluster member get the
	// cluster section (members, join tokens, removal); a single node has
	// no such section at all.
	Cluster bool

	// Exports page: a search or IDs handed over by the recordings page.
	ExportQuery string
	ExportIDs   string
}

// roleTable is what each role may do at most (roleActions): the admin
// page shows it, so the matrix an admin reads is the one the API enforces.
type roleTable struct {
	Actions []string
	Rows    []roleRow
}

type roleRow struct {
	Role    string
	Allowed []bool
}

func roleTableOf() roleTable {
	var t roleTable
	for a := Action(0); a < numActions; a++ {
		t.Actions = append(t.Actions, a.String())
	}
	for _, r := range Roles {
		row := roleRow{Role: string(r), Allowed: make([]bool, numActions)}
		for _, a := range roleActions[r] {
			row.Allowed[a] = true
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// tableView is the server-rendered first page of the recordings table.
type tableView struct {
	Rows  []rowView
	Next  string
	Query string // the API query string the rows answer
}

// rowView is one table row; static/recordings.js builds the same markup.
type rowView struct {
	ID, Direction, StartISO, StartText, Duration string
	User, UserID, Group, LocalNumber             string
	Remote, RemoteNumber, Reference              string
	Preserved                                    bool
	Rating                                       int
	Bookmarks                                    int
}

// filterView pre-fills the filter form from the page's query.
type filterView struct {
	From, To, MinDur, MaxDur, CallID, IDOrRef, Notes, Direction, Sort string
	LocalUser, RemoteNumber, RemoteName                               string
}

// pageHandler is a signed-in page.
type pageHandler func(w http.ResponseWriter, r *http.Request, p *Principal, d *pageData)

// page signs the request in from its session (anonymous browsers go to the
// sign-in page), builds the Principal like the API does, and fills the
// common page data.
func (pg *pages) page(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, id, ok := pg.s.currentSession(r)
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		u, err := pg.s.data.Users.User(sess.userID)
		if err == nil && !u.Disabled {
			u, err = effectiveUser(pg.s.data.Users, u)
		} else if err == nil || errors.Is(err, meta.ErrNotFound) {
			// Deleted or disabled since sign-in: the session ends now.
			pg.s.sess.delete(id)
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if err != nil {
			pg.s.log.Error("page: user lookup", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if u.MustChangePassword && r.URL.Path != "/account" {
			// A generated or admin-set password: nothing but choosing one's
			// own until it is done (the API refuses the rest anyway).
			http.Redirect(w, r, "/account", http.StatusSeeOther)
			return
		}
		p := &Principal{User: u, Method: AuthSession}
		d := pg.base(r)
		d.MustChange = u.MustChangePassword
		d.User, d.UserID, d.Role, d.CSRF = u.Username, u.ID, string(u.Role), sess.csrf
		d.Can = map[string]bool{}
		for a := Action(0); a < numActions; a++ {
			d.Can[a.String()] = p.Can(a)
		}
		d.SeesAll = p.Can(ActView) && (u.Role == meta.RoleAdmin || u.Role == meta.RoleSupervisor || u.Role == meta.RoleAuditor)
		d.Messages = d.L.Messages()
		h(w, r, p, &d)
	}
}

// base is the page data every page has, signed in or not.
func (pg *pages) base(r *http.Request) pageData {
	picked := ""
	if c, err := r.Cookie(langCookie); err == nil {
		picked = c.Value
	}
	l := pg.i18n.Pick(picked, r.Header.Get("Accept-Language"))
	return pageData{L: l, Langs: pg.i18n.Languages(), Path: r.URL.RequestURI(), Version: pg.s.cfg.Version}
}

func (pg *pages) render(w http.ResponseWriter, name string, code int, d *pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Language", d.L.Code())
	w.Header().Set("Vary", "Accept-Language, Cookie")
	w.WriteHeader(code)
	if err := pg.s.pages.ExecuteTemplate(w, name, d); err != nil {
		pg.s.log.Error("render page", "page", name, "err", err)
	}
}

// handleLanguage remembers the picked language for a year and goes back to
// the page it was picked on (only a local path: no open redirect).
func (pg *pages) handleLanguage(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("lang")
	if _, ok := pg.i18n.Get(code); !ok {
		http.Error(w, "unknown language", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: code, Path: "/", MaxAge: 365 * 24 * 3600,
		HttpOnly: true, Secure: pg.s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
}

// localPath returns next if it is a path on this server, else "/".
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(next, "/\\") || u.Scheme != "" || u.Host != "" || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

// handleHome is the landing page: All recordings for those who see more
// than their own, My recordings for everyone else.
func (pg *pages) handleHome(w http.ResponseWriter, r *http.Request, p *Principal, d *pageData) {
	pg.recordings(w, r, p, d, !d.SeesAll)
}

func (pg *pages) handleMine(w http.ResponseWriter, r *http.Request, p *Principal, d *pageData) {
	pg.recordings(w, r, p, d, true)
}

func (pg *pages) handleAll(w http.ResponseWriter, r *http.Request, p *Principal, d *pageData) {
	if !d.SeesAll {
		pg.notFound(w, d)
		return
	}
	pg.recordings(w, r, p, d, false)
}

// recordings renders a recordings page with its first page of results,
// searched like GET /api/v1/recordings with the page's query string.
func (pg *pages) recordings(w http.ResponseWriter, r *http.Request, p *Principal, d *pageData, mine bool) {
	d.Mine, d.Script = mine, "recordings.js"
	d.Nav, d.Title = "all", d.L.T("rec.titleAll")
	if mine {
		d.Nav, d.Title = "mine", d.L.T("rec.titleMine")
	}
	if !p.Can(ActView) {
		// record-only: recorded, sees nothing; the page says so.
		d.Script = ""
		pg.render(w, "recordings.html", http.StatusOK, d)
		return
	}
	tv, fv, err := pg.firstPage(r, p, mine)
	d.Filter = fv
	var pe *paramError
	switch {
	case errors.As(err, &pe) || errors.Is(err, meta.ErrInvalid):
		d.Error = d.L.T("rec.badQuery") + " " + err.Error()
		tv, _, err = pg.firstPage(&http.Request{URL: &url.URL{}, Header: r.Header}, p, mine)
		d.Filter = filterView{}
	}
	if err != nil {
		pg.s.log.Error("recordings page", "err", err)
		d.Error = d.L.T("common.failed")
	}
	d.Table = tv
	pg.render(w, "recordings.html", http.StatusOK, d)
}

// firstPage searches like the API does: the query string parsed by the
// API's own parser, the scope from the principal.
func (pg *pages) firstPage(r *http.Request, p *Principal, mine bool) (*tableView, filterView, error) {
	raw := r.URL.RawQuery
	q, err := parseSearchQuery(raw, pg.s.now())
	fv := filterOf(r.URL.Query())
	if err != nil {
		return &tableView{}, fv, err
	}
	v := p.View()
	q.Scope = v.Scope
	q.Preserved = q.Preserved || v.PreservedOnly
	if mine {
		q.LocalUser = p.User.ID
	}
	if q.Limit == 0 {
		q.Limit = firstPageRows
	}
	page, err := pg.s.data.Catalog.Search(q)
	if err != nil {
		return &tableView{}, fv, err
	}
	// The first page is a search like the API's, audited the same way:
	// the filters, folded with identical repeats (searchfold.go), so a
	// page opened with a case's filters is on record as well as what the
	// page's script asks for later.
	if pg.s.searchFold.audit(pg.s.searchPrincipal(r, p), raw) {
		pg.s.auditLater(r, p, auditEvent{action: meta.AuditSearch, detail: clipN(raw, 2048)})
	}
	loc := browserZone(r)
	tv := &tableView{Next: page.Next, Query: raw, Rows: make([]rowView, len(page.Recordings))}
	for i := range page.Recordings {
		tv.Rows[i] = rowOf(&page.Recordings[i], loc)
	}
	return tv, fv, nil
}

func filterOf(v url.Values) filterView {
	f := filterView{From: v.Get("from"), To: v.Get("to"), CallID: v.Get("callId"), Notes: v.Get("notes"),
		Direction: v.Get("direction"), Sort: v.Get("sort"), LocalUser: v.Get("localUser"),
		RemoteNumber: v.Get("remoteNumber"), RemoteName: v.Get("remoteName")}
	f.IDOrRef = v.Get("recordingId") + v.Get("reference")
	if ms, err := strconv.ParseInt(v.Get("minDurationMs"), 10, 64); err == nil {
		f.MinDur = strconv.FormatInt(ms/1000, 10)
	}
	if ms, err := strconv.ParseInt(v.Get("maxDurationMs"), 10, 64); err == nil {
		f.MaxDur = strconv.FormatInt(ms/1000, 10)
	}
	return f
}

// browserZone is the zone the page script reported in its cookie, or UTC.
func browserZone(r *http.Request) *time.Location {
	c, err := r.Cookie(tzCookie)
	if err != nil || c.Value == "" || len(c.Value) > 64 || strings.EqualFold(c.Value, "local") {
		return time.UTC
	}
	name, err := url.QueryUnescape(c.Value)
	if err != nil {
		return time.UTC
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	return loc
}

func rowOf(rec *meta.Recording, loc *time.Location) rowView {
	remote := rec.RemoteParty.Name
	if remote == "" {
		remote = rec.RemoteParty.Number
	} else if rec.RemoteParty.Number != "" {
		remote += " (" + rec.RemoteParty.Number + ")"
	}
	user := rec.LocalParty.Name
	if user == "" {
		user = rec.LocalParty.Username
	}
	return rowView{
		ID: rec.ID, Direction: string(rec.Direction), StartISO: rec.Start.UTC().Format(time.RFC3339),
		StartText: rec.Start.In(loc).Format("2006-01-02 15:04:05"), Duration: formatDuration(rec.Duration),
		User: user, UserID: rec.LocalParty.User, Group: rec.Group, LocalNumber: rec.LocalParty.Number,
		Remote: remote, RemoteNumber: rec.RemoteParty.Number, Reference: rec.Reference,
		Preserved: rec.Preserved != nil, Rating: rec.Rating, Bookmarks: len(rec.Bookmarks),
	}
}

// formatDuration is m:ss or h:mm:ss, like the page script's.
func formatDuration(ms int64) string {
	s := max(ms, 0) / 1000
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// handleDetail is a recording's page. Whether the recording exists for
// this user is decided here the same way the API does (404 alike for
// missing and invisible ones); its data comes from the API, which audits
// the view.
func (pg *pages) handleDetail(w http.ResponseWriter, r *http.Request, p *Principal, d *pageData) {
	_, ok, err := pg.s.lookupVisible(p, r.PathValue("id"))
	if err != nil {
		pg.s.log.Error("detail page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if !ok {
		pg.notFound(w, d)
		return
	}
	d.RecID, d.Script, d.Title, d.Nav = r.PathValue("id"), "detail.js", d.L.T("detail.title"), "detail"
	pg.render(w, "detail.html", http.StatusOK, d)
}

func (pg *pages) handleAccount(w http.ResponseWriter, r *http.Request, p *Principal, d *pageData) {
	d.Script, d.Title, d.Nav = "account.js", d.L.T("nav.account"), "account"
	pg.render(w, "account.html", http.StatusOK, d)
}

func (pg *pages) handleAdmin(w http.ResponseWriter, r *http.Request, p *Principal, d *pageData) {
	if !p.Can(ActAdmin) {
		pg.notFound(w, d)
		return
	}
	d.Script, d.Title, d.Nav = "admin.js", d.L.T("nav.admin"), "admin"
	d.GlobalAdmin, d.RoleTable = p.User.Tenant == "", roleTableOf()
	// The cluster is the installation's, not a tenant's: a tenant's admin
	// does not see it (or remove its nodes) from the page.
	_, member := pg.s.data.Admin.(ClusterAdmin)
	d.Cluster = d.GlobalAdmin && member
	pg.render(w, "admin.html", http.StatusOK, d)
}

func (pg *pages) handleAudit(w http.ResponseWriter, r *http.Request, p *Principal, d *pageData) {
	if !p.Can(ActAudit) {
		pg.notFound(w, d)
		return
	}
	d.Script, d.Title, d.Nav = "audit.js", d.L.T("nav.audit"), "audit"
	pg.render(w, "audit.html", http.StatusOK, d)
}

// handleExports is the evidence exports page (the export routes need
// ActAudit: admins and auditors). The recordings page hands a search or
// a selection over in the query string; the job starts only when the
// user confirms it here.
func (pg *pages) handleExports(w http.ResponseWriter, r *http.Request, p *Principal, d *pageData) {
	if !p.Can(ActAudit) {
		pg.notFound(w, d)
		return
	}
	q := r.URL.Query()
	d.ExportQuery = q.Get("query")
	d.ExportIDs = strings.Join(strings.Split(q.Get("ids"), ","), "\n")
	d.Script, d.Title, d.Nav = "exports.js", d.L.T("nav.exports"), "exports"
	pg.render(w, "exports.html", http.StatusOK, d)
}

// notFound answers a page the user may not see like one that does not
// exist, as the API does.
func (pg *pages) notFound(w http.ResponseWriter, d *pageData) {
	d.Title, d.Script, d.Error = d.L.T("common.notFound"), "", d.L.T("common.notFoundText")
	pg.render(w, "notfound.html", http.StatusNotFound, d)
}
