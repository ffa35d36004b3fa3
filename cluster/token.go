package cluster

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// A join token is "cvj1.<secret>.<ca-sha256>.<addr>": the secret (32 random
// bytes, base64url) proves the admin's consent; the CA fingerprint lets the
// joiner check it talks to this cluster before sending the secret; addr is
// the cluster address of the node that issued it (the one holding the CA
// key), which is where the joiner connects.
const tokenPrefix = "cvj1"

// TokenTTL is how long a join token is valid.
const TokenTTL = 10 * time.Minute

// joinToken is a parsed token.
type joinToken struct {
	secret []byte
	caFP   string
	addr   string
}

// parseToken parses a join token; it is outside input (a flag), so every
// malformation is ErrToken, never a panic.
func parseToken(s string) (joinToken, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 4 || parts[0] != tokenPrefix {
		return joinToken{}, fmt.Errorf("%w: want %s.<secret>.<fingerprint>.<address>, got %d parts", ErrToken, tokenPrefix, len(parts))
	}
	secret, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || len(secret) != 32 {
		return joinToken{}, fmt.Errorf("%w: secret is not 32 bytes of base64url", ErrToken)
	}
	fp, err := hex.DecodeString(parts[2])
	if err != nil || len(fp) != sha256.Size {
		return joinToken{}, fmt.Errorf("%w: CA fingerprint is not a hex SHA-256", ErrToken)
	}
	addr, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || len(addr) == 0 || len(addr) > 255 {
		return joinToken{}, fmt.Errorf("%w: address is not base64url (1-255 bytes)", ErrToken)
	}
	return joinToken{secret: secret, caFP: strings.ToLower(parts[2]), addr: string(addr)}, nil
}

func (t joinToken) String() string {
	return tokenPrefix + "." + base64.RawURLEncoding.EncodeToString(t.secret) + "." + t.caFP + "." +
		base64.RawURLEncoding.EncodeToString([]byte(t.addr))
}

// tokenStore keeps issued tokens as hashes with an expiry in a 0600 file,
// so a restart of the CA node does not void them and the file reveals none.
type tokenStore struct {
	mu   sync.Mutex
	path string
}

type storedToken struct {
	Hash    string    `json:"hash"`
	Expires time.Time `json:"expires"`
}

func (s *tokenStore) load() ([]storedToken, error) {
	b, err := os.ReadFile(s.path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ts []storedToken
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	return ts, nil
}

func (s *tokenStore) save(ts []storedToken) error {
	b, err := json.Marshal(ts)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

func hashSecret(secret []byte) string {
	h := sha256.Sum256(secret)
	return hex.EncodeToString(h[:])
}

// issue makes a token valid until now+TokenTTL and forgets expired ones.
func (s *tokenStore) issue(caFP, addr string, now time.Time) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, err := s.load()
	if err != nil {
		return "", time.Time{}, err
	}
	live := ts[:0]
	for _, t := range ts {
		if now.Before(t.Expires) {
			live = append(live, t)
		}
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(TokenTTL)
	live = append(live, storedToken{Hash: hashSecret(secret), Expires: exp})
	if err := s.save(live); err != nil {
		return "", time.Time{}, err
	}
	return joinToken{secret: secret, caFP: caFP, addr: addr}.String(), exp, nil
}

// consume checks a presented secret and removes it: a token works once.
func (s *tokenStore) consume(secret []byte, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, err := s.load()
	if err != nil {
		return err
	}
	h := hashSecret(secret)
	for i, t := range ts {
		if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) == 1 {
			ts = append(ts[:i], ts[i+1:]...)
			if err := s.save(ts); err != nil {
				return err
			}
			if !now.Before(t.Expires) {
				return fmt.Errorf("%w: expired at %s", ErrToken, t.Expires.UTC().Format(time.RFC3339))
			}
			return nil
		}
	}
	return fmt.Errorf("%w: unknown or already used", ErrToken)
}

func newTokenStore(dataDir string) *tokenStore {
	return &tokenStore{path: filepath.Join(clusterDir(dataDir), fileTokens)}
}
