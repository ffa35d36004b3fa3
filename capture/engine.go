package capture

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callvault/callvault/capture/rtp"
	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/meta"
)

// Recorder is a recording being written (store.Recorder).
type Recorder interface {
	ID() string
	Write(p []byte) (int, error)
	Close(ctx context.Context, f store.Final) (meta.Recording, error)
	Abort(ctx context.Context, by string) error
}

// Sink is where recordings go: the store, seen through the calls capture
// needs.
type Sink interface {
	// Create starts a recording. imported says it comes from a capture
	// file, not live traffic: the store may then leave it out of its
	// once-a-second flush and its create fsyncs (store.Unflushed), since an
	// import that crashes is run again; a live call must lose at most a
	// second of audio.
	Create(ctx context.Context, rec meta.Recording, imported bool) (Recorder, error)
	Apply(ctx context.Context, cmd meta.Command) (meta.Result, error)
	// AppendSignalling stores SIP messages of a recording (issue 7: the
	// call's signalling as captured goes into export bundles).
	AppendSignalling(id meta.ID, msgs ...store.SignalMessage) error
}

// liveChunkSize is the recording-file chunk for captured calls: about one
// second of stereo G.711 in the grid, the store's flush interval. It is 16
// KiB less the chunk's framing, so the store's chunk buffer (framing and
// plaintext) is exactly 16 KiB: with 16 KiB of plaintext it was 16,404
// bytes, which Go's allocator rounds up to its next size class, 18,432:
// 2 KiB of every active call's memory (BenchmarkMemoryPerCall).
const liveChunkSize = 16<<10 - store.ChunkOverhead

// StoreSink adapts a *store.Store to Sink.
func StoreSink(s *store.Store) Sink { return storeSink{s} }

type storeSink struct{ s *store.Store }

func (s storeSink) Create(ctx context.Context, rec meta.Recording, imported bool) (Recorder, error) {
	opts := []store.CreateOption{store.ChunkSize(liveChunkSize)}
	if imported {
		opts = append(opts, store.Unflushed())
	}
	r, err := s.s.Create(ctx, rec, opts...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (s storeSink) Apply(ctx context.Context, cmd meta.Command) (meta.Result, error) {
	return s.s.Apply(ctx, cmd)
}

func (s storeSink) AppendSignalling(id meta.ID, msgs ...store.SignalMessage) error {
	return s.s.AppendSignalling(id, msgs...)
}

// CallSummary describes one finished call, for `callvault import`.
type CallSummary struct {
	CallID      string   `json:"callId,omitempty"`
	RecordingID string   `json:"recordingId"`
	Reference   string   `json:"reference,omitempty"`
	Status      string   `json:"status"`
	Signalling  bool     `json:"signalling"`
	Answered    bool     `json:"answered"`
	Streams     int      `json:"streams"`
	Codecs      []string `json:"codecs"`
	Packets     int64    `json:"packets"`
	Expected    int64    `json:"expected"`
	Lost        int64    `json:"lost"`
	LossPct     float64  `json:"lossPct"`
	DurationMs  int64    `json:"durationMs"`
	Playable    bool     `json:"playable"`
	OneWay      bool     `json:"oneWay"`
	NoMedia     bool     `json:"noMedia"` // answered, but no RTP either way
	EndReason   string   `json:"endReason"`
	Bookmarks   int      `json:"bookmarks"`
}

// Engine is the capture pipeline between readers and the store.
type Engine struct {
	cfg      Config
	sink     Sink
	stats    Stats
	table    *streamTable
	sipPorts [1024]uint64 // bitset over 65536 ports

	mu       sync.Mutex // signalling state below
	calls    map[*call]struct{}
	byID     map[string]*call
	cands    map[flowKey]*candidate
	readers  int
	recByKey map[string]string // Call-ID → recording ID, for linking transfers
	linger   []lingerEntry

	flushMu   sync.Mutex // one flush pass at a time
	passCalls []*call    // the calls of a flush pass (flushMu), reused
	// Imports run passes in batches (batch.go). pushed stamps ring slots;
	// slow (e.mu) holds the calls every pass visits, the others are
	// deferred; the rest is flushMu's.
	pushed     atomic.Uint32
	slow       map[*call]struct{}
	batch      int // passes a deferred call may fall behind (1: none)
	batchBuf   []byte
	passNo     int64
	passLog    []passMark
	spread     spreadPrefetch // the next call's memory, prefetched during a catch-up (batch.go)
	deferUntil int64
	// SIP messages waiting for their recordings (signalling.go): sigLog
	// and sigBuf are e.mu's, sigJobs the flusher's scratch.
	sigLog   []sigEntry
	sigBuf   []byte
	sigJobs  []storeJob
	sigCalls []*call
	clock    atomic.Int64
	// offset is what to add to the clock for true capture times: imports
	// count jumps forward away (Reader.importClock).
	offset    atomic.Int64
	summaryMu sync.Mutex
	summaries []CallSummary
	sealing   int        // an import's seal jobs queued, not yet filed (summaryMu)
	sealed    *sync.Cond // on summaryMu: sealing fell to 0
	onSummary func(CallSummary)

	work storeWorker // store jobs, off the flush pass (storework.go)

	stop chan struct{}
	done chan struct{}
}

// New builds an engine writing to sink.
func New(cfg Config, sink Sink) *Engine {
	cfg.setDefaults()
	e := &Engine{
		cfg: cfg, sink: sink, table: newStreamTable(),
		calls: make(map[*call]struct{}), byID: make(map[string]*call),
		cands: make(map[flowKey]*candidate), recByKey: make(map[string]string),
		slow: make(map[*call]struct{}), batch: 1,
	}
	if !cfg.Live {
		// The batch buffer holds deferPasses ticks of any grid channel
		// pair (two 16 kHz L16 channels: 1,282 bytes a tick); one buffer
		// serves every call in turn.
		e.batch, e.batchBuf = deferPasses, make([]byte, deferPasses*maxTickPair)
		e.passLog = make([]passMark, 0, deferPasses)
	}
	for _, p := range cfg.SIPPorts {
		e.sipPorts[p/64] |= 1 << (p % 64)
	}
	return e
}

// maxTickPair is the largest tick of a grid's two channels: 20 ms of
// 16 kHz L16 and its flag byte, twice.
const maxTickPair = 2 * (1 + 640)

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return &e.stats }

// Summaries returns the calls finished so far, in the order they ended.
// In an import it first waits for the seals queued so far (storework.go):
// a call's summary is there as soon as the pass that ended it returns.
func (e *Engine) Summaries() []CallSummary {
	e.summaryMu.Lock()
	defer e.summaryMu.Unlock()
	for e.sealing > 0 {
		if e.sealed == nil {
			e.sealed = sync.NewCond(&e.summaryMu)
		}
		e.sealed.Wait()
	}
	return append([]CallSummary(nil), e.summaries...)
}

func (e *Engine) isSIPPort(p uint16) bool { return e.sipPorts[p/64]&(1<<(p%64)) != 0 }

// realTime is the true capture time of clock time t, for metadata.
func (e *Engine) realTime(t int64) time.Time { return time.Unix(0, t+e.offset.Load()).UTC() }

// advance moves the capture clock forward (never back).
func (e *Engine) advance(now int64) {
	for {
		c := e.clock.Load()
		if now <= c || e.clock.CompareAndSwap(c, now) {
			return
		}
	}
}

// Start runs the flusher on the wall clock (live capture). Stop it with Close.
func (e *Engine) Start() {
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(e.done)
		t := time.NewTicker(e.cfg.FlushEvery)
		defer t.Stop()
		for {
			select {
			case <-e.stop:
				return
			case now := <-t.C:
				e.advance(now.UnixNano())
				e.flush(e.clock.Load())
			}
		}
	}()
}

// Close ends every call still open (their recordings are sealed with what
// was captured), stops the flusher, and waits until the store worker has
// done every queued job (every recording sealed, every summary filed).
// Readers must have stopped.
func (e *Engine) Close() {
	if e.stop != nil {
		close(e.stop)
		<-e.done
		e.stop = nil
	}
	now := e.clock.Load()
	e.endAll(now, "capture stopped")
	e.flush(now)
	e.stopStoreWork()
}

// endAll ends every open call at capture time now, or where its media
// ended if that was earlier; the next flush pass seals their recordings.
func (e *Engine) endAll(now int64, reason string) {
	e.flushMu.Lock()
	e.catchUpAll() // ending the calls below changes them
	e.flushMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	for c := range e.calls {
		end := now
		if lm := c.lastMedia(); lm > 0 && lm < end {
			end = lm + int64(20*time.Millisecond)
		}
		e.endCall(c, end, reason)
	}
}

// flowKey identifies one direction of an unknown UDP flow.
type flowKey struct{ src, dst netip.AddrPort }

// candidate is an unknown UDP flow that looks like RTP: after enough
// consistent packets (same SSRC, sequence numbers advancing) it becomes a
// stream of a call without signalling. Its packets wait in a ring that
// becomes the stream's lane, so none is lost to the detection.
type candidate struct {
	ssrc    uint32
	lastSeq uint16
	good    int
	last    int64
	ring    *rtp.Ring
	reader  int // the reader producing into ring
	pt      uint8
	plen    int
}

const maxCandidates = 4096

// candidate watches an unknown flow (the reader calls it for RTP-looking
// packets that matched no stream). It runs on the reader's goroutine but
// takes the signalling lock: it is the slow path of the first packets of
// a flow.
func (e *Engine) candidate(r *Reader, now int64, src, dst netip.AddrPort, pl []byte) {
	h := &r.hdr
	n, err := h.Unmarshal(pl)
	if err != nil {
		return
	}
	if !e.cfg.Live {
		// The reverse flow may join a deferred call (batch.go).
		e.flushMu.Lock()
		defer e.flushMu.Unlock()
	}
	e.mu.Lock()
	k := flowKey{src, dst}
	cd := e.cands[k]
	if cd == nil {
		if len(e.cands) >= maxCandidates {
			e.expireCandidates(now)
			if len(e.cands) >= maxCandidates {
				e.mu.Unlock()
				return
			}
		}
		ring, err := rtp.NewRing(e.cfg.RingSlots, slotSize(len(pl)-n))
		if err != nil {
			e.mu.Unlock()
			return
		}
		cd = &candidate{ssrc: h.SSRC, lastSeq: h.SequenceNumber, ring: ring, reader: r.id, pt: h.PayloadType, plen: len(pl) - n}
		e.cands[k] = cd
	} else {
		d := h.SequenceNumber - cd.lastSeq
		switch {
		case h.SSRC != cd.ssrc:
			cd.ssrc, cd.lastSeq, cd.good = h.SSRC, h.SequenceNumber, 0
			cd.ring.Drain(func(*rtp.Slot, []byte) {})
		case d == 0: // a duplicate (RFC 4733 end packets repeat): neither for nor against
		case d < 3000:
			cd.good++
			cd.lastSeq = h.SequenceNumber
		default:
			cd.good = 0
			cd.lastSeq = h.SequenceNumber
		}
	}
	cd.last = now
	if !cd.ring.PushOrdered(h, pl[n:], now, e.pushed.Add(1)) {
		// A full ring before confirmation: this flow is not RTP-like enough.
		delete(e.cands, k)
		e.mu.Unlock()
		return
	}
	if cd.good+1 < e.cfg.OrphanPackets {
		e.mu.Unlock()
		return
	}
	delete(e.cands, k)
	// The reverse flow may already be a call: join it.
	var c *call
	party := 0
	if ep := e.table.get(dst); ep != nil && !ep.c.ended {
		c, party = ep.c, 1-ep.party
		e.touch(c)
	} else {
		c = e.newCall(now, "rtp:"+src.String()+"-"+dst.String())
		e.stats.OrphanStreams.Add(1)
		c.answered = true
		e.decideLocalRTP(c, src, dst)
	}
	// Four-byte payloads of a dynamic type are RFC 4733 telephone events
	// (a DTMF-only stream): record them as digits over silence.
	if cd.pt >= 96 && cd.plen == 4 {
		c.parties[party].eventPT = cd.pt
	}
	e.register(c, party, src, false)
	e.register(c, 1-party, dst, false)
	e.installCandidate(c.streams[party], cd, now)
	// The reverse flow, if it was being watched too, is now known: its
	// packets so far become the other party's first ones.
	if rev := e.cands[flowKey{dst, src}]; rev != nil {
		delete(e.cands, flowKey{dst, src})
		e.installCandidate(c.streams[1-party], rev, now)
	}
	e.mu.Unlock()
}

// installCandidate makes a candidate's ring the stream's lane for the
// reader that filled it, so the packets that proved the flow is RTP are
// recorded too. Called with e.mu held.
func (e *Engine) installCandidate(s *stream, cd *candidate, now int64) {
	if !s.setLane(cd.reader, cd.ring) {
		return
	}
	queued := int64(cd.ring.Len())
	s.firstPT.CompareAndSwap(0, int32(cd.pt)+1)
	s.ssrc.Store(cd.ssrc)
	s.lastPacket.Store(max(cd.last, s.lastPacket.Load()))
	s.packets.Add(queued)
	e.stats.RTPPackets.Add(queued)
}

// decideLocalRTP picks the local side of a call without signalling from
// the local networks and trunk addresses.
func (e *Engine) decideLocalRTP(c *call, src, dst netip.AddrPort) {
	c.parties[0].sigAddr, c.parties[1].sigAddr = src.Addr(), dst.Addr()
	c.parties[0].media = nil
	c.parties[1].media = nil
	e.decideLocal(c)
}

func (e *Engine) expireCandidates(now int64) {
	for k, cd := range e.cands {
		if now-cd.last > int64(5*time.Second) {
			delete(e.cands, k)
		}
	}
}

// noteRTCP files the receiver reports of an RTCP packet (RFC 3550 §6.4)
// with the stream they describe: loss and jitter as the receiving
// endpoint saw them, next to what the tap measured.
func (c *call) noteRTCP(cp *rtp.Compound) {
	for i := 0; i < cp.NReports; i++ {
		rb := &cp.Reports[i]
		for _, s := range c.streams {
			if s.ssrc.Load() == rb.SSRC && s.packets.Load() > 0 {
				s.rtcpLost.Store(int64(rb.CumulativeLost))
				s.rtcpJitter.Store(rb.Jitter)
				s.rtcpReports.Add(1)
			}
		}
	}
}
