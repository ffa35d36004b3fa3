package recfile

import (
	"fmt"
	"hash"
	"os"
	"sync"
	"sync/atomic"
)

// CreateOption changes how Create sets up a Writer.
type CreateOption func(*createConfig)

type createConfig struct {
	pipelined bool
	buffers   int       // chunk buffers of a pipelined Writer; 0 means pipelineBuffers
	plain     hash.Hash // fed every plaintext byte, in order; nil for none
	version   uint8     // format version to write; 0 means Version
	lateSync  bool      // DeferHeaderSync
}

// DeferHeaderSync makes Create leave the header to the fsync of Close and
// the directory entry to the caller, instead of making both durable at
// once: two fsyncs fewer before the first byte, for a file nobody recovers
// after a crash (an upload, whose sender got no answer and sends it again;
// the store discards what a crash left of it, file or no file, and fsyncs
// the directory while the upload streams, before the seal can commit). A
// crash before Close may leave no file, or one without a readable header,
// which Recover refuses.
func DeferHeaderSync() CreateOption {
	return func(c *createConfig) { c.lateSync = true }
}

// FormatVersion makes Create write format version v instead of Version.
// Version 1 (whose seal hash is the SHA-256 of the whole file) is there for
// tests that prove old files still verify, and for a node that must write
// files an older release can verify during a rolling upgrade; it costs a
// SHA-256 pass over every byte written.
func FormatVersion(v uint8) CreateOption {
	return func(c *createConfig) { c.version = v }
}

// PlainHash makes the Writer feed every plaintext byte it seals, in order,
// to h: the caller's hash of the content (the store's audio hash, which an
// export proves against), computed where the chunk is sealed. A pipelined
// Writer does it on its sealing goroutine, so a caller streaming an upload
// does not pay a SHA-256 pass on its own goroutine. h may be read only
// after Close or Abort returns.
func PlainHash(h hash.Hash) CreateOption {
	return func(c *createConfig) { c.plain = h }
}

// Pipelined makes the Writer spread its work over goroutines of its own
// (two, three with a PlainHash), so that on a machine with more than one
// core copying a chunk in (on the caller's goroutine), hashing its
// plaintext, sealing it and writing the chunks before it overlap (see
// "Pipelined writing" in the package doc). The file, the seal hash and
// the meaning of Write, Flush, Close, Abort and Abandon are the same as
// without it. What differs: the Writer holds pipelineBuffers chunk buffers
// (about 1 MiB) instead of one; a failed write is reported by the Write,
// Flush or Close after it rather than by the Write that filled the chunk;
// and the Writer must end with Close, Abort or Abandon, which stop the
// goroutines (as it must anyway, to close its file).
//
// Sealing (AES-GCM) and the PlainHash run on goroutines of the Writer's
// too, so the caller only copies plaintext into chunk buffers.
//
// It is meant for bulk writing (an upload, an import, a copy between
// tiers), where throughput matters. A live call writes 16 kB/s and flushes
// every second; it gains nothing and should not pay the memory.
func Pipelined() CreateOption {
	return func(c *createConfig) { c.pipelined = true }
}

const (
	// pipelineBuffers is the number of chunk buffers a pipelined Writer
	// owns. Three would keep each stage busy if every chunk took the same
	// time; a write call now and then takes much longer than the average (a
	// page allocation stall, the other core busy elsewhere), and the spare
	// buffers let the caller keep sealing meanwhile. Measured on two cores
	// (see BenchmarkWrite64MiB): 4 buffers were clearly slower than 16.
	pipelineBuffers = 16

	// writebackEvery is how many bytes the writer goroutine writes before it
	// asks the kernel to start writing them to disk.
	writebackEvery = 1 << 20

	// writeGather is how many bytes of sealed chunks the writer goroutine
	// gathers into one writev, at most half the buffers' worth.
	writeGather = 1 << 20
)

// chunkJob goes from the caller to the sealer goroutine, then to the
// writer.
type chunkJob struct {
	// chunk is the chunk buffer: [length][plaintext (n)] from the caller,
	// [length][ciphertext][tag] once sealed; nil for a sync.
	chunk []byte
	n     int    // plaintext bytes in chunk
	index uint64 // the chunk's index: its nonce, and for the error message
	flags byte   // the chunk's flags (flagLast)
	sync  bool   // fsync everything written so far and answer on synced
}

// pipeline is the goroutines of a pipelined Writer and the channels
// between them:
//
//	caller ──toHash──► hasher ──toSeal──► sealer ──toWrite──► writer ──free──► caller
//	 copy             PlainHash       AES-GCM, seal hash       write(2)
//
// Without a PlainHash there is no hasher and the caller hands chunks to
// the sealer. The plaintext hash (SHA-256, ~65 ms per 100 MB here) and
// AES-GCM (~35 ms) were one stage until the upload's multipart parsing got
// cheap; then that stage was the slowest, and splitting it made uploads
// faster in 5 of 6 interleaved runs (docs/PERFORMANCE.md, "Upload API").
//
// Buffers circulate: the caller fills a chunk buffer with plaintext and
// sends it on, then takes an empty one from free. A chunk is never copied
// and nothing is allocated per chunk. The seal hash of a version 2 file
// takes 28 bytes per chunk (seal.go), so the sealer feeds it; a version 1
// file's hashes every byte there too, which is slower but only written on
// request (FormatVersion). Each stage handles the chunks in order, so the
// file, the seal hash and the plaintext hash are what the unpipelined
// Writer makes.
type pipeline struct {
	in      chan chunkJob // where the caller hands chunks: toHash or toSeal
	toHash  chan chunkJob // nil without a PlainHash
	toSeal  chan chunkJob
	toWrite chan chunkJob
	free    chan []byte
	synced  chan error // the writer's answer to a sync job
	wg      sync.WaitGroup

	// failed is set once the writer has failed; err is written before
	// failed is set and read only after it is seen set.
	failed atomic.Bool
	err    error
	// discard makes both goroutines drop the chunks still queued (Abort).
	discard atomic.Bool

	stopped bool // toWrite is closed; owned by the caller
}

// startPipeline allocates buffers chunk buffers of size bytes each, starts
// the goroutines, and returns the pipeline and the caller's first buffer.
// From here on the goroutines own f's writes, cc, seal and plain until
// stop.
func startPipeline(f *os.File, path string, cc *chunkCipher, seal *sealHash, plain hash.Hash, size, buffers int) (*pipeline, []byte) {
	p := &pipeline{
		toSeal:  make(chan chunkJob, buffers),
		toWrite: make(chan chunkJob, buffers),
		free:    make(chan []byte, buffers),
		synced:  make(chan error, 1),
	}
	p.in = p.toSeal
	if plain != nil {
		p.toHash = make(chan chunkJob, buffers)
		p.in = p.toHash
	}
	backing := make([]byte, buffers*size)
	for i := 1; i < buffers; i++ {
		p.free <- backing[i*size : (i+1)*size : (i+1)*size]
	}
	wb := newWriteback(f)
	// The writer may hold up to half the buffers while it gathers a
	// write's worth, so the stages before it always have the other half.
	gather := max(1, min(buffers/2, writeGather/size))
	if plain != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.hashPlain(plain)
		}()
	}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		p.seal(cc, seal)
	}()
	go func() {
		defer p.wg.Done()
		p.write(f, path, wb, gather)
	}()
	return p, backing[:size:size]
}

// hashPlain feeds the plaintext of the chunks it is given to plain, in
// order, and passes them on to the sealer.
func (p *pipeline) hashPlain(plain hash.Hash) {
	defer close(p.toSeal)
	for j := range p.toHash {
		if !j.sync && !p.discard.Load() {
			plain.Write(j.chunk[lenSize : lenSize+j.n])
		}
		p.toSeal <- j
	}
}

// seal seals the chunks it is given in place, in order, feeding the sealed
// chunk to the seal hash, and passes them on to the writer.
func (p *pipeline) seal(cc *chunkCipher, seal *sealHash) {
	defer close(p.toWrite)
	for j := range p.toSeal {
		if !j.sync && !p.discard.Load() {
			pt := j.chunk[lenSize : lenSize+j.n]
			sealed := cc.seal(pt, j.index, j.flags)
			seal.chunk(j.index, uint32(j.n), sealed)
			j.chunk = j.chunk[:lenSize+len(sealed)]
		}
		p.toWrite <- j
	}
}

// write writes the chunks it is given, in order, until toWrite is closed,
// and returns each buffer to the caller once its chunk is in the file. It
// gathers up to gather chunks and writes them with one writev: a write
// call per 64 KiB chunk cost the kernel about twice the CPU of 1 MiB
// writes (see "Pipelined writing" in the package doc). A sync job, or the
// end, writes what is gathered first. After a failure it writes nothing
// more but keeps returning buffers and answering syncs, so the caller
// never blocks on it.
func (p *pipeline) write(f *os.File, path string, wb *writeback, gather int) {
	var err error
	cw, e := newChunkWriter(f, gather)
	if e != nil {
		err = p.fail(fmt.Errorf("recfile: writing %s: %w", path, e))
	}
	off, hinted := int64(HeaderSize), int64(HeaderSize)
	held := make([][]byte, 0, gather) // sealed chunks gathered, in file order
	var first uint64                  // the index of held[0], for the error message
	flush := func() {
		if len(held) == 0 {
			return
		}
		if err == nil && !p.discard.Load() {
			n, e := cw.write(held)
			off += n
			if e != nil {
				err = p.fail(fmt.Errorf("recfile: writing chunks %d to %d of %s: %w", first, first+uint64(len(held))-1, path, e))
			}
			// Without this hint the kernel would start writing a file this
			// size only at the fsync in Close (the dirty page limits are
			// far higher), so the disk would idle while the chunks are
			// sealed and the CPU would idle while the disk catches up.
			if off-hinted >= writebackEvery {
				wb.start(hinted, off-hinted)
				hinted = off
			}
		}
		for _, c := range held {
			p.free <- c[:cap(c)]
		}
		held = held[:0]
	}
	for j := range p.toWrite {
		if j.sync {
			flush()
			if err == nil {
				if e := f.Sync(); e != nil {
					err = p.fail(fmt.Errorf("recfile: fsync %s: %w", path, e))
				}
			}
			p.synced <- err
			continue
		}
		if err != nil || p.discard.Load() {
			p.free <- j.chunk[:cap(j.chunk)]
			continue
		}
		if len(held) == 0 {
			first = j.index
		}
		held = append(held, j.chunk)
		if len(held) == gather {
			flush()
		}
	}
	flush()
}

func (p *pipeline) fail(err error) error {
	p.err = err
	p.failed.Store(true)
	return err
}

// failure returns the writer's error, if it has failed.
func (p *pipeline) failure() error {
	if p.failed.Load() {
		return p.err
	}
	return nil
}

// hand passes a chunk buffer holding n bytes of plaintext on to be sealed
// and returns an empty buffer, waiting if all the others are still queued.
func (p *pipeline) hand(buf []byte, n int, index uint64, flags byte) []byte {
	p.in <- chunkJob{chunk: buf, n: n, index: index, flags: flags}
	return <-p.free
}

// sync waits until every chunk handed over so far is written and fsynced.
func (p *pipeline) sync() error {
	p.in <- chunkJob{sync: true}
	return <-p.synced
}

// stop ends the goroutines and waits for them. Chunks still queued are
// written and hashed unless discard is set. It may be called more than once.
func (p *pipeline) stop(discard bool) {
	if p.stopped {
		return
	}
	p.stopped = true
	if discard {
		p.discard.Store(true)
	}
	close(p.in)
	p.wg.Wait()
}
