package webui

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the tz parameter works on appliances without /usr/share/zoneinfo

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
)

// Audio: playback with HTTP Range, single downloads and zips of several.
//
// Playback renders on the fly from the encrypted file (store/audio), as
// stereo (local party left) or mono WAV, or MP3. The size is known
// before rendering (Source.RenderedSize), so the route answers Range
// requests with 206 and the browser can seek without fetching the whole
// call; only the chunks under the range are decrypted. MP3 is made in
// independently encoded segments of a few seconds (store/audio/mp3seg.go),
// so a range near the end of an hour costs a segment's encoding; only an
// MP3 at 11.025/22.05/44.1 kHz, whose size is not known in advance, is
// streamed whole (Accept-Ranges: none).
//
// Every answer that carries audio is audited first (audit.go). Nothing
// is written to the client before that entry is committed.

var audioParams = []paramDoc{
	{name: "format", typ: "string", desc: "wav (default) or mp3; both seekable with Range", enum: []string{"wav", "mp3"}},
	{name: "layout", typ: "string", desc: "stereo (default; local party left) or mono", enum: []string{"stereo", "mono"}},
}

var downloadParams = []paramDoc{
	{name: "format", typ: "string", desc: "mp3 (default) or wav", enum: []string{"mp3", "wav"}},
	{name: "layout", typ: "string", desc: "stereo (default; local party left) or mono", enum: []string{"stereo", "mono"}},
	{name: "tz", typ: "string", desc: "IANA time zone of the file name's date and time (default UTC)"},
}

// maxZip is how many recordings one zip download may hold.
const maxZip = 20

// renderOptions reads format and layout. defFormat applies when the
// format parameter is absent.
func renderOptions(vals map[string]string, defFormat string) (audio.RenderOptions, string, error) {
	var o audio.RenderOptions
	f := vals["format"]
	if f == "" {
		f = defFormat
	}
	switch f {
	case "wav":
		o.Format = audio.OutputWAV
	case "mp3":
		o.Format = audio.OutputMP3
	default:
		return o, "", badParam("format", "must be wav or mp3")
	}
	switch vals["layout"] {
	case "", "stereo":
		o.Layout = audio.LayoutStereo
	case "mono":
		o.Layout = audio.LayoutMono
	default:
		return o, "", badParam("layout", "must be stereo or mono")
	}
	return o, f, nil
}

func contentTypeOf(ext string) string {
	if ext == "mp3" {
		return "audio/mpeg"
	}
	return "audio/wav"
}

// openSource opens rec's audio; a recording without playable audio (still
// failed, evidence-only RTP, archive unreachable) is answered here.
func (s *Server) openSource(w http.ResponseWriter, r *http.Request, rec *meta.Recording) (*audio.Source, io.Closer, bool) {
	src, c, err := s.data.Library.OpenSource(r.Context(), rec.ID)
	switch {
	case err == nil:
		return src, c, true
	case errors.Is(err, store.ErrNoFile), errors.Is(err, audio.ErrUnknownSource):
		writeError(w, http.StatusConflict, "the recording has no playable audio (status "+string(rec.Status)+")")
	case errors.Is(err, store.ErrArchiveUnavailable):
		writeError(w, http.StatusServiceUnavailable, "the recording lies on the archive tier, which is not reachable now")
	default:
		s.internalError(w, r, "open recording audio", err)
	}
	return nil, nil, false
}

func (s *Server) handleAudio(w http.ResponseWriter, r *http.Request, p *Principal) {
	vals, err := parseStrictQuery(r.URL.RawQuery, audioParams)
	if err != nil {
		writeParamError(w, err)
		return
	}
	o, ext, err := renderOptions(vals, "wav")
	if err != nil {
		writeParamError(w, err)
		return
	}
	rec, ok := s.visible(w, r, p)
	if !ok {
		return
	}
	src, c, ok := s.openSource(w, r, &rec)
	if !ok {
		return
	}
	defer c.Close()
	h := w.Header()
	h.Set("Content-Type", contentTypeOf(ext))
	h.Set("Cache-Control", "private, no-store")
	detail := ext + " " + layoutName(o.Layout)
	size, err := src.RenderedSize(o)
	if errors.Is(err, audio.ErrSizeUnknown) {
		// An MP3 whose frames vary in length (a 44.1 kHz upload): streamed
		// whole, not seekable before the browser has it all.
		h.Set("Accept-Ranges", "none")
		if r.Method == http.MethodHead {
			return
		}
		if err := s.audit(r, p, auditEvent{action: meta.AuditPlay, recording: rec.ID, tenant: tenantOf(rec.Tenant), detail: detail}); err != nil {
			h.Del("Content-Type")
			s.internalError(w, r, "audit play", err)
			return
		}
		s.streamRendered(w, r, src, o, http.StatusOK)
		return
	}
	if errors.Is(err, audio.ErrMP3Unavailable) {
		h.Del("Content-Type")
		writeError(w, http.StatusNotImplemented, "MP3 is not available in this build; ask for format=wav")
		return
	}
	if err != nil {
		s.internalError(w, r, "rendered size", err)
		return
	}
	h.Set("Accept-Ranges", "bytes")
	start, length, partial, satisfiable := parseRange(r.Header.Get("Range"), size)
	if !satisfiable {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		h.Del("Content-Type")
		writeError(w, http.StatusRequestedRangeNotSatisfiable, fmt.Sprintf("the range lies outside the %d bytes of the rendered audio", size))
		return
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	code := http.StatusOK
	if partial {
		code = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
		detail += fmt.Sprintf(" bytes %d-%d/%d", start, start+length-1, size)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(code)
		return
	}
	if err := s.audit(r, p, auditEvent{action: meta.AuditPlay, recording: rec.ID, tenant: tenantOf(rec.Tenant), detail: detail}); err != nil {
		h.Del("Content-Type")
		h.Del("Content-Length")
		h.Del("Content-Range")
		s.internalError(w, r, "audit play", err)
		return
	}
	o.Offset, o.Length = start, length
	if length == 0 {
		w.WriteHeader(code)
		return
	}
	s.streamRendered(w, r, src, o, code)
}

func layoutName(l audio.Layout) string {
	if l == audio.LayoutMono {
		return "mono"
	}
	return "stereo"
}

// streamRendered renders into the response. The status line goes out with
// the first byte, so a render that fails before producing any (MP3 not
// built in) still gets a proper error answer; one that fails later cuts
// the connection, so the client sees a broken transfer, not a short file.
func (s *Server) streamRendered(w http.ResponseWriter, r *http.Request, src *audio.Source, o audio.RenderOptions, code int) {
	lw := &lazyWriter{w: w, code: code}
	err := src.Render(r.Context(), lw, o)
	switch {
	case err == nil:
		if !lw.started {
			w.WriteHeader(code)
		}
	case !lw.started && errors.Is(err, audio.ErrMP3Unavailable):
		clearBodyHeaders(w)
		writeError(w, http.StatusNotImplemented, "MP3 is not available in this build; ask for format=wav")
	case !lw.started:
		clearBodyHeaders(w)
		s.internalError(w, r, "render audio", err)
	case r.Context().Err() != nil:
		// The client went away (a browser seeking elsewhere): normal.
	default:
		s.log.Error("render audio cut off", "route", r.Pattern, "err", err)
		panic(http.ErrAbortHandler)
	}
}

func clearBodyHeaders(w http.ResponseWriter) {
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Range", "Content-Disposition", "Accept-Ranges"} {
		w.Header().Del(k)
	}
}

// lazyWriter sends the status line with the first byte.
type lazyWriter struct {
	w       http.ResponseWriter
	code    int
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.WriteHeader(l.code)
	}
	return l.w.Write(p)
}

// parseRange reads a single-range "bytes=" header against size. Several
// ranges or a malformed header are ignored (the whole body is sent, as RFC
// 9110 allows); a range wholly past the end is unsatisfiable.
func parseRange(h string, size int64) (start, length int64, partial, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if h == "" || !found || strings.Contains(spec, ",") {
		return 0, size, false, true
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, size, false, true
	}
	if a == "" { // suffix: the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, size, false, true
		}
		if n == 0 || size == 0 {
			return 0, 0, false, false
		}
		n = min(n, size)
		return size - n, n, true, true
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, size, false, true
	}
	last := size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return 0, size, false, true
		}
		last = min(last, size-1)
	}
	if first >= size {
		return 0, 0, false, false
	}
	return first, last - first + 1, true, true
}

// downloadName is <yyyymmdd>_<hhmm>_<reference>.<ext>, the start time in loc.
func downloadName(rec *meta.Recording, loc *time.Location, ext string) string {
	ref := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '-' {
			return r
		}
		return '_'
	}, rec.Reference)
	return rec.Start.In(loc).Format("20060102_1504") + "_" + ref + "." + ext
}

func loadTZ(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || strings.EqualFold(name, "local") {
		return nil, badParam("tz", "unknown time zone %q (use an IANA name such as Europe/Zurich)", clip(name))
	}
	return loc, nil
}

func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request, p *Principal) {
	vals, err := parseStrictQuery(r.URL.RawQuery, downloadParams)
	if err != nil {
		writeParamError(w, err)
		return
	}
	o, ext, err := renderOptions(vals, "mp3")
	if err != nil {
		writeParamError(w, err)
		return
	}
	loc, err := loadTZ(vals["tz"])
	if err != nil {
		writeParamError(w, err)
		return
	}
	rec, ok := s.visible(w, r, p)
	if !ok {
		return
	}
	src, c, ok := s.openSource(w, r, &rec)
	if !ok {
		return
	}
	defer c.Close()
	name := downloadName(&rec, loc, ext)
	h := w.Header()
	h.Set("Content-Type", contentTypeOf(ext))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("Cache-Control", "private, no-store")
	if o.Format == audio.OutputWAV {
		size, err := src.RenderedSize(o)
		if err != nil {
			s.internalError(w, r, "rendered size", err)
			return
		}
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	if err := s.audit(r, p, auditEvent{action: meta.AuditDownload, recording: rec.ID, tenant: tenantOf(rec.Tenant), detail: name}); err != nil {
		clearBodyHeaders(w)
		s.internalError(w, r, "audit download", err)
		return
	}
	s.streamRendered(w, r, src, o, http.StatusOK)
}

// zipRequest is the body of POST /api/v1/recordings/download.
type zipRequest struct {
	IDs    []string `json:"ids"`
	Format string   `json:"format,omitempty"` // mp3 (default) or wav
	Layout string   `json:"layout,omitempty"` // stereo (default) or mono
	TZ     string   `json:"tz,omitempty"`
}

// handleZip sends up to maxZip recordings as one zip. Every ID must be
// visible; one that is not answers 404 for the whole request without
// saying which, so the answer reveals nothing about the others either.
// All files are opened before the first byte, so a zip is either whole or
// refused with a proper error.
func (s *Server) handleZip(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req zipRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	ids := dedupe(req.IDs)
	switch {
	case len(ids) == 0:
		writeError(w, http.StatusBadRequest, "ids: name 1 to 20 recordings")
		return
	case len(ids) > maxZip:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ids: %d recordings, at most %d per zip", len(ids), maxZip))
		return
	}
	o, ext, err := renderOptions(map[string]string{"format": req.Format, "layout": req.Layout}, "mp3")
	if err != nil {
		writeParamError(w, err)
		return
	}
	loc, err := loadTZ(req.TZ)
	if err != nil {
		writeParamError(w, err)
		return
	}
	recs := make([]meta.Recording, 0, len(ids))
	for _, id := range ids {
		rec, ok, err := s.lookupVisible(p, id)
		if err != nil {
			s.internalError(w, r, "read recording", err)
			return
		}
		if !ok {
			s.auditDenied(r, p, id, fmt.Sprintf("zip of %d recordings, one or more not visible", len(ids)))
			writeError(w, http.StatusNotFound, "one or more of the recordings do not exist or are not yours to see")
			return
		}
		recs = append(recs, rec)
	}
	srcs := make([]*audio.Source, 0, len(recs))
	for i := range recs {
		src, c, ok := s.openSource(w, r, &recs[i])
		if !ok {
			return
		}
		defer c.Close()
		srcs = append(srcs, src)
	}
	zipName := "recordings_" + s.now().In(loc).Format("20060102_1504") + ".zip"
	for i := range recs {
		if err := s.audit(r, p, auditEvent{action: meta.AuditDownload, recording: recs[i].ID, tenant: tenantOf(recs[i].Tenant),
			detail: fmt.Sprintf("%s in %s (%d of %d)", downloadName(&recs[i], loc, ext), zipName, i+1, len(recs))}); err != nil {
			s.internalError(w, r, "audit zip download", err)
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": zipName}))
	h.Set("Cache-Control", "private, no-store")
	w.WriteHeader(http.StatusOK)
	zw := zip.NewWriter(w)
	for i := range recs {
		// Stored, not deflated: MP3 does not shrink, and the appliance's
		// cores are better spent rendering.
		f, err := zw.CreateHeader(&zip.FileHeader{Name: downloadName(&recs[i], loc, ext), Method: zip.Store, Modified: recs[i].Start})
		if err == nil {
			err = srcs[i].Render(r.Context(), f, o)
		}
		if err != nil {
			if r.Context().Err() == nil {
				s.log.Error("zip download cut off", "recording", recs[i].ID, "err", err)
			}
			panic(http.ErrAbortHandler)
		}
	}
	if err := zw.Close(); err != nil {
		panic(http.ErrAbortHandler)
	}
}

func dedupe(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
