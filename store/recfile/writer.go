package recfile

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
)

// Writer appends a recording to a new file. It is not safe for concurrent
// use: the store serialises Write, Flush and Close for one recording.
//
// Write buffers plaintext in a preallocated chunk buffer and seals a chunk
// whenever the buffer is full; the chunk is sealed in place and written with
// one write call, so Write allocates nothing. Nothing written is durable until
// Flush or Close fsyncs. With the Pipelined option the write call and the
// hashing move to goroutines the Writer owns.
type Writer struct {
	f      *os.File
	path   string
	header Header
	cc     *chunkCipher
	// buf is [length (4)][plaintext (chunkSize)][tag (16)]; the plaintext is
	// sealed in place and buf[:4+n+16] is written out.
	buf []byte
	// chunkSize is the plaintext capacity of the current chunk: the
	// header's ChunkSize, except for a page-aligned file's first chunk
	// (alignedFirstChunk).
	chunkSize int
	n         int       // plaintext bytes in the current chunk
	index     uint64    // index of the current chunk
	sealed    int64     // plaintext bytes in chunks already written
	hash      *sealHash // the seal hash; the sealer goroutine's if pipelined
	plain     hash.Hash // PlainHash's, or nil; the sealer goroutine's if pipelined
	err       error     // sticky: after a failed write the file is unusable
	done      bool
	unsynced  bool // chunks written since the last fsync (see Seal)
	// pipe is the goroutines of a Pipelined Writer, nil otherwise. They own
	// the file's writes and hash until pipe.stop.
	pipe *pipeline
}

// Create creates the recording file at path (which must not exist) with
// mode 0600, writes and fsyncs the header and the directory entry (unless
// DeferHeaderSync), and
// returns a Writer for the audio. h supplies RecordingID and ChunkSize; rand
// supplies the nonce prefix. dek is the recording's data key (KeySize bytes);
// the Writer keeps only the expanded AES key, not dek itself. opts may ask
// for a Pipelined Writer.
func Create(path string, h Header, dek []byte, rand io.Reader, opts ...CreateOption) (*Writer, error) {
	var cfg createConfig
	for _, o := range opts {
		o(&cfg)
	}
	if len(dek) != KeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrKeySize, len(dek), KeySize)
	}
	if h.ChunkSize == 0 {
		h.ChunkSize = DefaultChunkSize
	}
	if h.ChunkSize < MinChunkSize || h.ChunkSize > DefaultChunkSize {
		return nil, fmt.Errorf("%w: %d, want %d..%d", ErrChunkSize, h.ChunkSize, MinChunkSize, DefaultChunkSize)
	}
	h.Version = Version
	if cfg.version != 0 {
		if cfg.version != Version && cfg.version != versionWholeFileSeal {
			return nil, fmt.Errorf("%w: asked to write version %d, this build writes %d and %d", ErrVersion, cfg.version, versionWholeFileSeal, Version)
		}
		h.Version = cfg.version
	}
	h.KeyID = KeyID(dek)
	if _, err := io.ReadFull(rand, h.NoncePrefix[:]); err != nil {
		return nil, fmt.Errorf("recfile: reading randomness for nonce prefix: %w", err)
	}
	hb := h.marshal()
	cc, err := newChunkCipher(dek, &hb)
	if err != nil {
		return nil, err
	}

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("recfile: %w", err)
	}
	w := &Writer{
		f:         f,
		path:      path,
		header:    h,
		cc:        cc,
		chunkSize: alignedFirstChunk(h.ChunkSize),
		hash:      newSealHash(h.Version, &hb),
		plain:     cfg.plain,
	}
	// The header and the directory entry are made durable now, so that after
	// a crash the file exists with a readable header and Recover can act.
	_, err = f.Write(hb[:])
	if err == nil && !cfg.lateSync {
		err = f.Sync()
	}
	if err == nil && !cfg.lateSync {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("recfile: writing header of %s: %w", path, err)
	}
	bufSize := lenSize + h.ChunkSize + tagSize
	if cfg.pipelined {
		if cfg.buffers <= 0 {
			cfg.buffers = pipelineBuffers
		}
		w.pipe, w.buf = startPipeline(f, path, cc, w.hash, w.plain, bufSize, cfg.buffers)
	} else {
		w.buf = make([]byte, bufSize)
	}
	return w, nil
}

// Header returns the header written to the file.
func (w *Writer) Header() Header { return w.header }

// Available returns how many more plaintext bytes fit into the current chunk
// before it is sealed and written (the first chunk may hold fewer than the
// chunk size: alignedFirstChunk).
func (w *Writer) Available() int { return w.chunkSize - w.n }

// Size returns the number of plaintext bytes written so far, buffered or not.
func (w *Writer) Size() int64 { return w.sealed + int64(w.n) }

// Write buffers p and seals and writes every chunk that fills up. After an
// error the Writer is unusable and the caller should Abort.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		c := copy(w.buf[lenSize+w.n:lenSize+w.chunkSize], p)
		w.n += c
		p = p[c:]
		if w.n == w.chunkSize {
			if err := w.sealChunk(0); err != nil {
				return written, err
			}
		}
		written += c
	}
	return written, nil
}

// Flush seals the current chunk, if it holds any data, as a non-last chunk,
// and fsyncs the file. After Flush returns, everything written so far
// survives a crash (Recover makes it readable). The store calls Flush at
// least once a second during a live call; each call costs a chunk's 20 bytes
// and an fsync.
func (w *Writer) Flush() error {
	if err := w.usable(); err != nil {
		return err
	}
	if w.n > 0 {
		if err := w.sealChunk(0); err != nil {
			return err
		}
	}
	return w.sync()
}

// Seal seals the buffered bytes, if any, into a chunk without fsyncing
// it, and reports whether the file holds chunks not yet fsynced (the
// report resets: the caller then owes a SyncFile). A sealed chunk is in the
// page cache: it survives the process being killed, not a power cut, until
// SyncFile. A store flushing thousands of live recordings seals each under
// its lock and then makes them all durable at once. A pipelined Writer
// cannot separate the two and does a full Flush (needSync false).
func (w *Writer) Seal() (needSync bool, err error) {
	if w.pipe != nil {
		return false, w.Flush()
	}
	if err := w.usable(); err != nil {
		return false, err
	}
	if w.n > 0 {
		if err := w.sealChunk(0); err != nil {
			return false, err
		}
	}
	needSync, w.unsynced = w.unsynced, false
	return needSync, nil
}

// SyncFile fsyncs the file. Unlike every other method it may run while
// another goroutine uses the Writer (os.File serialises the descriptor's
// use with its close), so a long fsync does not block writes; after Close
// it returns an error wrapping os.ErrClosed (Close fsyncs by itself). It
// does not make the error sticky: the caller decides.
func (w *Writer) SyncFile() error {
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("recfile: fsync %s: %w", w.path, err)
	}
	return nil
}

// sync fsyncs the file. A pipelined Writer has its writer goroutine do it,
// after the chunks queued before, and waits for the answer.
func (w *Writer) sync() error {
	if w.pipe != nil {
		if err := w.pipe.sync(); err != nil {
			return w.fail(err)
		}
		return nil
	}
	w.unsynced = false
	if err := w.f.Sync(); err != nil {
		return w.fail(fmt.Errorf("recfile: fsync %s: %w", w.path, err))
	}
	return nil
}

// Close seals the final chunk with the last flag (an empty one if the
// current chunk is empty), fsyncs and closes the file, and returns the
// file's seal hash (seal.go), which the metadata keeps to verify copies.
func (w *Writer) Close() ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if err := w.usable(); err != nil {
		return sum, err
	}
	if err := w.sealChunk(flagLast); err != nil {
		return sum, err
	}
	if err := w.sync(); err != nil {
		return sum, err
	}
	if w.pipe != nil {
		w.pipe.stop(false) // after the sync above only hashing is left
	}
	w.done = true
	if err := w.f.Close(); err != nil {
		return sum, fmt.Errorf("recfile: closing %s: %w", w.path, err)
	}
	return w.hash.sum(), nil
}

// Abort closes and removes the file, for a recording that is abandoned or
// whose Writer failed. It returns ErrClosed after Close.
func (w *Writer) Abort() error {
	if w.done {
		return ErrClosed
	}
	w.done = true
	if w.pipe != nil {
		w.pipe.stop(true)
	}
	w.f.Close()
	if err := os.Remove(w.path); err != nil {
		return fmt.Errorf("recfile: removing %s: %w", w.path, err)
	}
	return nil
}

func (w *Writer) usable() error {
	if w.done {
		return ErrClosed
	}
	if w.err == nil && w.pipe != nil {
		if err := w.pipe.failure(); err != nil {
			w.fail(err)
		}
	}
	return w.err
}

// fail makes err the Writer's sticky error. A pipelined Writer also stops
// its goroutines, which have nothing left to do, but keeps the file open for
// Abort or Abandon.
func (w *Writer) fail(err error) error {
	w.err = err
	if w.pipe != nil {
		w.pipe.stop(false)
	}
	return err
}

// sealChunk seals the w.n buffered bytes as chunk w.index and writes and
// hashes it, or hands it to the goroutines that do.
func (w *Writer) sealChunk(flags byte) error {
	if w.index > maxIndex {
		return w.fail(fmt.Errorf("recfile: chunk index %d exceeds the format's limit %d", w.index, uint64(maxIndex)))
	}
	binary.BigEndian.PutUint32(w.buf[0:lenSize], uint32(w.n))
	if w.pipe != nil {
		w.buf = w.pipe.hand(w.buf, w.n, w.index, flags)
		if err := w.pipe.failure(); err != nil {
			return w.fail(err)
		}
	} else {
		pt := w.buf[lenSize : lenSize+w.n]
		if w.plain != nil {
			w.plain.Write(pt)
		}
		out := w.buf[:lenSize+len(w.cc.seal(pt, w.index, flags))]
		if _, err := w.f.Write(out); err != nil {
			return w.fail(fmt.Errorf("recfile: writing chunk %d of %s: %w", w.index, w.path, err))
		}
		w.unsynced = true
		w.hash.chunk(w.index, uint32(w.n), out[lenSize:])
	}
	w.sealed += int64(w.n)
	w.index++
	w.n = 0
	w.chunkSize = w.header.ChunkSize
	return nil
}

// pageSize is the unit of the page cache that writes are aligned to.
const pageSize = 4096

// alignedFirstChunk returns the plaintext capacity of a file's first chunk
// for chunks of chunkSize plaintext bytes. When a whole chunk in the file
// (chunkSize + Overhead) is a whole number of pages, as the store's 16 KiB
// chunks of captured calls are, the first chunk holds HeaderSize fewer
// bytes, so that it ends, and every later full chunk k starts, at
// k·(chunkSize+Overhead): a page boundary. Behind the 48-byte header every
// chunk's write straddled a page at both ends, five pages touched for
// four pages of bytes: 16 KiB chunks written round-robin into 1,000 files
// (196 MB) took the kernel 210-233 ms of CPU at 48 + k·16,384 and 140-150
// ms aligned, on the appliance's ext4 (docs/PERFORMANCE.md, Import
// throughput, sixth round). The format allows
// it: chunks may be shorter than the chunk size (a live call's Flush cuts
// one every second), and readers walk the length fields. Chunk sizes
// that are not a whole number of pages keep a full first chunk: aligning
// the first chunk would not align the others.
func alignedFirstChunk(chunkSize int) int {
	if (chunkSize+Overhead)%pageSize == 0 && chunkSize > HeaderSize {
		return chunkSize - HeaderSize
	}
	return chunkSize
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some filesystems cannot fsync a directory (EINVAL); their entries are
	// as durable as they will get.
	if err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
