package recfile

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
)

// RecoverResult reports what Recover did to a file.
type RecoverResult struct {
	// AlreadyComplete: the file already ended with a last chunk and was
	// left unchanged.
	AlreadyComplete bool
	// KeptChunks and KeptBytes count the data chunks and plaintext bytes
	// that authenticated and were kept (not counting the appended empty last
	// chunk).
	KeptChunks int
	KeptBytes  int64
	// DroppedBytes is how many file bytes were cut off the end.
	// DroppedChunks counts the chunk records in them, following their length
	// fields, torn one included; past a damaged field the count is a guess.
	DroppedBytes  int64
	DroppedChunks int
	// SealHash is the file's seal hash after recovery (seal.go: of the
	// kind its version has).
	SealHash [sha256.Size]byte
}

// Recover makes a file left behind by a crash (a Writer that never reached
// Close) complete and readable. It decrypts the chunks in order and keeps
// the longest prefix that authenticates, cuts off everything after it (a
// torn chunk, or bytes the file system exposed without data), appends an
// empty last chunk marked as appended by Recover, and fsyncs. A file that is
// already complete is left unchanged. Recover is idempotent, and a crash
// during Recover leaves a file that Recover accepts again.
//
// The header must be intact and match dek; otherwise Recover changes
// nothing and returns the error Open would. Recover must not run while a
// Writer still has the file open, and only on files that were never sealed
// (see the package doc).
func Recover(path string, dek []byte) (RecoverResult, error) {
	var res RecoverResult
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return res, fmt.Errorf("recfile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return res, fmt.Errorf("recfile: %w", err)
	}
	size := fi.Size()

	var hb [HeaderSize]byte
	n, err := readFull(f, hb[:min(int64(HeaderSize), size)], 0)
	if err != nil {
		return res, fmt.Errorf("recfile: reading header of %s: %w", path, err)
	}
	if n >= len(magic) && string(hb[:len(magic)]) != magic || n < len(magic) && string(hb[:n]) != magic[:n] {
		return res, fmt.Errorf("%w: %s does not start with the recording magic", ErrNotRecording, path)
	}
	if n < HeaderSize {
		return res, fmt.Errorf("%w: %s is %d bytes, shorter than the header; nothing to recover", ErrTruncated, path, size)
	}
	h, err := parseHeader(hb[:], dek)
	if err != nil {
		return res, fmt.Errorf("%s: %w", path, err)
	}
	cc, err := newChunkCipher(dek, &hb)
	if err != nil {
		return res, err
	}

	seal := newSealHash(h.Version, &hb)
	ct := make([]byte, h.ChunkSize+tagSize)
	pt := make([]byte, h.ChunkSize+tagSize)
	var lb [lenSize]byte
	off := int64(HeaderSize)
	index := uint64(0)
	complete := false
	for off < size && !complete {
		if size-off < lenSize {
			break
		}
		if _, err := readFull(f, lb[:], off); err != nil {
			return res, fmt.Errorf("recfile: reading %s: %w", path, err)
		}
		l := binary.BigEndian.Uint32(lb[:])
		end := off + lenSize + int64(l) + tagSize
		if l > uint32(h.ChunkSize) || end > size {
			break
		}
		c := ct[:int(l)+tagSize]
		if _, err := readFull(f, c, off+lenSize); err != nil {
			return res, fmt.Errorf("recfile: reading %s: %w", path, err)
		}
		ok := false
		for _, flags := range []byte{0, flagLast, flagLast | flagRecovered} {
			if _, err := cc.open(pt, c, index, flags); err == nil {
				ok, complete = true, flags&flagLast != 0
				break
			}
		}
		if !ok {
			break
		}
		seal.chunk(index, l, c)
		if l > 0 {
			res.KeptChunks++
			res.KeptBytes += int64(l)
		}
		index++
		off = end
	}

	if complete && off == size {
		res.AlreadyComplete = true
		res.SealHash = seal.sum()
		return res, nil
	}

	res.DroppedBytes = size - off
	res.DroppedChunks = countRecords(f, off, size, h.ChunkSize)
	if err := f.Truncate(off); err != nil {
		return res, fmt.Errorf("recfile: truncating %s to %d bytes: %w", path, off, err)
	}
	if !complete {
		// The appended chunk's nonce (flags 0x03) is one the Writer never
		// uses, so it cannot collide with a half-written chunk at this index.
		// A crash here and a second Recover write the very same bytes.
		binary.BigEndian.PutUint32(ct[:lenSize], 0)
		sealed := cc.seal(ct[lenSize:lenSize], index, flagLast|flagRecovered)
		if _, err := f.WriteAt(ct[:lenSize+len(sealed)], off); err != nil {
			return res, fmt.Errorf("recfile: appending last chunk to %s: %w", path, err)
		}
		seal.chunk(index, 0, sealed)
	}
	if err := f.Sync(); err != nil {
		return res, fmt.Errorf("recfile: fsync %s: %w", path, err)
	}
	// The hash was fed the header and exactly the chunks the file now
	// holds, in order: the kept ones and the appended last one.
	res.SealHash = seal.sum()
	return res, nil
}

// countRecords counts the chunk records between off and size by following
// their length fields, a torn final record included.
func countRecords(f *os.File, off, size int64, chunkSize int) int {
	var lb [lenSize]byte
	count := 0
	for off < size {
		count++
		if size-off < lenSize {
			break
		}
		if _, err := readFull(f, lb[:], off); err != nil {
			break
		}
		l := binary.BigEndian.Uint32(lb[:])
		if l > uint32(chunkSize) {
			break
		}
		off += lenSize + int64(l) + tagSize
	}
	return count
}
