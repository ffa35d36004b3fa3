package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// TestAuditCheckpoints: appending audit entries writes a signed checkpoint
// every CheckpointEvery entries and Close signs the tail; the signing key
// survives a restart, verifies, and its seed is never in the database in
// clear.
func TestAuditCheckpoints(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	pub := s.PublicKey()
	seed := bytes.Clone(s.signer.Seed())
	n := 2*CheckpointEvery + 50
	for i := range n {
		if _, err := s.Apply(ctx, &meta.AppendAudit{Entry: meta.AuditEntry{Time: time.Now(), Actor: "u1", Action: meta.AuditPlay, Recording: "r" + string(rune('a'+i%26))}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, last, _ := s.Meta().AuditHead(); last != 2*CheckpointEvery {
		t.Fatalf("newest checkpoint at %d, want %d", last, 2*CheckpointEvery)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, seed) {
		t.Fatal("the signing key's seed is in meta.db in clear")
	}

	s = openStore(t, dir)
	if !bytes.Equal(s.PublicKey(), pub) {
		t.Fatal("the signing key changed across a restart")
	}
	v, err := s.Meta().VerifyAudit()
	if err != nil || v.Broken != 0 || v.Entries != uint64(n) || v.Checkpoints != 3 || v.LastCheckpoint != uint64(n) {
		t.Fatalf("verify after restart: %+v %v", v, err)
	}
	if len(v.Keys) != 1 || v.Keys[0] != hex.EncodeToString(pub) {
		t.Fatalf("checkpoint keys %v, want the store's %x", v.Keys, pub)
	}
	if len(Fingerprint(pub)) != 64 {
		t.Fatalf("fingerprint %q", Fingerprint(pub))
	}
}
