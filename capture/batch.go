package capture

import (
	"time"
	"unsafe"
)

// Import passes in batches.
//
// An import runs a flush pass every 20 ms of capture time, as live capture
// does: when a pass pulls ticks decides whether a reordered or resuming
// packet is late or re-anchors, so a longer interval changes recordings
// (100 ms passes changed one packet of the corpus' sip_ipv4_tcp.pcap
// against tshark). But a pass that visits every open call to move the one
// packet each stream got in those 20 ms is mostly cache misses: at 1,000
// calls every ring, playout timeline, grid writer and store writer is cold
// again by the time the pass comes back to it (issue 4: the flush pass was
// 62 % of an import's CPU).
//
// So imports keep the 20 ms passes but run them late, a call at a time.
// A call in steady state (recording, not ended, nothing new from its
// signalling, far from its RTP timeout) is "deferred": the passes skip
// it, and only log their capture time and how many packets had been
// queued by then (every ring slot is stamped with that count, Slot.Order).
// Every deferPasses passes (a "full pass"), each deferred call is brought
// up to date: for each logged pass in turn, it drains exactly the packets
// that pass would have seen (rtp.Ring.DrainUntil) and pulls the ticks that
// pass would have pulled, with the newest-media time as it stood then. Its
// ring, playout timelines, grid and store writer stay hot through the
// whole catch-up, and the ticks of all those passes go to the store in one
// write. The result is the same, byte for byte, as running every pass in
// full (TestBatchedImportIsExact).
//
// What else a pass does to a call depends on state the reader changes:
// signalling (hold, events, end, adoption, SDP) and the RTP timeout. So:
//   - before the reader changes a deferred call (SIP for it, an orphan flow
//     joining it), the call is caught up through every logged pass and
//     visited by every pass from then on (touch), until a pass finds it
//     steady again;
//   - a call is only deferred while no logged pass can time it out: a
//     pass later than the earliest such time (deferUntil) is a full pass;
//   - a full ring (a stream with a short ptime) and Close force a full
//     pass.
//
// Only imports batch. Live capture runs every pass in full on its flusher:
// there, a pass runs on the wall clock, and the reader goroutines may not
// run the flusher's work. In imports the reader is the flusher; readers
// that run side by side take flushMu before they change signalling state,
// so a catch-up never races a pass.

// deferPasses is how many passes a deferred call may fall behind: 32
// passes of 20 ms are 640 ms of capture, half a ring of 64 slots of 20 ms
// packets (a stream that fills its ring sooner forces a full pass), and 32
// ticks per store write. What a catch-up costs beyond its packets (the
// call's state coming back into the caches, a store write) is spread over
// twice the packets of 16 passes: at 1,000 calls, 32 took less CPU per
// packet than 16 in each of three alternating runs, and 8 more (issue 4,
// fourth round; docs/PERFORMANCE.md has the figures and their noise).
const deferPasses = 32

// spreadLinesPerPass is how many times four cache lines of the next
// call a catch-up prefetches per pass it runs (spreadPrefetch): 384 lines
// over 32 passes, room for the about 330 of a G.711 call and a little
// more. Two and five measured the same as three (docs/PERFORMANCE.md).
const spreadLinesPerPass = 3

// passMark is a pass a deferred call has not seen yet: its capture time
// and the stamp of the last packet queued before it.
type passMark struct {
	no    int64
	now   int64
	order uint32
}

// importPass runs the flush pass of an import at capture time now: in full
// every deferPasses passes, when a deferred call could time out, or when
// forced (a full ring); otherwise over the calls that are not deferred.
func (e *Engine) importPass(now int64, force bool) {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	if force || e.batch <= 1 || len(e.passLog) >= e.batch-1 || now > e.deferUntil {
		e.flushLocked(now)
		return
	}
	start := time.Now()
	e.passNo++
	e.passLog = append(e.passLog, passMark{no: e.passNo, now: now, order: e.pushed.Load()})
	e.mu.Lock()
	calls := e.passCalls[:0]
	for c := range e.slow {
		calls = append(calls, c)
	}
	e.mu.Unlock()
	for _, c := range calls {
		e.flushCall(c, now)
		e.maybeDefer(c)
	}
	clear(calls) // finished calls must not stay reachable from here
	e.passCalls = calls[:0]
	e.handSignals()
	e.expireLinger(now)
	e.notePass(start)
}

// catchUpAll brings every deferred call up to date and empties the pass
// log. Called with flushMu held.
func (e *Engine) catchUpAll() {
	if len(e.passLog) == 0 {
		return
	}
	e.mu.Lock()
	calls := e.passCalls[:0]
	for c := range e.calls {
		if c.deferred {
			calls = append(calls, c)
		}
	}
	e.mu.Unlock()
	for _, c := range calls {
		e.catchUp(c)
	}
	clear(calls)
	e.passCalls = calls[:0]
	e.passLog = e.passLog[:0]
}

// catchUp runs the passes a deferred call missed: per logged pass, drain
// what had been queued by then and pull the ticks that pass pulled. The
// ticks of the whole catch-up reach the store in one write. Called with
// flushMu held (and maybe e.mu: it does not take it).
func (e *Engine) catchUp(c *call) {
	rec := c.rec
	if rec.grid != nil {
		if err := rec.grid.BeginBatch(e.batchBuf); err != nil {
			e.writeFailed(rec, err)
		}
	}
	for _, m := range e.passLog {
		if m.no <= c.through {
			continue
		}
		e.spread.step(spreadLinesPerPass)
		e.drainUntil(c, rec, m.order, true)
		if lm := max(rec.lastArr[0], rec.lastArr[1]); rec.grid != nil && lm > 0 {
			e.pullTicks(rec, min(m.now, lm+holdback), -1)
		}
		c.through = m.no
	}
	if rec.grid != nil {
		e.flushGrid(rec)
	}
}

// touch is called before the reader changes a call's state (with flushMu
// and e.mu held): a deferred call is caught up first, and from now on
// every pass visits it until one finds it steady again.
func (e *Engine) touch(c *call) {
	if !c.deferred {
		return
	}
	e.catchUp(c)
	c.deferred = false
	e.slow[c] = struct{}{}
}

// maybeDefer defers c after a pass visited it (flushMu held) if it is
// steady: recording, not ended, and not timing out before deferUntil.
// Otherwise every pass visits it.
func (e *Engine) maybeDefer(c *call) {
	if e.batch <= 1 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, open := e.calls[c]; !open || c.deferred {
		return
	}
	if c.ended || c.rec == nil {
		e.slow[c] = struct{}{}
		return
	}
	limit := e.cfg.RTPTimeout
	if c.parties[0].hold || c.parties[1].hold {
		limit = e.cfg.HoldTimeout
	}
	// checkTimeout ends the call at the first pass later than this.
	until := max(c.lastMedia(), c.lastSig) + int64(limit)
	rec := c.rec
	order := e.pushed.Load()
	for i := range rec.ch {
		rec.lastArr[i] = c.streams[rec.ch[i].party].lastPacket.Load()
		rec.lastOrd[i] = order
	}
	c.deferred = true
	c.through = e.passNo
	delete(e.slow, c)
	e.deferUntil = min(e.deferUntil, until)
}

// prefetchCall is how a full pass (flushLocked) keeps the memory of the
// calls it is about to visit on its way: at 1,000 calls each call's
// streams, rings, recording, playouts and queued packets have left the
// CPU's caches since the last full pass, and visiting a call was a chain of
// cache misses, one waiting for the next. A call about to be visited is
// prefetched in steps, a call per step ahead: its pointers (step 3), what
// they point at (2), the rings, playouts and grid (1), the rings' oldest
// packets (0, the next call). A call takes microseconds (32 passes of two
// streams in a catch-up), so each step's lines have arrived before the
// next step reads them. Only hints: nothing is read that the pass does
// not own (flushMu held).
func prefetchCall(c *call, step int) {
	switch step {
	case 3:
		p := uintptr(unsafe.Pointer(c)) + unsafe.Offsetof(c.streams)
		prefetch4(p, p+16, p, p+16)
	case 2:
		s0, s1 := uintptr(unsafe.Pointer(c.streams[0])), uintptr(unsafe.Pointer(c.streams[1]))
		prefetch4(s0, s0+64, s1, s1+64)
		if rec := c.rec; rec != nil {
			p := uintptr(unsafe.Pointer(rec))
			prefetch4(p, p+64, p+128, p+192)
		}
	case 1:
		for _, s := range c.streams {
			if r := s.lanes[0].Load(); r != nil {
				p := uintptr(unsafe.Pointer(r))
				prefetch4(p+128, p+192, p+128, p+192)
			}
		}
		if rec := c.rec; rec != nil && rec.grid != nil {
			prefetch4(uintptr(unsafe.Pointer(rec.ch[0].play)), uintptr(unsafe.Pointer(rec.ch[1].play)),
				uintptr(unsafe.Pointer(rec.grid)), uintptr(unsafe.Pointer(rec.r)))
		}
	case 0:
		for _, s := range c.streams {
			if r := s.lanes[0].Load(); r != nil {
				sl, b := r.Oldest()
				p := uintptr(unsafe.Pointer(b))
				prefetch4(uintptr(unsafe.Pointer(sl)), p, p+64, p+128)
			}
		}
	}
}

// spreadPrefetch brings the bulk of a call's memory into the caches while
// the call before it is caught up: its queued packets (slot headers and
// payloads), its playout timelines and the structs that drive them, about
// 330 cache lines at 32 passes of G.711. Prefetched all at once, they
// stalled the catch-up they were issued from (a PREFETCH waits for a free
// line-fill buffer: prefetch4's own samples doubled); spread over the
// catch-up's passes, a few lines a pass, they arrive while the catch-up
// works. Hints only: the spans are addresses, not pointers (a PREFETCH
// never faults), and a stale one costs a wasted prefetch.
type spreadPrefetch struct {
	spans [20]struct{ a, end uintptr }
	n, i  int
}

// load replaces what is left with c's queued packets and timelines, after
// the playouts' and statistics' own structs (read first, per packet).
// flushMu is held (the pass owns the consumer side of c's rings).
func (sp *spreadPrefetch) load(c *call) {
	sp.n, sp.i = 0, 0
	if rec := c.rec; rec != nil {
		for i := range rec.ch {
			if p := rec.ch[i].play; p != nil {
				sp.add(unsafe.Pointer(p), unsafe.Sizeof(*p))
			}
			if st := rec.ch[i].stats; st != nil {
				sp.add(unsafe.Pointer(st), unsafe.Sizeof(*st))
			}
		}
	}
	for _, s := range c.streams {
		if r := s.lanes[0].Load(); r != nil {
			r.QueuedMemory(sp.add)
		}
	}
	if rec := c.rec; rec != nil && rec.grid != nil {
		rec.ch[0].play.Memory(sp.add)
		rec.ch[1].play.Memory(sp.add)
	}
}

func (sp *spreadPrefetch) add(p unsafe.Pointer, n uintptr) {
	if sp.n < len(sp.spans) && n > 0 {
		sp.spans[sp.n].a, sp.spans[sp.n].end = uintptr(p)&^63, uintptr(p)+n
		sp.n++
	}
}

// step prefetches the next four times k cache lines.
func (sp *spreadPrefetch) step(k int) {
	for ; k > 0 && sp.i < sp.n; k-- {
		s := &sp.spans[sp.i]
		a := s.a
		prefetch4(a, a+64, a+128, a+192)
		if s.a = a + 256; s.a >= s.end {
			sp.i++
		}
	}
}
