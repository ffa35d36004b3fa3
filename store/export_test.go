package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/bundle"
	"github.com/callvault/callvault/store/meta"
)

// TestExportBundle: an exported bundle verifies offline against the
// store's fingerprint, carries the audio whose hash was sealed, holds its
// own audit entries and no key material; deleted recordings are refused.
func TestExportBundle(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	var ids []string
	var sums []string
	for i := range 2 {
		r, err := s.Create(ctx, newRecording(time.Now().Add(time.Duration(i)*time.Minute), meta.FormatWAV))
		if err != nil {
			t.Fatal(err)
		}
		wav := testWAV(8000, 8000+i*800)
		r.Write(wav)
		if _, err := r.Close(ctx, Final{}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID())
		sum := sha256.Sum256(wav)
		sums = append(sums, hex.EncodeToString(sum[:]))
	}
	var buf bytes.Buffer
	m, err := s.Export(ctx, &buf, ids, "u-auditor", "192.0.2.9")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Recordings) != 2 || m.Recordings[0].AudioSHA256 != sums[0] {
		t.Fatalf("manifest recordings %+v", m.Recordings)
	}
	rep, err := bundle.Verify(bytes.NewReader(buf.Bytes()), int64(buf.Len()), Fingerprint(s.PublicKey()))
	if err != nil || !rep.OK() || !rep.SignatureOK {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	if bytes.Contains(buf.Bytes(), []byte("wrappedDek")) {
		t.Fatal("key material in the bundle")
	}
	for _, id := range ids {
		p, _ := s.Meta().SearchAudit(meta.AuditQuery{Recording: id, Action: meta.AuditExport})
		if len(p.Entries) != 1 || p.Entries[0].Actor != "u-auditor" || p.Entries[0].Address != "192.0.2.9" {
			t.Fatalf("export not audited: %+v", p.Entries)
		}
	}
	if v, err := s.Meta().VerifyAudit(); err != nil || v.Broken != 0 || v.LastCheckpoint == 0 {
		t.Fatalf("audit after export: %+v %v", v, err)
	}
	files := strings.Join(func() []string {
		var n []string
		for _, f := range m.Files {
			n = append(n, f.Path)
		}
		return n
	}(), "\n")
	for _, want := range []string{"audio-captured.wav", "audio-stereo.wav", "metadata.json", "notes.json", "bookmarks.json", "audit.json", "SHA256SUMS"} {
		if !strings.Contains(files, want) {
			t.Errorf("bundle lacks %s:\n%s", want, files)
		}
	}

	if err := s.Delete(ctx, ids[1], "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Export(ctx, &bytes.Buffer{}, ids, "u-auditor", ""); err == nil || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("export of a deleted recording: %v", err)
	}
}

// testWAV is a PCM16 mono WAV of n samples of a tone at rate.
func testWAV(rate, n int) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	binary.Write(&b, le, uint32(36+2*n))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(rate), uint32(2 * rate), uint16(2), uint16(16)} {
		binary.Write(&b, le, v)
	}
	b.WriteString("data")
	binary.Write(&b, le, uint32(2*n))
	for i := range n {
		binary.Write(&b, le, int16(8000*math.Sin(2*math.Pi*440*float64(i)/float64(rate))))
	}
	return b.Bytes()
}
