package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
)

// writeGridCall records a stereo G.711 µ-law call of the given length in
// the grid container: the local party (left) a rising sawtooth, the remote
// (right) a falling one, so the two channels can be told apart after
// rendering.
func writeGridCall(tb testing.TB, s *Store, d time.Duration) meta.Recording {
	tb.Helper()
	ctx := context.Background()
	rec := newRecording(time.Now().Add(-d), meta.FormatGrid)
	r, err := s.Create(ctx, rec)
	if err != nil {
		tb.Fatal(err)
	}
	gw, err := audio.NewGridWriter(r, audio.GridConfig{Start: rec.Start, Channels: []audio.GridChannel{
		{Codec: audio.CodecPCMU, Role: audio.RoleLocal, SampleRate: 8000, Label: "local"},
		{Codec: audio.CodecPCMU, Role: audio.RoleRemote, SampleRate: 8000, Label: "remote"},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	left, right := make([]byte, 160), make([]byte, 160)
	pcm := make([]int16, 160)
	flags := []audio.TickFlag{audio.TickPresent, audio.TickPresent}
	ticks := int(d / (20 * time.Millisecond))
	for i := range ticks {
		for j := range pcm {
			pcm[j] = int16((i*160+j)%200*100 - 10000)
		}
		audio.EncodeUlaw(left, pcm)
		for j := range pcm {
			pcm[j] = -pcm[j]
		}
		audio.EncodeUlaw(right, pcm)
		if err := gw.WriteTick(flags, [][]byte{left, right}); err != nil {
			tb.Fatal(err)
		}
	}
	dur := d.Milliseconds()
	ch := 2
	out, err := r.Close(ctx, Final{DurationMs: &dur, Channels: &ch, Codecs: []string{"PCMU"}})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// firstByte is a writer that notes when the first byte arrives and stops
// the render after n bytes.
type firstByte struct {
	start, at time.Time
	n, got    int
	buf       bytes.Buffer
}

var errEnough = errors.New("enough")

func (f *firstByte) Write(p []byte) (int, error) {
	if f.at.IsZero() {
		f.at = time.Now()
	}
	f.buf.Write(p)
	f.got += len(p)
	if f.got >= f.n {
		return len(p), errEnough
	}
	return len(p), nil
}

func TestRenderThroughStore(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec := writeGridCall(t, s, 2*time.Minute)
	var wav bytes.Buffer
	if err := s.Render(context.Background(), rec.ID, &wav, audio.RenderOptions{Format: audio.OutputWAV, Start: time.Minute}); err != nil {
		t.Fatal(err)
	}
	// One minute of 8 kHz stereo PCM16 after a 44-byte header.
	if want := 44 + 60*8000*4; wav.Len() != want {
		t.Fatalf("WAV from minute 1 is %d bytes, want %d", wav.Len(), want)
	}
	pcm := wav.Bytes()[44:]
	// Local left rises, remote right falls: check the channels' order.
	var rising, falling int
	for i := 4; i+8 <= len(pcm); i += 4 {
		l0, l1 := int16(binary.LittleEndian.Uint16(pcm[i-4:])), int16(binary.LittleEndian.Uint16(pcm[i:]))
		r0, r1 := int16(binary.LittleEndian.Uint16(pcm[i-2:])), int16(binary.LittleEndian.Uint16(pcm[i+2:]))
		if l1 > l0 && r1 < r0 {
			rising++
		} else if l1 < l0 && r1 > r0 {
			falling++
		}
	}
	if rising < 10*falling {
		t.Fatalf("channels swapped or garbled: local-rising %d, local-falling %d", rising, falling)
	}
}

// BenchmarkRenderOneHour measures time to first byte of playback of a
// one-hour stereo G.711 recording, from opening the encrypted file to the
// first rendered byte, at the start and at minute 59 (seeking).
func BenchmarkRenderOneHour(b *testing.B) {
	s := openStore(b, b.TempDir())
	rec := writeGridCall(b, s, time.Hour)
	for _, bc := range []struct {
		name  string
		start time.Duration
	}{{"first_second", 0}, {"seek_minute_59", 59 * time.Minute}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var total time.Duration
			for b.Loop() {
				fb := &firstByte{start: time.Now(), n: 44 + 8000*4} // WAV header + one second
				err := s.Render(context.Background(), rec.ID, fb, audio.RenderOptions{Format: audio.OutputWAV, Start: bc.start})
				if err != nil && !errors.Is(err, errEnough) {
					b.Fatal(err)
				}
				total += fb.at.Sub(fb.start)
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-to-first-byte")
		})
	}
}

var _ io.Writer = (*firstByte)(nil)
