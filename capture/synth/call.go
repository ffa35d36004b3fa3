package synth

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/callvault/callvault/store/audio"
)

// mix64 is the splitmix64 finalizer: every derived value (SSRC, tags,
// loss pattern, noise) is mix64 of the seed and what it is for, so the
// values are independent of each other and of generation order.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hash derives a value for (seed, call, purpose).
func hash(seed uint64, call int, purpose uint64) uint64 {
	return mix64(mix64(seed^purpose*0x2545f4914f6cdd1d) ^ uint64(call))
}

// Purposes for hash.
const (
	hSSRC = iota + 1
	hSeq
	hTS
	hStart
	hFirst
	hTag
	hBranch
	hCallID
	hKey
	hLoss
	hReorder
	hJitter
)

// plan lays out call i of cfg (normalized).
func plan(cfg *Config, i int) Call {
	a := i + 1
	callerIP := netip.AddrFrom4([4]byte{10, 1, byte(a >> 8), byte(a)})
	calleeIP := netip.AddrFrom4([4]byte{10, 2, byte(a >> 8), byte(a)})
	port := uint16(2 * (i % 5000))
	c := Call{
		Index:  i,
		CallID: fmt.Sprintf("%012x-%05d@%s", hash(cfg.Seed, i, hCallID)&0xffffffffffff, i, callerIP),
		Caller: Party{Number: fmt.Sprintf("%d", 100000+i), SIP: netip.AddrPortFrom(callerIP, SIPPort),
			RTP: netip.AddrPortFrom(callerIP, 20000+port)},
		Callee: Party{Number: fmt.Sprintf("+4989100%05d", i), SIP: netip.AddrPortFrom(calleeIP, SIPPort),
			RTP: netip.AddrPortFrom(calleeIP, 40000+port)},
		loss: cfg.LossPct,
	}
	// A per-call offset inside one packet interval, so the calls' packets
	// interleave instead of arriving in bursts at the same instant.
	off := time.Duration(hash(cfg.Seed, i, hStart)%20000) * time.Microsecond
	c.Invite = cfg.Start.Add(time.Duration(i)*cfg.Stagger + off)
	c.Answer = c.Invite.Add(cfg.RingTime)
	c.Bye = c.Answer.Add(cfg.Duration)
	for d := range c.Streams {
		s := &c.Streams[d]
		h := hash(cfg.Seed, 2*i+d, hFirst)
		// The trunk starts sending 5-15 ms after its 200 OK, the phone
		// 20-40 ms after (it waits for the 200 OK to reach it).
		first := 5*time.Millisecond + time.Duration(h%10000)*time.Microsecond
		if d == CallerToCallee {
			first = 20*time.Millisecond + time.Duration(h%20000)*time.Microsecond
		}
		s.First = c.Answer.Add(first)
		s.Slots = int((cfg.Duration - first + Ptime - 1) / Ptime)
		// XOR with the stream number keeps SSRCs distinct in a file.
		s.SSRC = uint32(mix64(cfg.Seed^hSSRC)) ^ uint32(2*i+d)
		s.FirstSeq = uint16(hash(cfg.Seed, 2*i+d, hSeq))
		s.FirstTS = uint32(hash(cfg.Seed, 2*i+d, hTS))
		c.key[d] = hash(cfg.Seed, 2*i+d, hKey)
		// A tone of 250..1750 Hz, different for neighbouring streams:
		// step is the phase increment per sample of a 2^32 phase circle.
		f := uint64(250 + 25*((2*i+d)%61))
		c.step[d] = uint32(f << 32 / 8000)
	}
	lead := c.Streams[CallerToCallee].First.Sub(c.Answer)
	for _, dg := range cfg.DTMF {
		slot := int((dg.At - lead + Ptime - 1) / Ptime)
		n := int((dg.Length + Ptime - 1) / Ptime)
		sd := SentDigit{
			Symbol: dg.Symbol, Event: uint8(eventCode(dg.Symbol)), Slot: slot, Slots: n,
			TS: c.Streams[CallerToCallee].FirstTS + uint32(slot*FrameBytes), Duration: uint16(min(n*FrameBytes, 0xffff)),
			Offset: lead + time.Duration(slot)*Ptime,
		}
		c.DTMF = append(c.DTMF, sd)
		c.Streams[CallerToCallee].Events += n + 2
	}
	for d := range c.Streams {
		s := &c.Streams[d]
		for k := 0; k < s.Slots; k++ {
			switch c.kind(d, k) {
			case SlotLost:
				s.Lost++
			default:
				s.Packets++
			}
		}
	}
	return c
}

// SlotKind says what a stream sent in one slot.
type SlotKind uint8

// Slot kinds.
const (
	SlotAudio SlotKind = iota // a PCMU packet (Payload)
	SlotEvent                 // an RFC 4733 telephone-event packet
	SlotLost                  // an audio packet dropped by LossPct
)

// kind classifies slot k of direction d.
func (c *Call) kind(d, k int) SlotKind {
	if _, ok := c.digitAt(d, k); ok {
		return SlotEvent
	}
	if k > 0 && c.loss > 0 && unit(mix64(c.key[d]^hLoss<<56^uint64(k)))*100 < c.loss {
		return SlotLost
	}
	return SlotAudio
}

// Kind says what direction d sent in slot k.
func (c *Call) Kind(d, k int) SlotKind {
	if d != CallerToCallee && d != CalleeToCaller || k < 0 || k >= c.Streams[d].Slots {
		return SlotLost
	}
	return c.kind(d, k)
}

// digitAt finds the digit whose event packets occupy slot k, and the
// packet's number within it (0..Slots+1).
func (c *Call) digitAt(d, k int) (int, bool) {
	if d != CallerToCallee {
		return 0, false
	}
	for i := range c.DTMF {
		if dg := &c.DTMF[i]; k >= dg.Slot && k < dg.Slot+dg.Slots+2 {
			return i, true
		}
	}
	return 0, false
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// Payload fills dst (FrameBytes long) with the PCMU audio of slot k of
// direction d, whether or not that slot was sent as audio.
func (c *Call) Payload(d, k int, dst []byte) {
	key, step := c.key[d], c.step[d]
	n := uint32(k * FrameBytes)
	for j := range dst[:FrameBytes] {
		// A parabolic sine (amplitude 8192) from the phase, in integers so
		// it is the same on every platform, plus ±512 of keyed noise that
		// makes every packet unique.
		t := int64(int32((n+uint32(j))*step)) >> 16 // [-32768, 32768): one period
		abs := t
		if abs < 0 {
			abs = -abs
		}
		s := t * (32768 - abs) >> 15
		s += int64(mix64(key^uint64(k)<<16^uint64(j))>>54) - 512
		dst[j] = audio.LinearToUlaw(int16(s))
	}
}

// Timeline returns what direction d's channel of the recording should hold
// from the stream's first packet on: Slots·FrameBytes bytes, each slot its
// audio payload, or µ-law silence where an event or a lost packet was.
func (c *Call) Timeline(d int) []byte {
	n := c.Streams[d].Slots
	out := make([]byte, n*FrameBytes)
	for k := 0; k < n; k++ {
		b := out[k*FrameBytes : (k+1)*FrameBytes]
		if c.kind(d, k) == SlotAudio {
			c.Payload(d, k, b)
			continue
		}
		for j := range b {
			b[j] = ulawSilence
		}
	}
	return out
}

// delay is how long after its slot time audio packet k of direction d is
// sent (jitter, reordering); 0 for slot 0 and events.
func (g *generator) delay(c *Call, d, k int) (time.Duration, bool) {
	if k == 0 {
		return 0, false
	}
	var dl time.Duration
	if j := g.cfg.Jitter; j > 0 {
		dl = time.Duration(mix64(c.key[d]^hJitter<<56^uint64(k))%uint64(j/time.Microsecond+1)) * time.Microsecond
	}
	re := g.cfg.ReorderPct > 0 && unit(mix64(c.key[d]^hReorder<<56^uint64(k)))*100 < g.cfg.ReorderPct
	if re {
		dl += g.cfg.ReorderDelay
	}
	return dl, re
}
