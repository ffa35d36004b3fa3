package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/argon2"
)

// EnvMasterKey is the environment variable the composition root reads and
// passes to ParseMasterKey. This package never reads the environment itself.
const EnvMasterKey = "CALLVAULT_MASTER_KEY"

// SaltSize is the length of the salt NewSalt makes and the minimum
// FromPassphrase accepts.
const SaltSize = 16

// maxKeyText bounds how much of a key file or credential is read: the
// longest accepted form is 64 hex digits plus a line ending.
const maxKeyText = 256

// Argon2Params are the argon2id cost parameters for FromPassphrase. The
// caller persists them next to the salt, so they can be raised later without
// locking out keyrings sealed under the old ones.
type Argon2Params struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// DefaultArgon2Params are the parameters for new installations: 3 passes
// over 64 MiB with 2 lanes (RFC 9106's second recommended option, with the
// lanes matched to a small appliance). On a 2-core machine a derivation takes
// roughly a quarter of a second, paid once at start-up.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}
}

// NewSalt returns a random salt for FromPassphrase. It is not secret; the
// caller stores it (for example in the config directory) and passes it back
// on every start.
func NewSalt(rand io.Reader) ([]byte, error) {
	salt := make([]byte, SaltSize)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("keyring: reading randomness for salt: %w", err)
	}
	return salt, nil
}

// FromPassphrase stretches passphrase into a master key with argon2id.
func FromPassphrase(passphrase, salt []byte, p Argon2Params) ([]byte, error) {
	switch {
	case len(passphrase) == 0:
		return nil, fmt.Errorf("%w: empty passphrase", ErrPassphrase)
	case len(salt) < SaltSize:
		return nil, fmt.Errorf("%w: salt is %d bytes, want at least %d", ErrPassphrase, len(salt), SaltSize)
	case p.Time < 1 || p.Time > 100:
		return nil, fmt.Errorf("%w: argon2 time %d, want 1..100", ErrPassphrase, p.Time)
	case p.Threads < 1:
		return nil, fmt.Errorf("%w: argon2 threads %d, want at least 1", ErrPassphrase, p.Threads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > 4<<20:
		// argon2 needs 8 KiB per lane; 4 GiB guards against a typo taking the machine down.
		return nil, fmt.Errorf("%w: argon2 memory %d KiB, want %d..%d", ErrPassphrase, p.MemoryKiB, 8*uint32(p.Threads), 4<<20)
	}
	return argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, KeySize), nil
}

// ParseMasterKey decodes a master key given as text, as in the
// CALLVAULT_MASTER_KEY variable: 64 hex digits, or standard or URL-safe
// base64 (padded or not) of exactly KeySize bytes. Surrounding whitespace is
// ignored.
func ParseMasterKey(value string) ([]byte, error) {
	text := []byte(value)
	defer Zero(text)
	return parseKeyText(text)
}

// parseKeyText is ParseMasterKey on bytes, so that callers holding key text
// in a buffer can zero it afterwards (a string cannot be zeroed).
func parseKeyText(text []byte) ([]byte, error) {
	s := bytes.TrimSpace(text)
	if len(s) == 0 {
		return nil, fmt.Errorf("%w: empty value", ErrKeyEncoding)
	}
	if isHex(s) {
		// Any even-length all-hex text is read as hex. Base64 of 32 bytes
		// is 43 or 44 characters, so the two forms cannot be confused.
		if len(s) != 2*KeySize {
			return nil, fmt.Errorf("%w: %d hex digits, want %d", ErrKeyLength, len(s), 2*KeySize)
		}
		key := make([]byte, KeySize)
		if _, err := hex.Decode(key, s); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeyEncoding, err)
		}
		return key, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		key := make([]byte, enc.DecodedLen(len(s)))
		n, err := enc.Decode(key, s)
		if err != nil {
			Zero(key)
			continue
		}
		if n != KeySize {
			Zero(key)
			return nil, fmt.Errorf("%w: base64 decodes to %d bytes, want %d", ErrKeyLength, n, KeySize)
		}
		return key[:KeySize:KeySize], nil
	}
	return nil, fmt.Errorf("%w: %d characters", ErrKeyEncoding, len(s))
}

func isHex(s []byte) bool {
	if len(s)%2 != 0 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// FromCredential reads the master key from a systemd credential, the file
// $CREDENTIALS_DIRECTORY/name (LoadCredential= or LoadCredentialEncrypted=
// in the unit). The caller passes the directory from the environment. The
// file holds either exactly KeySize raw bytes or the key as text in a form
// ParseMasterKey accepts. Its mode is not checked: systemd places
// credentials on a private, read-only mount that only the service can read.
func FromCredential(dir, name string) ([]byte, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no credentials directory (is the service started with LoadCredential=?)", ErrCredential)
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("%w: invalid credential name %q", ErrCredential, name)
	}
	path := filepath.Join(dir, name)
	data, err := readSmallRegular(path)
	if err != nil {
		return nil, err
	}
	defer Zero(data)
	if len(data) == KeySize {
		key := make([]byte, KeySize)
		copy(key, data)
		return key, nil
	}
	key, err := parseKeyText(data)
	if err != nil {
		return nil, fmt.Errorf("credential %s: %w", path, err)
	}
	return key, nil
}

// readSmallRegular reads a key-sized regular file, refusing anything larger
// than maxKeyText.
func readSmallRegular(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is %v", ErrNotRegular, path, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyText+1))
	if err != nil {
		Zero(data)
		return nil, fmt.Errorf("keyring: reading %s: %w", path, err)
	}
	if len(data) > maxKeyText {
		Zero(data)
		return nil, fmt.Errorf("%w: %s is longer than %d bytes", ErrKeyLength, path, maxKeyText)
	}
	return data, nil
}

// LoadOrCreateKeyFile returns the master key kept in the file at path,
// creating the file with a random key from rand if it does not exist.
//
// The file holds the key as 64 lowercase hex digits and a newline: text
// survives copy-and-paste into a password manager or a systemd credential,
// and `openssl rand -hex 32 > key` makes a valid file. The file must be a
// regular file that neither group nor others can access (mode 0600 or
// stricter); a file of any other length or encoding is refused, never
// replaced. A new file is created with mode 0600, in a parent directory
// created with mode 0700 if missing, written to a temporary name, fsynced and
// then linked into place, so a crash never leaves a half-written key and two
// processes starting together end up with the same key.
func LoadOrCreateKeyFile(path string, rand io.Reader) ([]byte, error) {
	key, err := loadKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	return createKeyFile(path, rand)
}

func loadKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: key file: %w", err)
	}
	if fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 or stricter", ErrKeyFileMode, path, fi.Mode().Perm())
	}
	data, err := readSmallRegular(path)
	if err != nil {
		return nil, err
	}
	defer Zero(data)
	s := bytes.TrimRight(data, "\r\n")
	if !isHex(s) {
		return nil, fmt.Errorf("%w: key file %s must hold %d hex digits", ErrKeyEncoding, path, 2*KeySize)
	}
	if len(s) != 2*KeySize {
		return nil, fmt.Errorf("%w: key file %s holds %d hex digits, want %d", ErrKeyLength, path, len(s), 2*KeySize)
	}
	key := make([]byte, KeySize)
	if _, err := hex.Decode(key, s); err != nil {
		return nil, fmt.Errorf("%w: key file %s: %v", ErrKeyEncoding, path, err)
	}
	return key, nil
}

func createKeyFile(path string, rand io.Reader) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keyring: creating key directory: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(rand, key); err != nil {
		return nil, fmt.Errorf("keyring: reading randomness for master key: %w", err)
	}
	text := make([]byte, 2*KeySize+1)
	defer Zero(text)
	hex.Encode(text, key)
	text[2*KeySize] = '\n'

	tmp, err := os.CreateTemp(dir, ".masterkey-*") // mode 0600
	if err != nil {
		Zero(key)
		return nil, fmt.Errorf("keyring: creating key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(text)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		Zero(key)
		return nil, fmt.Errorf("keyring: writing key file: %w", werr)
	}
	// Link, not rename: rename would silently replace a key file another
	// process created meanwhile, and the keyring sealed under it with it.
	if err := os.Link(tmp.Name(), path); err != nil {
		Zero(key)
		if errors.Is(err, fs.ErrExist) {
			return loadKeyFile(path)
		}
		return nil, fmt.Errorf("keyring: installing key file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		Zero(key)
		return nil, err
	}
	return key, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keyring: opening key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keyring: syncing key directory: %w", err)
	}
	return nil
}
