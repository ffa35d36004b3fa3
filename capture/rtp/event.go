package rtp

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Telephone-event payload, RFC 4733 §2.3:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     event     |E|R| volume    |          duration             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// All packets of one event carry the RTP timestamp of the event's start
// (§2.3.1); duration grows with each update (§2.5.1.2) and counts
// timestamp units from that start. The last packet has E set and is sent
// three times (§2.5.1.4). Events longer than 0xFFFF units are cut into
// segments, each with a new timestamp and no marker (§2.5.1.3).
const eventSize = 4

// TelephoneEvent is one RFC 4733 event block.
type TelephoneEvent struct {
	Event    uint8  // 0-9, 10 '*', 11 '#', 12-15 A-D, 16 flash (RFC 4733 §3.2)
	End      bool   // E bit: last packet(s) of the event
	Volume   uint8  // power level in -dBm0, 0..63
	Duration uint16 // timestamp units since the event's RTP timestamp
}

// Unmarshal parses the first event block of an RFC 4733 payload. Further
// blocks (several events in one packet, §2.5.1.5) are not read: the
// recorder only needs the digits, and those are sent one at a time.
func (e *TelephoneEvent) Unmarshal(b []byte) error {
	if len(b) < eventSize {
		return fmt.Errorf("%w: %d bytes, event block needs %d", ErrEventShort, len(b), eventSize)
	}
	e.Event = b[0]
	e.End = b[1]&0x80 != 0
	e.Volume = b[1] & 0x3F
	e.Duration = binary.BigEndian.Uint16(b[2:])
	return nil
}

// EventSymbol returns the keypad character of an RFC 4733 §3.2 DTMF event:
// '0'-'9', '*', '#', 'A'-'D', '!' for flash, '?' for anything else.
func EventSymbol(ev uint8) byte {
	switch {
	case ev <= 9:
		return '0' + ev
	case ev == 10:
		return '*'
	case ev == 11:
		return '#'
	case ev <= 15:
		return 'A' + ev - 12
	case ev == 16:
		return '!'
	}
	return '?'
}

// Digit is one telephone event as the tracker reports it, exactly once.
type Digit struct {
	Event    uint8
	Symbol   byte   // EventSymbol(Event)
	Volume   uint8  // of the first packet seen
	StartTS  uint32 // RTP timestamp of the event start
	Duration uint32 // timestamp units, summed over long-event segments
	// EndSeen is false when every end packet was lost and the digit was
	// closed by the next event or by Flush; Duration is then the last
	// update seen, a lower bound.
	EndSeen bool
	Arrival int64 // capture time (ns) of the first packet seen
	// Offset is the digit's start from the recording's tick 0, set by
	// Playout from the stream's anchor (so a bookmark lines up with the
	// audio); a bare EventTracker leaves it 0.
	Offset time.Duration
}

// EventStats counts what the tracker did with its packets.
type EventStats struct {
	Packets uint64 // telephone-event packets observed
	Digits  uint64 // digits reported
	Stale   uint64 // packets of an event already reported or superseded
	Bad     uint64 // packets that contradict the current event (same timestamp, other event)
}

// EventTracker turns the telephone-event packets of one stream, in arrival
// order, into digits, each reported once: the three end packets are
// collapsed, lost end packets are survived (the next event or Flush closes
// the digit), packets of an old event that arrive late are ignored, and
// long events spanning several segments become one digit. It keeps no
// history beyond the current event, so its memory is fixed. Not safe for
// concurrent use; one stream's flusher owns it.
type EventTracker struct {
	Stats EventStats

	cur       Digit
	active    bool   // cur holds an event (reported or not)
	reported  bool   // cur has been returned already
	segTS     uint32 // timestamp of cur's current segment
	segBase   uint32 // duration of cur's earlier segments
	segMaxDur uint16 // largest duration seen in the current segment
	out       [2]Digit
}

// longSegment is how close to 0xFFFF a segment's duration must have come
// before a new timestamp with the same event and no marker is taken as the
// next segment of a long event (RFC 4733 §2.5.1.3) instead of a new press.
const longSegment = 0xFFFF - 8000

// Observe feeds one telephone-event packet: its RTP timestamp and marker
// bit, the parsed event and its capture time. It returns the digits that
// became complete (zero, one, or two when a packet both closes a digit
// whose end was lost and is itself a complete event). The slice points
// into the tracker and is valid until the next call; no allocation.
func (t *EventTracker) Observe(ts uint32, marker bool, e TelephoneEvent, arrival int64) []Digit {
	t.Stats.Packets++
	n := 0
	if t.active {
		switch d := int32(ts - t.segTS); {
		case d == 0:
			if e.Event != t.cur.Event {
				t.Stats.Bad++
				return t.out[:0]
			}
			if t.reported {
				t.Stats.Stale++ // the repeated end packets
				return t.out[:0]
			}
			t.segMaxDur = max(t.segMaxDur, e.Duration)
			t.cur.Duration = max(t.cur.Duration, t.segBase+uint32(e.Duration))
			if e.End {
				t.cur.EndSeen = true
				n = t.emit(n)
			}
			return t.out[:n]
		case d < 0:
			t.Stats.Stale++ // an older event, already closed
			return t.out[:0]
		case !t.reported && !marker && e.Event == t.cur.Event &&
			t.segMaxDur >= longSegment && uint32(d) <= 0x10000:
			t.segBase += uint32(d)
			t.segTS = ts
			t.segMaxDur = e.Duration
			t.cur.Duration = max(t.cur.Duration, t.segBase+uint32(e.Duration))
			if e.End {
				t.cur.EndSeen = true
				n = t.emit(n)
			}
			return t.out[:n]
		}
		if !t.reported {
			n = t.emit(n) // its end packets were all lost
		}
	}
	t.active, t.reported = true, false
	t.segTS, t.segBase, t.segMaxDur = ts, 0, e.Duration
	t.cur = Digit{Event: e.Event, Symbol: EventSymbol(e.Event), Volume: e.Volume,
		StartTS: ts, Duration: uint32(e.Duration), EndSeen: e.End, Arrival: arrival}
	if e.End {
		n = t.emit(n)
	}
	return t.out[:n]
}

func (t *EventTracker) emit(n int) int {
	t.out[n] = t.cur
	t.reported = true
	t.Stats.Digits++
	return n + 1
}

// Flush reports the current event if it has not been reported yet (its
// end packets were lost and no later event came): call it when the stream
// ends. Like Observe, the result is valid until the next call.
func (t *EventTracker) Flush() []Digit {
	if t.active && !t.reported {
		return t.out[:t.emit(0)]
	}
	return t.out[:0]
}
