package test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestExportAndVerifyBundle: recordings captured from a real capture file
// are exported with the CLI into a signed bundle; `callvault verify
// bundle` accepts it against the printed fingerprint, and so do openssl
// and sha256sum following the bundle's README; one changed byte in any
// file makes verification fail naming that file; a wrong fingerprint
// fails too.
func TestExportAndVerifyBundle(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d")
	corpus, _ := filepath.Abs("../capture/testdata/corpus")
	out, stderr, code := runCLI(t, dir, nil, "import", "--json", "--data-dir", data,
		filepath.Join(corpus, "SIP_DTMF2.pcap"), filepath.Join(corpus, "one.pcap"))
	if code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	var res struct {
		Calls []struct {
			RecordingID string `json:"recordingId"`
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Calls) == 0 {
		t.Fatalf("import --json: %v\n%s", err, out)
	}
	args := []string{"export", "--data-dir", data, "--out", filepath.Join(dir, "case.zip")}
	for _, c := range res.Calls {
		args = append(args, "--id", c.RecordingID)
	}
	out, stderr, code = runCLI(t, dir, nil, args...)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s%s", code, out, stderr)
	}
	fp := regexp.MustCompile(`fingerprint ([0-9a-f]{64})`).FindStringSubmatch(out)
	if fp == nil {
		t.Fatalf("export printed no fingerprint:\n%s", out)
	}
	bundlePath := filepath.Join(dir, "case.zip")

	out, stderr, code = runCLI(t, dir, nil, "verify", "bundle", bundlePath, "--fingerprint", fp[1])
	if code != 0 || !strings.Contains(out, "OK: every file") || !strings.Contains(out, "matches --fingerprint") {
		t.Fatalf("verify bundle: exit %d\n%s%s", code, out, stderr)
	}
	if _, _, code := runCLI(t, dir, nil, "verify", "bundle", bundlePath, "--fingerprint", strings.Repeat("ab", 32)); code == 0 {
		t.Fatal("a wrong fingerprint verified")
	}

	// The README's way, with standard tools only.
	raw, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	unpacked := filepath.Join(dir, "unpacked")
	names := unzipTo(t, raw, unpacked)

	// The captured calls' SIP messages are in the bundle, as text and as
	// a capture tshark reads: the SIP_DTMF2 call's INVITE, its 200 and
	// its ACK, in that order (the capture ends without a BYE).
	var sipTexts, sipPcaps []string
	for _, n := range names {
		switch filepath.Base(n) {
		case "sip.txt":
			sipTexts = append(sipTexts, n)
		case "sip.pcap":
			sipPcaps = append(sipPcaps, n)
		}
	}
	// one.pcap is RTP without any SIP: only the SIP_DTMF2 call has some.
	if len(sipTexts) != 1 || len(sipPcaps) != 1 || filepath.Dir(sipTexts[0]) != filepath.Dir(sipPcaps[0]) {
		t.Fatalf("%d sip.txt and %d sip.pcap, want one of each for the one call with SIP: %v", len(sipTexts), len(sipPcaps), names)
	}
	var dtmfDir string
	for _, n := range sipTexts {
		b, err := os.ReadFile(filepath.Join(unpacked, n))
		if err != nil {
			t.Fatal(err)
		}
		txt := string(b)
		if !strings.Contains(txt, "Call-ID: 25672@192.168.105.110") {
			continue
		}
		dtmfDir = filepath.Dir(n)
		invite, ok200, ack := strings.Index(txt, "INVITE sip:"), strings.Index(txt, "SIP/2.0 200"), strings.Index(txt, "ACK sip:")
		if invite < 0 || ok200 < invite || ack < ok200 {
			t.Errorf("%s: INVITE at %d, 200 at %d, ACK at %d; want them in that order", n, invite, ok200, ack)
		}
	}
	if dtmfDir == "" {
		t.Fatalf("no sip.txt holds the SIP_DTMF2 call (Call-ID 25672@192.168.105.110)")
	}
	if tshark, err := exec.LookPath("tshark"); err == nil {
		b, err := exec.Command(tshark, "-r", filepath.Join(unpacked, dtmfDir, "sip.pcap"), "-Y", "sip.Request-Line", "-T", "fields", "-e", "sip.Method").Output()
		methods := strings.Fields(string(b))
		if err != nil || len(methods) < 2 || methods[0] != "INVITE" || !slices.Contains(methods, "ACK") {
			t.Errorf("tshark reads the SIP requests of sip.pcap as %q (%v), want INVITE first and an ACK", methods, err)
		}
	} else {
		t.Logf("tshark not installed (Debian package tshark): sip.pcap was not read by it")
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		cmd := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", "public-key.pem", "-rawin", "-in", "manifest.json", "-sigfile", "manifest.json.sig")
		cmd.Dir = unpacked
		if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "Signature Verified Successfully") {
			t.Errorf("openssl does not verify the manifest: %v\n%s", err, b)
		}
		sh := exec.Command("sh", "-c", openssl+" pkey -pubin -in public-key.pem -outform DER | tail -c 32 | sha256sum")
		sh.Dir = unpacked
		if b, err := sh.Output(); err != nil || !strings.HasPrefix(string(b), fp[1]) {
			t.Errorf("the README's fingerprint command gives %q, want %s (%v)", b, fp[1], err)
		}
	} else {
		t.Logf("openssl not installed (Debian package openssl): the README's openssl steps were not run")
	}
	sums := exec.Command("sha256sum", "-c", "--quiet", "SHA256SUMS")
	sums.Dir = unpacked
	if b, err := sums.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, b)
	}

	// One changed byte, in each kind of file: named.
	for _, target := range names {
		if !strings.HasPrefix(target, "recordings/") && target != "SHA256SUMS" && target != "manifest.json" {
			continue
		}
		changed := rezip(t, raw, target)
		p := filepath.Join(dir, "tampered.zip")
		if err := os.WriteFile(p, changed, 0o600); err != nil {
			t.Fatal(err)
		}
		out, _, code := runCLI(t, dir, nil, "verify", "bundle", p, "--fingerprint", fp[1])
		want := target
		if target == "manifest.json" {
			want = "manifest.json.sig" // the manifest is what the signature covers
		}
		if code == 0 || !strings.Contains(out, "FAIL "+want) {
			t.Errorf("one byte changed in %s: exit %d, output does not name it:\n%s", target, code, out)
		}
	}
}

func unzipTo(t *testing.T, b []byte, dir string) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// rezip copies a zip with one byte of one entry flipped.
func rezip(t *testing.T, b []byte, target string) []byte {
	t.Helper()
	zr, _ := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		if f.Name == target && len(data) > 0 {
			data[len(data)/2] ^= 0x20
		}
		w, _ := zw.Create(f.Name)
		w.Write(data)
	}
	zw.Close()
	return out.Bytes()
}
