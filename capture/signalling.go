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
// The seal job takes the call's messages still in the log (the BYE that
// ended it, logged before the pass that seals) and stores them before it
// seals. A crash loses at most a second of a call's signalling, as of its
// audio.
//
// From the sixth to the eighth session an import held each recorded
// call's messages in the call until its seal: one append per call instead
// of about two (each opens the side file and derives its key). It showed
// no gain end to end, and its 3.9 KiB a call (the copies and the slices
// holding them, BenchmarkMemoryPerCall's heap profile) left the memory
// goal of 64 KiB a call no margin: the same binaries that had measured
// 63.1 to 63.2 measured 64.1 to 64.5 in a later session's runs.

// maxSignalLog bounds the bytes of SIP waiting for recordings; beyond it
// messages are counted in Stats.SignalDropped, not stored.
const maxSignalLog = 64 << 20

// releaseSignalLog is the capacity above which a log's buffer shrinks to
// what it holds once it is three quarters empty.
const releaseSignalLog = 256 << 10

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
		if c.sigJob == 0 {
			jobs = append(jobs, storeJob{kind: jobSignal, rec: c.rec.r})
			calls = append(calls, c)
			c.sigJob = len(jobs)
		}
		j := &jobs[c.sigJob-1]
		j.sig = append(j.sig, en.message(raw))
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

// takeSignals returns the messages the log still has for an import's
// call (the BYE that ended it is logged before the pass that seals), for
// its seal job to store, and makes the call's later messages go out as
// jobs. Live capture leaves them to the pass: nil. Called by the flusher.
func (e *Engine) takeSignals(c *call) []store.SignalMessage {
	if e.cfg.Live {
		return nil
	}
	var msgs []store.SignalMessage
	e.mu.Lock()
	for i := range e.sigLog {
		if en := &e.sigLog[i]; en.c == c {
			msgs = append(msgs, en.message(e.sigBuf[en.off:en.off+en.n]))
			en.c = nil
		}
	}
	e.mu.Unlock()
	return msgs
}
