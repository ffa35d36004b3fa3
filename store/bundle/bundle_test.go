package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"
)

var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

func testPub() ed25519.PublicKey { return testKey.Public().(ed25519.PublicKey) }

// makeBundle writes a bundle of two recordings' files.
func makeBundle(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	audio := bytes.Repeat([]byte("audio as captured "), 1000)
	sum := sha256.Sum256(audio)
	files := map[string][]byte{
		"recordings/2026000000001/audio-captured.cvg": audio,
		"recordings/2026000000001/audio-stereo.wav":   bytes.Repeat([]byte{1, 2, 3}, 5000),
		"recordings/2026000000001/metadata.json":      []byte(`{"id":"a"}`),
		"recordings/2026000000002/metadata.json":      []byte(`{"id":"b"}`),
	}
	for _, name := range []string{"recordings/2026000000001/audio-captured.cvg", "recordings/2026000000001/audio-stereo.wav",
		"recordings/2026000000001/metadata.json", "recordings/2026000000002/metadata.json"} {
		if _, err := w.Add(name, bytes.NewReader(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	m := Manifest{Created: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC), CreatedBy: "auditor",
		Recordings: []Recording{{ID: "a", Reference: "2026000000001", AudioSHA256: hex.EncodeToString(sum[:]), AudioFile: "recordings/2026000000001/audio-captured.cvg"}}}
	if _, err := w.Close(m, testPub(), func(b []byte) []byte { return ed25519.Sign(testKey, b) }); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rewrite copies a bundle, letting change alter (or drop, returning nil)
// each entry's content, and add extra entries.
func rewrite(t *testing.T, b []byte, change func(name string, data []byte) []byte, extra map[string][]byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		if data = change(f.Name, data); data == nil {
			continue
		}
		fw, _ := zw.Create(f.Name)
		fw.Write(data)
	}
	for name, data := range extra {
		fw, _ := zw.Create(name)
		fw.Write(data)
	}
	zw.Close()
	return out.Bytes()
}

func verify(t *testing.T, b []byte, fp string) *Report {
	t.Helper()
	rep, err := Verify(bytes.NewReader(b), int64(len(b)), fp)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestVerifyGoodBundle(t *testing.T) {
	b := makeBundle(t)
	rep := verify(t, b, Fingerprint(testPub()))
	if !rep.OK() || !rep.SignatureOK || !rep.FingerprintChecked || rep.FilesOK != 6 {
		t.Fatalf("%+v", rep)
	}
	// Without an expected fingerprint it still checks, and says it did not compare.
	if rep := verify(t, b, ""); !rep.OK() || rep.FingerprintChecked {
		t.Fatalf("%+v", rep)
	}
}

// TestVerifyNamesWhatChanged: a changed byte in any file, a missing or
// extra file, an edited manifest or another key is a problem naming it.
func TestVerifyNamesWhatChanged(t *testing.T) {
	b := makeBundle(t)
	fp := Fingerprint(testPub())
	flipOne := func(target string) func(string, []byte) []byte {
		return func(name string, data []byte) []byte {
			if name == target {
				data = bytes.Clone(data)
				data[len(data)/2] ^= 1
			}
			return data
		}
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	for _, c := range []struct {
		name   string
		bundle []byte
		want   string
	}{
		{"audio byte", rewrite(t, b, flipOne("recordings/2026000000001/audio-stereo.wav"), nil), "recordings/2026000000001/audio-stereo.wav: SHA-256"},
		{"captured audio byte", rewrite(t, b, flipOne("recordings/2026000000001/audio-captured.cvg"), nil), "audio-captured.cvg"},
		{"metadata byte", rewrite(t, b, flipOne("recordings/2026000000002/metadata.json"), nil), "recordings/2026000000002/metadata.json"},
		{"sums byte", rewrite(t, b, flipOne(SumsName), nil), SumsName},
		{"readme byte", rewrite(t, b, flipOne(ReadmeName), nil), ReadmeName},
		{"manifest byte", rewrite(t, b, flipOne(ManifestName), nil), SignatureName},
		{"signature byte", rewrite(t, b, flipOne(SignatureName), nil), SignatureName},
		{"missing file", rewrite(t, b, func(n string, d []byte) []byte {
			if n == "recordings/2026000000002/metadata.json" {
				return nil
			}
			return d
		}, nil), "recordings/2026000000002/metadata.json: listed in the manifest, missing"},
		{"extra file", rewrite(t, b, func(_ string, d []byte) []byte { return d }, map[string][]byte{"recordings/x.txt": []byte("hi")}), "recordings/x.txt: in the bundle but not in the manifest"},
		{"longer file", rewrite(t, b, func(n string, d []byte) []byte {
			if n == "recordings/2026000000001/metadata.json" {
				return append(bytes.Clone(d), ' ')
			}
			return d
		}, nil), "recordings/2026000000001/metadata.json: 11 bytes, the manifest says 10"},
		{"re-signed with another key", rewrite(t, b, func(n string, d []byte) []byte {
			switch n {
			case SignatureName:
				m := rewriteManifestKey(t, b, other)
				return ed25519.Sign(other, m)
			case ManifestName:
				return rewriteManifestKey(t, b, other)
			case PublicKeyName:
				return pemOf(t, other.Public().(ed25519.PublicKey))
			case FingerprintName:
				return []byte(Fingerprint(other.Public().(ed25519.PublicKey)) + "\n")
			}
			return d
		}, nil), "not the expected " + fp},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := verify(t, c.bundle, fp)
			if rep.OK() {
				t.Fatal("verified")
			}
			if !strings.Contains(strings.Join(rep.Problems, "\n"), c.want) {
				t.Fatalf("problems do not name %q:\n%s", c.want, strings.Join(rep.Problems, "\n"))
			}
		})
	}
}

func rewriteManifestKey(t *testing.T, b []byte, k ed25519.PrivateKey) []byte {
	t.Helper()
	rep := verify(t, b, "")
	return bytes.Replace(mustRead(t, b, ManifestName), []byte(rep.Fingerprint), []byte(Fingerprint(k.Public().(ed25519.PublicKey))), 1)
}

func mustRead(t *testing.T, b []byte, name string) []byte {
	zr, _ := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	for _, f := range zr.File {
		if f.Name == name {
			rc, _ := f.Open()
			d, _ := io.ReadAll(rc)
			return d
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

func pemOf(t *testing.T, pub ed25519.PublicKey) []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if _, err := w.Close(Manifest{}, pub, func([]byte) []byte { return make([]byte, 64) }); err != nil {
		t.Fatal(err)
	}
	return mustRead(t, buf.Bytes(), PublicKeyName)
}

func TestWriterRefusesUnsafeNames(t *testing.T) {
	w := NewWriter(io.Discard)
	for _, name := range []string{"", "/etc/passwd", "../x", "a/../../b", `a\b`, "a//b", ManifestName, "x\x00y"} {
		if _, err := w.Add(name, strings.NewReader("x")); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
}

func FuzzVerify(f *testing.F) {
	good := makeBundle(f)
	f.Add(good, "")
	f.Add(good[:len(good)/2], "")
	f.Add([]byte("PK\x05\x06"+strings.Repeat("\x00", 18)), "")
	f.Fuzz(func(t *testing.T, b []byte, fp string) {
		rep, err := Verify(bytes.NewReader(b), int64(len(b)), fp)
		if err == nil && rep.OK() && !bytes.Equal(b, good) && rep.SignatureOK && rep.FingerprintChecked {
			// A different byte string can verify only if it is a re-packing
			// of the same signed content; that is fine, but it must be
			// signed by the test key.
			if rep.Fingerprint != Fingerprint(testPub()) {
				t.Fatalf("verified under another key")
			}
		}
	})
}
