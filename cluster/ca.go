package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// File names under <data>/cluster.
const (
	fileCACert   = "ca.crt"
	fileCAKey    = "ca.key" // only on the node that bootstrapped the cluster
	fileNodeCert = "node.crt"
	fileNodeKey  = "node.key"
	fileNodeID   = "node-id"
	fileTokens   = "tokens.json"
)

// serverName is the DNS name in every node certificate: nodes verify each
// other by the CA, not by address, so an address change needs no new cert.
const serverName = "callvault-cluster"

// identity is this node's certificate and the CA that signs the cluster.
type identity struct {
	id     string
	cert   tls.Certificate
	ca     *x509.Certificate
	caPool *x509.CertPool
	caKey  crypto.Signer // nil unless this node holds the CA
}

func clusterDir(dataDir string) string { return filepath.Join(dataDir, "cluster") }

// caFingerprint is the SHA-256 of the CA certificate, as carried in join tokens.
func caFingerprint(ca *x509.Certificate) string {
	s := sha256.Sum256(ca.Raw)
	return hex.EncodeToString(s[:])
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("%w: %s: no %s PEM block", ErrIdentity, path, typ)
	}
	return blk.Bytes, nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
}

// createCA makes the cluster CA in dir.
func createCA(dir string, now time.Time) error {
	k, err := newKey()
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	tpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "Callvault cluster CA", Organization: []string{"Callvault"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, fileCAKey), k); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, fileCACert), "CERTIFICATE", der, 0o644)
}

// signCSR checks the CSR's signature and issues a node certificate for
// nodeID (client and server use; the CSR's own names are ignored).
func signCSR(ca *x509.Certificate, caKey crypto.Signer, csrDER []byte, nodeID string, now time.Time) ([]byte, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: CSR: %w", ErrJoin, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: CSR signature: %w", ErrJoin, err)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: nodeID, Organization: []string{"Callvault"}},
		DNSNames:     []string{serverName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	return x509.CreateCertificate(rand.Reader, tpl, ca, csr.PublicKey, caKey)
}

// newCSR makes this node's key and a CSR for it.
func newCSR(nodeID string) (*ecdsa.PrivateKey, []byte, error) {
	k, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: nodeID},
	}, k)
	return k, der, err
}

// newNodeID names a node: short, random, stable for the data directory's life.
func newNodeID() (string, error) {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "node-" + hex.EncodeToString(b[:]), nil
}

// hasIdentity reports whether the data directory already belongs to a cluster.
func hasIdentity(dataDir string) bool {
	_, err := os.Stat(filepath.Join(clusterDir(dataDir), fileNodeCert))
	return err == nil
}

// loadIdentity reads the node's certificate, key, ID and the CA (and the CA
// key, where this node has it).
func loadIdentity(dataDir string) (*identity, error) {
	dir := clusterDir(dataDir)
	idb, err := os.ReadFile(filepath.Join(dir, fileNodeID))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, fileNodeCert), filepath.Join(dir, fileNodeKey))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	caDER, err := readPEM(filepath.Join(dir, fileCACert), "CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("%w: CA certificate: %w", ErrIdentity, err)
	}
	// Send the CA with the leaf: a joiner pins the CA by fingerprint and
	// has nothing else to verify against.
	cert.Certificate = append(cert.Certificate, ca.Raw)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	id := &identity{id: string(idb), cert: cert, ca: ca, caPool: pool}
	if keyDER, err := readPEM(filepath.Join(dir, fileCAKey), "PRIVATE KEY"); err == nil {
		k, err := x509.ParsePKCS8PrivateKey(keyDER)
		if err != nil {
			return nil, fmt.Errorf("%w: CA key: %w", ErrIdentity, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%w: CA key is not a signing key", ErrIdentity)
		}
		id.caKey = s
	}
	return id, nil
}

// saveIdentity writes a node's ID, key and certificate and the CA certificate.
func saveIdentity(dataDir, nodeID string, key *ecdsa.PrivateKey, certDER, caDER []byte) error {
	dir := clusterDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, fileNodeKey), key); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, fileCACert), "CERTIFICATE", caDER, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, fileNodeID), []byte(nodeID), 0o600); err != nil {
		return err
	}
	// The certificate last: its presence is what marks the identity whole.
	return writePEM(filepath.Join(dir, fileNodeCert), "CERTIFICATE", certDER, 0o644)
}

// bootstrapIdentity creates the CA and this node's certificate.
func bootstrapIdentity(dataDir string, now time.Time) error {
	dir := clusterDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := createCA(dir, now); err != nil {
		return fmt.Errorf("create cluster CA: %w", err)
	}
	caDER, err := readPEM(filepath.Join(dir, fileCACert), "CERTIFICATE")
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	keyDER, err := readPEM(filepath.Join(dir, fileCAKey), "PRIVATE KEY")
	if err != nil {
		return err
	}
	caKey, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return err
	}
	id, err := newNodeID()
	if err != nil {
		return err
	}
	k, csr, err := newCSR(id)
	if err != nil {
		return err
	}
	certDER, err := signCSR(ca, caKey.(crypto.Signer), csr, id, now)
	if err != nil {
		return err
	}
	return saveIdentity(dataDir, id, k, certDER, caDER)
}

// serverTLS accepts members (verified client certificates) and joiners
// (no certificate; the mux lets them speak only the join protocol).
func (id *identity) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.cert},
		ClientCAs:    id.caPool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}
}

// clientTLS dials members: our certificate, theirs verified by the CA.
func (id *identity) clientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.cert},
		RootCAs:      id.caPool,
		ServerName:   serverName,
	}
}
