package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/bundle"
	"github.com/callvault/callvault/store/meta"
)

// Export writes a signed export bundle (see package bundle) of the
// recordings ids to w. For each recording: the audio as captured or
// uploaded (decrypted; its SHA-256 is the one sealed into the metadata and
// the audit chain), the same as a stereo WAV (local party left), its
// metadata without key material, its notes and bookmarks, and its audit
// entries; for a call captured from the network, its SIP messages as text
// (sip.txt) and as a capture file Wireshark opens (sip.pcap). Each export
// is audited first, so the bundle holds its own export entry, and the
// audit chain is checkpointed, so the entries it holds are signed.
func (s *Store) Export(ctx context.Context, w io.Writer, ids []string, by, address string) (bundle.Manifest, error) {
	return s.export(ctx, w, ids, by, address, nil)
}

// export is Export, calling progress (when not nil) with the number of
// recordings written after each one.
func (s *Store) export(ctx context.Context, w io.Writer, ids []string, by, address string, progress func(done int)) (bundle.Manifest, error) {
	recs := make([]meta.Recording, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] { // named twice: exported once
			continue
		}
		seen[id] = true
		rec, err := s.meta.Recording(id)
		if err != nil {
			return bundle.Manifest{}, err
		}
		switch rec.Status {
		case meta.StatusDeleted:
			return bundle.Manifest{}, fmt.Errorf("%w: recording %s (reference %s) is deleted", meta.ErrDeleted, rec.ID, rec.Reference)
		case meta.StatusRecording, meta.StatusFailed:
			return bundle.Manifest{}, fmt.Errorf("%w: recording %s (reference %s) is %s", ErrNoFile, rec.ID, rec.Reference, rec.Status)
		}
		recs = append(recs, rec)
	}
	now := s.cfg.Now().UTC()
	for _, rec := range recs {
		e := meta.AuditEntry{Time: now, Actor: by, Tenant: rec.Tenant, Action: meta.AuditExport, Recording: rec.ID, Address: address,
			Detail: fmt.Sprintf("export bundle of %d recordings", len(recs))}
		if _, err := s.Apply(ctx, &meta.AppendAudit{Entry: e}); err != nil {
			return bundle.Manifest{}, fmt.Errorf("audit the export of %s: %w", rec.ID, err)
		}
	}
	if err := s.Checkpoint(ctx); err != nil {
		return bundle.Manifest{}, fmt.Errorf("audit checkpoint before export: %w", err)
	}

	bw := bundle.NewWriter(w)
	m := bundle.Manifest{Created: now, CreatedBy: by, Node: s.cfg.Node}
	for _, rec := range recs {
		br, err := s.exportOne(ctx, bw, rec)
		if err != nil {
			return bundle.Manifest{}, fmt.Errorf("export %s (reference %s): %w", rec.ID, rec.Reference, err)
		}
		m.Recordings = append(m.Recordings, br)
		if progress != nil {
			progress(len(m.Recordings))
		}
	}
	m, err := bw.Close(m, s.PublicKey(), s.Sign)
	if err != nil {
		return bundle.Manifest{}, err
	}
	s.log.Info("export bundle written", "recordings", len(recs), "by", by)
	return m, nil
}

func (s *Store) exportOne(ctx context.Context, bw *bundle.Writer, rec meta.Recording) (bundle.Recording, error) {
	dir := "recordings/" + rec.Reference + "/"
	ext := map[meta.Format]string{meta.FormatGrid: "cvg", meta.FormatWAV: "wav", meta.FormatMP3: "mp3"}[rec.File.Format]
	if ext == "" {
		ext = "bin"
	}
	br := bundle.Recording{ID: rec.ID, Reference: rec.Reference, Start: rec.Start, AudioSHA256: rec.File.AudioSHA256,
		AudioFile: dir + "audio-captured." + ext, FileSHA256: rec.File.SHA256}

	a, err := s.OpenAudio(ctx, rec.ID)
	if err != nil {
		return br, err
	}
	defer a.Close()
	if _, err := bw.Add(br.AudioFile, io.NewSectionReader(a, 0, a.Size())); err != nil {
		return br, err
	}
	src, err := a.Source()
	if err != nil {
		return br, err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(src.Render(ctx, pw, audio.RenderOptions{Format: audio.OutputWAV, Layout: audio.LayoutStereo}))
	}()
	_, err = bw.Add(dir+"audio-stereo.wav", pr)
	pr.CloseWithError(err) // stops the renderer if the bundle failed
	if err != nil {
		return br, fmt.Errorf("render stereo WAV: %w", err)
	}

	msgs, err := s.Signalling(rec.ID)
	if err != nil {
		return br, fmt.Errorf("SIP messages: %w", err)
	}
	if len(msgs) > 0 {
		br.SIPText, br.SIPPcap = dir+"sip.txt", dir+"sip.pcap"
		var txt, pcap bytes.Buffer
		if err := writeSignalText(&txt, msgs); err != nil {
			return br, err
		}
		if err := writeSignalPcap(&pcap, msgs); err != nil {
			return br, fmt.Errorf("SIP capture file: %w", err)
		}
		if _, err := bw.Add(br.SIPText, &txt); err != nil {
			return br, err
		}
		if _, err := bw.Add(br.SIPPcap, &pcap); err != nil {
			return br, err
		}
	}

	clean := rec
	clean.File.WrappedDEK, clean.File.KeyTerm = nil, 0 // never key material, even wrapped
	var entries []meta.AuditEntry
	q := meta.AuditQuery{Recording: rec.ID, Limit: 1000}
	for {
		page, err := s.meta.SearchAudit(q)
		if err != nil {
			return br, err
		}
		entries = append(entries, page.Entries...)
		if page.Next == 0 {
			break
		}
		q.Before = page.Next
	}
	for _, f := range []struct {
		name string
		v    any
	}{
		{"metadata.json", clean},
		{"notes.json", nonNilSlice(rec.Notes)},
		{"bookmarks.json", nonNilSlice(rec.Bookmarks)},
		{"audit.json", nonNilSlice(entries)},
	} {
		b, err := json.MarshalIndent(f.v, "", "  ")
		if err != nil {
			return br, err
		}
		if _, err := bw.Add(dir+f.name, bytes.NewReader(append(b, '\n'))); err != nil {
			return br, err
		}
	}
	return br, nil
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
