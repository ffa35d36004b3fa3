package store

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/meta"
)

// The appliance's signing key (ed25519) signs audit checkpoints and export
// manifests. Its seed is wrapped by the keyring like a recording's data
// key and kept in the metadata, so every node of a cluster (which shares
// the master key) signs with the same key, and a copy of the data
// directory without the master key cannot sign. The public key is kept in
// clear beside it.

const (
	settingSigningKey    = "signing-key"     // wrapped ed25519 seed
	settingSigningPublic = "signing-key.pub" // ed25519 public key
	// signingAAD binds the wrapped seed to its purpose: it cannot be
	// swapped for a recording's wrapped key or the other way round.
	signingAAD = "callvault signing key"
)

// CheckpointEvery is how many audit entries a signed checkpoint covers at
// most: removing the newest entries goes unnoticed for at most this many,
// and Close checkpoints the rest.
const CheckpointEvery = 100

// openSigningKey unwraps the signing key, making one on first start.
func (s *Store) openSigningKey(ctx context.Context) error {
	kr := s.keys.Load()
	wrapped, err := s.meta.Setting(settingSigningKey)
	if errors.Is(err, meta.ErrNotFound) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return err
		}
		defer keyring.Zero(seed)
		key := ed25519.NewKeyFromSeed(seed)
		w, err := kr.WrapDEK(seed, []byte(signingAAD))
		if err != nil {
			return fmt.Errorf("wrap signing key: %w", err)
		}
		pub := key.Public().(ed25519.PublicKey)
		for _, c := range []*meta.PutSetting{{Key: settingSigningKey, Value: w}, {Key: settingSigningPublic, Value: pub}} {
			if _, err := s.Apply(ctx, c); err != nil {
				return fmt.Errorf("store signing key: %w", err)
			}
		}
		s.signer = key
		return nil
	}
	if err != nil {
		return err
	}
	seed, err := kr.UnwrapDEK(wrapped, []byte(signingAAD))
	if err != nil {
		return fmt.Errorf("unwrap signing key: %w", err)
	}
	defer keyring.Zero(seed)
	if len(seed) != ed25519.SeedSize {
		return fmt.Errorf("signing key seed of %d bytes", len(seed))
	}
	s.signer = ed25519.NewKeyFromSeed(seed)
	return nil
}

// PublicKey is the appliance's signing public key.
func (s *Store) PublicKey() ed25519.PublicKey { return s.signer.Public().(ed25519.PublicKey) }

// Fingerprint is the SHA-256 of a public key in hex: what an auditor
// compares with the fingerprint the appliance's admin gave them.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// Sign signs msg with the appliance's signing key (export manifests).
func (s *Store) Sign(msg []byte) []byte { return ed25519.Sign(s.signer, msg) }

// checkpointAfter writes a signed checkpoint when the n audit entries just
// appended (the last one is number seq) cross a multiple of CheckpointEvery.
func (s *Store) checkpointAfter(ctx context.Context, seq uint64, n int) {
	if seq == 0 || n < 1 || seq/CheckpointEvery == (seq-uint64(n))/CheckpointEvery {
		return
	}
	if err := s.checkpoint(ctx, seq); err != nil {
		s.log.Error("audit checkpoint", "seq", seq, "err", err)
	}
}

// Checkpoint signs the newest audit entry unless it is signed already.
func (s *Store) Checkpoint(ctx context.Context) error {
	seq, _, last, err := s.meta.AuditHead()
	if err != nil || seq == 0 || seq == last {
		return err
	}
	return s.checkpoint(ctx, seq)
}

func (s *Store) checkpoint(ctx context.Context, seq uint64) error {
	e, err := s.meta.AuditEntry(seq)
	if err != nil {
		return err
	}
	sig := ed25519.Sign(s.signer, meta.CheckpointMessage(seq, e.Hash))
	_, err = s.Apply(ctx, &meta.AuditCheckpoint{Seq: seq, Hash: e.Hash, Time: s.cfg.Now().UTC(),
		PublicKey: s.PublicKey(), Signature: sig})
	return err
}
