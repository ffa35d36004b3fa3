package appliance

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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Self-signed certificate lifetime and renewal. 397 days is the longest a
// browser accepts for a publicly trusted certificate; an appliance's own
// certificate is not public, but staying inside the rule avoids browsers
// that apply it anyway. It is renewed at start-up when it has less than a
// month left.
const (
	selfSignedLifetime = 397 * 24 * time.Hour
	selfSignedRenew    = 30 * 24 * time.Hour
)

// listen opens the HTTP listener: plain TCP, or TLS with the configured
// certificate, or with a self-signed one made on first start and kept in
// <data_dir>/tls (its fingerprint is logged and printed, so an admin can
// check what the browser shows).
func listen(cfg Config, stderr io.Writer, log *slog.Logger) (net.Listener, error) {
	// The certificate comes first and the port opens last: a client (or a
	// supervisor's health check) that can connect finds the appliance
	// whole, the self-signed certificate already on disk.
	var tlsConfig *tls.Config
	if cfg.HTTP.TLS {
		var err error
		if tlsConfig, err = loadTLS(cfg, stderr, log); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	if tlsConfig == nil {
		return ln, nil
	}
	return tls.NewListener(ln, tlsConfig), nil
}

// loadTLS loads the configured certificate, or makes (or keeps) the
// self-signed one in <data_dir>/tls.
func loadTLS(cfg Config, stderr io.Writer, log *slog.Logger) (*tls.Config, error) {
	certFile, keyFile := cfg.HTTP.Cert, cfg.HTTP.Key
	if certFile == "" {
		dir := filepath.Join(cfg.DataDir, "tls")
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		made, err := ensureSelfSigned(certFile, keyFile, cfg.HTTP.Listen, time.Now())
		if err != nil {
			return nil, err
		}
		if made != "" {
			fmt.Fprintf(stderr, "callvault: made a self-signed TLS certificate %s\ncallvault: its SHA-256 fingerprint is %s\n", certFile, made)
			log.Info("self-signed TLS certificate made", "cert_file", certFile, "sha256", made)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("http.cert_file %s: %w", certFile, err)
	}
	if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
		if time.Now().After(leaf.NotAfter) {
			log.Warn("TLS certificate has expired", "cert_file", certFile, "not_after", leaf.NotAfter)
		}
		log.Info("serving TLS", "cert_file", certFile, "sha256", fingerprint(leaf.Raw), "not_after", leaf.NotAfter)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// ensureSelfSigned makes a self-signed certificate and key unless a valid
// pair with more than selfSignedRenew left is already there. It returns the
// new certificate's fingerprint, or "" when it kept the old one.
func ensureSelfSigned(certFile, keyFile, listenAddr string, now time.Time) (string, error) {
	if raw, err := os.ReadFile(certFile); err == nil {
		if b, _ := pem.Decode(raw); b != nil {
			if c, err := x509.ParseCertificate(b.Bytes); err == nil && now.Add(selfSignedRenew).Before(c.NotAfter) {
				if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
					return "", nil
				}
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("self-signed certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Callvault " + host, Organization: []string{"Callvault appliance (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	if h, _, err := net.SplitHostPort(listenAddr); err == nil {
		if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if ip == nil && h != "" && h != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", fmt.Errorf("self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return "", fmt.Errorf("self-signed certificate: %w", err)
	}
	// The key first, so a crash between the two leaves no certificate
	// without its key; each is written whole and renamed into place.
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", err
	}
	if err := writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", err
	}
	return fingerprint(der), nil
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
