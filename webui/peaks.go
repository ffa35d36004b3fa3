package webui

import (
	"container/list"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
)

// The waveform of the detail page: GET /api/v1/recordings/{id}/peaks?n=1000
// answers the minimum and maximum sample of each of n equal slices of the
// recording, per channel (stereo: local party left, remote right, as
// playback renders it).
//
// Before this route the page streamed the whole WAV to draw the waveform:
// 115 MB for a one-hour stereo call, per page view, over the same link the
// player needs. The server renders the PCM once, streaming (a few 100 ms
// pieces in memory, whatever the length), folds it into 2·n·channels
// numbers and sends a few kilobytes. The answer is cached per recording
// and n in a small LRU, since recordings are immutable once sealed; one
// still being recorded is not cached. The cache is checked only after the
// visibility check, so it never answers for a recording the caller may
// not see or that was deleted.
//
// Peaks are derived from the audio, so the route needs ActPlay and is
// audited like playback (detail "peaks n=…").

const (
	defaultPeaks = 1000
	maxPeaks     = 8000
	// peakCacheSize bounds the cache: an entry of 1,000 stereo buckets is
	// about 8 KiB.
	peakCacheSize = 64
)

var peaksParams = []paramDoc{
	{name: "n", typ: "integer", desc: "number of buckets, 1 to 8000 (default 1000); fewer when the recording has fewer samples"},
}

// peaksJSON is the answer: Min[c][b] and Max[c][b] are the smallest and
// largest 16-bit sample of channel c in bucket b.
type peaksJSON struct {
	Buckets    int       `json:"buckets"`
	Channels   int       `json:"channels"`
	Rate       int       `json:"rate"`
	Frames     int64     `json:"frames"`
	DurationMs int64     `json:"durationMs"`
	Min        [][]int16 `json:"min"`
	Max        [][]int16 `json:"max"`
}

// parsePeaksQuery reads n.
func parsePeaksQuery(raw string) (int, error) {
	vals, err := parseStrictQuery(raw, peaksParams)
	if err != nil {
		return 0, err
	}
	v, ok := vals["n"]
	if !ok {
		return defaultPeaks, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPeaks {
		return 0, badParam("n", "must be a whole number from 1 to %d", maxPeaks)
	}
	return n, nil
}

// peakWriter folds interleaved 16-bit little-endian PCM into per-bucket
// minima and maxima as it is written. Bucket b covers frames
// [b·frames/n, (b+1)·frames/n), so the buckets are equal to within a frame
// and none is empty.
type peakWriter struct {
	ch      int
	frames  int64 // total frames expected
	n       int64 // buckets
	frame   int64 // frames seen
	bucket  int64
	nextEnd int64  // first frame of the next bucket
	carry   []byte // the start of a frame split between writes
	min     [][]int16
	max     [][]int16
}

func newPeakWriter(channels int, frames int64, n int) *peakWriter {
	if int64(n) > frames {
		n = int(frames)
	}
	w := &peakWriter{ch: channels, frames: frames, n: int64(n), carry: make([]byte, 0, 2*channels),
		min: make([][]int16, channels), max: make([][]int16, channels)}
	for c := range channels {
		w.min[c] = make([]int16, n)
		w.max[c] = make([]int16, n)
		for b := range n {
			w.min[c][b], w.max[c][b] = 32767, -32768
		}
	}
	if n > 0 {
		w.nextEnd = frames / int64(n)
	}
	return w
}

func (w *peakWriter) Write(p []byte) (int, error) {
	written := len(p)
	fb := 2 * w.ch
	// A frame split between two writes is completed in carry first.
	if len(w.carry) > 0 {
		k := min(fb-len(w.carry), len(p))
		w.carry = append(w.carry, p[:k]...)
		p = p[k:]
		if len(w.carry) < fb {
			return written, nil
		}
		w.frames1(w.carry)
		w.carry = w.carry[:0]
	}
	whole := len(p) / fb * fb
	w.frames1(p[:whole])
	w.carry = append(w.carry, p[whole:]...)
	return written, nil
}

// frames1 folds whole frames: a bucket's run at a time, with the running
// minimum and maximum in locals (this loop sees every sample of the call).
func (w *peakWriter) frames1(p []byte) {
	fb := 2 * w.ch
	for len(p) >= fb && w.frame < w.frames && w.n > 0 {
		run := min(int64(len(p)/fb), w.nextEnd-w.frame)
		if w.bucket == w.n-1 {
			run = min(int64(len(p)/fb), w.frames-w.frame)
		}
		b := w.bucket
		seg := p[:run*int64(fb)]
		for c := 0; c < w.ch; c++ {
			lo, hi := w.min[c][b], w.max[c][b]
			for i := 2 * c; i+1 < len(seg); i += fb {
				v := int16(uint16(seg[i]) | uint16(seg[i+1])<<8)
				if v < lo {
					lo = v
				}
				if v > hi {
					hi = v
				}
			}
			w.min[c][b], w.max[c][b] = lo, hi
		}
		p = p[len(seg):]
		w.frame += run
		for w.frame >= w.nextEnd && w.bucket < w.n-1 {
			w.bucket++
			w.nextEnd = (w.bucket + 1) * w.frames / w.n
		}
	}
}

// peakCache is a small LRU of computed peaks.
type peakCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *peakEntry, most recent first
	byKey map[string]*list.Element
}

type peakEntry struct {
	key string
	val *peaksJSON
}

func newPeakCache(size int) *peakCache {
	return &peakCache{max: size, order: list.New(), byKey: map[string]*list.Element{}}
}

func (c *peakCache) get(key string) (*peaksJSON, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*peakEntry).val, true
}

func (c *peakCache) put(key string, v *peaksJSON) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		e.Value.(*peakEntry).val = v
		c.order.MoveToFront(e)
		return
	}
	c.byKey[key] = c.order.PushFront(&peakEntry{key: key, val: v})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*peakEntry).key)
	}
}

// computePeaks renders src as stereo PCM and folds it into n buckets. A
// one-channel recording renders the same samples on both sides of the
// stereo layout, so it is rendered once, as mono, and its peaks are given
// for both channels: half the decoding and folding.
func computePeaks(r *http.Request, src *audio.Source, n int, oneChannel bool) (*peaksJSON, error) {
	o := audio.RenderOptions{Format: audio.OutputPCM16, Layout: audio.LayoutStereo}
	channels := 2
	if oneChannel {
		o.Layout, channels = audio.LayoutMono, 1
	}
	size, err := src.RenderedSize(o)
	if err != nil {
		return nil, fmt.Errorf("rendered size: %w", err)
	}
	rate, err := src.OutputRate(o)
	if err != nil {
		return nil, fmt.Errorf("output rate: %w", err)
	}
	frames := size / int64(2*channels)
	pw := newPeakWriter(channels, frames, n)
	if frames > 0 {
		if err := src.Render(r.Context(), pw, o); err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
	}
	out := &peaksJSON{Buckets: int(pw.n), Channels: 2, Rate: rate, Frames: frames, Min: pw.min, Max: pw.max}
	if oneChannel {
		out.Min, out.Max = [][]int16{pw.min[0], pw.min[0]}, [][]int16{pw.max[0], pw.max[0]}
	}
	if rate > 0 {
		out.DurationMs = frames * 1000 / int64(rate)
	}
	return out, nil
}

// handlePeaks answers the waveform peaks; cache is the route's own
// (apiRoutes makes one per server).
func (s *Server) handlePeaks(cache *peakCache) func(w http.ResponseWriter, r *http.Request, p *Principal) {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) {
		n, err := parsePeaksQuery(r.URL.RawQuery)
		if err != nil {
			writeParamError(w, err)
			return
		}
		rec, ok := s.visible(w, r, p)
		if !ok {
			return
		}
		key := rec.ID + "/" + strconv.Itoa(n)
		out, cached := cache.get(key)
		if !cached {
			src, c, ok := s.openSource(w, r, &rec)
			if !ok {
				return
			}
			out, err = computePeaks(r, src, n, rec.Channels == 1)
			_ = c.Close()
			if err != nil {
				if r.Context().Err() == nil {
					s.internalError(w, r, "waveform peaks", err)
				}
				return
			}
			if rec.Status != meta.StatusRecording {
				cache.put(key, out)
			}
		}
		if err := s.audit(r, p, auditEvent{action: meta.AuditPlay, recording: rec.ID, tenant: tenantOf(rec.Tenant), detail: "peaks n=" + strconv.Itoa(n)}); err != nil {
			s.internalError(w, r, "audit peaks", err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}
