package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/callvault/callvault/store/meta"
)

// Stream types: the first byte of every connection to the cluster port.
const (
	streamRaft byte = 'R'
	streamRPC  byte = 'C'
	streamJoin byte = 'J'
	streamFile byte = 'F' // one recording file: [frame fileRequest] -> [frame fileHeader][Size bytes]
)

// RPC operations (the first byte of a request frame's payload).
const (
	opCommit      byte = 1 // payload: an encoded meta Command
	opAddVoter    byte = 2 // payload: JSON memberRequest
	opRemove      byte = 3 // payload: JSON memberRequest
	opCommitIndex byte = 4 // payload: empty; answer: JSON {"index"}
	opStatus      byte = 5 // payload: empty; answer: JSON NodeStatus
)

// maxFrame bounds a frame: a Command is at most a few MiB (a transcript, a
// batch of audit entries); anything bigger is a broken or hostile peer.
const maxFrame = 16 << 20

// writeFrame writes [uint32 BE length][payload].
func writeFrame(w io.Writer, payload []byte) error {
	if len(payload) > maxFrame {
		return fmt.Errorf("%w: frame of %d bytes > %d", ErrProtocol, len(payload), maxFrame)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame written by writeFrame.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes > %d", ErrProtocol, n, maxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: frame cut off: %w", ErrProtocol, err)
	}
	return b, nil
}

type memberRequest struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`
}

// rpcResponse is every RPC's answer. Kind names the sentinel error so the
// caller gets an error that errors.Is recognises.
type rpcResponse struct {
	ID        string          `json:"id,omitempty"`
	Reference string          `json:"reference,omitempty"`
	AuditSeq  uint64          `json:"auditSeq,omitempty"`
	Index     uint64          `json:"index,omitempty"`
	Status    json.RawMessage `json:"status,omitempty"`
	Error     string          `json:"error,omitempty"`
	Kind      string          `json:"kind,omitempty"`
}

// errorKinds are the errors that keep their identity across a forward.
var errorKinds = []struct {
	name string
	err  error
}{
	{"invalid", meta.ErrInvalid}, {"not_found", meta.ErrNotFound}, {"exists", meta.ErrExists},
	{"deleted", meta.ErrDeleted}, {"preserved", meta.ErrPreserved}, {"needs_approval", meta.ErrNeedsApproval},
	{"malformed", meta.ErrMalformed}, {"unknown_command", meta.ErrUnknownCommand},
	{"not_leader", ErrNotLeader}, {"no_leader", ErrNoLeader}, {"forbidden", ErrForbidden},
}

func errorKind(err error) string {
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return ""
}

// remoteError rebuilds an error sent by a peer.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

func (r *rpcResponse) err() error {
	if r.Error == "" {
		return nil
	}
	e := &remoteError{msg: r.Error}
	for _, k := range errorKinds {
		if k.name == r.Kind {
			e.kind = k.err
		}
	}
	return e
}

func errResponse(err error) rpcResponse {
	return rpcResponse{Error: err.Error(), Kind: errorKind(err)}
}

// decodeRequest splits an RPC request frame into its operation and body.
func decodeRequest(b []byte) (byte, []byte, error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: empty request", ErrProtocol)
	}
	switch b[0] {
	case opCommit, opAddVoter, opRemove, opCommitIndex, opStatus:
		return b[0], b[1:], nil
	}
	return 0, nil, fmt.Errorf("%w: unknown operation %d", ErrProtocol, b[0])
}

// decodeMember parses and checks an add/remove request body.
func decodeMember(b []byte, needAddr bool) (memberRequest, error) {
	var m memberRequest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: member request: %w", ErrProtocol, err)
	}
	if m.ID == "" || len(m.ID) > 64 || (needAddr && (m.Address == "" || len(m.Address) > 255)) {
		return m, fmt.Errorf("%w: member request needs an id (≤ 64 bytes) and an address (≤ 255)", ErrProtocol)
	}
	return m, nil
}

// joinRequest is what a joiner sends on a 'J' connection.
type joinRequest struct {
	Token   string `json:"token"`
	NodeID  string `json:"nodeId"`
	Address string `json:"address"`
	CSR     []byte `json:"csr"`
}

// joinResponse comes back, followed by [uint64 size][bbolt snapshot].
type joinResponse struct {
	Cert  []byte `json:"cert,omitempty"`
	CA    []byte `json:"ca,omitempty"`
	Error string `json:"error,omitempty"`
}

func decodeJoinRequest(b []byte) (joinRequest, error) {
	var j joinRequest
	if err := json.Unmarshal(b, &j); err != nil {
		return j, fmt.Errorf("%w: join request: %w", ErrProtocol, err)
	}
	if j.NodeID == "" || len(j.NodeID) > 64 || j.Address == "" || len(j.Address) > 255 || len(j.CSR) == 0 {
		return j, fmt.Errorf("%w: join request needs nodeId, address and csr", ErrProtocol)
	}
	return j, nil
}

// fileRequest asks a member for one sealed recording's file, or with
// Kind "sip" for the recording's SIP side file.
type fileRequest struct {
	ID   string `json:"id"`
	Kind string `json:"kind,omitempty"`
}

// fileKindSIP asks for a recording's SIP side file (store.SignallingFile):
// no seal hash (the receiver authenticates every record), at most
// maxSignallingFile bytes, size 0 when the recording has none.
const fileKindSIP = "sip"

// maxSignallingFile is store.MaxSignallingFile (the store refuses more).
const maxSignallingFile = 64 << 20

// fileHeader answers it; Size bytes of the encrypted file follow unless
// Error is set.
type fileHeader struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	Error  string `json:"error,omitempty"`
}

// maxFileSize bounds a transfer: a ten-hour stereo G.711 call is ~600 MB.
const maxFileSize = 64 << 30

func decodeFileRequest(b []byte) (fileRequest, error) {
	var r fileRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: file request: %w", ErrProtocol, err)
	}
	if r.ID == "" || len(r.ID) > 64 {
		return r, fmt.Errorf("%w: file request needs an id of 1 to 64 bytes, got %d", ErrProtocol, len(r.ID))
	}
	if r.Kind != "" && r.Kind != fileKindSIP {
		return r, fmt.Errorf("%w: file request of unknown kind %.20q", ErrProtocol, r.Kind)
	}
	return r, nil
}

func decodeFileHeader(b []byte, kind string) (fileHeader, error) {
	var h fileHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%w: file header: %w", ErrProtocol, err)
	}
	if h.Error != "" {
		return h, nil
	}
	if kind == fileKindSIP {
		if h.Size < 0 || h.Size > maxSignallingFile || h.SHA256 != "" {
			return h, fmt.Errorf("%w: side file header: size %d (limit %d), seal hash %.70q", ErrProtocol, h.Size, int64(maxSignallingFile), h.SHA256)
		}
		return h, nil
	}
	if h.Size < 0 || h.Size > maxFileSize || len(h.SHA256) != 64 {
		return h, fmt.Errorf("%w: file header: size %d (limit %d), seal hash of %d characters", ErrProtocol, h.Size, int64(maxFileSize), len(h.SHA256))
	}
	return h, nil
}
