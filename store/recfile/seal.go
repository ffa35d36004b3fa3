package recfile

// The seal hash: what the metadata keeps to recognise a sealed file.
//
// Version 1 files: SHA-256 of the whole file, every ciphertext byte. It
// costs a SHA-256 pass over everything written, which on the appliance is
// as much CPU as writing the file (docs/PERFORMANCE.md, "Upload API").
//
// Version 2 files (written since): SHA-256 of the header and, for each
// chunk in order, a 28-byte record of its framing and its GCM tag:
//
//	seal hash = SHA-256( header (48) || record 0 || record 1 || ... )
//	record i  = chunk index i (u64) || plaintext length (u32) || GCM tag (16)
//
// Hashing 28 bytes per 64 KiB chunk costs nothing measurable. On its own a
// tag hash would not pin the ciphertext; together with authenticating each
// chunk under the recording's DEK it does, which is why a version 2 file
// is verified with the key (Verifier): each chunk must open (AES-GCM
// checks its ciphertext against its tag, its index and last flag are in
// the nonce and AAD) and the sequence of tags must hash to the seal hash.
// A flipped byte fails a chunk's authentication or changes the header or a
// length; a truncated copy lacks the last chunk or a tag; swapped or
// foreign chunks fail authentication under their new index or header.
//
// What the tag hash does not do: resist someone who holds the DEK. GHASH
// is linear, so a key holder could make another ciphertext with the same
// tags; it decrypts to other audio, whose SHA-256 then differs from the
// audio hash sealed in the metadata and the audit chain, which is what an
// export proves against (exports carry the plaintext and that hash, and are
// verified offline without any key). The seal hash guards copies against
// damage and against anyone without the key; the audio hash is the
// evidence.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
)

// sealRecordSize is the size of one chunk's record in a version 2 seal hash.
const sealRecordSize = 8 + lenSize + tagSize

// sealHash computes a file's seal hash, of either kind, from the header and
// the chunks in file order.
type sealHash struct {
	h       hash.Hash
	version uint8
	rec     [sealRecordSize]byte
}

func newSealHash(version uint8, header *[HeaderSize]byte) *sealHash {
	s := &sealHash{h: sha256.New(), version: version}
	s.h.Write(header[:])
	return s
}

// chunk adds chunk index, whose sealed bytes (ciphertext and tag) are
// sealed and whose plaintext length is n. For version 1 that is every byte
// of the chunk as stored; for version 2 its record.
func (s *sealHash) chunk(index uint64, n uint32, sealed []byte) {
	if s.version == versionWholeFileSeal {
		binary.BigEndian.PutUint32(s.rec[8:12], n)
		s.h.Write(s.rec[8:12])
		s.h.Write(sealed)
		return
	}
	binary.BigEndian.PutUint64(s.rec[0:8], index)
	binary.BigEndian.PutUint32(s.rec[8:12], n)
	copy(s.rec[12:], sealed[len(sealed)-tagSize:])
	s.h.Write(s.rec[:])
}

func (s *sealHash) sum() [sha256.Size]byte {
	var sum [sha256.Size]byte
	s.h.Sum(sum[:0])
	return sum
}

// Verifier checks a recording file as its bytes stream past (a copy to
// another node or tier) and computes its seal hash, so that the copy is
// read once. It is an io.Writer: write the file's bytes in order, in pieces
// of any size, then call Sum. Write fails as soon as the bytes cannot be
// a good file, so a copy can stop early.
//
// For a version 2 file it authenticates every chunk with the DEK (see the
// seal hash above) and requires a last chunk at the very end. For a
// version 1 file it computes the SHA-256 of the whole file, as that kind
// was always verified; the DEK is then not used.
//
// A Verifier keeps a copy of the DEK only until the header has arrived;
// after that it holds the expanded AES key, like a Reader.
type Verifier struct {
	key    [KeySize]byte // zeroed once the header is parsed
	header Header
	cc     *chunkCipher
	seal   *sealHash
	raw    bool // version 1: hash everything, parse nothing

	// buf collects the piece being read (header, length field, or chunk)
	// until need bytes are there; pt is scratch for the decrypted chunk.
	buf   []byte
	need  int
	inLen bool   // the piece is a length field (else a chunk, or the header if cc == nil)
	n     uint32 // plaintext length of the chunk being read
	pt    []byte
	index uint64
	last  bool // the last chunk has been read: nothing may follow
	size  int64
	err   error // sticky
}

// NewVerifier returns a Verifier for a file encrypted with dek.
func NewVerifier(dek []byte) (*Verifier, error) {
	if len(dek) != KeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrKeySize, len(dek), KeySize)
	}
	v := &Verifier{buf: make([]byte, 0, HeaderSize), need: HeaderSize}
	copy(v.key[:], dek)
	return v, nil
}

// Write consumes the next bytes of the file. It returns the first problem
// found (ErrCorrupt, ErrNotRecording, ErrVersion, ErrWrongKey), and the same
// error from then on.
func (v *Verifier) Write(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	total := len(p)
	if v.raw {
		v.seal.h.Write(p)
		v.size += int64(total)
		return total, nil
	}
	for len(p) > 0 {
		if v.last {
			return v.fail(fmt.Errorf("%w: bytes after the last chunk %d at offset %d", ErrCorrupt, v.index-1, v.size))
		}
		var piece []byte
		if len(v.buf) == 0 && len(p) >= v.need {
			// The usual case for chunks copied in large reads: the whole
			// piece is in p, no need to copy it.
			piece, p = p[:v.need], p[v.need:]
		} else {
			c := copy(v.buf[len(v.buf):v.need], p)
			v.buf, p = v.buf[:len(v.buf)+c], p[c:]
			if len(v.buf) < v.need {
				break
			}
			piece, v.buf = v.buf, v.buf[:0]
		}
		if err := v.piece(piece); err != nil {
			return v.fail(err)
		}
		if v.raw {
			// A version 1 header: the rest is hashed as it comes.
			v.seal.h.Write(p)
			v.size += int64(len(p))
			break
		}
	}
	return total, nil
}

func (v *Verifier) fail(err error) (int, error) {
	v.err = err
	clear(v.key[:])
	return 0, err
}

// piece handles one complete header, length field or chunk.
func (v *Verifier) piece(b []byte) error {
	off := v.size
	v.size += int64(len(b))
	switch {
	case v.seal == nil:
		return v.parseHeader(b)
	case v.inLen:
		v.n = binary.BigEndian.Uint32(b)
		if v.n > uint32(v.header.ChunkSize) {
			return fmt.Errorf("%w: chunk %d at offset %d has length %d, more than the chunk size %d",
				ErrCorrupt, v.index, off, v.n, v.header.ChunkSize)
		}
		if v.index > maxIndex {
			return fmt.Errorf("%w: more than %d chunks", ErrCorrupt, uint64(maxIndex)+1)
		}
		v.inLen, v.need = false, int(v.n)+tagSize
		return nil
	}
	opened := false
	for _, flags := range []byte{0, flagLast, flagLast | flagRecovered} {
		if _, err := v.cc.open(v.pt, b, v.index, flags); err == nil {
			opened, v.last = true, flags&flagLast != 0
			break
		}
	}
	if !opened {
		return fmt.Errorf("%w: chunk %d at offset %d fails authentication", ErrCorrupt, v.index, off-lenSize)
	}
	if v.n == 0 && !v.last {
		return fmt.Errorf("%w: empty chunk %d at offset %d is not the last chunk", ErrCorrupt, v.index, off-lenSize)
	}
	v.seal.chunk(v.index, v.n, b)
	v.index++
	v.inLen, v.need = true, lenSize
	return nil
}

func (v *Verifier) parseHeader(b []byte) error {
	hb := (*[HeaderSize]byte)(b)
	if string(b[:len(magic)]) != magic {
		return fmt.Errorf("%w: does not start with the recording magic", ErrNotRecording)
	}
	if b[6] == versionWholeFileSeal {
		// The whole file is the seal hash's input; the chunks are not
		// parsed, as this kind of file never needed the key to verify.
		v.raw = true
		v.seal = newSealHash(versionWholeFileSeal, hb)
		clear(v.key[:])
		return nil
	}
	h, err := parseHeader(b, v.key[:])
	if err != nil {
		return err
	}
	cc, err := newChunkCipher(v.key[:], hb)
	clear(v.key[:])
	if err != nil {
		return err
	}
	v.header, v.cc = h, cc
	v.seal = newSealHash(h.Version, hb)
	v.buf = make([]byte, 0, h.ChunkSize+tagSize)
	v.pt = make([]byte, h.ChunkSize+tagSize)
	v.inLen, v.need = true, lenSize
	return nil
}

// Sum returns the seal hash of the bytes written, once they are a complete
// file: ErrTruncated if they stop before the header is whole, inside a
// chunk, or (version 2) without a last chunk. The caller compares it with
// the seal hash the metadata keeps.
func (v *Verifier) Sum() ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	switch {
	case v.err != nil:
		return sum, v.err
	case v.seal == nil:
		return sum, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrTruncated, len(v.buf), HeaderSize)
	case v.raw:
		return v.seal.sum(), nil
	case len(v.buf) > 0 || !v.inLen:
		return sum, fmt.Errorf("%w: the file ends inside chunk %d (%d bytes)", ErrTruncated, v.index, v.size+int64(len(v.buf)))
	case !v.last:
		return sum, fmt.Errorf("%w: the file ends after chunk %d without a last chunk (%d bytes)", ErrTruncated, int64(v.index)-1, v.size)
	}
	return v.seal.sum(), nil
}

// Size returns how many bytes have been written to v.
func (v *Verifier) Size() int64 { return v.size + int64(len(v.buf)) }
