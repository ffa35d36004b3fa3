package store

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callvault/callvault/store/meta"
)

// TestSweepRemovesOrphans: at open, the hot tier loses the files a crash
// left without a recording (a .cvr and its .sip whose create never
// committed) and the file of a recording deleted before a crash could
// remove it; recordings, and files made since the store opened, stay.
func TestSweepRemovesOrphans(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	data := signal(200_000)
	keep := record(t, s, newRecording(time.Now(), meta.FormatWAV), data)
	gone := record(t, s, newRecording(time.Now(), meta.FormatWAV), data)
	keepRaw, err := os.ReadFile(filepath.Join(s.hotRoot, keep.File.Path))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), gone.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// What a crash leaves: a file (and SIP side file) of a create that
	// never committed, and a deleted recording's file still there.
	orphan := uuid.Must(uuid.NewV7()).String()
	day := filepath.Dir(filepath.Join(s.hotRoot, keep.File.Path))
	old := time.Now().Add(-time.Hour)
	leftovers := []string{
		filepath.Join(day, orphan+".cvr"),
		filepath.Join(day, orphan+sigExt),
		filepath.Join(s.hotRoot, gone.File.Path),
	}
	for _, p := range leftovers {
		if err := os.WriteFile(p, keepRaw[:4096], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	// Not a recording's file name: never touched.
	other := filepath.Join(day, "notes.txt")
	if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, dir)
	// A file created after the store opened (a create committing now) stays.
	fresh := filepath.Join(day, uuid.Must(uuid.NewV7()).String()+".cvr")
	if err := os.WriteFile(fresh, keepRaw[:4096], 0o600); err != nil {
		t.Fatal(err)
	}
	<-s2.sweepDone
	for _, p := range leftovers {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived the sweep", filepath.Base(p))
		}
	}
	for _, p := range []string{fresh, other, filepath.Join(s2.hotRoot, keep.File.Path)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the sweep removed %s: %v", filepath.Base(p), err)
		}
	}
	if n := s2.Stats().OrphansRemoved.Load(); n != int64(len(leftovers)) {
		t.Errorf("OrphansRemoved = %d, want %d", n, len(leftovers))
	}
	if !bytes.Equal(readAll(t, s2, keep.ID), data) {
		t.Fatal("the kept recording reads back different")
	}
}
