package recfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// OpenOption changes how Open and NewReader treat a file.
type OpenOption func(*openConfig)

type openConfig struct {
	allowTruncated bool
}

// AllowTruncated makes Open accept a file that a crash left without a last
// chunk: instead of ErrTruncated, the Reader exposes the complete chunks
// before the tear, and Complete reports false. Live listening and crash
// triage use it; normal playback does not.
func AllowTruncated() OpenOption {
	return func(c *openConfig) { c.allowTruncated = true }
}

// Reader gives random access to the plaintext of a recording file. It is
// safe for concurrent use; calls to ReadAt are serialised because they share
// the decryption buffers and the one-chunk cache.
type Reader struct {
	ra        io.ReaderAt
	file      *os.File // set when Open opened the file, closed by Close
	header    Header
	chunks    []chunk
	size      int64
	complete  bool
	recovered bool
	// finalFlags are the flags the final chunk opens with: flagLast (or
	// with flagRecovered) for a complete file, 0 for a truncated one.
	finalFlags byte

	mu       sync.Mutex
	cc       *chunkCipher
	ct       []byte // ciphertext read buffer, chunkSize+16
	pt       []byte // plaintext of chunk cached, chunkSize+16 capacity
	cached   int    // index of the chunk in pt, -1 if none
	cachedPT []byte
}

// chunk locates one chunk: off is the file offset of its length field, pos
// the plaintext offset of its first byte, n its plaintext length.
type chunk struct {
	off int64
	pos int64
	n   uint32
}

// Open opens the recording file at path for reading with dek. The Reader owns
// the file; Close closes it.
func Open(path string, dek []byte, opts ...OpenOption) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recfile: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("recfile: %w", err)
	}
	r, err := NewReader(f, fi.Size(), dek, opts...)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.file = f
	return r, nil
}

// NewReader reads a recording of size bytes from ra with dek. It checks the
// header and the key ID, walks the chunk length fields to build the chunk
// index, and decrypts the final chunk to learn whether the file is complete.
func NewReader(ra io.ReaderAt, size int64, dek []byte, opts ...OpenOption) (*Reader, error) {
	var cfg openConfig
	for _, o := range opts {
		o(&cfg)
	}
	if size < 0 {
		return nil, fmt.Errorf("recfile: negative size %d", size)
	}
	var hb [HeaderSize]byte
	n, err := readFull(ra, hb[:min(int64(HeaderSize), size)], 0)
	if err != nil {
		return nil, fmt.Errorf("recfile: reading header: %w", err)
	}
	if n < len(magic) && string(hb[:n]) == magic[:n] {
		// A prefix of the magic (even an empty file): Create was cut short.
		return nil, fmt.Errorf("%w: file is %d bytes, shorter than the %d-byte header", ErrTruncated, size, HeaderSize)
	}
	if string(hb[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: %d-byte file does not start with the recording magic", ErrNotRecording, size)
	}
	if n < HeaderSize {
		return nil, fmt.Errorf("%w: file is %d bytes, shorter than the %d-byte header", ErrTruncated, size, HeaderSize)
	}
	h, err := parseHeader(hb[:], dek)
	if err != nil {
		return nil, err
	}
	cc, err := newChunkCipher(dek, &hb)
	if err != nil {
		return nil, err
	}
	r := &Reader{
		ra:     ra,
		header: h,
		cc:     cc,
		ct:     make([]byte, h.ChunkSize+tagSize),
		pt:     make([]byte, h.ChunkSize+tagSize),
		cached: -1,
	}
	torn, err := r.walk(size)
	if err != nil {
		return nil, err
	}
	if err := r.classify(size, torn, cfg.allowTruncated); err != nil {
		return nil, err
	}
	return r, nil
}

// walk builds the chunk index from the length fields. It returns the offset
// of a torn tail (a chunk or length field cut off by the end of the file),
// or -1 if the file ends exactly after a chunk.
func (r *Reader) walk(size int64) (int64, error) {
	var lb [lenSize]byte
	off, pos := int64(HeaderSize), int64(0)
	for i := 0; off < size; i++ {
		if size-off < lenSize {
			return off, nil
		}
		if _, err := readFull(r.ra, lb[:], off); err != nil {
			return 0, fmt.Errorf("recfile: reading length of chunk %d: %w", i, err)
		}
		n := binary.BigEndian.Uint32(lb[:])
		if n > uint32(r.header.ChunkSize) {
			return 0, fmt.Errorf("%w: chunk %d at offset %d has length %d, more than the chunk size %d",
				ErrCorrupt, i, off, n, r.header.ChunkSize)
		}
		end := off + lenSize + int64(n) + tagSize
		if end > size {
			return off, nil
		}
		if n == 0 && end != size {
			// Only the final chunk may be empty (Close with nothing buffered).
			return 0, fmt.Errorf("%w: empty chunk %d at offset %d is not the final chunk", ErrCorrupt, i, off)
		}
		if uint64(i) > maxIndex {
			return 0, fmt.Errorf("%w: more than %d chunks", ErrCorrupt, uint64(maxIndex)+1)
		}
		r.chunks = append(r.chunks, chunk{off: off, pos: pos, n: n})
		pos += int64(n)
		off = end
	}
	return -1, nil
}

// classify decides from the final chunk whether the file is complete,
// truncated or corrupt.
func (r *Reader) classify(size, torn int64, allowTruncated bool) error {
	count := len(r.chunks)
	if count > 0 {
		final := count - 1
		for _, flags := range []byte{flagLast, flagLast | flagRecovered, 0} {
			if _, err := r.decrypt(final, flags); err == nil {
				r.finalFlags = flags
				break
			} else if !errors.Is(err, ErrCorrupt) {
				return err
			}
			if flags == 0 {
				return fmt.Errorf("%w: chunk %d at offset %d fails authentication", ErrCorrupt, final, r.chunks[final].off)
			}
		}
		r.size = r.chunks[final].pos + int64(r.chunks[final].n)
	}
	if r.finalFlags&flagLast != 0 {
		if torn >= 0 {
			return fmt.Errorf("%w: %d bytes after the last chunk at offset %d", ErrCorrupt, size-torn, torn)
		}
		r.complete = true
		r.recovered = r.finalFlags&flagRecovered != 0
		return nil
	}
	// No last chunk. Before calling the file torn, make sure the "torn" chunk
	// is not a whole chunk whose length field was damaged.
	if torn >= 0 {
		if err := r.checkTornTail(size, torn); err != nil {
			return err
		}
	}
	if allowTruncated {
		return nil
	}
	if torn >= 0 {
		return fmt.Errorf("%w: chunk %d at offset %d is cut off by the end of the file (%d bytes); %d complete chunks before it",
			ErrTruncated, count, torn, size, count)
	}
	if count == 0 {
		return fmt.Errorf("%w: file has a header but no chunks", ErrTruncated)
	}
	return fmt.Errorf("%w: file ends after chunk %d without a last chunk", ErrTruncated, count-1)
}

// checkTornTail returns ErrCorrupt if the bytes from torn to the end of the
// file authenticate as a chunk with a length other than the one its length
// field claims.
func (r *Reader) checkTornTail(size, torn int64) error {
	ctLen := size - torn - lenSize
	if ctLen < tagSize || ctLen > int64(r.header.ChunkSize)+tagSize {
		return nil
	}
	r.cached = -1 // pt is about to be overwritten
	ct := r.ct[:ctLen]
	if _, err := readFull(r.ra, ct, torn+lenSize); err != nil {
		return fmt.Errorf("recfile: reading chunk %d: %w", len(r.chunks), err)
	}
	for _, flags := range []byte{0, flagLast, flagLast | flagRecovered} {
		if _, err := r.cc.open(r.pt, ct, uint64(len(r.chunks)), flags); err == nil {
			return fmt.Errorf("%w: chunk %d at offset %d has a damaged length field (%d bytes authenticate)",
				ErrCorrupt, len(r.chunks), torn, ctLen-tagSize)
		}
	}
	return nil
}

// decrypt returns the plaintext of chunk i opened with flags, and caches it.
// The result is valid until the next call. r.mu must be held, or r not yet
// shared.
func (r *Reader) decrypt(i int, flags byte) ([]byte, error) {
	if r.cached == i {
		return r.cachedPT, nil
	}
	c := r.chunks[i]
	ct := r.ct[:int(c.n)+tagSize]
	if _, err := readFull(r.ra, ct, c.off+lenSize); err != nil {
		return nil, fmt.Errorf("recfile: reading chunk %d: %w", i, err)
	}
	r.cached = -1
	pt, err := r.cc.open(r.pt, ct, uint64(i), flags)
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %d at offset %d fails authentication", ErrCorrupt, i, c.off)
	}
	r.cached, r.cachedPT = i, pt
	return pt, nil
}

func (r *Reader) flagsOf(i int) byte {
	if i == len(r.chunks)-1 {
		return r.finalFlags
	}
	return 0
}

// Header returns the file's header.
func (r *Reader) Header() Header { return r.header }

// Size returns the number of plaintext bytes readable.
func (r *Reader) Size() int64 { return r.size }

// Complete reports whether the file ends with a last chunk.
func (r *Reader) Complete() bool { return r.complete }

// Recovered reports whether the last chunk was appended by Recover rather
// than by Writer.Close: the recording was cut short by a crash.
func (r *Reader) Recovered() bool { return r.recovered }

// Chunks returns the number of chunks readable, counting an empty last one.
func (r *Reader) Chunks() int { return len(r.chunks) }

// ReadAt reads plaintext at off, decrypting only the chunks it spans. A chunk
// that fails authentication gives ErrCorrupt with its index.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: %d", ErrOffset, off)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) && off < r.size {
		i := r.chunkAt(off)
		pt, err := r.decrypt(i, r.flagsOf(i))
		if err != nil {
			return n, err
		}
		c := copy(p[n:], pt[off-r.chunks[i].pos:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// chunkAt returns the index of the chunk holding plaintext offset off, which
// must be in [0, r.size).
func (r *Reader) chunkAt(off int64) int {
	lo, hi := 0, len(r.chunks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c := r.chunks[m]; c.pos+int64(c.n) <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Verify decrypts every chunk and returns the first failure: a full
// integrity check of the file against its DEK, as `callvault verify` needs.
func (r *Reader) Verify() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.chunks {
		if _, err := r.decrypt(i, r.flagsOf(i)); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file if Open opened it.
func (r *Reader) Close() error {
	if r.file == nil {
		return nil
	}
	return r.file.Close()
}

// readFull reads len(p) bytes at off, accepting the io.EOF an io.ReaderAt
// may return together with the last bytes.
func readFull(ra io.ReaderAt, p []byte, off int64) (int, error) {
	n, err := ra.ReadAt(p, off)
	if n == len(p) {
		return n, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
