package appliance

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSelfSignedRenewal: a certificate is made once, kept while it has
// more than a month left, and replaced when it has less or is damaged.
func TestSelfSignedRenewal(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem")
	now := time.Now()
	first, err := ensureSelfSigned(cert, key, "10.1.2.3:8443", now)
	if err != nil || first == "" {
		t.Fatalf("first start: %q %v", first, err)
	}
	if again, err := ensureSelfSigned(cert, key, "10.1.2.3:8443", now.Add(24*time.Hour)); err != nil || again != "" {
		t.Fatalf("second start replaced a valid certificate: %q %v", again, err)
	}
	renewed, err := ensureSelfSigned(cert, key, "10.1.2.3:8443", now.Add(selfSignedLifetime-selfSignedRenew+time.Hour))
	if err != nil || renewed == "" || renewed == first {
		t.Fatalf("certificate a month from expiry not renewed: %q %v", renewed, err)
	}
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fixed, err := ensureSelfSigned(cert, key, "10.1.2.3:8443", now); err != nil || fixed == "" {
		t.Fatalf("damaged key not replaced: %q %v", fixed, err)
	}
}
