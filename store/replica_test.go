package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// twoNodes opens store a (node "a") with one sealed recording, then a
// second data directory b (node "b") holding a copy of a's metadata, as a
// node that joined a cluster has it, but no recording files. A prep
// function may change the sealed recording on a before b copies the
// metadata.
func twoNodes(t *testing.T, size int, prep ...func(a *Store, rec meta.Recording) meta.Recording) (a, b *Store, rec meta.Recording, data []byte) {
	t.Helper()
	da, db := t.TempDir(), t.TempDir()
	a = openStore(t, da, func(c *Config) { c.Node = "a" })
	data = signal(size)
	rec = record(t, a, newRecording(time.Now(), meta.FormatWAV), data)
	if rec.Status != meta.StatusComplete || rec.File.SHA256 == "" {
		t.Fatalf("recording not sealed: %s %q", rec.Status, rec.File.SHA256)
	}
	for _, p := range prep {
		rec = p(a, rec)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(filepath.Join(da, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db, "meta.db"), m, 0o600); err != nil {
		t.Fatal(err)
	}
	a = openStore(t, da, func(c *Config) { c.Node = "a" })
	b = openStore(t, db, func(c *Config) { c.Node = "b" })
	return a, b, rec, data
}

func TestInstallReplica(t *testing.T) {
	a, b, rec, data := twoNodes(t, 300_000)
	ctx := context.Background()
	if b.HasFile(rec) {
		t.Fatal("b holds the file before any copy")
	}
	if _, err := b.OpenAudio(ctx, rec.ID); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("b plays a file it does not hold: %v", err)
	}

	f, cur, err := a.OpenSealedFile(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	n, err := b.InstallReplica(ctx, cur, f)
	if err != nil {
		t.Fatal(err)
	}
	if n != fi.Size() {
		t.Fatalf("installed %d bytes of %d", n, fi.Size())
	}
	// The copy is the encrypted file byte for byte, and plays.
	orig, _ := os.ReadFile(filepath.Join(a.hotRoot, rec.File.Path))
	cp, _ := os.ReadFile(filepath.Join(b.hotRoot, rec.File.Path))
	if !bytes.Equal(orig, cp) {
		t.Fatal("the copy differs from the original file")
	}
	if got := readAll(t, b, rec.ID); !bytes.Equal(got, data) {
		t.Fatal("the copy does not play the recorded bytes")
	}
	got, _ := b.Meta().Recording(rec.ID)
	if len(got.Replicas) != 1 || got.Replicas[0] != "b" {
		t.Fatalf("metadata lists replicas %q, want [b]", got.Replicas)
	}
	assertNoParts(t, b)
}

func TestInstallReplicaRefusesBadCopy(t *testing.T) {
	a, b, rec, _ := twoNodes(t, 200_000)
	ctx := context.Background()
	orig, err := os.ReadFile(filepath.Join(a.hotRoot, rec.File.Path))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(orig)
	flipped[len(flipped)/2] ^= 1
	for name, body := range map[string][]byte{
		"cut off":  orig[:len(orig)/2],
		"one bit":  flipped,
		"too long": append(bytes.Clone(orig), 0),
		"empty":    nil,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := b.InstallReplica(ctx, rec, bytes.NewReader(body))
			if !errors.Is(err, errSealMismatch) {
				t.Fatalf("got %v, want errSealMismatch", err)
			}
			if b.HasFile(rec) {
				t.Fatal("a copy that does not match the seal hash was installed")
			}
			assertNoParts(t, b)
		})
	}
	// A reader that fails half way leaves nothing either.
	_, err = b.InstallReplica(ctx, rec, io.MultiReader(bytes.NewReader(orig[:1000]), errReader{}))
	if err == nil || b.HasFile(rec) {
		t.Fatalf("failed transfer: err %v, installed %v", err, b.HasFile(rec))
	}
	assertNoParts(t, b)
	// Not sealed: refused before reading.
	open := rec
	open.Status = meta.StatusRecording
	if _, err := b.InstallReplica(ctx, open, bytes.NewReader(orig)); !errors.Is(err, ErrNoFile) {
		t.Fatalf("unsealed: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func assertNoParts(t *testing.T, s *Store) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(s.hotRoot, incomingDir))
	if len(ents) != 0 {
		t.Fatalf("%d files left in %s", len(ents), incomingDir)
	}
}

func TestDropPartialReplicas(t *testing.T) {
	s := openStore(t, t.TempDir())
	in := filepath.Join(s.hotRoot, incomingDir)
	if n, err := s.DropPartialReplicas(); n != 0 || err != nil {
		t.Fatalf("no incoming dir: %d %v", n, err)
	}
	_ = os.MkdirAll(in, 0o700)
	for _, name := range []string{"x-1.part", "y-2.part"} {
		if err := os.WriteFile(filepath.Join(in, name), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.DropPartialReplicas(); n != 2 || err != nil {
		t.Fatalf("dropped %d, %v; want 2", n, err)
	}
	assertNoParts(t, s)
}

// peerFiles is the cluster's RemoteFiles in miniature: it reads the
// file from the other store, counting fetches.
type peerFiles struct {
	from    *Store
	fetches atomic.Int32
	cut     bool // send only half the file
}

func (p *peerFiles) FetchFile(_ context.Context, rec meta.Recording) (io.ReadCloser, error) {
	p.fetches.Add(1)
	f, _, err := p.from.OpenSealedFile(rec.ID)
	if err != nil {
		return nil, err
	}
	if p.cut {
		fi, _ := f.Stat()
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(f, fi.Size()/2), f}, nil
	}
	return f, nil
}

func (p *peerFiles) FetchSignalling(_ context.Context, rec meta.Recording) ([]byte, error) {
	return p.from.SignallingFile(rec.ID)
}

func TestOpenAudioFetchesFromPeer(t *testing.T) {
	a, b, rec, data := twoNodes(t, 500_000)
	ctx := context.Background()

	bad := &peerFiles{from: a, cut: true}
	b.SetRemoteFiles(bad)
	if _, err := b.OpenAudio(ctx, rec.ID); !errors.Is(err, ErrNoFile) || !errors.Is(err, errSealMismatch) {
		t.Fatalf("half a file from the peer: %v, want ErrNoFile wrapping errSealMismatch", err)
	}
	if b.HasFile(rec) {
		t.Fatal("half a file was installed")
	}

	p := &peerFiles{from: a}
	b.SetRemoteFiles(p)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			au, err := b.OpenAudio(ctx, rec.ID)
			if err == nil {
				var got []byte
				got, err = io.ReadAll(io.NewSectionReader(au, 0, au.Size()))
				_ = au.Close()
				if err == nil && !bytes.Equal(got, data) {
					err = errors.New("played bytes differ")
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("play %d: %v", i, err)
		}
	}
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("%d concurrent plays fetched the file %d times, want once", len(errs), n)
	}
	// The writer itself never fetches its own file.
	a.SetRemoteFiles(p)
	if err := os.Remove(filepath.Join(a.hotRoot, rec.File.Path)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.OpenAudio(ctx, rec.ID); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("writer without its file: %v", err)
	}
}

func TestDropDeletedReplica(t *testing.T) {
	a, b, rec, _ := twoNodes(t, 10_000)
	ctx := context.Background()
	f, cur, err := a.OpenSealedFile(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := b.InstallReplica(ctx, cur, f); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, rec.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	// b's Delete removed b's file; put one back as a node that missed it would have.
	_ = os.WriteFile(filepath.Join(b.hotRoot, rec.File.Path), []byte("old copy"), 0o600)
	del, _ := b.Meta().Recording(rec.ID)
	if ok, err := b.DropDeletedReplica(del); !ok || err != nil {
		t.Fatalf("drop: %v %v", ok, err)
	}
	if b.HasFile(del) {
		t.Fatal("copy of a deleted recording kept")
	}
	if _, _, err := b.OpenSealedFile(rec.ID); !errors.Is(err, ErrNoFile) {
		t.Fatalf("deleted recording served: %v", err)
	}
}
