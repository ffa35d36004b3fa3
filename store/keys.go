package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/meta"
)

// Settings keys in the metadata database.
const (
	settingKeyring        = "keyring"
	settingPassphraseSalt = "passphrase-salt"
)

// KeySource says where the master key comes from. The first one set wins,
// in this order: Env, the systemd credential, Passphrase, KeyFile. The
// composition root fills it from the environment and the configuration;
// the store never reads the environment itself.
type KeySource struct {
	// Env is the value of CALLVAULT_MASTER_KEY (hex or base64 of 32 bytes).
	Env string
	// CredentialsDir is $CREDENTIALS_DIRECTORY, and Credential the name of
	// the credential file in it.
	CredentialsDir, Credential string
	// Passphrase is stretched with argon2id; its salt is kept in the
	// metadata (it is not secret).
	Passphrase string
	// KeyFile is created with a random key if missing. It must lie outside
	// the data directory, so a copy of the data alone reads nothing.
	KeyFile string
}

// masterKey resolves the master key and says where it came from.
func (s *Store) masterKey(src KeySource) ([]byte, string, error) {
	switch {
	case src.Env != "":
		k, err := keyring.ParseMasterKey(src.Env)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", keyring.EnvMasterKey, err)
		}
		return k, keyring.EnvMasterKey, nil
	case src.CredentialsDir != "" && src.Credential != "" && fileExists(filepath.Join(src.CredentialsDir, src.Credential)):
		k, err := keyring.FromCredential(src.CredentialsDir, src.Credential)
		if err != nil {
			return nil, "", fmt.Errorf("systemd credential %s: %w", src.Credential, err)
		}
		return k, "systemd credential " + src.Credential, nil
	case src.Passphrase != "":
		salt, err := s.meta.Setting(settingPassphraseSalt)
		if errors.Is(err, meta.ErrNotFound) {
			if salt, err = keyring.NewSalt(rand.Reader); err != nil {
				return nil, "", err
			}
			if _, err := s.Apply(context.Background(), &meta.PutSetting{Key: settingPassphraseSalt, Value: salt}); err != nil {
				return nil, "", fmt.Errorf("store passphrase salt: %w", err)
			}
		} else if err != nil {
			return nil, "", err
		}
		k, err := keyring.FromPassphrase([]byte(src.Passphrase), salt, keyring.DefaultArgon2Params())
		if err != nil {
			return nil, "", fmt.Errorf("keys.passphrase: %w", err)
		}
		return k, "passphrase", nil
	case src.KeyFile != "":
		if inside(s.cfg.DataDir, src.KeyFile) {
			return nil, "", fmt.Errorf("%w: key file %s is inside the data directory %s", ErrKeyPlacement, src.KeyFile, s.cfg.DataDir)
		}
		existed := fileExists(src.KeyFile)
		k, err := keyring.LoadOrCreateKeyFile(src.KeyFile, rand.Reader)
		if err != nil {
			return nil, "", fmt.Errorf("master key file: %w", err)
		}
		if !existed {
			s.Created = append(s.Created, src.KeyFile)
		}
		return k, "key file " + src.KeyFile, nil
	}
	return nil, "", ErrNoMasterKey
}

// openKeyring unseals the keyring kept in the metadata, creating term 1 on
// a new data directory.
func (s *Store) openKeyring(master []byte) error {
	blob, err := s.meta.Setting(settingKeyring)
	if errors.Is(err, meta.ErrNotFound) {
		kr, err := keyring.New(rand.Reader)
		if err != nil {
			return err
		}
		sealed, err := kr.Seal(master)
		if err != nil {
			return err
		}
		if _, err := s.Apply(context.Background(), &meta.PutSetting{Key: settingKeyring, Value: sealed}); err != nil {
			return fmt.Errorf("store keyring: %w", err)
		}
		s.keys.Store(kr)
		return nil
	}
	if err != nil {
		return err
	}
	kr, err := keyring.Open(master, blob, rand.Reader)
	if err != nil {
		if errors.Is(err, keyring.ErrWrongMasterKey) {
			return fmt.Errorf("%w: the master key (%s) does not open this data directory's keyring", err, s.keySource)
		}
		return fmt.Errorf("open keyring: %w", err)
	}
	s.keys.Store(kr)
	return nil
}

// RotateResult reports a key rotation.
type RotateResult struct {
	Term      uint32
	Rewrapped int
}

// RotateKeys adds a new key-encryption key and rewraps every recording's
// data key under it, in batches, without touching any audio file. Old
// terms stay in the keyring, so a rotation cut short leaves every
// recording readable, and running it again finishes the job.
func (s *Store) RotateKeys(ctx context.Context) (RotateResult, error) {
	old := s.keys.Load()
	kr, err := old.AddTerm(rand.Reader)
	if err != nil {
		return RotateResult{}, err
	}
	sealed, err := kr.Seal(s.master)
	if err != nil {
		return RotateResult{}, err
	}
	if _, err := s.Apply(ctx, &meta.PutSetting{Key: settingKeyring, Value: sealed}); err != nil {
		return RotateResult{}, fmt.Errorf("store keyring: %w", err)
	}
	s.keys.Store(kr)
	res := RotateResult{Term: kr.ActiveTerm()}
	const batch = 500
	var pending []meta.Rewrap
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		defer func() { pending = pending[:0] }()
		if _, err := s.Apply(ctx, &meta.RewrapDEKs{Keys: pending}); err == nil {
			res.Rewrapped += len(pending)
			return nil
		}
		// The batch is all or nothing; a recording deleted since the page was
		// read fails it. Go one by one and skip the deleted.
		for _, rw := range pending {
			if _, err := s.Apply(ctx, &meta.RewrapDEKs{Keys: []meta.Rewrap{rw}}); err != nil {
				if r, gerr := s.meta.Recording(rw.ID); gerr == nil && r.Status == meta.StatusDeleted {
					continue
				}
				return fmt.Errorf("rewrap key of %s: %w", rw.ID, err)
			}
			res.Rewrapped++
		}
		return nil
	}
	after := ""
	for {
		page, err := s.meta.RecordingsAfter(after, batch)
		if err != nil {
			return res, err
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			after = r.ID
			if len(r.File.WrappedDEK) == 0 || r.File.KeyTerm == kr.ActiveTerm() {
				continue
			}
			id, err := parseID(r.ID)
			if err != nil {
				return res, err
			}
			w, err := kr.Rewrap(r.File.WrappedDEK, id[:])
			if err != nil {
				return res, fmt.Errorf("recording %s: %w", r.ID, err)
			}
			pending = append(pending, meta.Rewrap{ID: r.ID, WrappedDEK: w, KeyTerm: kr.ActiveTerm()})
		}
		if err := flush(); err != nil {
			return res, err
		}
	}
	return res, flush()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// inside reports whether p lies in dir (after making both absolute).
func inside(dir, p string) bool {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(p)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
