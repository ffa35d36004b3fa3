package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/meta"
)

// The SIP messages of a captured call are evidence like its audio: they
// show who called whom, when, and what was negotiated. They are kept in a
// side file beside the recording file, <id>.sip on the hot tier, so the
// audio file stays immutable once sealed (messages such as the BYE can
// arrive after the audio is) and so appending needs no rewrite.
//
// Side file layout (all integers big endian):
//
//	header   "CVSIG\x00\x01\n" (8 bytes) ‖ recording UUID (16 bytes)
//	record   length uint32 (of what follows) ‖ nonce (12) ‖ AES-256-GCM ciphertext+tag
//	AAD      header ‖ record index uint64 (0, 1, 2, ...)
//	plain    at unix ns int64 ‖ transport byte (0 udp, 1 tcp) ‖
//	         src len byte ‖ src AddrPort binary ‖ dst len byte ‖ dst AddrPort binary ‖ raw
//
// The key is derived (HKDF-SHA256) from the recording's data key, with
// the recording ID in the info, so it dies with the recording's wrapped
// key (delete, purge and discard destroy that: crypto-shredding) without
// sharing nonces with the audio file, whose nonces are counters under the
// data key itself. The nonces here are random: a call has tens of messages,
// far from GCM's limit. Binding the index into the AAD means records cannot
// be reordered, dropped from the middle or moved to another recording
// unnoticed; cutting off the newest records is what a crash does, and is
// what it looks like.
//
// Appends are not fsynced one by one: the store's flusher syncs the hot
// tier's file system every second while calls run, so a crash loses at
// most about a second of messages, and a torn last record is cut off by
// the next append (and ignored by a read).
//
// Tiering leaves the side file on the hot tier: it is a few kilobytes, and
// messages may still be appended after the audio was moved.

// Sentinel errors of signalling.
var (
	// ErrSignalling: a signalling side file is damaged or tampered with, or
	// a message cannot be stored.
	ErrSignalling = errors.New("signalling")
)

const (
	sigMagic      = "CVSIG\x00\x01\n"
	sigHeaderSize = len(sigMagic) + 16
	sigNonceSize  = 12
	// sigMaxRecord bounds one stored message (a reassembled TCP message
	// larger than this is not SIP anyone sends).
	sigMaxRecord = 1 << 20
	sigExt       = ".sip"
	sigKeyInfo   = "callvault signalling v1 "
	// sigStripes is how many locks serialise appends; appends to one
	// recording always take the same one.
	sigStripes = 64
)

// SignalMessage is one SIP message of a call as seen on the wire.
type SignalMessage struct {
	At        time.Time
	Transport string // "udp" or "tcp"
	Src, Dst  netip.AddrPort
	Raw       []byte // the whole SIP message as on the wire (reassembled for TCP)
}

// sigLocks serialises appends per recording: a striped set of mutexes, so
// appends to different recordings rarely wait and the set never grows.
type sigLocks [sigStripes]sync.Mutex

func (l *sigLocks) of(id string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return &l[h.Sum32()%sigStripes]
}

// AppendSignalling stores SIP messages of a recording, encrypted with (a key
// derived from) the recording's data key. It may be called while the
// recording is written and after it is sealed; messages keep the order of
// the calls. Safe for concurrent use.
//
// While the recording is open in this store, its metadata is the Recorder's
// (an Unflushed recording's create may not have committed yet) and the
// Recorder keeps where its side file ends (sigEnd): the first append scans
// the file, later ones write at the end without reading anything. A
// recording leaves the store's open set under its signalling lock
// (forget), so an append after that scans the file and sees every record
// the cached path wrote.
func (s *Store) AppendSignalling(id meta.ID, msgs ...SignalMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	plains := make([][]byte, len(msgs))
	for i, m := range msgs {
		p, err := encodeSignal(m)
		if err != nil {
			return fmt.Errorf("recording %s, message %d: %w", id, i, err)
		}
		plains[i] = p
	}
	mu := s.sigLocks.of(id)
	mu.Lock()
	defer mu.Unlock()
	s.mu.Lock()
	r := s.open[id]
	s.mu.Unlock()
	var rec meta.Recording
	var end *sigEnd
	if r != nil {
		rec, end = r.created, &r.sig // both guarded by mu now
	} else {
		var err error
		if rec, err = s.recording(id); err != nil {
			return err
		}
		if rec.Status == meta.StatusDeleted || rec.Status == meta.StatusFailed {
			return fmt.Errorf("%w: recording %s is %s", ErrNoFile, id, rec.Status)
		}
		end = &sigEnd{}
	}
	aead, hdr, err := s.signalAEAD(rec)
	if err != nil {
		return err
	}
	if err := s.appendSignals(rec, aead, hdr, end, plains); err != nil {
		return err
	}
	s.stats.SignalMessages.Add(int64(len(msgs)))
	return nil
}

// sigEnd is where a side file ends, as far as this process knows: how
// many whole records it holds and the offset after the last one. known is
// false until an append scanned the file (and again after a failed one).
type sigEnd struct {
	known bool
	n     uint64
	end   int64
}

// appendSignals encrypts plains as the next records of rec's side file and
// writes them at its end, scanning the file first unless end is known.
// The caller holds the recording's signalling lock.
func (s *Store) appendSignals(rec meta.Recording, aead cipher.AEAD, hdr []byte, end *sigEnd, plains [][]byte) error {
	id := rec.ID
	path := s.signalPath(rec)
	flags := os.O_RDWR | os.O_CREATE
	if end.known && end.end > 0 {
		// The file must still be there: writing at its old end into a new
		// one would leave a hole no read accepts.
		flags = os.O_RDWR
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, os.ErrNotExist) && flags&os.O_CREATE != 0 {
		// The day's directory is gone (the tier mover moved its last file).
		if err = os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
			f, err = os.OpenFile(path, flags, 0o600)
		}
	}
	if err != nil {
		end.known = false
		return s.classify(fmt.Errorf("signalling of %s: %w", id, err))
	}
	defer f.Close()
	if !end.known {
		n, off, size, err := scanSignalFile(f, hdr)
		if err != nil {
			return fmt.Errorf("recording %s: %w", id, err)
		}
		// A torn tail (a crash mid-append) is cut off and overwritten.
		if off != size {
			if err := f.Truncate(off); err != nil {
				return s.classify(fmt.Errorf("signalling of %s: %w", id, err))
			}
		}
		*end = sigEnd{known: true, n: n, end: off}
	}
	var buf bytes.Buffer
	if end.end == 0 {
		buf.Write(hdr)
	}
	for i, p := range plains {
		nonce := make([]byte, sigNonceSize)
		if _, err := rand.Read(nonce); err != nil {
			return err
		}
		ct := aead.Seal(nil, nonce, p, sigAAD(hdr, end.n+uint64(i)))
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(sigNonceSize+len(ct)))
		buf.Write(l[:])
		buf.Write(nonce)
		buf.Write(ct)
	}
	if _, err := f.WriteAt(buf.Bytes(), end.end); err != nil {
		// Part of it may be there: the next append scans and cuts it.
		end.known = false
		return s.classify(fmt.Errorf("signalling of %s: %w", id, err))
	}
	end.n += uint64(len(plains))
	end.end += int64(buf.Len())
	return nil
}

// Signalling returns a recording's SIP messages in the order they were
// stored; none (and no error) if it has none. A damaged or tampered file is
// an ErrSignalling naming the record.
func (s *Store) Signalling(id meta.ID) ([]SignalMessage, error) {
	rec, err := s.recording(id)
	if err != nil {
		return nil, err
	}
	if rec.Status == meta.StatusDeleted || rec.Status == meta.StatusFailed {
		return nil, fmt.Errorf("%w: recording %s is %s", ErrNoFile, id, rec.Status)
	}
	// Another node's recording: its writer may have more (sigreplica.go).
	s.refreshSignalling(rec)
	b, err := os.ReadFile(s.signalPath(rec))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signalling of %s: %w", id, err)
	}
	aead, hdr, err := s.signalAEAD(rec)
	if err != nil {
		return nil, err
	}
	msgs, err := readSignals(b, hdr, aead)
	if err != nil {
		return nil, fmt.Errorf("recording %s: %w", id, err)
	}
	return msgs, nil
}

// signalPath is the side file of a recording: beside its file's place on
// the hot tier, whichever tier the audio is on now.
func (s *Store) signalPath(rec meta.Recording) string {
	return filepath.Join(s.hotRoot, strings.TrimSuffix(rec.File.Path, filepath.Ext(rec.File.Path))+sigExt)
}

// removeSignalling removes a deleted recording's side file (its key is
// already destroyed: this only tidies up).
func (s *Store) removeSignalling(rec meta.Recording) {
	if rec.File.Path == "" {
		return
	}
	if err := os.Remove(s.signalPath(rec)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove deleted recording's signalling", "id", rec.ID, "err", err)
	}
}

// signalAEAD derives the recording's signalling key and returns it with
// the file header.
func (s *Store) signalAEAD(rec meta.Recording) (cipher.AEAD, []byte, error) {
	if len(rec.File.WrappedDEK) == 0 || rec.File.Path == "" {
		return nil, nil, fmt.Errorf("%w: recording %s has no key or path", ErrNoFile, rec.ID)
	}
	uid, err := parseID(rec.ID)
	if err != nil {
		return nil, nil, err
	}
	dek, err := s.keys.Load().UnwrapDEK(rec.File.WrappedDEK, uid[:])
	if err != nil {
		return nil, nil, fmt.Errorf("unwrap key of recording %s: %w", rec.ID, err)
	}
	defer keyring.Zero(dek)
	key, err := hkdf.Key(sha256.New, dek, nil, sigKeyInfo+rec.ID, 32)
	if err != nil {
		return nil, nil, err
	}
	defer keyring.Zero(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	hdr := make([]byte, 0, sigHeaderSize)
	hdr = append(append(hdr, sigMagic...), uid[:]...)
	return aead, hdr, nil
}

func sigAAD(hdr []byte, index uint64) []byte {
	aad := make([]byte, len(hdr)+8)
	copy(aad, hdr)
	binary.BigEndian.PutUint64(aad[len(hdr):], index)
	return aad
}

// scanSignalFile reads the record lengths of an open side file (it is
// kilobytes: one read): how many whole records it holds, where the last
// one ends (0 for an empty or new file; a header cut short counts as
// empty) and the file's size.
func scanSignalFile(f *os.File, hdr []byte) (n uint64, end, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, 0, err
	}
	size = fi.Size()
	if size < int64(len(hdr)) {
		return 0, 0, size, nil
	}
	if size > 1<<30 {
		return 0, 0, size, fmt.Errorf("%w: side file of %d bytes", ErrSignalling, size)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		return 0, 0, size, err
	}
	if !bytes.Equal(b[:len(hdr)], hdr) {
		return 0, 0, size, fmt.Errorf("%w: side file header is not this recording's", ErrSignalling)
	}
	off := int64(len(hdr))
	for off+4 <= size {
		rl := int64(binary.BigEndian.Uint32(b[off:]))
		if rl < sigNonceSize+16 || rl > sigMaxRecord+sigNonceSize+16 {
			return 0, 0, size, fmt.Errorf("%w: record %d at offset %d has length %d", ErrSignalling, n, off, rl)
		}
		if off+4+rl > size {
			break // torn tail
		}
		off += 4 + rl
		n++
	}
	return n, off, size, nil
}

// readSignals decrypts a whole side file. A record cut short at the end (a
// crash during an append) is ignored; anything else that does not
// authenticate is an error naming the record.
func readSignals(b, hdr []byte, aead cipher.AEAD) ([]SignalMessage, error) {
	if len(b) < len(hdr) {
		return nil, nil // the header itself was torn: nothing was stored
	}
	if !bytes.Equal(b[:len(hdr)], hdr) {
		return nil, fmt.Errorf("%w: side file header is not this recording's", ErrSignalling)
	}
	var msgs []SignalMessage
	off := len(hdr)
	for i := uint64(0); off+4 <= len(b); i++ {
		rl := int(binary.BigEndian.Uint32(b[off:]))
		if rl < sigNonceSize+aead.Overhead() || rl > sigMaxRecord+sigNonceSize+aead.Overhead() {
			return nil, fmt.Errorf("%w: record %d at offset %d has length %d", ErrSignalling, i, off, rl)
		}
		if off+4+rl > len(b) {
			break
		}
		rec := b[off+4 : off+4+rl]
		plain, err := aead.Open(nil, rec[:sigNonceSize], rec[sigNonceSize:], sigAAD(hdr, i))
		if err != nil {
			return nil, fmt.Errorf("%w: record %d at offset %d does not authenticate (changed, moved or from another recording)", ErrSignalling, i, off)
		}
		m, err := decodeSignal(plain)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		msgs = append(msgs, m)
		off += 4 + rl
	}
	return msgs, nil
}

// encodeSignal is a message's plaintext record.
func encodeSignal(m SignalMessage) ([]byte, error) {
	var t byte
	switch m.Transport {
	case "udp":
		t = 0
	case "tcp":
		t = 1
	default:
		return nil, fmt.Errorf("%w: transport %q, want udp or tcp", ErrSignalling, m.Transport)
	}
	if !m.Src.IsValid() || !m.Dst.IsValid() {
		return nil, fmt.Errorf("%w: source %v or destination %v is not an address and port", ErrSignalling, m.Src, m.Dst)
	}
	if len(m.Raw) == 0 || len(m.Raw) > sigMaxRecord-64 {
		return nil, fmt.Errorf("%w: message of %d bytes (1 to %d)", ErrSignalling, len(m.Raw), sigMaxRecord-64)
	}
	src, _ := m.Src.MarshalBinary()
	dst, _ := m.Dst.MarshalBinary()
	b := make([]byte, 0, 8+1+2+len(src)+len(dst)+len(m.Raw))
	b = binary.BigEndian.AppendUint64(b, uint64(m.At.UnixNano()))
	b = append(b, t, byte(len(src)))
	b = append(b, src...)
	b = append(b, byte(len(dst)))
	b = append(b, dst...)
	return append(b, m.Raw...), nil
}

// decodeSignal parses a plaintext record (see encodeSignal).
func decodeSignal(b []byte) (SignalMessage, error) {
	var m SignalMessage
	if len(b) < 10 {
		return m, fmt.Errorf("%w: record of %d bytes is too short", ErrSignalling, len(b))
	}
	m.At = time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
	switch b[8] {
	case 0:
		m.Transport = "udp"
	case 1:
		m.Transport = "tcp"
	default:
		return m, fmt.Errorf("%w: transport code %d", ErrSignalling, b[8])
	}
	rest := b[9:]
	for _, ap := range []*netip.AddrPort{&m.Src, &m.Dst} {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return m, fmt.Errorf("%w: address cut short", ErrSignalling)
		}
		if err := ap.UnmarshalBinary(rest[1 : 1+int(rest[0])]); err != nil {
			return m, fmt.Errorf("%w: address: %w", ErrSignalling, err)
		}
		if !ap.IsValid() {
			return m, fmt.Errorf("%w: address is empty", ErrSignalling)
		}
		rest = rest[1+int(rest[0]):]
	}
	if len(rest) == 0 {
		return m, fmt.Errorf("%w: empty message", ErrSignalling)
	}
	m.Raw = bytes.Clone(rest)
	return m, nil
}
