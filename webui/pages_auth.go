package webui

// Sign-in, sign-out and the browser session (moved here from auth.go when
// the pages got their catalogs; the behaviour is unchanged: argon2id
// check, per-account and per-address throttle, HttpOnly SameSite=Strict
// session cookie, CSRF token on every state-changing request).

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/callvault/callvault/store/meta"
)

const sessionCookie = "callvault_session"

type ctxKey int

const sessionKey ctxKey = 0

func (s *Server) currentSession(r *http.Request) (session, string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, "", false
	}
	sess, ok := s.sess.get(c.Value)
	return sess, c.Value, ok
}

// requireSession sends anonymous browsers to the sign-in page and checks
// the CSRF token on every state-changing request.
func (s *Server) requireSession(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, _, ok := s.currentSession(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			token := r.Header.Get("X-CSRF-Token")
			if token == "" {
				token = r.PostFormValue("csrf")
			}
			if !validCSRF(sess, token) {
				http.Error(w, "missing or wrong CSRF token", http.StatusForbidden)
				return
			}
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey, sess)))
	}
}

func (pg *pages) loginPage(w http.ResponseWriter, r *http.Request, code int, errKey, username string) {
	d := pg.base(r)
	d.Title, d.Username = d.L.T("login.title"), username
	if errKey != "" {
		d.Error = d.L.T(errKey)
	}
	pg.render(w, "login.html", code, &d)
}

func (pg *pages) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := pg.s.currentSession(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	pg.loginPage(w, r, http.StatusOK, "", "")
}

func (pg *pages) handleLogin(w http.ResponseWriter, r *http.Request) {
	s := pg.s
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	username := r.PostFormValue("username")
	password := r.PostFormValue("password")
	key := accountKey("", username)
	if wait := s.loginBlocked(r, key); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		pg.loginPage(w, r, http.StatusTooManyRequests, "login.throttled", username)
		return
	}
	acct, err := s.accounts.AccountByName(username)
	switch {
	case err == nil && !acct.Disabled && s.verifyAccount(acct, password):
	case err != nil && !errors.Is(err, ErrNoAccount):
		s.log.Error("sign-in lookup failed", "err", err)
		s.metrics.logins.WithLabelValues("error").Inc()
		pg.loginPage(w, r, http.StatusInternalServerError, "login.unavailable", username)
		return
	default:
		if err != nil {
			// Spend the same time as a real check so response timing does not
			// tell which user names exist.
			s.burnVerify(password)
		}
		s.failed(r, key)
		s.log.Warn("sign-in failed", "user", username, "remote", r.RemoteAddr)
		s.auditAnon(r, meta.AuditLoginFailed, "", username, "sign-in form")
		s.metrics.logins.WithLabelValues("failure").Inc()
		pg.loginPage(w, r, http.StatusUnauthorized, "login.wrong", username)
		return
	}
	s.byAccount.reset(key)
	id, _ := s.sess.create(acct.ID, acct.Username, acct.Role)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: s.cfg.SecureCookies,
		SameSite: http.SameSiteStrictMode, MaxAge: int(s.cfg.SessionAbsolute / time.Second),
	})
	s.log.Info("signed in", "user", acct.Username, "remote", r.RemoteAddr)
	s.auditBestEffort(r, &Principal{User: meta.User{ID: acct.ID, Username: acct.Username}}, auditEvent{action: meta.AuditLogin, detail: "sign-in form"})
	s.metrics.logins.WithLabelValues("success").Inc()
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// loginBlocked returns how long the sign-in form must wait (zero: not
// blocked), counting the block in the metric.
func (s *Server) loginBlocked(r *http.Request, acctKey string) time.Duration {
	wait, kind := s.byAddress.blocked("addr:"+clientAddr(r)), "address"
	if aw := s.byAccount.blocked(acctKey); aw > wait {
		wait, kind = aw, "account"
	}
	if wait > 0 {
		s.metrics.throttled.WithLabelValues(kind).Inc()
	}
	return wait
}

// verifyAccount checks a sign-in form's password like the API does, through
// the argon2 slots (the form uses no cache: a browser signs in once).
func (s *Server) verifyAccount(acct Account, password string) bool {
	if acct.PasswordHash == "" {
		return false
	}
	s.argonSlots <- struct{}{}
	defer func() { <-s.argonSlots }()
	return VerifyPassword(acct.PasswordHash, password) == nil
}

// dummyHash is a valid argon2id hash of a random password, checked against
// when the user name is unknown.
const dummyHash = "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHRzYWx0c2FsdA$X2K0vsbq0Z3YoVH6UZkC0pE9kCfNQ0n+9bqZq2Ew6zI"

func (pg *pages) handleLogout(w http.ResponseWriter, r *http.Request) {
	s := pg.s
	if sess, id, ok := s.currentSession(r); ok {
		s.sess.delete(id)
		tenant := ""
		if u, err := s.data.Users.User(sess.userID); err == nil {
			tenant = u.Tenant
		}
		s.auditBestEffort(r, &Principal{User: meta.User{ID: sess.userID, Username: sess.username, Tenant: tenant}}, auditEvent{action: meta.AuditLogout})
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
