package capture

import (
	"net/netip"
	"time"

	"github.com/callvault/callvault/store"
)

// Signalling kept with the recording (issue 7): every SIP message of a
// call that has a recording is stored beside it (Sink.AppendSignalling),
// in order, through the recording's store jobs.
//
// Messages wait in one engine-wide log, not in their calls: a message seen
// before its call's recording exists (the INVITE, the 180, the 200) waits
// until it does, and at 10,000 calls setting up at once, thousands of
// small copies held by the calls and freed a second later left the heap
// fragmented around what the calls keep for good (2 KiB a call more in
// BenchmarkMemoryPerCall, whose goal has a 2 KiB margin). The log is two
// growing slices: a burst costs memory while it lasts and gives it back
// when it has drained.
//
// The reader appends under e.mu; each flush pass, after its calls, takes
// the messages of calls that have a recording and queues one job per
// recording (behind its create job, on its worker), drops those of calls
// that ended without one, and keeps the rest, in order.
//
// An import holds a recorded call's messages in the call's recording
// instead (recording.held) and hands them to the store once, with the
// seal job: each append opens the side file, derives its key and closes
// it again, and a call's messages came in two or three appends (setup,
// then the BYE and its answer). A call holds at most maxHeldSignal bytes;
// beyond that the held messages go out as a job as before. Live capture
// appends every pass, so a crash loses at most a second of a call's
// signalling, as of its audio.

// maxSignalLog bounds the bytes of SIP waiting for recordings; beyond it
// messages are counted in Stats.SignalDropped, not stored.
const maxSignalLog = 64 << 20

// releaseSignalLog is the capacity above which a log's buffer shrinks to
// what it holds once it is three quarters empty.
const releaseSignalLog = 256 << 10

// maxHeldSignal bounds the SIP bytes an import's call holds until its
// seal: a call's setup and teardown are a few KiB; a call that re-INVITEs
// for an hour sends them on in jobs of about this size.
const maxHeldSignal = 16 << 10

// sigEntry is one SIP message in the log; its bytes are sigBuf[off:off+n].
type sigEntry struct {
	c        *call
	at       int64 // true capture time (the clock plus the engine offset)
	src, dst netip.AddrPort
	off, n   int
	tcp      bool
}

// noteSignal appends a SIP message of c to the log. Called with e.mu held.
func (e *Engine) noteSignal(c *call, now int64, src, dst netip.AddrPort, raw []byte, tcp bool) {
	if len(e.sigBuf)+len(raw) > maxSignalLog {
		e.stats.SignalDropped.Add(1)
		return
	}
	e.sigLog = append(e.sigLog, sigEntry{c: c, at: now + e.offset.Load(), src: src, dst: dst, off: len(e.sigBuf), n: len(raw), tcp: tcp})
	e.sigBuf = append(e.sigBuf, raw...)
}

// handSignals queues the logged messages of every call that has a
// recording as store jobs, one per recording, and compacts the log. Called
// by a flush pass after its calls (flushMu held: c.rec is the flusher's).
func (e *Engine) handSignals() {
	e.mu.Lock()
	if len(e.sigLog) == 0 {
		e.mu.Unlock()
		return
	}
	jobs, calls := e.sigJobs[:0], e.sigCalls[:0]
	keep, keepBytes := 0, 0
	for _, en := range e.sigLog {
		c := en.c
		if c == nil {
			continue // taken by its call's seal (takeSignals)
		}
		raw := e.sigBuf[en.off : en.off+en.n]
		if c.rec == nil {
			if _, open := e.calls[c]; open {
				// No recording yet: keep it, moved to the front.
				en.off = keepBytes
				keepBytes += copy(e.sigBuf[keepBytes:], raw)
				e.sigLog[keep] = en
				keep++
			}
			continue // a call forgotten without a recording: dropped
		}
		m := en.message(raw)
		rec := c.rec
		if !e.cfg.Live && !rec.sealing {
			if rec.heldBytes+len(raw) <= maxHeldSignal {
				rec.held = append(rec.held, m)
				rec.heldBytes += len(raw)
				continue
			}
		}
		if c.sigJob == 0 {
			// Held messages (a long call's) go first, in order.
			jobs = append(jobs, storeJob{kind: jobSignal, rec: rec.r, sig: rec.held})
			rec.held, rec.heldBytes = nil, 0
			calls = append(calls, c)
			c.sigJob = len(jobs)
		}
		j := &jobs[c.sigJob-1]
		j.sig = append(j.sig, m)
	}
	for _, c := range calls {
		c.sigJob = 0
	}
	clear(calls)
	e.sigCalls = calls[:0]
	clear(e.sigLog[keep:]) // forgotten calls must not stay reachable
	e.sigLog, e.sigBuf = e.sigLog[:keep], e.sigBuf[:keepBytes]
	if cap(e.sigBuf) > releaseSignalLog && keepBytes < cap(e.sigBuf)/4 {
		// After a burst (thousands of calls setting up at once), the few
		// messages still waiting move to a buffer their size, and the
		// burst's memory goes back.
		e.sigBuf = append([]byte(nil), e.sigBuf...)
		e.sigLog = append([]sigEntry(nil), e.sigLog...)
	}
	e.mu.Unlock()
	// Outside e.mu: a live worker's full queue blocks the pass, never the
	// readers.
	for i := range jobs {
		e.storeDo(jobs[i])
		jobs[i] = storeJob{}
	}
	e.sigJobs = jobs[:0]
}

// message copies en's bytes (raw) into a store.SignalMessage.
func (en *sigEntry) message(raw []byte) store.SignalMessage {
	transport := "udp"
	if en.tcp {
		transport = "tcp"
	}
	return store.SignalMessage{At: time.Unix(0, en.at).UTC(), Transport: transport, Src: en.src, Dst: en.dst, Raw: append([]byte(nil), raw...)}
}

// takeSignals returns the messages an import's call held for its seal
// job, with those the log still has for it (the BYE that ended it is
// logged before the pass that seals), and makes the call's later messages
// go out as jobs. Live capture holds none: nil. Called by the flusher.
func (e *Engine) takeSignals(c *call, rec *recording) []store.SignalMessage {
	rec.sealing = true
	if e.cfg.Live {
		return nil
	}
	e.mu.Lock()
	for i := range e.sigLog {
		if en := &e.sigLog[i]; en.c == c {
			rec.held = append(rec.held, en.message(e.sigBuf[en.off:en.off+en.n]))
			en.c = nil
		}
	}
	e.mu.Unlock()
	held := rec.held
	rec.held, rec.heldBytes = nil, 0
	return held
}
