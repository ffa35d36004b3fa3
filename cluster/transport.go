package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// mux accepts TLS connections on the cluster port and sorts them by their
// first byte: raft streams go to raft's transport (through streamLayer),
// RPC and join connections to their handlers, each on its own goroutine
// that the mux owns and waits for.
type mux struct {
	ln      net.Listener
	id      *identity
	raftCh  chan net.Conn
	rpc     func(net.Conn)
	join    func(net.Conn)
	file    func(net.Conn)
	closing chan struct{}
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newMux(addr string, id *identity) (*mux, error) {
	ln, err := tls.Listen("tcp", addr, id.serverTLS())
	if err != nil {
		return nil, fmt.Errorf("cluster: listen %s: %w", addr, err)
	}
	return &mux{ln: ln, id: id, raftCh: make(chan net.Conn), closing: make(chan struct{}), conns: map[net.Conn]struct{}{}}, nil
}

func (m *mux) start() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			c, err := m.ln.Accept()
			if err != nil {
				select {
				case <-m.closing:
					return
				default:
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					continue
				}
				time.Sleep(10 * time.Millisecond) // EMFILE and the like
				continue
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.route(c)
			}()
		}
	}()
}

func (m *mux) track(c net.Conn, on bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on {
		select {
		case <-m.closing:
			return false
		default:
		}
		m.conns[c] = struct{}{}
	} else {
		delete(m.conns, c)
	}
	return true
}

// route reads the stream type (the TLS handshake happens on this read).
func (m *mux) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	member := len(c.(*tls.Conn).ConnectionState().VerifiedChains) > 0
	switch {
	case b[0] == streamRaft && member:
		select {
		case m.raftCh <- c: // raft owns it now
		case <-m.closing:
			_ = c.Close()
		}
	case b[0] == streamRPC && member:
		if !m.track(c, true) {
			_ = c.Close()
			return
		}
		m.rpc(c)
		m.track(c, false)
		_ = c.Close()
	case b[0] == streamFile && member:
		if !m.track(c, true) {
			_ = c.Close()
			return
		}
		m.file(c)
		m.track(c, false)
		_ = c.Close()
	case b[0] == streamJoin:
		if !m.track(c, true) {
			_ = c.Close()
			return
		}
		m.join(c)
		m.track(c, false)
		_ = c.Close()
	default:
		_ = c.Close() // not a member, or an unknown stream
	}
}

// close stops accepting, closes RPC and join connections, and waits.
func (m *mux) close() {
	m.mu.Lock()
	select {
	case <-m.closing:
		m.mu.Unlock()
		return
	default:
	}
	close(m.closing)
	for c := range m.conns {
		_ = c.Close()
	}
	m.mu.Unlock()
	_ = m.ln.Close()
	m.wg.Wait()
}

// streamLayer is raft's view of the mux.
type streamLayer struct {
	m *mux
}

var _ raft.StreamLayer = streamLayer{}

func (s streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.m.raftCh:
		return c, nil
	case <-s.m.closing:
		return nil, errors.New("cluster: transport closed")
	}
}

func (s streamLayer) Close() error   { return nil } // the node closes the mux
func (s streamLayer) Addr() net.Addr { return s.m.ln.Addr() }

func (s streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialMember(string(addr), s.m.id, streamRaft, timeout)
}

// dialMember opens a mutual-TLS connection of the given stream type.
func dialMember(addr string, id *identity, typ byte, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, id.clientTLS())
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{typ}); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}
