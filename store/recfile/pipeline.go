package recfile

import (
	"fmt"
	"hash"
	"os"
	"sync/atomic"
)

// CreateOption changes how Create sets up a Writer.
type CreateOption func(*createConfig)

type createConfig struct {
	pipelined        bool
	hashInBackground bool // measurement only: the goroutine hashes, not the caller
	writeback        bool
	hashStage        bool
	hashOnly         bool
	nbuf             int
}

// Pipelined makes the Writer write its chunks from a goroutine of its own,
// so that on a machine with two or more cores the write syscall of one
// chunk overlaps sealing and hashing the next (see "Pipelined writing" in
// the package doc). The file, the seal hash and the meaning of Write, Flush,
// Close, Abort and Abandon are the same as without it; the differences are
// that the Writer holds pipelineBuffers chunk buffers instead of one, that a
// failed write is reported by the Write, Flush or Close after it rather than
// by the call that produced the chunk, and that the Writer must end with
// Close, Abort or Abandon to stop its goroutine (as it must anyway to close
// its file).
func Pipelined() CreateOption {
	return func(c *createConfig) { c.pipelined = true }
}

// pipelineBuffers is the number of chunk buffers a pipelined Writer owns:
// one the caller fills, one being written, and one spare so the caller
// never waits for a write that has only just started.
const pipelineBuffers = 3

const writebackEvery = 1 << 20

// writeJob is what the caller hands to the writer goroutine: a sealed chunk
// to write, or a request to fsync.
type writeJob struct {
	chunk []byte // the sealed chunk, [length][ciphertext][tag]; nil for a sync
	index uint64 // the chunk's index, for the error message
	sync  bool   // fsync everything written so far and answer on synced
}

// pipeline is the writer goroutine of a pipelined Writer and the channels
// that connect it to the caller. Buffers circulate: the caller seals a chunk
// in one, sends it on jobs, and takes the next from free; the goroutine
// writes it and puts it back on free. No chunk is copied and nothing is
// allocated per chunk.
type pipeline struct {
	in       chan writeJob // where the caller sends: hashJobs or jobs
	hashJobs chan writeJob
	hashDone chan struct{}
	jobs     chan writeJob
	free     chan []byte
	synced   chan error
	done     chan struct{} // closed when the goroutine has returned

	// hash, if not nil, is the seal hash, written by the goroutine before
	// each chunk goes to the file; the caller reads it only after done.
	hash hash.Hash

	// failed is set once the goroutine has failed; err (written before
	// failed is set, read only after it is seen set) says why.
	failed atomic.Bool
	err    error
	// discard makes the goroutine drop the chunks still queued (Abort).
	discard atomic.Bool

	writeback     bool
	hashOnly      bool // the caller writes; the goroutine only hashes
	cwb           *writeback
	coff, chinted int64

	stopped bool // jobs is closed; owned by the caller
}

// startPipeline allocates the chunk buffers (each of size bytes), starts the
// goroutine and returns the pipeline and the first buffer for the caller.
// If hashWrites is not nil the goroutine feeds every chunk to it.
func startPipeline(f *os.File, path string, size int, hashWrites hash.Hash, writeback bool, hashStage hash.Hash, nbuf int, hashOnly bool) (*pipeline, []byte) {
	p := &pipeline{
		jobs:      make(chan writeJob, nbuf),
		free:      make(chan []byte, nbuf),
		synced:    make(chan error, 1),
		done:      make(chan struct{}),
		hash:      hashWrites,
		writeback: writeback,
	}
	p.in = p.jobs
	p.hashOnly = hashOnly
	p.cwb = newWriteback(f)
	p.coff, p.chinted = HeaderSize, HeaderSize
	backing := make([]byte, nbuf*size)
	for i := 1; i < nbuf; i++ {
		p.free <- backing[i*size : (i+1)*size : (i+1)*size]
	}
	if hashStage != nil {
		p.hashJobs = make(chan writeJob, nbuf)
		p.hashDone = make(chan struct{})
		p.in = p.hashJobs
		go p.runHash(hashStage)
	}
	go p.run(f, path)
	return p, backing[:size:size]
}

func (p *pipeline) runHash(h hash.Hash) {
	defer close(p.hashDone)
	defer close(p.jobs)
	for j := range p.hashJobs {
		if !j.sync && !p.failed.Load() && !p.discard.Load() {
			h.Write(j.chunk)
		}
		p.jobs <- j
	}
}

// run writes the chunks it is given, in order, until jobs is closed. After a
// failure it writes nothing more but keeps returning buffers and answering
// syncs, so the caller never blocks on a dead goroutine.
func (p *pipeline) run(f *os.File, path string) {
	defer close(p.done)
	var err error
	wb := newWriteback(f)
	off, hinted := int64(HeaderSize), int64(HeaderSize)
	for j := range p.jobs {
		if j.sync {
			if err == nil {
				if e := f.Sync(); e != nil {
					err = p.fail(fmt.Errorf("recfile: fsync %s: %w", path, e))
				}
			}
			p.synced <- err
			continue
		}
		if p.hashOnly {
			if !p.discard.Load() {
				p.hash.Write(j.chunk)
			}
			p.free <- j.chunk[:cap(j.chunk)]
			continue
		}
		if err == nil && !p.discard.Load() {
			if p.hash != nil {
				p.hash.Write(j.chunk)
			}
			if _, e := f.Write(j.chunk); e != nil {
				err = p.fail(fmt.Errorf("recfile: writing chunk %d of %s: %w", j.index, path, e))
			}
			off += int64(len(j.chunk))
			if p.writeback && off-hinted >= writebackEvery {
				wb.start(hinted, off-hinted)
				hinted = off
			}
		}
		p.free <- j.chunk[:cap(j.chunk)]
	}
}

func (p *pipeline) fail(err error) error {
	p.err = err
	p.failed.Store(true)
	return err
}

// failure returns the goroutine's error, if it has failed.
func (p *pipeline) failure() error {
	if p.failed.Load() {
		return p.err
	}
	return nil
}

// hand gives a sealed chunk to the goroutine and returns an empty buffer,
// waiting if all the others are still queued.
func (p *pipeline) hand(chunk []byte, index uint64) []byte {
	if p.hashOnly && p.writeback {
		p.coff += int64(len(chunk))
		if p.coff-p.chinted >= writebackEvery {
			p.cwb.start(p.chinted, p.coff-p.chinted)
			p.chinted = p.coff
		}
	}
	p.in <- writeJob{chunk: chunk, index: index}
	return <-p.free
}

// sync waits until every chunk handed over so far is written and fsynced.
func (p *pipeline) sync() error {
	p.in <- writeJob{sync: true}
	return <-p.synced
}

// stop ends the goroutine and waits for it. Chunks still queued are written
// unless discard is set. It may be called more than once.
func (p *pipeline) stop(discard bool) {
	if p.stopped {
		return
	}
	p.stopped = true
	if discard {
		p.discard.Store(true)
	}
	close(p.in)
	<-p.done
	if p.hashDone != nil {
		<-p.hashDone
	}
}
