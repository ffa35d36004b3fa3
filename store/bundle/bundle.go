// Package bundle writes and verifies Callvault's export bundles: a zip an
// auditor can check offline, with nothing but the bundle and the
// appliance's public key fingerprint, that every file in it is the one the
// appliance exported.
//
// Layout:
//
//	manifest.json       what the bundle holds: every file with its size and
//	                    SHA-256, the recordings with their sealed hashes
//	manifest.json.sig   ed25519 signature of manifest.json's bytes (64 bytes)
//	public-key.pem      the appliance's signing public key (PKIX, PEM)
//	fingerprint.txt     SHA-256 of the raw 32-byte public key, hex
//	SHA256SUMS          the same hashes in sha256sum's format (listed in the manifest)
//	README.txt          how to verify with openssl and sha256sum alone
//	recordings/REF/...  the exported files of each recording: audio as captured
//	                    and as stereo WAV, metadata, notes, bookmarks, audit
//	                    entries, and for captured calls sip.txt and sip.pcap
//
// Verify trusts nothing in the bundle but the public key, and that only
// when its fingerprint is the one the caller expects. Everything else
// must be signed (the manifest) or hashed by the manifest (every other
// file); a file that is missing, extra, longer, shorter or different is
// named.
package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"
)

// Control files: not listed in the manifest (they carry or prove it).
const (
	ManifestName    = "manifest.json"
	SignatureName   = "manifest.json.sig"
	PublicKeyName   = "public-key.pem"
	FingerprintName = "fingerprint.txt"
	SumsName        = "SHA256SUMS"
	ReadmeName      = "README.txt"
)

// Format names this layout in the manifest.
const Format = "callvault-export/1"

// Limits that keep a hostile bundle from exhausting the verifier.
const (
	maxManifest = 64 << 20
	maxEntries  = 1 << 20
)

// Sentinel errors.
var (
	// ErrBundle: the bundle is not a readable export (no manifest, bad zip).
	ErrBundle = errors.New("bundle: not a Callvault export")
	// ErrPath: a file name that could escape a directory when unpacked.
	ErrPath = errors.New("bundle: unsafe file name")
)

// File is one file of the bundle as the manifest lists it.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Recording is what the manifest says of one exported recording.
type Recording struct {
	ID        string    `json:"id"`
	Reference string    `json:"reference"`
	Start     time.Time `json:"start"`
	// AudioSHA256 is the hash sealed when the recording was made (also in
	// the signed audit chain); the bundle's captured audio file must have it.
	AudioSHA256 string `json:"audioSha256"`
	AudioFile   string `json:"audioFile"` // path of the audio as captured
	FileSHA256  string `json:"fileSha256"`
	// SIPText and SIPPcap are the call's SIP messages as text and as a
	// capture file, for calls captured from the network (paths; empty
	// when the recording has none).
	SIPText string `json:"sipText,omitempty"`
	SIPPcap string `json:"sipPcap,omitempty"`
}

// Manifest is manifest.json.
type Manifest struct {
	Format      string      `json:"format"`
	Created     time.Time   `json:"created"`
	CreatedBy   string      `json:"createdBy"`
	Node        string      `json:"node,omitempty"`
	Fingerprint string      `json:"fingerprint"`
	Recordings  []Recording `json:"recordings"`
	Files       []File      `json:"files"`
}

// Fingerprint is the SHA-256 of the raw public key, hex.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// Writer writes a bundle. Add the files, then Close with the manifest's
// details and a signer.
type Writer struct {
	zw    *zip.Writer
	files []File
	seen  map[string]bool
}

// NewWriter starts a bundle on w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{zw: zip.NewWriter(w), seen: map[string]bool{}}
}

// Add stores r under name, hashing it on the way.
func (w *Writer) Add(name string, r io.Reader) (File, error) {
	if err := checkName(name); err != nil {
		return File{}, err
	}
	if w.seen[name] || isControl(name) {
		return File{}, fmt.Errorf("%w: %q twice or reserved", ErrPath, name)
	}
	w.seen[name] = true
	fw, err := w.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Unix(0, 0).UTC()})
	if err != nil {
		return File{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(fw, h), r)
	if err != nil {
		return File{}, fmt.Errorf("bundle: write %s: %w", name, err)
	}
	f := File{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	w.files = append(w.files, f)
	return f, nil
}

// Close writes SHA256SUMS, the README, the manifest, its signature and the
// public key, and finishes the zip. It returns m as written: with Format,
// Fingerprint and Files filled in.
func (w *Writer) Close(m Manifest, pub ed25519.PublicKey, sign func([]byte) []byte) (Manifest, error) {
	var sums bytes.Buffer
	for _, f := range w.files {
		fmt.Fprintf(&sums, "%s  %s\n", f.SHA256, f.Path)
	}
	if _, err := w.Add(SumsName, &sums); err != nil {
		return m, err
	}
	if _, err := w.Add(ReadmeName, strings.NewReader(readme)); err != nil {
		return m, err
	}
	m.Format = Format
	m.Fingerprint = Fingerprint(pub)
	m.Files = w.files
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return m, err
	}
	for _, c := range []struct {
		name string
		data []byte
	}{
		{ManifestName, raw},
		{SignatureName, sign(raw)},
		{PublicKeyName, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})},
		{FingerprintName, []byte(m.Fingerprint + "\n")},
	} {
		fw, err := w.zw.CreateHeader(&zip.FileHeader{Name: c.name, Method: zip.Store, Modified: time.Unix(0, 0).UTC()})
		if err != nil {
			return m, err
		}
		if _, err := fw.Write(c.data); err != nil {
			return m, err
		}
	}
	return m, w.zw.Close()
}

func isControl(name string) bool {
	switch name {
	case ManifestName, SignatureName, PublicKeyName, FingerprintName:
		return true
	}
	return false
}

// checkName refuses names that unzip tools would write outside the target
// directory or that differ between systems.
func checkName(name string) error {
	if name == "" || len(name) > 1024 || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") ||
		path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("%w: %q", ErrPath, name)
	}
	return nil
}

// Report is what Verify found. OK only when Problems is empty.
type Report struct {
	Manifest Manifest
	// Fingerprint of the public key in the bundle; FingerprintChecked says
	// whether it was compared with one the caller trusts.
	Fingerprint        string
	FingerprintChecked bool
	SignatureOK        bool
	FilesOK            int
	// Problems, each naming the file concerned.
	Problems []string
}

// OK reports whether everything held.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Verify checks a bundle: the public key's fingerprint (against
// fingerprint, when given), the manifest's signature, and every file's size
// and SHA-256; files the manifest does not list, and listed files that are
// missing, are problems too. An error means the bundle could not be read at
// all; a readable bundle that fails a check gives a Report with Problems.
func Verify(r io.ReaderAt, size int64, fingerprint string) (*Report, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	if len(zr.File) > maxEntries {
		return nil, fmt.Errorf("%w: %d entries", ErrBundle, len(zr.File))
	}
	entries := map[string]*zip.File{}
	rep := &Report{}
	for _, f := range zr.File {
		if _, dup := entries[f.Name]; dup {
			rep.problem("%s: in the bundle twice", f.Name)
			continue
		}
		entries[f.Name] = f
	}
	read := func(name string, limit int64) ([]byte, error) {
		f := entries[name]
		if f == nil {
			return nil, fmt.Errorf("%w: no %s", ErrBundle, name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBundle, name, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, limit+1))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBundle, name, err)
		}
		if int64(len(b)) > limit {
			return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBundle, name, limit)
		}
		return b, nil
	}
	raw, err := read(ManifestName, maxManifest)
	if err != nil {
		return nil, err
	}
	manifestOK := true
	if err := json.Unmarshal(raw, &rep.Manifest); err != nil {
		// Still check the signature below: it tells a damaged manifest
		// from one that was never signed.
		rep.problem("%s: does not parse: %v", ManifestName, err)
		manifestOK = false
	} else if rep.Manifest.Format != Format {
		rep.problem("%s: format %q, this verifier knows %q", ManifestName, rep.Manifest.Format, Format)
	}

	// The key: trusted only through the fingerprint.
	pub, err := readPublicKey(read)
	switch {
	case err != nil:
		rep.problem("%s: %v", PublicKeyName, err)
	default:
		rep.Fingerprint = Fingerprint(pub)
		if fingerprint != "" {
			rep.FingerprintChecked = true
			if !strings.EqualFold(strings.TrimSpace(fingerprint), rep.Fingerprint) {
				rep.problem("%s: the key's fingerprint is %s, not the expected %s", PublicKeyName, rep.Fingerprint, fingerprint)
			}
		}
		if manifestOK && rep.Manifest.Fingerprint != rep.Fingerprint {
			rep.problem("%s: names fingerprint %s, the bundle's key has %s", ManifestName, rep.Manifest.Fingerprint, rep.Fingerprint)
		}
		sig, err := read(SignatureName, ed25519.SignatureSize)
		switch {
		case err != nil:
			rep.problem("%s: %v", SignatureName, err)
		case len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, raw, sig):
			rep.problem("%s: the signature does not match %s (the manifest was changed, or signed by another key)", SignatureName, ManifestName)
		default:
			rep.SignatureOK = true
		}
	}
	if fp, err := read(FingerprintName, 128); err != nil || strings.TrimSpace(string(fp)) != rep.Fingerprint {
		rep.problem("%s: does not hold the bundle key's fingerprint", FingerprintName)
	}

	if !manifestOK {
		return rep, nil
	}
	// Every listed file, then every unlisted one.
	listed := map[string]bool{}
	for _, lf := range rep.Manifest.Files {
		if err := checkName(lf.Path); err != nil {
			rep.problem("%s: %v", ManifestName, err)
			continue
		}
		listed[lf.Path] = true
		f := entries[lf.Path]
		if f == nil {
			rep.problem("%s: listed in the manifest, missing from the bundle", lf.Path)
			continue
		}
		rc, err := f.Open()
		if err != nil {
			rep.problem("%s: cannot be read: %v", lf.Path, err)
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, io.LimitReader(rc, lf.Size+1))
		rc.Close()
		switch got := hex.EncodeToString(h.Sum(nil)); {
		case err != nil:
			rep.problem("%s: cannot be read: %v", lf.Path, err)
		case n != lf.Size:
			rep.problem("%s: %d bytes, the manifest says %d", lf.Path, n, lf.Size)
		case got != lf.SHA256:
			rep.problem("%s: SHA-256 %s, the manifest says %s", lf.Path, got, lf.SHA256)
		default:
			rep.FilesOK++
		}
	}
	var extra []string
	for name := range entries {
		if !listed[name] && !isControl(name) {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	for _, name := range extra {
		rep.problem("%s: in the bundle but not in the manifest", name)
	}
	// The captured audio of each recording must carry its sealed hash.
	hashes := map[string]string{}
	for _, lf := range rep.Manifest.Files {
		hashes[lf.Path] = lf.SHA256
	}
	for _, rec := range rep.Manifest.Recordings {
		if rec.AudioSHA256 == "" {
			continue
		}
		if got, ok := hashes[rec.AudioFile]; !ok || got != rec.AudioSHA256 {
			rep.problem("%s: recording %s was sealed with audio SHA-256 %s, the file has %s", rec.AudioFile, rec.Reference, rec.AudioSHA256, got)
		}
	}
	return rep, nil
}

func readPublicKey(read func(string, int64) ([]byte, error)) (ed25519.PublicKey, error) {
	b, err := read(PublicKeyName, 4096)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("no PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, not ed25519", k)
	}
	return pub, nil
}

// readme is README.txt: verifying without Callvault.
const readme = `Callvault export bundle
=======================

This bundle was exported and signed by a Callvault appliance. To check it
with nothing but standard tools (OpenSSL 3 and coreutils), unzip it and run,
in its directory:

1. The signing key is the appliance's: its fingerprint, the SHA-256 of the
   raw 32-byte Ed25519 key, must be the one the appliance's administrator
   gave you:

     openssl pkey -pubin -in public-key.pem -outform DER | tail -c 32 | sha256sum

2. The manifest is what the appliance signed:

     openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin \
       -in manifest.json -sigfile manifest.json.sig

   ("Signature Verified Successfully").

3. Every file is the one the manifest names (SHA256SUMS is itself listed,
   with its hash, in manifest.json):

     grep -A2 '"path": "SHA256SUMS"' manifest.json   # compare with:
     sha256sum SHA256SUMS
     sha256sum -c SHA256SUMS

Or with Callvault: callvault verify bundle FILE.zip --fingerprint FINGERPRINT
`
