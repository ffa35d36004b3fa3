package sip

import (
	"bytes"
	"strings"
	"testing"
)

// frameAll feeds stream to f in chunks of the given sizes (cycled) and
// returns the Call-IDs of the messages, checking the buffer bound on the way.
func frameAll(t testing.TB, f *Framer, stream []byte, chunks []int) []string {
	var m Message
	var ids []string
	for i := 0; len(stream) > 0; i++ {
		c := len(stream)
		if len(chunks) > 0 {
			c = max(1, min(chunks[i%len(chunks)], len(stream)))
		}
		n := f.Feed(stream[:c])
		stream = stream[n:]
		progress := n > 0
		for msg, ok := f.Next(&m); ok; msg, ok = f.Next(&m) {
			if !bytes.HasPrefix(msg, m.Method) && m.StatusCode == 0 {
				t.Fatalf("message %q does not start with its method", clip(msg))
			}
			ids = append(ids, string(m.CallID()))
			progress = true
		}
		if f.Buffered() > len(f.buf) {
			t.Fatalf("buffered %d > %d", f.Buffered(), len(f.buf))
		}
		if !progress && f.Feed(stream[:min(1, len(stream))]) == 0 {
			t.Fatal("Framer stalled: Feed consumes nothing after Next")
		} else if !progress {
			stream = stream[1:]
		}
	}
	return ids
}

func msg(callID string, body string) string {
	return "INFO sip:a@b SIP/2.0\r\nCall-ID: " + callID + "\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestFramerSplits(t *testing.T) {
	stream := []byte("\r\n\r\n" + msg("a", "Signal=1\r\n") + "\r\n" + msg("b", "") + msg("c", strings.Repeat("x", 3000)) + "\r\n\r\n")
	want := "a,b,c"
	// Every split point, and several chunk patterns.
	for split := 0; split <= len(stream); split++ {
		f := NewFramer(0, nil)
		got := frameAll(t, f, stream, []int{split, len(stream)})
		if strings.Join(got, ",") != want {
			t.Fatalf("split at %d: %v", split, got)
		}
	}
	for _, chunks := range [][]int{{1}, {2, 3}, {7}, {1460}, {100, 1, 5000}} {
		f := NewFramer(0, nil)
		if got := frameAll(t, f, stream, chunks); strings.Join(got, ",") != want {
			t.Errorf("chunks %v: %v", chunks, got)
		}
		st := f.Stats()
		if st.Messages.Load() != 3 || st.Keepalives.Load() < 3 || st.Malformed.Load() != 0 || st.DroppedBytes.Load() != 0 {
			t.Errorf("chunks %v: stats msgs %d keepalives %d malformed %d dropped %d", chunks, st.Messages.Load(), st.Keepalives.Load(), st.Malformed.Load(), st.DroppedBytes.Load())
		}
	}
}

func TestFramerGapResync(t *testing.T) {
	one, two, three := msg("one", "body-one"), msg("two", "v=0\r\n"), msg("three", "")
	f := NewFramer(0, nil)
	var m Message
	// Half of "one" arrives, then bytes are lost, then the tail of "two"'s
	// header section, then whole messages.
	f.Feed([]byte(one[:20]))
	if _, ok := f.Next(&m); ok {
		t.Fatal("message from half the bytes")
	}
	f.Gap()
	rest := two[30:] + three + msg("four", "")
	got := frameAll(t, f, []byte(rest), []int{9})
	if strings.Join(got, ",") != "three,four" {
		t.Errorf("after gap: %v", got)
	}
	if f.Stats().Gaps.Load() != 1 || f.Stats().DroppedBytes.Load() != uint64(20+len(two)-30) {
		t.Errorf("gaps %d dropped %d", f.Stats().Gaps.Load(), f.Stats().DroppedBytes.Load())
	}
}

func TestFramerMalformed(t *testing.T) {
	// A message without Content-Length cannot be framed; a header line
	// without colon is garbage. Both are skipped and counted.
	stream := "OPTIONS sip:a SIP/2.0\r\nCall-ID: nolen\r\n\r\n" + msg("ok1", "") +
		"INVITE sip:a SIP/2.0\r\nbroken header\r\n\r\n" + msg("ok2", "")
	f := NewFramer(0, nil)
	got := frameAll(t, f, []byte(stream), []int{5})
	if strings.Join(got, ",") != "ok1,ok2" {
		t.Errorf("got %v", got)
	}
	if f.Stats().Malformed.Load() != 2 {
		t.Errorf("malformed %d", f.Stats().Malformed.Load())
	}
}

func TestFramerOversizedHeaders(t *testing.T) {
	// A header section larger than the buffer has no known end: dropped,
	// then the Framer finds the next start line.
	huge := "INVITE sip:a SIP/2.0\r\nCall-ID: huge\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 90)+"\r\n", 100) + "Content-Length: 0\r\n\r\n"
	stream := huge + msg("after", "")
	f := NewFramer(4096, nil)
	got := frameAll(t, f, []byte(stream), []int{1000})
	if strings.Join(got, ",") != "after" {
		t.Errorf("got %v", got)
	}
	if f.Stats().Oversized.Load() != 1 {
		t.Errorf("oversized %d", f.Stats().Oversized.Load())
	}
	// A body larger than the buffer is skipped by its Content-Length.
	stream = msg("big", strings.Repeat("b", 10000)) + msg("next", "")
	f = NewFramer(4096, nil)
	got = frameAll(t, f, []byte(stream), []int{333})
	if strings.Join(got, ",") != "next" || f.Stats().Oversized.Load() != 1 || f.Stats().Malformed.Load() != 0 {
		t.Errorf("got %v oversized %d malformed %d", got, f.Stats().Oversized.Load(), f.Stats().Malformed.Load())
	}
}

func TestFramerSharedStats(t *testing.T) {
	var st FramerStats
	a, b := NewFramer(0, &st), NewFramer(0, &st)
	frameAll(t, a, []byte(msg("1", "")), nil)
	frameAll(t, b, []byte(msg("2", "")+msg("3", "")), nil)
	if st.Messages.Load() != 3 {
		t.Errorf("shared messages %d", st.Messages.Load())
	}
}
