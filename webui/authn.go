package webui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// API clients authenticate in one of three ways, tried in this order:
//
//   - Authorization: Bearer <token>: an API token the user created
//     (POST /api/v1/tokens). Only its SHA-256 is stored; a 256-bit random
//     secret needs no slow hash, since it cannot be guessed.
//   - Authorization: Basic: user name and password, checked with argon2id.
//     A user of a tenant other than the default one signs in as
//     "tenant\username".
//   - the browser session cookie (plus X-CSRF-Token on state-changing
//     requests, checked by guard).
//
// Failed password checks are throttled per account and per client address
// (throttle.go); a blocked client gets 429 with Retry-After and no password
// check at all, so the limit also caps the argon2 work an attacker causes.

// Throttle settings: a burst of failures, then one more try per refill.
const (
	accountBurst  = 5
	accountRefill = time.Minute
	addressBurst  = 20
	addressRefill = 15 * time.Second
	throttleKeys  = 100_000
)

// tokenPrefix marks Callvault API tokens, so secret scanners can find
// leaked ones and a token is never mistaken for a password.
const tokenPrefix = "cvt_"

// verifyCache remembers, for a few minutes, that a password matched a
// stored hash, so an API client sending Basic on every request pays for
// argon2id (64 MiB, ~50 ms) once, not per request. The key is an HMAC under
// a random per-process key of (user ID, stored hash, password): nothing in
// it is a password or a hash an attacker could test guesses against
// without that key, it dies with the process, and a password change (a new
// stored hash) misses the cache at once. Account lookups are not cached,
// so disabling an account takes effect on the next request.
type verifyCache struct {
	mu  sync.Mutex
	key [32]byte
	m   map[[32]byte]time.Time
	ttl time.Duration
	max int
	now func() time.Time
}

func newVerifyCache(ttl time.Duration, maxEntries int, now func() time.Time) *verifyCache {
	c := &verifyCache{m: make(map[[32]byte]time.Time), ttl: ttl, max: maxEntries, now: now}
	if _, err := rand.Read(c.key[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the OS RNG failing is not recoverable
	}
	return c
}

func (c *verifyCache) sum(userID, hash, password string) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	for _, s := range []string{userID, hash, password} {
		m.Write([]byte(strconv.Itoa(len(s))))
		m.Write([]byte{0})
		m.Write([]byte(s))
	}
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

func (c *verifyCache) hit(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[k]
	if ok && c.now().After(exp) {
		delete(c.m, k)
		return false
	}
	return ok
}

func (c *verifyCache) add(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m) >= c.max {
		for k2, exp := range c.m {
			if now.After(exp) {
				delete(c.m, k2)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m) // many live clients at once: start over rather than grow
		}
	}
	c.m[k] = now.Add(c.ttl)
}

// verify checks password against u's stored hash, through the cache, with
// at most cap(s.argonSlots) argon2id computations at once (each takes 64
// MiB: unbounded, a burst of sign-ins would be a memory attack).
func (s *Server) verify(u meta.User, password string) bool {
	if u.PasswordHash == "" {
		return false // token-only account
	}
	k := s.verified.sum(u.ID, u.PasswordHash, password)
	if s.verified.hit(k) {
		return true
	}
	s.argonSlots <- struct{}{}
	err := VerifyPassword(u.PasswordHash, password)
	<-s.argonSlots
	if err != nil {
		return false
	}
	s.verified.add(k)
	return true
}

// burnVerify spends the time of a real check, so response timing does not
// tell which user names exist.
func (s *Server) burnVerify(password string) {
	s.argonSlots <- struct{}{}
	_ = VerifyPassword(dummyHash, password)
	<-s.argonSlots
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// splitTenant splits "tenant\username"; a plain name is in the default tenant.
func splitTenant(login string) (tenant, username string) {
	if t, u, ok := strings.Cut(login, `\`); ok {
		return t, u
	}
	return "", login
}

func accountKey(tenant, username string) string {
	return "acct:" + tenant + `\` + strings.ToLower(username)
}

// throttled answers 429 if the client address or the account is blocked.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request, acctKey string) bool {
	wait := s.byAddress.blocked("addr:" + clientAddr(r))
	kind := "address"
	if acctKey != "" {
		if aw := s.byAccount.blocked(acctKey); aw > wait {
			wait, kind = aw, "account"
		}
	}
	if wait <= 0 {
		return false
	}
	s.metrics.throttled.WithLabelValues(kind).Inc()
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, "too many failed sign-ins; retry in "+strconv.Itoa(secs)+" s")
	return true
}

func (s *Server) failed(r *http.Request, acctKey string) {
	s.byAddress.fail("addr:" + clientAddr(r))
	if acctKey != "" {
		s.byAccount.fail(acctKey)
	}
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="Callvault", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, msg)
}

// authenticate finds the principal of r. When it returns false it has
// answered (401, 429 or 500) and the handler must stop.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*Principal, bool) {
	authz := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(authz, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return s.authToken(w, r, strings.TrimSpace(cred))
	case strings.EqualFold(scheme, "Basic"):
		login, password, ok := r.BasicAuth()
		if !ok {
			unauthorized(w, "malformed Basic credentials")
			return nil, false
		}
		return s.authBasic(w, r, login, password)
	case authz != "":
		unauthorized(w, "unsupported Authorization scheme; use Basic or Bearer")
		return nil, false
	}
	sess, _, ok := s.currentSession(r)
	if !ok {
		unauthorized(w, "sign in, or send HTTP Basic credentials or a bearer token")
		return nil, false
	}
	u, err := s.data.Users.User(sess.userID)
	if err != nil || u.Disabled {
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			s.internalError(w, r, "session user lookup failed", err)
			return nil, false
		}
		unauthorized(w, "the signed-in account no longer exists or is disabled")
		return nil, false
	}
	return s.principal(w, r, u, AuthSession, "")
}

// principal builds the request's Principal with the user's effective
// permissions; when it returns false it has answered 500.
func (s *Server) principal(w http.ResponseWriter, r *http.Request, u meta.User, m AuthMethod, tokenID string) (*Principal, bool) {
	eff, err := effectiveUser(s.data.Users, u)
	if err != nil {
		s.internalError(w, r, "group permissions", err)
		return nil, false
	}
	return &Principal{User: eff, Method: m, TokenID: tokenID}, true
}

func (s *Server) authBasic(w http.ResponseWriter, r *http.Request, login, password string) (*Principal, bool) {
	tenant, username := splitTenant(login)
	key := accountKey(tenant, username)
	if s.throttled(w, r, key) {
		return nil, false
	}
	u, err := s.data.Users.UserByName(tenant, username)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		s.internalError(w, r, "user lookup failed", err)
		return nil, false
	}
	if err != nil {
		s.burnVerify(password)
	}
	if err != nil || !s.verify(u, password) || u.Disabled {
		s.failed(r, key)
		s.metrics.logins.WithLabelValues("failure").Inc()
		// The user name is logged (an operator needs it to see an attack);
		// the password never is, not even its length.
		s.log.Warn("API sign-in failed", "user", clip(login), "remote", clientAddr(r))
		s.auditAnon(r, meta.AuditLoginFailed, tenant, login, "HTTP Basic")
		unauthorized(w, "wrong user name or password")
		return nil, false
	}
	s.byAccount.reset(key)
	return s.principal(w, r, u, AuthBasic, "")
}

func (s *Server) authToken(w http.ResponseWriter, r *http.Request, secret string) (*Principal, bool) {
	if s.throttled(w, r, "") {
		return nil, false
	}
	reject := func(msg string) (*Principal, bool) {
		s.failed(r, "")
		s.auditAnon(r, meta.AuditLoginFailed, "", "", "bearer token: "+msg)
		unauthorized(w, msg)
		return nil, false
	}
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) > 128 {
		return reject("malformed bearer token")
	}
	tk, err := s.data.Users.TokenByHash(sha256.Sum256([]byte(secret)))
	if errors.Is(err, meta.ErrNotFound) {
		return reject("unknown or revoked token")
	}
	if err != nil {
		s.internalError(w, r, "token lookup failed", err)
		return nil, false
	}
	// The index lookup found it; compare anyway so a future index change
	// cannot turn this into a prefix match.
	if h := sha256.Sum256([]byte(secret)); subtle.ConstantTimeCompare(h[:], tk.Hash[:]) != 1 {
		return reject("unknown or revoked token")
	}
	if !tk.Expires.IsZero() && !s.now().Before(tk.Expires) {
		return reject("token expired")
	}
	u, err := s.data.Users.User(tk.User)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		s.internalError(w, r, "token user lookup failed", err)
		return nil, false
	}
	if err != nil || u.Disabled {
		return reject("the token's account no longer exists or is disabled")
	}
	return s.principal(w, r, u, AuthToken, tk.ID)
}

// sessionCSRF checks the X-CSRF-Token header against the session. Only the
// header counts on the API: reading a form value would parse the body (a
// multipart upload) before the check.
func (s *Server) sessionCSRF(r *http.Request) bool {
	sess, _, ok := s.currentSession(r)
	return ok && validCSRF(sess, r.Header.Get("X-CSRF-Token"))
}
