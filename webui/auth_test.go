package webui

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q is not argon2id PHC", h)
	}
	if err := VerifyPassword(h, "correct horse battery"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := VerifyPassword(h, "correct horse batterz"); !errors.Is(err, ErrPasswordMismatch) {
		t.Fatalf("wrong password: %v", err)
	}
	h2, _ := HashPassword("correct horse battery")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if _, err := HashPassword("short"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("short password: %v", err)
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=99999999,t=1,p=1$AA$AA", "$argon2id$v=19$m=64,t=1,p=1$!!$AA", "plain"} {
		if err := VerifyPassword(bad, "x"); !errors.Is(err, ErrBadHash) {
			t.Errorf("VerifyPassword(%q) = %v, want ErrBadHash", bad, err)
		}
	}
	if err := VerifyPassword(dummyHash, "anything at all"); !errors.Is(err, ErrPasswordMismatch) {
		t.Fatalf("dummyHash must be a valid hash that matches nothing: %v", err)
	}
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		p, err := RandomPassword(20)
		if err != nil || len(p) != 20 {
			t.Fatalf("%q %v", p, err)
		}
		if seen[p] {
			t.Fatal("repeated password")
		}
		seen[p] = true
	}
}

func TestSessionTimeouts(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSessions(10*time.Minute, time.Hour, func() time.Time { return now })
	id, sess := s.create("u1", "alice", "user")
	if _, ok := s.get(id); !ok {
		t.Fatal("fresh session not found")
	}
	if !validCSRF(*sess, sess.csrf) || validCSRF(*sess, "") || validCSRF(*sess, sess.csrf+"x") {
		t.Fatal("CSRF check wrong")
	}
	for range 5 { // activity keeps it alive past the idle timeout...
		now = now.Add(9 * time.Minute)
		if _, ok := s.get(id); !ok {
			t.Fatal("active session expired")
		}
	}
	now = now.Add(20 * time.Minute) // ...but not past the absolute one
	if _, ok := s.get(id); ok {
		t.Fatal("session outlived its absolute timeout")
	}
	id2, _ := s.create("u1", "alice", "user")
	now = now.Add(11 * time.Minute)
	if _, ok := s.get(id2); ok {
		t.Fatal("idle session still valid")
	}
	id3, _ := s.create("u2", "bob", "user")
	s.delete(id3)
	if _, ok := s.get(id3); ok {
		t.Fatal("deleted session still valid")
	}
	if _, ok := s.get("forged"); ok {
		t.Fatal("unknown session accepted")
	}
}
