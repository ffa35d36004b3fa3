package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// session is one signed-in browser. The cookie carries a random ID; the
// server keeps only its SHA-256, so a leaked sessions table signs no one in.
type session struct {
	userID   string
	username string
	role     string
	csrf     string
	created  time.Time
	lastSeen time.Time
}

// sessions is the in-memory session table with idle and absolute timeouts.
type sessions struct {
	mu       sync.Mutex
	byHash   map[[32]byte]*session
	idle     time.Duration
	absolute time.Duration
	now      func() time.Time
}

func newSessions(idle, absolute time.Duration, now func() time.Time) *sessions {
	return &sessions{byHash: make(map[[32]byte]*session), idle: idle, absolute: absolute, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the OS RNG failing is not recoverable
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session and returns the cookie value.
func (s *sessions) create(userID, username, role string) (string, *session) {
	id := randomToken()
	now := s.now()
	sess := &session{userID: userID, username: username, role: role, csrf: randomToken(), created: now, lastSeen: now}
	s.mu.Lock()
	s.byHash[sha256.Sum256([]byte(id))] = sess
	s.mu.Unlock()
	return id, sess
}

// get returns the live session for a cookie value and refreshes its idle timer.
func (s *sessions) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	h := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byHash[h]
	if !ok {
		return session{}, false
	}
	if now.Sub(sess.lastSeen) > s.idle || now.Sub(sess.created) > s.absolute {
		delete(s.byHash, h)
		return session{}, false
	}
	sess.lastSeen = now
	return *sess, true
}

func (s *sessions) delete(id string) {
	h := sha256.Sum256([]byte(id))
	s.mu.Lock()
	delete(s.byHash, h)
	s.mu.Unlock()
}

// sweep drops expired sessions; the server calls it periodically.
func (s *sessions) sweep() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, sess := range s.byHash {
		if now.Sub(sess.lastSeen) > s.idle || now.Sub(sess.created) > s.absolute {
			delete(s.byHash, h)
		}
	}
}

func validCSRF(sess session, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(sess.csrf), []byte(token)) == 1
}
