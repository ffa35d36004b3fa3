package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callvault/callvault/store/keyring"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/store/recfile"
)

// checkSealed fails the test unless raw is rec's file as sealed: every
// chunk authenticates with the recording's key and the seal hash is the
// metadata's. It also returns the file's format version.
func checkSealed(t *testing.T, s *Store, rec meta.Recording, raw []byte) byte {
	t.Helper()
	check, err := s.newSealCheck(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := check.copy(context.Background(), io.Discard, bytes.NewReader(raw)); err != nil {
		t.Fatalf("recording %s: its own file does not verify: %v", rec.ID, err)
	}
	return raw[6]
}

// rewriteAsVersion1 replaces a sealed recording's file with a format
// version 1 file of the same content and key, whose seal hash is the
// SHA-256 of the whole file, and commits that hash: a recording as a
// release before format version 2 sealed it.
func rewriteAsVersion1(t *testing.T, s *Store, rec meta.Recording) meta.Recording {
	t.Helper()
	data := readAll(t, s, rec.ID)
	uid, err := parseID(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	dek, err := s.keys.Load().UnwrapDEK(rec.File.WrappedDEK, uid[:])
	if err != nil {
		t.Fatal(err)
	}
	defer keyring.Zero(dek)
	path := filepath.Join(s.hotRoot, rec.File.Path)
	tmp := path + ".v1"
	w, err := recfile.Create(tmp, recfile.Header{RecordingID: uid}, dek, rand.Reader, recfile.FormatVersion(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(context.Background(), &meta.UpdateRecording{ID: rec.ID, SealHash: hex.EncodeToString(sum[:])}); err != nil {
		t.Fatal(err)
	}
	rec, err = s.Meta().Recording(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if v := checkSealed(t, s, rec, raw); v != 1 {
		t.Fatalf("rewritten file has version %d", v)
	}
	return rec
}

// TestInstallReplicaRefusesDamage: a received copy with one byte changed in
// any chunk, cut off inside a chunk or at a chunk boundary, with two chunks
// swapped, or with a byte appended is refused with errSealMismatch, and
// nothing of it stays on the receiving node; the intact copy is then
// installed and plays.
func TestInstallReplicaRefusesDamage(t *testing.T) {
	// 300,000 bytes: four full 64 KiB chunks and a short last one.
	a, b, rec, data := twoNodes(t, 300_000)
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join(a.hotRoot, rec.File.Path))
	if err != nil {
		t.Fatal(err)
	}
	if v := checkSealed(t, a, rec, raw); v != recfile.Version {
		t.Fatalf("new recording has format version %d, want %d", v, recfile.Version)
	}
	const full = 4 + recfile.DefaultChunkSize + 16 // bytes of a full chunk in the file
	chunkAt := func(i int) int { return recfile.HeaderSize + i*full }
	copies := map[string][]byte{}
	for i := range 5 {
		// A byte in the middle of each chunk's ciphertext, and the last
		// byte of its tag.
		end := min(chunkAt(i+1), len(raw))
		for _, off := range []int{(chunkAt(i) + end) / 2, end - 1} {
			c := bytes.Clone(raw)
			c[off] ^= 0x20
			copies[fmt.Sprintf("chunk %d byte %d changed", i, off)] = c
		}
	}
	copies["header byte 40 changed"] = func() []byte { c := bytes.Clone(raw); c[40] ^= 1; return c }()
	copies["cut inside chunk 2"] = raw[:chunkAt(2)+1000]
	copies["cut after chunk 3 (no last chunk)"] = raw[:chunkAt(4)]
	copies["cut one byte short"] = raw[:len(raw)-1]
	swapped := bytes.Clone(raw)
	copy(swapped[chunkAt(1):chunkAt(2)], raw[chunkAt(2):chunkAt(3)])
	copy(swapped[chunkAt(2):chunkAt(3)], raw[chunkAt(1):chunkAt(2)])
	copies["chunks 1 and 2 swapped"] = swapped
	copies["a byte appended"] = append(bytes.Clone(raw), 0)
	copies["empty"] = nil

	for name, c := range copies {
		n, err := b.InstallReplica(ctx, rec, bytes.NewReader(c))
		if !errors.Is(err, errSealMismatch) || n != 0 {
			t.Fatalf("%s: InstallReplica = %d, %v; want errSealMismatch", name, n, err)
		}
		if b.HasFile(rec) {
			t.Fatalf("%s: the refused copy is in place", name)
		}
		if ents, _ := os.ReadDir(filepath.Join(b.hotRoot, incomingDir)); len(ents) != 0 {
			t.Fatalf("%s: %d files left in %s", name, len(ents), incomingDir)
		}
	}
	if got, _ := b.Meta().Recording(rec.ID); len(got.Replicas) != 0 {
		t.Fatalf("a refused copy was recorded: replicas %v", got.Replicas)
	}
	if n, err := b.InstallReplica(ctx, rec, bytes.NewReader(raw)); err != nil || n != int64(len(raw)) {
		t.Fatalf("intact copy: %d, %v", n, err)
	}
	if !bytes.Equal(readAll(t, b, rec.ID), data) {
		t.Fatal("installed copy reads back different")
	}
}

// TestOldKindFileStillVerifies: a recording sealed before format version
// 2 (seal hash over the whole file) is still copied to another node,
// refused there when damaged, and moved to the archive tier.
func TestOldKindFileStillVerifies(t *testing.T) {
	ctx := context.Background()
	t.Run("replica", func(t *testing.T) {
		a, b, rec, data := twoNodes(t, 200_000, func(a *Store, rec meta.Recording) meta.Recording {
			return rewriteAsVersion1(t, a, rec)
		})
		raw, err := os.ReadFile(filepath.Join(a.hotRoot, rec.File.Path))
		if err != nil {
			t.Fatal(err)
		}
		damaged := bytes.Clone(raw)
		damaged[len(raw)/2] ^= 1
		if _, err := b.InstallReplica(ctx, rec, bytes.NewReader(damaged)); !errors.Is(err, errSealMismatch) {
			t.Fatalf("damaged version 1 copy: %v, want errSealMismatch", err)
		}
		if _, err := b.InstallReplica(ctx, rec, bytes.NewReader(raw[:len(raw)-1])); !errors.Is(err, errSealMismatch) {
			t.Fatalf("cut version 1 copy: %v, want errSealMismatch", err)
		}
		if n, err := b.InstallReplica(ctx, rec, bytes.NewReader(raw)); err != nil || n != int64(len(raw)) {
			t.Fatalf("version 1 copy: %d, %v", n, err)
		}
		if !bytes.Equal(readAll(t, b, rec.ID), data) {
			t.Fatal("version 1 copy reads back different")
		}
	})
	t.Run("archive", func(t *testing.T) {
		e := openTierEnv(t, ArchiveConfig{AfterDays: 30}, true)
		rec, data := e.record(t, tierNow.Add(-60*24*time.Hour), tierRecSize)
		rec = rewriteAsVersion1(t, e.s, rec)
		if moved, err := e.s.tier.runOnce(ctx); err != nil || moved != 1 {
			t.Fatalf("runOnce = %d, %v; want the version 1 file moved", moved, err)
		}
		e.onArchive(t, rec)
		e.mustRead(t, rec.ID, data)
	})
}
