package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// errDial marks a connection that could not be opened (the peer is down):
// nothing was sent, so the request can be retried elsewhere.
var errDial = errors.New("cluster: dial")

// pool keeps idle RPC connections per peer: a forwarded write costs one
// round trip, not a TLS handshake.
type pool struct {
	id *identity

	mu     sync.Mutex
	idle   map[string][]net.Conn
	closed bool
}

const maxIdlePerPeer = 128

func newPool(id *identity) *pool { return &pool{id: id, idle: map[string][]net.Conn{}} }

func (p *pool) get(addr string, timeout time.Duration) (net.Conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if cs := p.idle[addr]; len(cs) > 0 {
		c := cs[len(cs)-1]
		p.idle[addr] = cs[:len(cs)-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	c, err := dialMember(addr, p.id, streamRPC, timeout)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errDial, addr, err)
	}
	return c, nil
}

func (p *pool) put(addr string, c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= maxIdlePerPeer {
		_ = c.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], c)
}

func (p *pool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, cs := range p.idle {
		for _, c := range cs {
			_ = c.Close()
		}
	}
	p.idle = nil
}

// call sends one request and reads its answer. A transport failure is
// returned as the error; the answer's own error is in the response.
func (p *pool) call(ctx context.Context, addr string, op byte, body []byte) (rpcResponse, error) {
	b, err := p.callRaw(ctx, addr, op, body)
	if err != nil {
		return rpcResponse{}, err
	}
	var resp rpcResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		return rpcResponse{}, fmt.Errorf("%w: answer: %w", ErrProtocol, err)
	}
	return resp, nil
}

// callRaw sends one request and returns its answer's frame unparsed.
func (p *pool) callRaw(ctx context.Context, addr string, op byte, body []byte) ([]byte, error) {
	to := timeout(ctx)
	c, err := p.get(addr, min(to, 5*time.Second))
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(to))
	// A caller that gives up (a forward to a leader that was replaced)
	// ends the wait at once, not at the deadline.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	req := make([]byte, 0, 1+len(body))
	req = append(append(req, op), body...)
	var b []byte
	if err = writeFrame(c, req); err == nil {
		b, err = readFrame(c)
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	p.put(addr, c)
	return b, nil
}

// serveRPC answers a member's requests on one connection until it closes.
func (n *Node) serveRPC(c net.Conn) {
	peer := c.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName
	for {
		b, err := readFrame(c)
		if err != nil {
			return
		}
		var resp any
		if len(b) > 0 && b[0] == opCommitBatch {
			resp = n.commitBatchRPC(b[1:])
		} else {
			resp = n.handleRPC(peer, b)
		}
		out, err := json.Marshal(resp)
		if err != nil {
			return
		}
		if err := writeFrame(c, out); err != nil {
			return
		}
	}
}

// handleRPC runs one request from the member named peer.
func (n *Node) handleRPC(peer string, b []byte) rpcResponse {
	op, body, err := decodeRequest(b)
	if err != nil {
		return errResponse(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	switch op {
	case opCommit:
		if n.raft.State() != raft.Leader {
			return errResponse(ErrNotLeader)
		}
		res, idx, err := n.applyIndexed(ctx, body)
		if err != nil {
			r := errResponse(err)
			r.ID, r.Reference, r.AuditSeq, r.Index = res.ID, res.Reference, res.AuditSeq, idx
			return r
		}
		return rpcResponse{ID: res.ID, Reference: res.Reference, AuditSeq: res.AuditSeq, Index: idx}
	case opCommitIndex:
		if n.raft.State() != raft.Leader {
			return errResponse(ErrNotLeader)
		}
		// A leader's commit index counts only once it has committed an
		// entry of its own term; the barrier makes sure it has.
		if err := n.raft.Barrier(applyTimeout).Error(); err != nil {
			return errResponse(fmt.Errorf("%w: %w", ErrNotLeader, err))
		}
		return rpcResponse{Index: n.raft.CommitIndex()}
	case opStatus:
		b, _ := json.Marshal(n.self())
		return rpcResponse{Status: b}
	case opAddVoter, opRemove:
		m, err := decodeMember(body, op == opAddVoter)
		if err != nil {
			return errResponse(err)
		}
		if n.raft.State() != raft.Leader {
			// Forward: the joiner knows only the node that issued its token.
			if op == opAddVoter {
				err = n.AddVoter(ctx, m.ID, m.Address)
			} else {
				err = n.Remove(ctx, m.ID)
			}
		} else if op == opAddVoter {
			err = n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.Address), 0, applyTimeout).Error()
		} else {
			err = n.raft.RemoveServer(raft.ServerID(m.ID), 0, applyTimeout).Error()
		}
		if err != nil {
			return errResponse(err)
		}
		n.log.Info("cluster membership changed", "op", op, "member", m.ID, "address", m.Address, "by", peer)
		return rpcResponse{}
	}
	return errResponse(fmt.Errorf("%w: operation %d", ErrProtocol, op))
}
