package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tlsClient trusts exactly the certificate in certPEM.
func tlsClient(t *testing.T, certPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("no certificate in PEM")
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// served returns the SHA-256 of the certificate the server presents.
func served(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // we only read the certificate
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sum := sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// TestTLSSelfSigned: with http.tls on and no certificate configured, the
// first start makes a self-signed certificate in <data_dir>/tls, prints its
// fingerprint, serves HTTPS with it (verifiable against that file for
// 127.0.0.1), and the next start keeps it.
func TestTLSSelfSigned(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := []string{"CALLVAULT_HTTP_TLS=true"}
	s := startServer(t, dir, env, "--data-dir", data)

	certPEM, err := os.ReadFile(filepath.Join(data, "tls", "cert.pem"))
	if err != nil {
		t.Fatalf("no self-signed certificate: %v\n%s", err, s.stderr)
	}
	if fi, err := os.Stat(filepath.Join(data, "tls", "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi, err)
	}
	fp := served(t, s.addr)
	if !strings.Contains(s.stderr.String(), "fingerprint is "+fp) {
		t.Errorf("stderr does not give the served certificate's fingerprint %s:\n%s", fp, s.stderr)
	}
	c := tlsClient(t, certPEM)
	resp, err := c.Get("https://" + s.addr + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS with the certificate from the data directory: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ok") {
		t.Fatalf("/healthz over TLS: %d %q", resp.StatusCode, body)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("TLS state %+v", resp.TLS)
	}
	// Plain HTTP to the TLS port is refused, not served.
	if r, err := http.Get("http://" + s.addr + "/healthz"); err == nil {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Fatalf("plain HTTP served on the TLS port: %q", b)
		}
	}
	if _, err := s.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	s = startServer(t, dir, env, "--data-dir", data)
	if got := served(t, s.addr); got != fp {
		t.Errorf("restart made a new certificate: %s, was %s", got, fp)
	}
	if strings.Contains(s.stderr.String(), "made a self-signed") {
		t.Errorf("restart announced a new certificate:\n%s", s.stderr)
	}
}

// TestTLSConfiguredCertificate: http.cert_file and http.key_file are served
// as given, and nothing is generated.
func TestTLSConfiguredCertificate(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "recorder.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"recorder.example.com"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile := filepath.Join(dir, "site.crt"), filepath.Join(dir, "site.key")
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	data := filepath.Join(dir, "data")
	s := startServer(t, dir, []string{"CALLVAULT_HTTP_TLS=true", "CALLVAULT_HTTP_CERT_FILE=" + certFile, "CALLVAULT_HTTP_KEY_FILE=" + keyFile}, "--data-dir", data)
	sum := sha256.Sum256(der)
	if got := served(t, s.addr); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("served certificate %s is not the configured one", got)
	}
	resp, err := tlsClient(t, certPEM).Get("https://" + s.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := os.Stat(filepath.Join(data, "tls")); !os.IsNotExist(err) {
		t.Errorf("a certificate was generated although one is configured: %v", err)
	}
}

// TestTLSBadCertificate: a configured certificate that cannot be loaded
// stops start-up with a message naming the key.
func TestTLSBadCertificate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	_, stderr, code := runCLI(t, dir, []string{"CALLVAULT_HTTP_TLS=true", "CALLVAULT_HTTP_CERT_FILE=" + bad, "CALLVAULT_HTTP_KEY_FILE=" + bad},
		"serve", "--data-dir", filepath.Join(dir, "data"), "--http", freeAddr(t))
	if code == 0 || !strings.Contains(stderr, "http.cert_file") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}
