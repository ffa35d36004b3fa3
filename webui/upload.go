package webui

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
	"github.com/google/uuid"
)

// The upload API (Imagicle Call Recording compatible):
//
//	POST /fw/Apps/Recorder/WebAPI/Recordings   (and POST /api/v1/recordings)
//	Content-Type: multipart/form-data; boundary=…
//
//	--boundary
//	Content-Disposition: form-data; name=jsondata        UploadMetadata (uploadmeta.go)
//
//	{"startDateTime": "…", "duration": "PT1M30S", …}
//	--boundary
//	Content-Disposition: form-data; name=attachment; filename=sample.wav
//	Content-Type: audio/wave                              or audio/mpeg
//
//	<WAV (PCM-8, PCM-16, A-law, µ-law) or MP3, at most 256 MB>
//	--boundary--
//
// Answers: 201 {"id": …}; 400 {"reason": 0|1|2, "message": …}; 401; 403;
// 409 (startDateTime outside the retention period); 500 {"message",
// "correlationId"} with the detail in the log under that ID.
//
// How it stays flat in memory and leaves nothing behind:
//
//   - jsondata must come first (Imagicle clients send it first), so the
//     recording's metadata is known before a byte of audio arrives and the
//     audio goes straight from the socket into the store's encrypting
//     writer, through formReader (formreader.go: 1 MiB blocks, one
//     boundary scan per block) in 64 KiB writes; nothing holds the whole
//     file. Only the first 64 KiB are kept back, to recognise the
//     format before anything is created: a file that is plainly not WAV
//     or MP3 is refused without touching the store.
//   - Any failure after the recording was created (a client that hangs up,
//     the size limit, a file corrupt further in, a store error) aborts it:
//     the store removes the file and the metadata (Recorder.Abort). The
//     store also removes uploads a crash cut off on its next start.
//   - The duration is measured by opening the stored, decrypted file with
//     the same store/audio readers playback uses, so what was accepted is
//     exactly what can be played.

// uploadReason is the Imagicle reason code of a 400.
type uploadReason int

const (
	reasonInvalidData     uploadReason = 0
	reasonInvalidMetadata uploadReason = 1
	reasonInvalidAudio    uploadReason = 2
)

// uploadError is the JSON body of a 400 answer.
type uploadError struct {
	Reason  uploadReason `json:"reason"`
	Message string       `json:"message"`
}

// DefaultMaxUploadBytes is the attachment size limit of the Imagicle API.
const DefaultMaxUploadBytes = 256 << 20

const (
	sniffBytes    = 64 << 10 // the head kept back to recognise the format
	maxOtherParts = 8
	// futureSkew is how far in the future a startDateTime may lie (clocks
	// of PBXs and the appliance disagree a little).
	futureSkew = 5 * time.Minute
)

// audioKind is what the attachment is.
type audioKind uint8

const (
	kindWAV audioKind = iota + 1
	kindMP3
)

// attachmentTypes are the Content-Types accepted for the attachment. The
// content decides the format; a declared type outside this list (text,
// images) is refused. application/octet-stream is what curl -F and many
// HTTP libraries send when they do not know.
var attachmentTypes = []string{
	"audio/wave", "audio/wav", "audio/x-wav", "audio/vnd.wave", "audio/x-pn-wav",
	"audio/mpeg", "audio/mp3", "audio/x-mpeg", "audio/mpeg3", "audio/x-mp3",
	"application/octet-stream",
}

// uploadFail is an answer decided while handling an upload.
type uploadFail struct {
	code   int
	reason uploadReason
	err    error
	result string // metrics label
}

func badRequest(reason uploadReason, err error) *uploadFail {
	result := [...]string{"invalid_data", "invalid_metadata", "invalid_audio"}[reason]
	return &uploadFail{code: http.StatusBadRequest, reason: reason, err: err, result: result}
}

func failFor(err error) *uploadFail {
	switch {
	case errors.Is(err, ErrInvalidData):
		return badRequest(reasonInvalidData, err)
	case errors.Is(err, ErrInvalidMetadata):
		return badRequest(reasonInvalidMetadata, err)
	case errors.Is(err, ErrInvalidAudio):
		return badRequest(reasonInvalidAudio, err)
	}
	return &uploadFail{code: http.StatusInternalServerError, err: err, result: "error"}
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request, p *Principal) {
	start := s.now()
	id, n, fail := s.upload(w, r, p)
	s.metrics.uploadBytes.Add(float64(n))
	if fail != nil {
		s.metrics.uploads.WithLabelValues(fail.result).Inc()
		outcome := "failed"
		if fail.code == http.StatusForbidden {
			outcome = "denied"
		}
		s.auditBestEffort(r, p, auditEvent{action: meta.AuditUpload, outcome: outcome, detail: fmt.Sprintf("%d %s", fail.code, clipN(fail.err.Error(), 512))})
		switch fail.code {
		case http.StatusBadRequest:
			s.log.Info("upload refused", "user", p.User.Username, "reason", int(fail.reason), "err", fail.err)
			writeJSON(w, http.StatusBadRequest, uploadError{Reason: fail.reason, Message: fail.err.Error()})
		case http.StatusInternalServerError:
			s.internalError(w, r, "upload failed", fail.err)
		default:
			s.log.Info("upload refused", "user", p.User.Username, "status", fail.code, "err", fail.err)
			writeError(w, fail.code, fail.err.Error())
		}
		return
	}
	s.metrics.uploads.WithLabelValues("created").Inc()
	s.log.Info("upload stored", "id", id, "user", p.User.Username, "bytes", n, "took", s.now().Sub(start).Round(time.Millisecond).String())
	w.Header().Set("Location", "/api/v1/recordings/"+id)
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

// upload does the work of handleUpload and returns the new recording's ID
// and the attachment bytes received, or what to answer.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, p *Principal) (string, int64, *uploadFail) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return "", 0, badRequest(reasonInvalidData, fmt.Errorf("%w: the request has no body", ErrInvalidData))
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return "", 0, badRequest(reasonInvalidData, fmt.Errorf("%w: Content-Type %q is not multipart/form-data with a boundary", ErrInvalidData, clip(r.Header.Get("Content-Type"))))
	}
	limit := s.cfg.MaxUploadBytes
	// The body may hold the attachment, the JSON and a little framing; a
	// body beyond that is cut off by the server, not read to its end.
	body := http.MaxBytesReader(w, r.Body, limit+maxJSONData+(maxOtherParts+2)*sniffBytes)
	mr := newFormReader(body, params["boundary"])

	md, part, fail := readUntilAttachment(mr, limit)
	if fail != nil {
		return "", 0, fail
	}
	rec, fail := s.uploadRecording(md, p)
	if fail != nil {
		return "", 0, fail
	}

	if ct := part.Header.Get("Content-Type"); ct != "" {
		pt, _, err := mime.ParseMediaType(ct)
		if err != nil || !containsFold(attachmentTypes, pt) {
			return "", 0, badRequest(reasonInvalidAudio, fmt.Errorf("%w: attachment Content-Type %q is not audio/wave or audio/mpeg", ErrInvalidAudio, clip(ct)))
		}
	}
	br := bufio.NewReaderSize(part, sniffBytes)
	head, err := br.Peek(sniffBytes)
	whole := err == io.EOF // the attachment ended inside the head
	if err != nil && !whole {
		return "", int64(len(head)), readFail(err, limit)
	}
	kind, err := sniffAudio(head, whole)
	if err != nil {
		return "", int64(len(head)), badRequest(reasonInvalidAudio, err)
	}
	// Kept for measure: a WAV's duration follows from its header and the
	// bytes received, without reading the stored file back.
	head = bytes.Clone(head)
	rec.File.Format = meta.FormatWAV
	if kind == kindMP3 {
		rec.File.Format = meta.FormatMP3
	}

	uw, err := s.data.Recordings.CreateUpload(r.Context(), rec)
	if err != nil {
		if errors.Is(err, meta.ErrInvalid) {
			return "", 0, badRequest(reasonInvalidMetadata, fmt.Errorf("%w: %v", ErrInvalidMetadata, err))
		}
		return "", 0, failFor(fmt.Errorf("create recording: %w", err))
	}
	// From here on every failure aborts the recording. The abort must run
	// even when the client has gone (its context is cancelled then).
	ctx := context.WithoutCancel(r.Context())
	abort := func(f *uploadFail) *uploadFail {
		if err := uw.Abort(ctx, p.User.ID); err != nil {
			s.log.Error("abort failed upload", "id", uw.ID(), "err", err)
		}
		return f
	}

	n, f := copyAttachment(uw, br, part, limit)
	if f != nil {
		return "", n, abort(f)
	}
	if f := checkRest(mr, limit); f != nil {
		return "", n, abort(f)
	}
	final, err := measure(ctx, uw, kind, md.Duration, head, n)
	if err != nil {
		return "", n, abort(failFor(err))
	}
	// The upload's audit entry commits with the seal.
	final.Audit = []meta.AuditEntry{s.auditEntry(r, p, auditEvent{action: meta.AuditUpload, recording: uw.ID(), detail: fmt.Sprintf("%d bytes", n)})}
	if err := uw.Seal(ctx, final); err != nil {
		return "", n, abort(failFor(fmt.Errorf("seal upload: %w", err)))
	}
	if md.Preserved {
		_, err := s.data.Commands.Apply(ctx, &meta.Preserve{ID: uw.ID(), By: p.User.ID, At: s.now().UTC()})
		if err != nil {
			return "", n, abort(failFor(fmt.Errorf("preserve upload: %w", err)))
		}
	}
	return uw.ID(), n, nil
}

// readUntilAttachment reads the parts up to the attachment: jsondata
// first, other (unknown) small parts skipped. It returns the parsed
// metadata and the attachment part, positioned at its first byte.
func readUntilAttachment(mr *formReader, limit int64) (UploadMetadata, *formPart, *uploadFail) {
	var md UploadMetadata
	haveJSON := false
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			missing := "attachment"
			if !haveJSON {
				missing = "jsondata"
			}
			return md, nil, badRequest(reasonInvalidData, fmt.Errorf("%w: the %s part is missing", ErrInvalidData, missing))
		}
		if err != nil {
			return md, nil, readFail(fmt.Errorf("%w: %w", errMultipart, err), limit)
		}
		switch part.FormName() {
		case "jsondata":
			if haveJSON {
				return md, nil, badRequest(reasonInvalidData, fmt.Errorf("%w: two jsondata parts", ErrInvalidData))
			}
			data, err := io.ReadAll(io.LimitReader(part, maxJSONData+1))
			if err != nil {
				return md, nil, readFail(err, limit)
			}
			if md, err = ParseUploadMetadata(data); err != nil {
				return md, nil, failFor(err)
			}
			haveJSON = true
		case "attachment":
			if !haveJSON {
				return md, nil, badRequest(reasonInvalidData, fmt.Errorf("%w: the jsondata part must come before the attachment", ErrInvalidData))
			}
			return md, part, nil
		default:
			if i >= maxOtherParts {
				return md, nil, badRequest(reasonInvalidData, fmt.Errorf("%w: more than %d parts", ErrInvalidData, maxOtherParts))
			}
			if n, err := io.Copy(io.Discard, io.LimitReader(part, sniffBytes+1)); err != nil {
				return md, nil, readFail(err, limit)
			} else if n > sniffBytes {
				return md, nil, badRequest(reasonInvalidData, fmt.Errorf("%w: unexpected part %q of more than %d bytes", ErrInvalidData, clip(part.FormName()), sniffBytes))
			}
		}
	}
}

var errMultipart = errors.New("malformed multipart body")

// readFail classifies an error reading the request body: the body limit,
// a client that hung up mid-way, or broken framing.
func readFail(err error, limit int64) *uploadFail {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return badRequest(reasonInvalidAudio, fmt.Errorf("%w: the upload is larger than %d bytes", ErrInvalidAudio, limit))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.Canceled):
		f := badRequest(reasonInvalidData, fmt.Errorf("%w: the body ended before the multipart end boundary (upload cut off?): %v", ErrInvalidData, err))
		f.result = "cut_off"
		return f
	}
	return badRequest(reasonInvalidData, fmt.Errorf("%w: reading the body: %v", ErrInvalidData, err))
}

// sniffAudio recognises the attachment from its head: a RIFF/WAVE header
// the WAV reader accepts, or MP3 frames. whole says head is the entire
// file, so a failure to parse it is final; otherwise only a clearly wrong
// format is refused here and the full check comes after storing.
func sniffAudio(head []byte, whole bool) (audioKind, error) {
	if len(head) == 0 {
		return 0, fmt.Errorf("%w: the attachment is empty", ErrInvalidAudio)
	}
	if len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WAVE" {
		w, err := audio.NewWAVReader(bytes.NewReader(head))
		if err == nil {
			if err := allowedWAV(w.Format()); err != nil {
				return 0, err
			}
		} else if whole || errors.Is(err, audio.ErrUnsupportedFormat) || errors.Is(err, audio.ErrNotWAV) {
			return 0, fmt.Errorf("%w: %v", ErrInvalidAudio, err)
		}
		return kindWAV, nil
	}
	_, err := audio.NewMP3Reader(bytes.NewReader(head), int64(len(head)))
	switch {
	case errors.Is(err, audio.ErrNotMP3):
		return 0, fmt.Errorf("%w: not a WAV or MP3 file (first bytes % x)", ErrInvalidAudio, head[:min(8, len(head))])
	case err != nil && whole:
		return 0, fmt.Errorf("%w: %v", ErrInvalidAudio, err)
	}
	return kindMP3, nil
}

// allowedWAV admits the WAV codings the issue lists: PCM 8 or 16 bit,
// A-law, µ-law.
func allowedWAV(f audio.Format) error {
	switch {
	case f.Codec == audio.CodecLinear && (f.BitsPerSample == 8 || f.BitsPerSample == 16):
	case f.Codec == audio.CodecPCMA, f.Codec == audio.CodecPCMU:
	default:
		return fmt.Errorf("%w: WAV with %s %d-bit samples; allowed: PCM 8 or 16 bit, A-law, µ-law", ErrInvalidAudio, f.Codec, f.BitsPerSample)
	}
	return nil
}

// copyAttachment streams the rest of the attachment into the store and
// enforces the size limit. Errors are ready answers. br is the reader the
// head was sniffed through, over part: what it holds goes first, then the
// rest of part. A store that reads for itself (io.ReaderFrom: the
// store's Recorder) reads part straight into its chunk buffer; otherwise
// io.Copy hands it the read buffer's blocks (formPart.WriteTo).
func copyAttachment(dst io.Writer, br *bufio.Reader, part io.Reader, limit int64) (int64, *uploadFail) {
	aw := &attachmentWriter{dst: dst, limit: limit}
	held, _ := br.Peek(br.Buffered()) // never fails for what is buffered
	_, err := aw.Write(held)
	if err == nil {
		if rf, ok := dst.(io.ReaderFrom); ok {
			ar := &attachmentReader{r: part, left: limit - aw.n}
			var n int64
			n, err = rf.ReadFrom(ar)
			aw.n += n
			switch {
			case ar.over:
				aw.over = true
			case ar.err != nil:
				err = ar.err
			case err != nil:
				aw.err = err
			}
		} else {
			_, err = io.Copy(aw, part)
		}
	}
	switch {
	case aw.over:
		return aw.n, badRequest(reasonInvalidAudio, fmt.Errorf("%w: the attachment is larger than %d bytes", ErrInvalidAudio, limit))
	case aw.err != nil:
		return aw.n, failFor(fmt.Errorf("store upload: %w", aw.err))
	case err != nil:
		return aw.n, readFail(err, limit)
	}
	return aw.n, nil
}

// attachmentReader is the rest of the attachment as a store reads it
// (io.ReaderFrom): it ends in errAttachmentTooLarge past the size limit,
// and keeps the body's own read error apart from the store's.
type attachmentReader struct {
	r    io.Reader
	left int64 // bytes still allowed
	over bool
	err  error // the body's read error, other than io.EOF
}

func (a *attachmentReader) Read(p []byte) (int, error) {
	if int64(len(p)) > a.left+1 {
		p = p[:a.left+1] // one byte past the limit tells that there is more
	}
	n, err := a.r.Read(p)
	a.left -= int64(n)
	if a.left < 0 {
		a.over = true
		return n, errAttachmentTooLarge
	}
	if err != nil && err != io.EOF {
		a.err = err
	}
	return n, err
}

// attachmentWriter passes writes on to the store until the size limit,
// and remembers whether a failure was the limit or the store's.
type attachmentWriter struct {
	dst   io.Writer
	limit int64
	n     int64 // bytes written, or for over, the bytes offered
	over  bool
	err   error // the store's write error
}

// errAttachmentTooLarge stops the copy at the size limit; copyAttachment
// answers it from attachmentWriter.over, so it never reaches a client.
var errAttachmentTooLarge = errors.New("attachment larger than the limit")

func (a *attachmentWriter) Write(p []byte) (int, error) {
	if a.n+int64(len(p)) > a.limit {
		a.over, a.n = true, a.n+int64(len(p))
		return 0, errAttachmentTooLarge
	}
	m, err := a.dst.Write(p)
	a.n += int64(m)
	if err != nil {
		a.err = err
	}
	return m, err
}

// checkRest reads the parts after the attachment up to the end boundary,
// so a body cut off right after the audio is caught too.
func checkRest(mr *formReader, limit int64) *uploadFail {
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return readFail(fmt.Errorf("%w: %w", errMultipart, err), limit)
		}
		if name := part.FormName(); name == "attachment" || name == "jsondata" {
			return badRequest(reasonInvalidData, fmt.Errorf("%w: a second %s part", ErrInvalidData, name))
		}
		if i >= maxOtherParts {
			return badRequest(reasonInvalidData, fmt.Errorf("%w: more than %d parts", ErrInvalidData, maxOtherParts))
		}
		if n, err := io.Copy(io.Discard, io.LimitReader(part, sniffBytes+1)); err != nil {
			return readFail(err, limit)
		} else if n > sniffBytes {
			return badRequest(reasonInvalidData, fmt.Errorf("%w: unexpected part %q of more than %d bytes", ErrInvalidData, clip(part.FormName()), sniffBytes))
		}
	}
}

// measure reads the upload's format and duration: a WAV's from its head
// (the first bytes, kept in memory) and its size, when its header lies in
// the head, and otherwise, and for MP3 (whose frames must be walked), from
// the stored file read back. A metadata duration more than a second away
// from the measured one is kept as given, and flagged, as the issue asks:
// the uploader may know better (a file cut at the start), and a reviewer
// sees the flag.
func measure(ctx context.Context, uw UploadWriter, kind audioKind, given time.Duration, head []byte, size int64) (UploadFinal, error) {
	var f audio.Format
	var d time.Duration
	var frames int64
	read := func(r io.ReaderAt, size int64) error {
		switch kind {
		case kindWAV:
			wr, err := audio.NewWAVReaderAt(r, size)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrInvalidAudio, err)
			}
			f, d, frames = wr.Format(), wr.Duration(), wr.NumFrames()
			return allowedWAV(f)
		case kindMP3:
			mr, err := audio.NewMP3Reader(r, size)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrInvalidAudio, err)
			}
			f, d, frames = mr.Format(), mr.Duration(), mr.NumFrames()
		}
		return nil
	}
	fromFile := kind != kindWAV
	if !fromFile {
		h := &headReaderAt{b: head}
		if err := read(h, size); err != nil {
			if !h.short {
				return UploadFinal{}, err // the stored file starts with the same bytes
			}
			fromFile = true
		}
	}
	if fromFile {
		af, err := uw.Audio(ctx)
		if err != nil {
			return UploadFinal{}, fmt.Errorf("open stored upload: %w", err)
		}
		defer af.Close()
		if err := read(af, af.Size()); err != nil {
			return UploadFinal{}, err
		}
	}
	if frames <= 0 {
		return UploadFinal{}, fmt.Errorf("%w: the file holds no audio", ErrInvalidAudio)
	}
	out := UploadFinal{DurationMs: d.Milliseconds(), Channels: f.Channels, Codecs: []string{f.Codec.String()}}
	if diff := given - d; diff > time.Second || diff < -time.Second {
		out.DurationMs, out.DurationFlagged = given.Milliseconds(), true
	}
	return out, nil
}

// headReaderAt serves the first bytes of an attachment from memory and
// notes a read that needed more (short), so measure can tell "the header
// does not fit in the head" from "the header is bad".
type headReaderAt struct {
	b     []byte
	short bool
}

func (h *headReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(h.b)) {
		h.short = true
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, h.b[off:])
	if n < len(p) {
		h.short = true
		return n, io.ErrUnexpectedEOF
	}
	return n, nil
}

// uploadRecording builds the new recording's metadata and applies the
// checks that need the principal and the clock: retention (409), notes and
// preservation rights (403), and whose call it is.
func (s *Server) uploadRecording(md UploadMetadata, p *Principal) (meta.Recording, *uploadFail) {
	now := s.now().UTC()
	if md.Start.After(now.Add(futureSkew)) {
		return meta.Recording{}, badRequest(reasonInvalidMetadata, fmt.Errorf("%w: startDateTime %s is in the future (now %s)", ErrInvalidMetadata, md.Start.Format(time.RFC3339), now.Format(time.RFC3339)))
	}
	if days := s.cfg.DefaultRetentionDays; days > 0 {
		oldest := now.Add(-time.Duration(days) * 24 * time.Hour)
		if md.Start.Before(oldest) {
			return meta.Recording{}, &uploadFail{code: http.StatusConflict, result: "conflict",
				err: fmt.Errorf("startDateTime %s lies outside the retention period of %d days (oldest allowed %s)", md.Start.Format(time.RFC3339), days, oldest.Format(time.RFC3339))}
		}
	}
	if md.Preserved && !p.Can(ActPreserve) {
		return meta.Recording{}, &uploadFail{code: http.StatusForbidden, result: "forbidden", err: errors.New("your account may not preserve recordings (preserved: true)")}
	}
	if md.Notes != "" && !p.Can(ActNotes) {
		return meta.Recording{}, &uploadFail{code: http.StatusForbidden, result: "forbidden", err: errors.New("your account may not add notes (notes)")}
	}
	rec := meta.Recording{
		Start: md.Start, Direction: md.Direction, Source: meta.SourceUpload, Technology: "upload",
		Duration: md.Duration.Milliseconds(), PBXCallID: md.PBXCallID, Tenant: p.User.Tenant,
		LocalParty:  meta.LocalParty{Username: md.LocalUsername, Number: md.LocalNumber},
		RemoteParty: meta.RemoteParty{Number: md.RemoteNumber},
	}
	// The local party's account, if there is one in the uploader's tenant,
	// decides who sees the call (their own calls; their group's supervisor).
	owner, err := s.data.Users.UserByName(p.User.Tenant, md.LocalUsername)
	switch {
	case err == nil:
		rec.LocalParty.User = owner.ID
		if len(owner.Groups) > 0 {
			rec.Group = owner.Groups[0]
		}
	case !errors.Is(err, meta.ErrNotFound):
		return meta.Recording{}, failFor(fmt.Errorf("look up local party: %w", err))
	}
	// A plain user uploads their own calls only: a call filed under someone
	// else would put words in their mouth.
	if p.User.Role == meta.RoleUser && rec.LocalParty.User != p.User.ID {
		return meta.Recording{}, &uploadFail{code: http.StatusForbidden, result: "forbidden", err: fmt.Errorf("a user account uploads its own calls only; localParty.username is %q", clip(md.LocalUsername))}
	}
	if md.Notes != "" {
		nid, err := uuid.NewV7()
		if err != nil {
			return meta.Recording{}, failFor(err)
		}
		rec.Notes = []meta.Note{{ID: nid.String(), Author: p.User.ID, Time: now, Text: md.Notes}}
	}
	return rec, nil
}

func containsFold(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}
