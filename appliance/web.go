package appliance

import (
	"context"
	"io"
	"path/filepath"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/audio"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/webui"
)

// webData wires the store into the web UI's API: users, tokens,
// recordings and the audit log are read from the metadata database,
// changes go through the store's Committer, uploads are written by the
// store's pipelined encrypting writer, and audio is read and deleted
// through the store (which decrypts and crypto-shreds).
func webData(st *store.Store) webui.Data {
	return webui.Data{Users: st.Meta(), Commands: st, Recordings: uploads{st}, Catalog: st.Meta(), Library: library{st}, Admin: st.Meta(),
		Retention: st}
}

// storageTiers names the tiers for the admin page's storage panel: the hot
// tier is the data directory's recordings folder (where store.Open puts
// every new file), the archive tier is listed only when storage.archive_dir
// is configured. The archive is given as the mount itself, not its
// recordings folder, which the tier mover creates only on its first move:
// a configured archive must show its usage from the start.
func storageTiers(cfg Config) webui.TierPaths {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	tiers := webui.TierPaths{{Name: "hot", Path: filepath.Join(abs(cfg.DataDir), "recordings")}}
	if cfg.Storage.ArchiveDir != "" {
		tiers = append(tiers, webui.StorageTier{Name: "archive", Path: abs(cfg.Storage.ArchiveDir)})
	}
	return tiers
}

// library opens recordings for rendering and deletes them.
type library struct{ st *store.Store }

var _ webui.Library = library{}

func (l library) OpenSource(ctx context.Context, id string) (*audio.Source, io.Closer, error) {
	a, err := l.st.OpenAudio(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	src, err := a.Source()
	if err != nil {
		_ = a.Close()
		return nil, nil, err
	}
	return src, a, nil
}

func (l library) Delete(ctx context.Context, id, by string) error { return l.st.Delete(ctx, id, by) }

// uploads creates upload recordings in the store.
type uploads struct{ st *store.Store }

var _ webui.Recordings = uploads{}

func (u uploads) CreateUpload(ctx context.Context, rec meta.Recording) (webui.UploadWriter, error) {
	// Bulk: an upload arrives as fast as the network allows, so its writer
	// runs pipelined (sealing here, writing and hashing on two goroutines).
	r, err := u.st.Create(ctx, rec, store.Bulk())
	if err != nil {
		return nil, err
	}
	return &upload{st: u.st, r: r}, nil
}

// upload adapts a store.Recorder to webui.UploadWriter.
type upload struct {
	st     *store.Store
	r      *store.Recorder
	sealed bool // Close was called: the recorder is gone, Delete removes it
}

func (u *upload) ID() string                  { return u.r.ID() }
func (u *upload) Write(p []byte) (int, error) { return u.r.Write(p) }

// ReadFrom reads the attachment straight into the store's chunk buffer
// (store.Recorder.ReadFrom): the handler uses it when it is there.
func (u *upload) ReadFrom(r io.Reader) (int64, error) { return u.r.ReadFrom(r) }

// Audio flushes what was written into sealed chunks, then opens the file
// through the store's reader (the recording is still open, so the reader
// accepts a file without its last chunk).
func (u *upload) Audio(ctx context.Context) (webui.AudioFile, error) {
	if err := u.r.Flush(); err != nil {
		return nil, err
	}
	a, err := u.st.OpenAudio(ctx, u.r.ID())
	if err != nil {
		return nil, err // not a nil *store.Audio inside a non-nil interface
	}
	return a, nil
}

func (u *upload) Seal(ctx context.Context, f webui.UploadFinal) error {
	u.sealed = true
	_, err := u.r.Close(ctx, store.Final{
		DurationMs: &f.DurationMs, Channels: &f.Channels, Codecs: f.Codecs, DurationFlagged: &f.DurationFlagged,
		Audit: f.Audit,
	})
	return err
}

func (u *upload) Abort(ctx context.Context, by string) error {
	if u.sealed {
		return u.st.Delete(ctx, u.r.ID(), by)
	}
	return u.r.Abort(ctx, by)
}
