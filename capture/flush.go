package capture

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/callvault/callvault/capture/rtp"
	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
)

const tickMs = audio.DefaultTickMs

// holdback is how far past the newest media ticks are written during a
// call; catchUp is the gap after which a resuming packet first brings the
// timeline up to its arrival (well inside the playout's buffer).
const (
	holdback = int64(3 * tickMs * int(time.Millisecond))
	// catchUp is well inside the playout's 23-tick timeline (its delay,
	// 120 ms, plus this and a packet stay under 460 ms), so a ring drained
	// after a stall (a full ring holds 1.3 s) never lands a packet on a
	// tick not yet pulled.
	catchUp = 100 * time.Millisecond
)

// recording is the flusher's state for a call being recorded.
type recording struct {
	r        *pendingRecorder
	start    int64 // capture time of tick 0, ns
	grid     *audio.GridWriter
	raw      *rawWriter // instead of grid, for codecs we cannot decode
	ch       [2]channel // 0: left (local party's voice), 1: right (remote)
	flags    [2]audio.TickFlag
	ticks    int64
	pulledAt int64 // capture time of the last pull
	events   int   // c.events already turned into bookmarks
	marks    int   // bookmarks added
	codecs   []string
	failed   error
	// While the call is deferred (batch.go): per channel, the capture time
	// and stamp of the newest packet drained, which is what the stream's
	// lastPacket said at the pass being caught up.
	lastArr [2]int64
	lastOrd [2]uint32
}

// channel is one side of the stereo recording: the voice of one party.
type channel struct {
	party int
	play  *rtp.Playout
	stats *rtp.StreamStats
	codec audio.Codec
	name  string
	clock int
}

// flush is one pass over every call: create recordings that are due, move
// packets from the rings through playout into the recording files, turn
// signalling events and DTMF into bookmarks, and seal calls that ended.
// Only one pass runs at a time; all store I/O happens here.
func (e *Engine) flush(now int64) {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	e.flushLocked(now)
}

// flushLocked is a pass over every call (flushMu held). In imports, a
// deferred call is caught up first, right before its pass, while its
// state is hot.
func (e *Engine) flushLocked(now int64) {
	start := time.Now()
	e.passNo++
	e.deferUntil = maxTime
	e.mu.Lock()
	calls := e.passCalls[:0]
	for c := range e.calls {
		calls = append(calls, c)
	}
	e.mu.Unlock()
	defer func() {
		clear(calls) // finished calls must not stay reachable from here
		e.passCalls = calls[:0]
	}()
	var waiting int64
	for i, c := range calls {
		for step := 0; step <= 3 && i+1+step < len(calls); step++ {
			prefetchCall(calls[i+1+step], step)
		}
		if i+1 < len(calls) && calls[i+1].deferred {
			e.spread.load(calls[i+1])
		}
		if c.deferred {
			e.catchUp(c)
			c.deferred = false
		}
		e.flushCall(c, now)
		e.maybeDefer(c)
		for _, s := range c.streams {
			for i := range s.activeLanes() {
				if r := s.lanes[i].Load(); r != nil {
					waiting += int64(r.Len())
				}
			}
		}
	}
	e.stats.RingOccupancy.Store(waiting)
	e.passLog = e.passLog[:0]
	e.handSignals()
	e.expireLinger(now)
	e.notePass(start)
}

// maxTime is a capture time later than any.
const maxTime = int64(^uint64(0) >> 1)

// notePass files how long a pass took.
func (e *Engine) notePass(start time.Time) {
	d := time.Since(start).Nanoseconds()
	e.stats.FlushNanos.Store(d)
	if d > e.stats.FlushMaxNanos.Load() {
		e.stats.FlushMaxNanos.Store(d)
	}
}

func (e *Engine) flushCall(c *call, now int64) {
	e.mu.Lock()
	ended, answered, failed, isSIP := c.ended, c.answered, c.failed, c.sip
	if !ended {
		e.checkTimeout(c, now)
		ended = c.ended
	}
	endAt := c.endAt
	e.mu.Unlock()

	if c.rec == nil {
		// A recording is made for every answered call (even one whose media
		// the tap never saw: it shows as silent and one-way), and for RTP
		// without signalling. Early media starts it before the answer; if
		// nobody answers, it is discarded below.
		if ended && (failed || !answered) {
			e.finish(c)
			return
		}
		if !c.hasMedia() && !answered {
			return
		}
		if err := e.startRecording(c, now); err != nil {
			e.stats.RecordErrors.Add(1)
			e.cfg.Log.Error("start recording", "call", c.key, "err", err)
			e.discardRings(c)
			if ended {
				e.finish(c)
			}
			return
		}
	}
	rec := c.rec
	e.drainUntil(c, rec, 0, false)
	if lm := c.lastMedia(); rec.grid != nil && lm > 0 {
		// Ticks are written up to just past the newest media, not to now:
		// when a call ends by timeout, the silence before its detection is
		// not part of the call.
		e.pullTicks(rec, min(now, lm+holdback), -1)
	}
	e.bookmarks(c, rec)
	if !ended {
		return
	}
	if isSIP && !answered {
		// Early media of a call nobody answered: not a recording.
		e.storeDo(storeJob{kind: jobAbort, rec: rec.r})
		c.rec = nil
		e.finish(c)
		return
	}
	e.seal(c, rec, endAt)
}

// checkTimeout ends calls whose media and signalling went quiet. Called
// with e.mu held.
func (e *Engine) checkTimeout(c *call, now int64) {
	last := max(c.lastMedia(), c.lastSig)
	switch {
	case !c.answered && !c.hasMedia() && now-c.created > int64(e.cfg.SetupTimeout):
		c.failed = true
		e.endCall(c, now, "setup timeout")
	case c.hasMedia() || c.answered:
		limit := e.cfg.RTPTimeout
		if c.parties[0].hold || c.parties[1].hold {
			limit = e.cfg.HoldTimeout
		}
		if now-last > int64(limit) {
			end := c.lastMedia()
			if end == 0 {
				end = c.lastSig
			}
			e.endCall(c, end+int64(tickMs)*int64(time.Millisecond), "rtp timeout")
		}
	}
}

// startRecording creates the recording in the store: its metadata from
// the dialog, its channels from the codecs in the SDP and the first
// packets.
func (e *Engine) startRecording(c *call, now int64) error {
	e.mu.Lock()
	if c.local < 0 {
		e.decideLocal(c)
	}
	local := c.local
	chParty := [2]int{local, 1 - local}
	var chans [2]channel
	playable := true
	codecs := make([]string, 0, 2)
	for i, party := range chParty {
		pt := -1
		if v := c.streams[party].firstPT.Load(); v > 0 {
			pt = int(v - 1)
		} else if m := c.parties[1-party].codecMap; len(m) > 0 {
			pt = int(m[0].pt)
		} else if m := c.parties[party].codecMap; len(m) > 0 {
			pt = int(m[0].pt)
		}
		chans[i].party = party
		if pt >= 0 {
			codec, clock, name, eventPT := c.codecFor(party, uint8(pt))
			if eventPT != 0 && uint8(pt) == eventPT {
				// Only telephone events so far: the audio codec is not
				// known; G.711 silence carries the timeline.
				codec, clock, name = audio.CodecPCMU, 8000, "PCMU"
			}
			if codec == audio.CodecL16 && clock != 8000 && clock != 16000 {
				// The renderer plays 8 and 16 kHz; other rates are kept as
				// captured.
				codec = audio.CodecUnknown
				name += "/" + strconv.Itoa(clock)
			}
			chans[i].codec, chans[i].name, chans[i].clock = codec, name, clock
		}
	}
	// A channel without packets or SDP follows the other one.
	for i := range chans {
		if chans[i].name == "" {
			chans[i].codec, chans[i].name, chans[i].clock = chans[1-i].codec, chans[1-i].name, chans[1-i].clock
		}
		if chans[i].name == "" {
			chans[i].codec, chans[i].name, chans[i].clock = audio.CodecPCMU, "PCMU", 8000
		}
		if chans[i].codec == audio.CodecUnknown {
			playable = false
		}
		if len(codecs) == 0 || codecs[len(codecs)-1] != chans[i].name {
			codecs = append(codecs, chans[i].name)
		}
	}
	lp, rp := c.parties[local], c.parties[1-local]
	m := meta.Recording{
		Direction:        meta.Direction(c.direction),
		Source:           meta.SourceMirror,
		Technology:       "SIP passive capture",
		SIPCallIDIngress: c.callID,
		SessionID:        c.sessionID,
		PBXCallID:        c.pbxCallID,
		Node:             e.cfg.Node,
		Codecs:           codecs,
		Channels:         2,
		LocalParty:       meta.LocalParty{Number: lp.number, Name: lp.name},
		RemoteParty:      meta.RemoteParty{Number: rp.number, Name: rp.name},
		File:             meta.FileInfo{Format: meta.FormatGrid},
	}
	if !c.sip {
		m.Technology = "RTP without signalling"
	}
	if m.Direction == "" {
		m.Direction = meta.DirUnknown
	}
	replaces, referTo := c.replaces, c.referTo
	e.mu.Unlock()

	// Tick 0 is the earliest packet waiting (so nothing queued falls before
	// the recording), else the answer, else now.
	start := now
	if c.answeredAt > 0 && c.answeredAt < start {
		start = c.answeredAt
	}
	for _, s := range c.streams {
		for i := range s.activeLanes() {
			if r := s.lanes[i].Load(); r != nil {
				if sl, _, ok := r.Peek(); ok && sl.Arrival < start {
					start = sl.Arrival
				}
			}
		}
	}
	m.Start = e.realTime(start)
	if !playable {
		m.File.Format = meta.FormatRTP
	}
	id, err := newRecordingID()
	if err != nil {
		return err
	}
	m.ID = id
	// The store creates the recording on the store worker; until it has,
	// the grid's bytes wait in the pendingRecorder.
	r := newPendingRecorder(id)
	rec := &recording{r: r, start: start, ch: chans, codecs: codecs}
	if !playable {
		rec.raw, err = newRawWriter(r, start)
	} else {
		err = e.openGrid(c, rec, m.Start)
	}
	if err != nil {
		return err
	}
	e.storeDo(storeJob{kind: jobCreate, rec: r, meta: m})
	if !playable {
		e.stats.NotPlayable.Add(1)
	}
	c.rec = rec
	e.mu.Lock()
	if c.callID != "" {
		if len(e.recByKey) > 100_000 {
			clear(e.recByKey)
		}
		e.recByKey[c.callID] = id
	}
	var links []string
	for _, other := range []string{replaces, referTo} {
		if oid := e.recByKey[other]; other != "" && oid != "" && oid != id {
			links = append(links, oid)
		}
	}
	e.mu.Unlock()
	for _, oid := range links {
		e.storeDo(storeJob{kind: jobApply, rec: r, cmd: &meta.LinkRelated{ID: id, Other: oid, Relation: "transfer"}})
	}
	return nil
}

func (e *Engine) openGrid(c *call, rec *recording, start time.Time) error {
	var gch [2]audio.GridChannel
	for i := range rec.ch {
		ch := &rec.ch[i]
		role, label := audio.RoleLocal, "local"
		if i == 1 {
			role, label = audio.RoleRemote, "remote"
		}
		rate, clock := 8000, 8000
		switch ch.codec {
		case audio.CodecG722:
			rate = 16000 // RTP clock 8000 for historic reasons (RFC 3551 §4.5.2)
		case audio.CodecL16:
			rate, clock = ch.clock, ch.clock
		}
		gch[i] = audio.GridChannel{Codec: ch.codec, Role: role, SampleRate: rate, ClockRate: clock, Label: label}
		e.mu.Lock()
		pt := int32(-1)
		if v := c.streams[ch.party].firstPT.Load(); v > 0 {
			pt = v - 1
		}
		var eventPT uint8
		if pt >= 0 {
			_, _, _, eventPT = c.codecFor(ch.party, uint8(pt))
		} else {
			_, _, _, eventPT = c.codecFor(ch.party, 0)
		}
		e.mu.Unlock()
		cfg := rtp.PlayoutConfig{Codec: ch.codec, EventPT: eventPT, ClockRate: clock, TickMs: tickMs, Start: rec.start}
		if pt >= 0 && uint8(pt) != eventPT {
			cfg.PayloadType = uint8(pt)
		} else {
			cfg.PayloadType = payloadTypeOf(ch.codec)
		}
		p, err := rtp.NewPlayout(cfg)
		if err != nil {
			return fmt.Errorf("playout for %s: %w", ch.name, err)
		}
		ch.play = p
		ch.stats = rtp.NewStreamStats(clock)
	}
	g, err := audio.NewGridWriter(rec.r, audio.GridConfig{TickMs: tickMs, Start: start, Channels: gch[:]})
	if err != nil {
		return err
	}
	for i := range rec.ch {
		if n, want := rec.ch[i].play.TickBytes(), g.Header().Channels[i].BytesPerTick; n != want {
			return fmt.Errorf("%w: %s playout ticks of %d bytes, grid channel of %d", audio.ErrBadArgument, rec.ch[i].name, n, want)
		}
	}
	rec.grid = g
	return nil
}

func payloadTypeOf(c audio.Codec) uint8 {
	switch c {
	case audio.CodecPCMA:
		return 8
	case audio.CodecG722:
		return 9
	}
	return 0
}

// drainUntil moves the call's queued packets into its channels' playouts
// (or the raw packet file) and statistics: every one, or, when bounded,
// those stamped at or before order (a pass being caught up, batch.go).
func (e *Engine) drainUntil(c *call, rec *recording, order uint32, bounded bool) {
	for i := range rec.ch {
		ch := &rec.ch[i]
		s := c.streams[ch.party]
		for l := range s.activeLanes() {
			ring := s.lanes[l].Load()
			if ring == nil {
				continue
			}
			fn := func(sl *rtp.Slot, payload []byte) {
				if int32(sl.Order-rec.lastOrd[i]) > 0 {
					rec.lastArr[i], rec.lastOrd[i] = sl.Arrival, sl.Order
				}
				if ch.stats == nil {
					ch.stats = rtp.NewStreamStats(8000)
				}
				ch.stats.Update(sl.Seq, sl.TS, sl.SSRC, sl.Arrival, true)
				if rec.raw != nil {
					if err := rec.raw.write(i, sl, payload); err != nil && rec.failed == nil {
						rec.failed = err
					}
					return
				}
				if sl.Arrival-rec.pulledAt > int64(catchUp) {
					// Media resumes after a long gap (hold, silence
					// suppression): bring the timeline up to it first, so the
					// packet does not land on ticks still unwritten.
					e.pullTicks(rec, sl.Arrival, -1)
				}
				for _, d := range ch.play.Write(sl, payload) {
					e.digit(c, rec, d)
				}
			}
			if bounded {
				ring.DrainUntil(order, fn)
			} else {
				ring.Drain(fn)
			}
		}
	}
}

// pullTicks writes every tick both channels have ready at capture time
// now, or, at the end of a call (until ≥ 0), every tick up to index until
// and on until both channels have given out their last packet.
func (e *Engine) pullTicks(rec *recording, now int64, until int64) {
	if now > rec.pulledAt {
		rec.pulledAt = now
	}
	for {
		var ok0, ok1 bool
		if until < 0 {
			if !rec.ch[0].play.Ready(now) || !rec.ch[1].play.Ready(now) {
				return
			}
		} else if rec.ticks >= until && rec.ch[0].play.Drained() && rec.ch[1].play.Drained() {
			return
		}
		// Playout writes each channel's tick straight into the grid's
		// buffer for it.
		rec.flags[0], ok0 = rec.ch[0].play.NextTick(rec.grid.TickBuffer(0), now)
		rec.flags[1], ok1 = rec.ch[1].play.NextTick(rec.grid.TickBuffer(1), now)
		if !ok0 || !ok1 {
			return
		}
		if err := rec.grid.CommitTick(rec.flags[:]); err != nil {
			e.writeFailed(rec, err)
			return
		}
		rec.ticks++
	}
}

// flushGrid ends a batch of ticks (batch.go): they go to the store now.
func (e *Engine) flushGrid(rec *recording) {
	if err := rec.grid.EndBatch(); err != nil {
		e.writeFailed(rec, err)
	}
}

func (e *Engine) writeFailed(rec *recording, err error) {
	if rec.failed == nil {
		rec.failed = err
		e.stats.RecordErrors.Add(1)
		e.cfg.Log.Error("write recording", "id", rec.r.ID(), "err", err)
	}
}

// digit turns an RFC 4733 telephone event into a DTMF bookmark.
func (e *Engine) digit(c *call, rec *recording, d rtp.Digit) {
	label := string(d.Symbol)
	if d.Duration > 0 {
		label += " (" + strconv.Itoa(int(d.Duration/8)) + " ms)"
	}
	e.addBookmark(rec, meta.BookmarkDTMF, d.Offset.Milliseconds(), label, e.realTime(d.Arrival))
}

// bookmarks turns signalling events (SIP INFO DTMF, hold, transfer) into
// bookmarks, and updates call info learnt after the recording began.
func (e *Engine) bookmarks(c *call, rec *recording) {
	e.mu.Lock()
	evs := c.events[rec.events:]
	rec.events = len(c.events)
	var info *meta.SetCallInfo
	if c.infoDirty {
		c.infoDirty = false
		lp, rp := c.parties[c.local], c.parties[1-c.local]
		info = &meta.SetCallInfo{
			ID: rec.r.ID(), SIPCallIDIngress: c.callID, Direction: meta.Direction(c.direction),
			Technology:  "SIP passive capture (signalling seen after the media)",
			LocalParty:  &meta.LocalParty{Number: lp.number, Name: lp.name},
			RemoteParty: &meta.RemoteParty{Number: rp.number, Name: rp.name},
		}
	}
	evs = append([]event(nil), evs...)
	e.mu.Unlock()
	for _, ev := range evs {
		off := max(0, (ev.at-rec.start)/int64(time.Millisecond))
		e.addBookmark(rec, meta.BookmarkType(ev.kind), off, ev.label, e.realTime(ev.at))
	}
	if info != nil {
		e.storeDo(storeJob{kind: jobApply, rec: rec.r, cmd: info})
	}
}

func (e *Engine) addBookmark(rec *recording, kind meta.BookmarkType, offMs int64, label string, at time.Time) {
	rec.marks++
	e.storeDo(storeJob{kind: jobApply, rec: rec.r, cmd: &meta.AddBookmark{ID: rec.r.ID(), Bookmark: meta.Bookmark{
		ID: "b" + strconv.Itoa(rec.marks), Type: kind, OffsetMs: offMs, Author: "system:capture", Label: label, Time: at.UTC(),
	}}})
}

// seal finishes a call's recording: the playouts flush what they hold, the
// ticks up to the end of the call are written, the store seals the file
// with duration, codecs and per-channel quality.
func (e *Engine) seal(c *call, rec *recording, endAt int64) {
	endTick := (endAt - rec.start + int64(tickMs)*int64(time.Millisecond) - 1) / (int64(tickMs) * int64(time.Millisecond))
	if rec.grid != nil {
		for i := range rec.ch {
			for _, d := range rec.ch[i].play.Close() {
				e.digit(c, rec, d)
			}
		}
		e.pullTicks(rec, endAt, max(endTick, rec.ticks))
	}
	durMs := rec.ticks * int64(tickMs)
	if rec.raw != nil {
		durMs = max(0, (endAt-rec.start)/int64(time.Millisecond))
	}
	q := make([]meta.ChannelQuality, 2)
	sum := CallSummary{CallID: c.callID, RecordingID: rec.r.ID(), Signalling: c.sip, Answered: c.answered || !c.sip,
		Codecs: rec.codecs, Playable: rec.grid != nil, EndReason: c.endReason, Bookmarks: rec.marks, DurationMs: durMs}
	received := [2]int64{}
	for i := range rec.ch {
		ch := &rec.ch[i]
		label := "local"
		if i == 1 {
			label = "remote"
		}
		q[i].Label = label
		if ch.stats != nil {
			snap := ch.stats.Snapshot()
			q[i].PacketsExpected, q[i].PacketsReceived, q[i].JitterMs = snap.Expected, snap.Received, round2(snap.JitterMs)
			if snap.Expected > 0 {
				q[i].LossPct = round2(100 * float64(max(snap.Lost, 0)) / float64(snap.Expected))
			}
			received[i] = snap.Received
			sum.Packets += snap.Received
			sum.Expected += snap.Expected
			sum.Lost += max(snap.Lost, 0)
			if snap.Received > 0 {
				sum.Streams++
			}
		}
		s := c.streams[ch.party]
		if s.rtcpReports.Load() > 0 {
			if j := float64(s.rtcpJitter.Load()) / 8; j > q[i].JitterMs {
				q[i].JitterMs = round2(j)
			}
		}
	}
	if (received[0] == 0) != (received[1] == 0) {
		q[0].OneWay, q[1].OneWay = true, true
		sum.OneWay = true
		e.stats.OneWayCalls.Add(1)
	}
	if sum.Answered && received[0] == 0 && received[1] == 0 {
		// Answered, and not one RTP packet either way: the media took a
		// path the mirror does not cover (another SBC leg, a media
		// server), which the admin wants to hear of before anyone plays
		// the recording's silence.
		sum.NoMedia = true
		e.stats.NoMediaCalls.Add(1)
	}
	if sum.Expected > 0 {
		sum.LossPct = round2(100 * float64(sum.Lost) / float64(sum.Expected))
	}
	ch := 2
	final := store.Final{DurationMs: &durMs, Channels: &ch, Codecs: rec.codecs, Quality: q}
	if rec.raw != nil {
		if err := rec.raw.flush(); err != nil && rec.failed == nil {
			rec.failed = err
		}
	}
	// From here the worker owns rec.r: it stores an import's last SIP
	// messages (the teardown), seals the file, then files the summary with
	// the reference the store assigned.
	e.storeDo(storeJob{kind: jobSeal, rec: rec.r, final: final, sum: &sum, sig: e.takeSignals(c)})
	e.finish(c)
}

// finish forgets a call: its endpoints leave the stream table. Its
// summary, if it was recorded, is filed by the seal job.
func (e *Engine) finish(c *call) {
	e.discardRings(c)
	for _, s := range c.streams {
		s.gone.Store(true)
	}
	e.mu.Lock()
	c.deferred = false
	delete(e.slow, c)
	// The endpoints stay mapped to the finished call for a while, so RTP
	// that trails a BYE or a failure is dropped, not taken for a new call
	// without signalling.
	for i := range c.parties {
		for _, ap := range c.parties[i].media {
			if ep := e.table.get(ap); ep != nil && ep.c == c {
				e.linger = append(e.linger, lingerEntry{ap: ap, ep: ep, until: e.clock.Load() + int64(lingerTime)})
			}
		}
	}
	if _, ok := e.calls[c]; ok {
		delete(e.calls, c)
		e.stats.CallsActive.Add(-1)
	}
	if e.byID[c.callID] == c {
		delete(e.byID, c.callID)
	}
	e.mu.Unlock()
}

func (e *Engine) discardRings(c *call) {
	for _, s := range c.streams {
		for i := range s.activeLanes() {
			if r := s.lanes[i].Load(); r != nil {
				r.Drain(func(*rtp.Slot, []byte) {})
			}
		}
	}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// lingerTime is how long a finished call's endpoints absorb trailing RTP.
const lingerTime = 5 * time.Second

type lingerEntry struct {
	ap    netip.AddrPort
	ep    *endpoint
	until int64
}

// expireLinger drops the stream table entries of finished calls whose
// linger time has passed.
func (e *Engine) expireLinger(now int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	keep := e.linger[:0]
	for _, l := range e.linger {
		if now < l.until {
			keep = append(keep, l)
			continue
		}
		e.table.remove(l.ap, l.ep)
	}
	clear(e.linger[len(keep):])
	e.linger = keep
}
