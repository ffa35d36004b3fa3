package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os/exec"
	"testing"
	"testing/iotest"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// TestReadFromBulk: a bulk recording read in with ReadFrom plays back what
// was read, with the audio hash of those bytes; a reader's error comes
// back as the reader returned it, so the caller can tell a client that
// went away from the store; a live recording is read through Write.
func TestReadFromBulk(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	data := signal(3<<20 + 77)
	for name, opts := range map[string][]CreateOption{"bulk": {Bulk()}, "live": nil} {
		t.Run(name, func(t *testing.T) {
			r, err := s.Create(ctx, newRecording(time.Now(), meta.FormatWAV), opts...)
			if err != nil {
				t.Fatal(err)
			}
			n, err := r.ReadFrom(iotest.HalfReader(bytes.NewReader(data)))
			if err != nil || n != int64(len(data)) {
				t.Fatalf("ReadFrom: %d, %v", n, err)
			}
			d := int64(1000)
			rec, err := r.Close(ctx, Final{DurationMs: &d})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readAll(t, s, rec.ID), data) || rec.Size != int64(len(data)) {
				t.Fatal("the recording reads back different")
			}
			if sum := sha256.Sum256(data); rec.File.AudioSHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("sealed audio hash %q is not the SHA-256 of the bytes read", rec.File.AudioSHA256)
			}
		})
	}

	r, err := s.Create(ctx, newRecording(time.Now(), meta.FormatWAV), Bulk())
	if err != nil {
		t.Fatal(err)
	}
	gone := errors.New("client went away")
	n, err := r.ReadFrom(io.MultiReader(bytes.NewReader(data[:70000]), iotest.ErrReader(gone)))
	if err != gone || n != 70000 {
		t.Fatalf("ReadFrom over a failing reader: %d, %v; want 70000 and the reader's own error", n, err)
	}
	if err := r.Abort(ctx, "test"); err != nil {
		t.Fatal(err)
	}
}

// TestReadFromDiskFull: a full disk under ReadFrom is the store's
// ErrDiskFull, not mistaken for the reader's error, and the recording is
// unusable after it.
func TestReadFromDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root; CI runs as root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	s := openStore(t, dir, func(c *Config) { c.MinFreeBytes = 0 })
	ctx := context.Background()
	r, err := s.Create(ctx, newRecording(time.Now(), meta.FormatWAV), Bulk())
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.ReadFrom(bytes.NewReader(signal(8 << 20)))
	if err == nil {
		// A pipelined writer may report the failed write at the next call.
		_, err = r.Write([]byte{1})
	}
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("ReadFrom past the disk: %v, want ErrDiskFull", err)
	}
	if _, err := r.ReadFrom(bytes.NewReader([]byte{1})); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("ReadFrom after a full disk: %v", err)
	}
	if err := r.Abort(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Meta().Recording(r.ID()); !errors.Is(err, meta.ErrNotFound) {
		t.Fatal("the aborted recording is still in the metadata")
	}
}
