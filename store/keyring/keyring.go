// Package keyring holds Callvault's key-encryption keys (KEKs) and wraps the
// per-recording data keys (DEKs) with them. It is the middle layer of the
// envelope encryption described in ARCHITECTURE.md:
//
//	master key (file, passphrase, env value or systemd credential; never in the data dir)
//	   │  AES-256-GCM (Keyring.Seal / Open)
//	   ▼
//	keyring: term 1 → KEK₁, term 2 → KEK₂, … (the highest term is active)
//	   │  AES-256-GCM, AAD = recording ID (Keyring.WrapDEK / UnwrapDEK)
//	   ▼
//	wrapped DEK per recording (kept in metadata; deleting it shreds the recording)
//	   │  AES-256-GCM chunks (package store/recfile)
//	   ▼
//	recording file
//
// The design follows HashiCorp Vault's barrier (vault/barrier_aes_gcm.go and
// keyring.go):
//
//   - Terms. Every KEK has a uint32 term. Rotation (AddTerm) adds a new term and
//     makes it active; old terms stay so that DEKs wrapped under them can still
//     be unwrapped, and Rewrap moves a wrapped DEK to the active term without
//     touching any audio.
//   - Immutability. A *Keyring never changes after it is built (except
//     Zeroize at end of life); AddTerm returns a clone. Callers swap the pointer,
//     so readers never need a lock.
//   - One cached AEAD per term, built once, because cipher.NewGCM expands the
//     key schedule and that is the expensive part of a small Seal.
//   - Randomness is an injected io.Reader, so tests can prove what happens when
//     it fails; production passes crypto/rand.Reader.
//   - Key material is zeroed (Zero) when it is no longer needed. Go's AES
//     implementation keeps its own expanded copy of each KEK that cannot be
//     reached from here; that copy dies with the garbage collector, as in Vault.
//
// Formats (all integers big-endian):
//
// Wrapped DEK, 65 bytes:
//
//	 0               4     5                   17                             65
//	+---------------+-----+-------------------+------------------------------+
//	| term (uint32) | ver | nonce (12 bytes)  | AES-GCM(DEK) 32 + tag 16     |
//	+---------------+-----+-------------------+------------------------------+
//	AAD = bytes 0..5 (term, version) || recording ID
//
// Sealed keyring:
//
//	 0        4     5             13                  25
//	+--------+-----+-------------+-------------------+--------------------------+
//	| "CVKR" | ver | check (8)   | nonce (12 bytes)  | AES-GCM(payload) + tag   |
//	+--------+-----+-------------+-------------------+--------------------------+
//	AAD = bytes 0..13
//	payload = active term (uint32) | count (uint32) | count × (term uint32 | KEK 32)
//
// The sealing key and the check value are derived from the master key with
// HMAC-SHA256 under distinct labels, so the master key itself is never used
// directly. The 8-byte check value lets Open tell a wrong master key
// (ErrWrongMasterKey) from a damaged blob (ErrCorrupt) before decrypting.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
)

// KeySize is the size in bytes of every key this package handles: the master
// key, each KEK and each DEK (AES-256).
const KeySize = 32

// WrappedDEKSize is the exact length of a wrapped DEK.
const WrappedDEKSize = wrapHeaderSize + nonceSize + KeySize + tagSize

const (
	nonceSize      = 12
	tagSize        = 16
	wrapHeaderSize = 5 // term (4) + version (1)
	wrapVersion    = 1

	sealMagic      = "CVKR"
	sealVersion    = 1
	checkSize      = 8
	sealAADSize    = len(sealMagic) + 1 + checkSize // 13
	sealHeaderSize = sealAADSize + nonceSize        // 25
	termEntrySize  = 4 + KeySize
	// maxTerms bounds the keyring so a sealed blob stays small; one rotation
	// a day for a century is about 36,500 terms.
	maxTerms = 1 << 16

	labelSeal  = "callvault/keyring/seal/v1"
	labelCheck = "callvault/keyring/check/v1"
)

// Errors returned by this package. They are wrapped with details (lengths,
// terms, modes, paths); test for them with errors.Is.
var (
	// ErrKeyLength: a key (master key, DEK, key file content) does not have
	// exactly KeySize bytes.
	ErrKeyLength = errors.New("keyring: key has the wrong length")
	// ErrKeyEncoding: a textual key is neither hex nor base64.
	ErrKeyEncoding = errors.New("keyring: key is neither hex nor base64")
	// ErrKeyFileMode: the key file can be read or written by group or others.
	ErrKeyFileMode = errors.New("keyring: key file is accessible by group or others")
	// ErrNotRegular: the key file or credential is not a regular file.
	ErrNotRegular = errors.New("keyring: not a regular file")
	// ErrCredential: the systemd credential directory or name is unusable.
	ErrCredential = errors.New("keyring: bad systemd credential")
	// ErrPassphrase: the passphrase, salt or argon2 parameters are unusable.
	ErrPassphrase = errors.New("keyring: bad passphrase input")
	// ErrWrongMasterKey: a sealed keyring was sealed under a different master key.
	ErrWrongMasterKey = errors.New("keyring: wrong master key")
	// ErrCorrupt: a sealed keyring or wrapped DEK is malformed or fails
	// authentication (damaged, or a wrapped DEK presented for another recording).
	ErrCorrupt = errors.New("keyring: corrupt or tampered data")
	// ErrVersion: a sealed keyring or wrapped DEK has a format version this
	// build does not know.
	ErrVersion = errors.New("keyring: unsupported format version")
	// ErrUnknownTerm: a wrapped DEK names a term this keyring does not hold.
	ErrUnknownTerm = errors.New("keyring: unknown key term")
	// ErrTermOverflow: no further term can be added.
	ErrTermOverflow = errors.New("keyring: no more key terms")
	// ErrNoRecordingID: a DEK was wrapped or unwrapped without a recording ID,
	// which would let the wrapped key be moved to any recording.
	ErrNoRecordingID = errors.New("keyring: empty recording ID")
	// ErrZeroized: the keyring was zeroized and can no longer be used.
	ErrZeroized = errors.New("keyring: keyring was zeroized")
)

// Keyring is an immutable set of KEK terms with one active term. It is safe
// for concurrent use as long as the io.Reader it was given is (crypto/rand.Reader is).
type Keyring struct {
	rand   io.Reader
	active uint32
	terms  map[uint32]*term
}

type term struct {
	key  [KeySize]byte
	aead cipher.AEAD
}

func newTerm(key []byte) (*term, error) {
	t := &term{}
	copy(t.key[:], key)
	aead, err := newAEAD(t.key[:])
	if err != nil {
		return nil, err
	}
	t.aead = aead
	return t, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrKeyLength, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return aead, nil
}

// Zero overwrites b with zeros. Use it on every copy of key material once it
// is no longer needed.
func Zero(b []byte) {
	clear(b)
	// Keep b reachable until after the clear so the store cannot be treated
	// as dead and dropped.
	runtime.KeepAlive(b)
}

// NewDEK returns a fresh random data-encryption key of KeySize bytes.
func NewDEK(rand io.Reader) ([]byte, error) {
	dek := make([]byte, KeySize)
	if _, err := io.ReadFull(rand, dek); err != nil {
		return nil, fmt.Errorf("keyring: reading randomness for DEK: %w", err)
	}
	return dek, nil
}

// New returns a keyring with one random KEK as term 1. rand is kept for the
// nonces of WrapDEK and Seal and the keys of AddTerm.
func New(rand io.Reader) (*Keyring, error) {
	var key [KeySize]byte
	defer Zero(key[:])
	if _, err := io.ReadFull(rand, key[:]); err != nil {
		return nil, fmt.Errorf("keyring: reading randomness for term 1: %w", err)
	}
	t, err := newTerm(key[:])
	if err != nil {
		return nil, err
	}
	return &Keyring{rand: rand, active: 1, terms: map[uint32]*term{1: t}}, nil
}

// ActiveTerm returns the term that WrapDEK uses.
func (k *Keyring) ActiveTerm() uint32 { return k.active }

// Terms returns all terms held, in ascending order.
func (k *Keyring) Terms() []uint32 {
	ts := make([]uint32, 0, len(k.terms))
	for t := range k.terms {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// AddTerm returns a copy of k with a new random KEK under term ActiveTerm()+1,
// which becomes active. k itself is unchanged. rand replaces the reader kept
// by the copy.
func (k *Keyring) AddTerm(rand io.Reader) (*Keyring, error) {
	if k.terms == nil {
		return nil, ErrZeroized
	}
	if k.active == math.MaxUint32 || len(k.terms) >= maxTerms {
		return nil, fmt.Errorf("%w: active term %d, %d terms held", ErrTermOverflow, k.active, len(k.terms))
	}
	var key [KeySize]byte
	defer Zero(key[:])
	if _, err := io.ReadFull(rand, key[:]); err != nil {
		return nil, fmt.Errorf("keyring: reading randomness for term %d: %w", k.active+1, err)
	}
	nt, err := newTerm(key[:])
	if err != nil {
		return nil, err
	}
	clone := &Keyring{rand: rand, active: k.active + 1, terms: make(map[uint32]*term, len(k.terms)+1)}
	for n, t := range k.terms {
		// Copy the key bytes so that zeroizing one keyring never touches
		// another; the AEAD holds no key we could zero anyway, so share it.
		clone.terms[n] = &term{key: t.key, aead: t.aead}
	}
	clone.terms[clone.active] = nt
	return clone, nil
}

// Zeroize overwrites every KEK held by k. Call it only once nobody uses k any
// more: afterwards every method returns ErrZeroized or an empty result.
// Clones made by AddTerm hold their own copies and are not affected.
func (k *Keyring) Zeroize() {
	for _, t := range k.terms {
		Zero(t.key[:])
		t.aead = nil
	}
	k.terms = nil
	k.active = 0
}

// WrapDEK encrypts dek under the active term, bound to recordingID: the
// result only unwraps with the same recordingID. The output is
// WrappedDEKSize bytes; see the package doc for the layout.
func (k *Keyring) WrapDEK(dek, recordingID []byte) ([]byte, error) {
	if k.terms == nil {
		return nil, ErrZeroized
	}
	if len(dek) != KeySize {
		return nil, fmt.Errorf("%w: DEK is %d bytes, want %d", ErrKeyLength, len(dek), KeySize)
	}
	if len(recordingID) == 0 {
		return nil, ErrNoRecordingID
	}
	t := k.terms[k.active]
	out := make([]byte, wrapHeaderSize+nonceSize, WrappedDEKSize)
	binary.BigEndian.PutUint32(out[0:4], k.active)
	out[4] = wrapVersion
	nonce := out[wrapHeaderSize : wrapHeaderSize+nonceSize]
	if _, err := io.ReadFull(k.rand, nonce); err != nil {
		return nil, fmt.Errorf("keyring: reading randomness for nonce: %w", err)
	}
	return t.aead.Seal(out, nonce, dek, wrapAAD(out[:wrapHeaderSize], recordingID)), nil
}

func wrapAAD(header, recordingID []byte) []byte {
	aad := make([]byte, 0, len(header)+len(recordingID))
	return append(append(aad, header...), recordingID...)
}

// WrappedTerm returns the term a wrapped DEK was wrapped under, without
// checking anything else. `callvault keys rotate` uses it to skip DEKs that
// are already on the active term.
func WrappedTerm(wrapped []byte) (uint32, error) {
	if len(wrapped) != WrappedDEKSize {
		return 0, fmt.Errorf("%w: wrapped DEK is %d bytes, want %d", ErrCorrupt, len(wrapped), WrappedDEKSize)
	}
	return binary.BigEndian.Uint32(wrapped[0:4]), nil
}

// UnwrapDEK reverses WrapDEK. It returns ErrUnknownTerm (with the term) when
// the DEK was wrapped under a term k does not hold, and ErrCorrupt when the
// wrapped bytes were changed or recordingID is not the one they were bound to.
// The caller owns the returned DEK and should Zero it after use.
func (k *Keyring) UnwrapDEK(wrapped, recordingID []byte) ([]byte, error) {
	if k.terms == nil {
		return nil, ErrZeroized
	}
	if len(recordingID) == 0 {
		return nil, ErrNoRecordingID
	}
	termNo, err := WrappedTerm(wrapped)
	if err != nil {
		return nil, err
	}
	if v := wrapped[4]; v != wrapVersion {
		return nil, fmt.Errorf("%w: wrapped DEK version %d, want %d", ErrVersion, v, wrapVersion)
	}
	t, ok := k.terms[termNo]
	if !ok {
		return nil, fmt.Errorf("%w: term %d (keyring holds terms 1..%d)", ErrUnknownTerm, termNo, k.active)
	}
	nonce := wrapped[wrapHeaderSize : wrapHeaderSize+nonceSize]
	dek, err := t.aead.Open(make([]byte, 0, KeySize), nonce, wrapped[wrapHeaderSize+nonceSize:],
		wrapAAD(wrapped[:wrapHeaderSize], recordingID))
	if err != nil {
		return nil, fmt.Errorf("%w: wrapped DEK under term %d fails authentication for this recording ID", ErrCorrupt, termNo)
	}
	return dek, nil
}

// Rewrap unwraps wrapped (under whatever term it names) and wraps the DEK
// again under the active term, bound to the same recordingID. If wrapped is
// already on the active term it is verified and returned unchanged (as a
// copy), so a rotation that is interrupted can simply be run again.
func (k *Keyring) Rewrap(wrapped, recordingID []byte) ([]byte, error) {
	dek, err := k.UnwrapDEK(wrapped, recordingID)
	if err != nil {
		return nil, err
	}
	defer Zero(dek)
	if binary.BigEndian.Uint32(wrapped[0:4]) == k.active {
		return slices.Clone(wrapped), nil
	}
	return k.WrapDEK(dek, recordingID)
}

// deriveSealKeys derives the keyring sealing key and the check value from the
// master key. The caller zeroes sealKey.
func deriveSealKeys(master []byte) (sealKey []byte, check [checkSize]byte, err error) {
	if len(master) != KeySize {
		return nil, check, fmt.Errorf("%w: master key is %d bytes, want %d", ErrKeyLength, len(master), KeySize)
	}
	m := hmac.New(sha256.New, master)
	m.Write([]byte(labelSeal))
	sealKey = m.Sum(nil)
	m = hmac.New(sha256.New, master)
	m.Write([]byte(labelCheck))
	sum := m.Sum(nil)
	copy(check[:], sum)
	return sealKey, check, nil
}

// Seal encrypts the whole keyring under master (KeySize bytes) for storage
// in the metadata store. The result is opened with Open.
func (k *Keyring) Seal(master []byte) ([]byte, error) {
	if k.terms == nil {
		return nil, ErrZeroized
	}
	sealKey, check, err := deriveSealKeys(master)
	if err != nil {
		return nil, err
	}
	defer Zero(sealKey)
	aead, err := newAEAD(sealKey)
	if err != nil {
		return nil, err
	}

	terms := k.Terms()
	payload := make([]byte, 8, 8+len(terms)*termEntrySize)
	defer func() { Zero(payload) }()
	binary.BigEndian.PutUint32(payload[0:4], k.active)
	binary.BigEndian.PutUint32(payload[4:8], uint32(len(terms)))
	for _, n := range terms {
		payload = binary.BigEndian.AppendUint32(payload, n)
		payload = append(payload, k.terms[n].key[:]...)
	}

	out := make([]byte, sealHeaderSize, sealHeaderSize+len(payload)+tagSize)
	copy(out, sealMagic)
	out[len(sealMagic)] = sealVersion
	copy(out[len(sealMagic)+1:], check[:])
	nonce := out[sealAADSize:sealHeaderSize]
	if _, err := io.ReadFull(k.rand, nonce); err != nil {
		return nil, fmt.Errorf("keyring: reading randomness for nonce: %w", err)
	}
	return aead.Seal(out, nonce, payload, out[:sealAADSize]), nil
}

// Open decrypts a keyring sealed by Seal. A blob sealed under another master
// key gives ErrWrongMasterKey; a damaged blob gives ErrCorrupt; an unknown
// format version gives ErrVersion. rand is kept for later WrapDEK, Seal and
// AddTerm calls.
func Open(master, blob []byte, rand io.Reader) (*Keyring, error) {
	if len(blob) < sealHeaderSize+tagSize {
		return nil, fmt.Errorf("%w: sealed keyring is %d bytes, shorter than the minimum %d", ErrCorrupt, len(blob), sealHeaderSize+tagSize)
	}
	if string(blob[:len(sealMagic)]) != sealMagic {
		return nil, fmt.Errorf("%w: sealed keyring has magic %q, want %q", ErrCorrupt, blob[:len(sealMagic)], sealMagic)
	}
	if v := blob[len(sealMagic)]; v != sealVersion {
		return nil, fmt.Errorf("%w: sealed keyring version %d, want %d", ErrVersion, v, sealVersion)
	}
	sealKey, check, err := deriveSealKeys(master)
	if err != nil {
		return nil, err
	}
	defer Zero(sealKey)
	if subtle.ConstantTimeCompare(check[:], blob[len(sealMagic)+1:sealAADSize]) != 1 {
		return nil, ErrWrongMasterKey
	}
	aead, err := newAEAD(sealKey)
	if err != nil {
		return nil, err
	}
	payload, err := aead.Open(nil, blob[sealAADSize:sealHeaderSize], blob[sealHeaderSize:], blob[:sealAADSize])
	if err != nil {
		return nil, fmt.Errorf("%w: sealed keyring (%d bytes) fails authentication", ErrCorrupt, len(blob))
	}
	defer Zero(payload)
	k, err := decodePayload(payload)
	if err != nil {
		return nil, err
	}
	k.rand = rand
	return k, nil
}

// decodePayload parses the authenticated keyring payload. It is separate
// from Open so the parser can be fuzzed without forging GCM tags.
func decodePayload(p []byte) (*Keyring, error) {
	if len(p) < 8 {
		return nil, fmt.Errorf("%w: keyring payload is %d bytes, want at least 8", ErrCorrupt, len(p))
	}
	active := binary.BigEndian.Uint32(p[0:4])
	count := binary.BigEndian.Uint32(p[4:8])
	if count == 0 || count > maxTerms {
		return nil, fmt.Errorf("%w: keyring holds %d terms, want 1..%d", ErrCorrupt, count, maxTerms)
	}
	if want := 8 + uint64(count)*termEntrySize; uint64(len(p)) != want {
		return nil, fmt.Errorf("%w: keyring payload is %d bytes, want %d for %d terms", ErrCorrupt, len(p), want, count)
	}
	k := &Keyring{active: active, terms: make(map[uint32]*term, count)}
	var prev uint32
	for i := range int(count) {
		e := p[8+i*termEntrySize : 8+(i+1)*termEntrySize]
		n := binary.BigEndian.Uint32(e[0:4])
		if n <= prev {
			return nil, fmt.Errorf("%w: keyring term %d follows term %d; terms must be ascending and non-zero", ErrCorrupt, n, prev)
		}
		prev = n
		t, err := newTerm(e[4:])
		if err != nil {
			return nil, err
		}
		k.terms[n] = t
	}
	// The active term must be the newest, or AddTerm would reuse a term number.
	if active != prev {
		return nil, fmt.Errorf("%w: active term %d is not the newest term %d", ErrCorrupt, active, prev)
	}
	return k, nil
}
