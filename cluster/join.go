package cluster

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// serveJoin answers a joiner on the node that holds the CA: check the
// token, sign the CSR, send the certificate, the CA and a snapshot of the
// metadata. Adding the joiner as a voter is its own next step, over a
// mutual-TLS connection with the certificate it got here.
func (n *Node) serveJoin(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	fail := func(err error) {
		n.log.Warn("cluster join refused", "remote", c.RemoteAddr().String(), "err", err)
		b, _ := json.Marshal(joinResponse{Error: err.Error()})
		_ = writeFrame(c, b)
	}
	b, err := readFrame(c)
	if err != nil {
		return
	}
	req, err := decodeJoinRequest(b)
	if err != nil {
		fail(err)
		return
	}
	if n.id.caKey == nil {
		fail(ErrNoCA)
		return
	}
	tok, err := parseToken(req.Token)
	if err != nil {
		fail(err)
		return
	}
	if tok.caFP != caFingerprint(n.id.ca) {
		fail(fmt.Errorf("%w: the token is for another cluster", ErrToken))
		return
	}
	if err := n.tokens.consume(tok.secret, n.now()); err != nil {
		fail(err)
		return
	}
	cert, err := signCSR(n.id.ca, n.id.caKey, req.CSR, req.NodeID, n.now())
	if err != nil {
		fail(err)
		return
	}
	snap, err := n.cfg.DB.BeginSnapshot()
	if err != nil {
		fail(err)
		return
	}
	defer snap.Release()
	out, _ := json.Marshal(joinResponse{Cert: cert, CA: n.id.ca.Raw})
	if err := writeFrame(c, out); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{}) // a large database takes its time
	var size [8]byte
	binary.BigEndian.PutUint64(size[:], uint64(snap.Size()))
	if _, err := c.Write(size[:]); err != nil {
		return
	}
	if _, err := snap.WriteTo(c); err != nil {
		n.log.Warn("cluster join: sending the snapshot failed", "node", req.NodeID, "err", err)
		return
	}
	n.log.Info("cluster join: certificate issued", "node", req.NodeID, "address", req.Address, "applied_index", snap.AppliedIndex())
}

// JoinConfig is what a new node needs to join.
type JoinConfig struct {
	// DataDir must not hold metadata yet (meta.db): the node starts from
	// the cluster's.
	DataDir string
	// Advertise is the cluster address the others will dial.
	Advertise string
	// Token is the join token from `callvault cluster token`.
	Token string
}

// NeedsJoin reports whether the data directory has no cluster identity yet.
func NeedsJoin(dataDir string) bool { return !hasIdentity(dataDir) }

// Join fetches a certificate and the cluster's metadata for an empty data
// directory. Afterwards Open starts the node and Node.RequestVoter adds it.
func Join(ctx context.Context, cfg JoinConfig) (nodeID string, err error) {
	tok, err := parseToken(cfg.Token)
	if err != nil {
		return "", err
	}
	metaPath := filepath.Join(cfg.DataDir, "meta.db")
	if _, err := os.Stat(metaPath); err == nil {
		return "", fmt.Errorf("%w: %s exists; a node joins with an empty data directory", ErrNotEmpty, metaPath)
	}
	if err := os.MkdirAll(clusterDir(cfg.DataDir), 0o700); err != nil {
		return "", err
	}
	if nodeID, err = newNodeID(); err != nil {
		return "", err
	}
	key, csr, err := newCSR(nodeID)
	if err != nil {
		return "", err
	}
	// Pin the CA by the token's fingerprint: the peer's chain must carry a
	// certificate with that hash, and its leaf must be signed by it.
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by the pin below, not by nothing
		VerifyConnection: func(cs tls.ConnectionState) error {
			for _, c := range cs.PeerCertificates {
				if h := sha256.Sum256(c.Raw); hex.EncodeToString(h[:]) == tok.caFP {
					pool := x509.NewCertPool()
					pool.AddCert(c)
					_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: serverName,
						KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
					return err
				}
			}
			return fmt.Errorf("%w: the peer's CA does not match the token's fingerprint", ErrJoin)
		},
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}
	conn, err := d.DialContext(ctx, "tcp", tok.addr)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrJoin, tok.addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte{streamJoin}); err != nil {
		return "", fmt.Errorf("%w: %w", ErrJoin, err)
	}
	req, _ := json.Marshal(joinRequest{Token: cfg.Token, NodeID: nodeID, Address: cfg.Advertise, CSR: csr})
	if err := writeFrame(conn, req); err != nil {
		return "", fmt.Errorf("%w: %w", ErrJoin, err)
	}
	b, err := readFrame(conn)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrJoin, err)
	}
	var resp joinResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		return "", fmt.Errorf("%w: %w: %w", ErrJoin, ErrProtocol, err)
	}
	if resp.Error != "" {
		return "", fmt.Errorf("%w: %s refused: %s", ErrJoin, tok.addr, resp.Error)
	}
	var size [8]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return "", fmt.Errorf("%w: snapshot: %w", ErrJoin, err)
	}
	n := binary.BigEndian.Uint64(size[:])
	if err := meta.WriteSnapshotFile(metaPath, io.LimitReader(conn, int64(n))); err != nil {
		return "", fmt.Errorf("%w: snapshot: %w", ErrJoin, err)
	}
	if fi, err := os.Stat(metaPath); err != nil || uint64(fi.Size()) != n {
		_ = os.Remove(metaPath)
		return "", fmt.Errorf("%w: snapshot cut off", ErrJoin)
	}
	if err := saveIdentity(cfg.DataDir, nodeID, key, resp.Cert, resp.CA); err != nil {
		_ = os.Remove(metaPath)
		return "", err
	}
	return nodeID, nil
}

// RequestVoter asks the cluster to add this node as a voter (after Join,
// and again on a start that finds the node not yet in the configuration).
func (n *Node) RequestVoter(ctx context.Context, via string) error {
	body, _ := json.Marshal(memberRequest{ID: n.id.id, Address: n.cfg.Advertise})
	deadline := time.Now().Add(timeout(ctx))
	for {
		resp, err := n.pool.call(ctx, via, opAddVoter, body)
		if err == nil {
			err = resp.err()
		}
		if err == nil || time.Now().After(deadline) || (!retryable(err) && !errors.Is(err, ErrNoLeader)) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// JoinAddress is the cluster address inside a token (where RequestVoter goes).
func JoinAddress(token string) (string, error) {
	t, err := parseToken(token)
	return t.addr, err
}
