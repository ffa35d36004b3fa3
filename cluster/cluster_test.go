package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/hashicorp/raft"
)

// member is one node of a test cluster: a real data directory, a real
// metadata database and a real mutual-TLS port on 127.0.0.1.
type member struct {
	dir  string
	addr string
	db   *meta.DB
	node *Node
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func fastConfig(m *member) Config {
	return Config{DataDir: m.dir, Addr: m.addr, DB: m.db,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		SnapshotThreshold: 64, TrailingLogs: 16, SnapshotInterval: 200 * time.Millisecond,
		QuorumWait: time.Second}
}

func (m *member) open(t testing.TB) {
	t.Helper()
	if m.db == nil {
		db, err := meta.Open(filepath.Join(m.dir, "meta.db"), meta.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m.db = db
	}
	n, err := Open(fastConfig(m))
	if err != nil {
		t.Fatal(err)
	}
	m.node = n
}

func (m *member) stop() {
	if m.node != nil {
		m.node.Close()
		m.node = nil
	}
	if m.db != nil {
		_ = m.db.Close()
		m.db = nil
	}
}

func newMember(t *testing.T) *member {
	m := &member{dir: t.TempDir(), addr: freeAddr(t)}
	t.Cleanup(m.stop)
	return m
}

// waitLeader waits for one of ms to lead and every running member to know it.
func waitLeader(t testing.TB, ms ...*member) *member {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var leader *member
		agree := true
		for _, m := range ms {
			if m.node == nil {
				continue
			}
			if m.node.raft.State() == raft.Leader {
				leader = m
			}
			if a, _ := m.node.raft.LeaderWithID(); a == "" {
				agree = false
			}
		}
		if leader != nil && agree {
			return leader
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader within 10 s")
	return nil
}

func tenant(i int) []byte {
	b, err := meta.Encode(&meta.CreateTenant{Tenant: meta.Tenant{ID: fmt.Sprintf("t%04d", i), Name: fmt.Sprintf("Tenant %d", i)}})
	if err != nil {
		panic(err)
	}
	return b
}

func dumpDB(t *testing.T, db *meta.DB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := db.Dump(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// converged waits until every running member applied the same log and
// their databases are byte-identical (determinism of Apply end to end).
func converged(t *testing.T, ms ...*member) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var first []byte
		same := true
		for _, m := range ms {
			if m.node == nil {
				continue
			}
			if err := m.node.WaitCommitted(context.Background()); err != nil {
				t.Fatal(err)
			}
			d := dumpDB(t, m.db)
			if first == nil {
				first = d
			} else if !bytes.Equal(first, d) {
				same = false
			}
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("members' metadata did not converge")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func joinMember(t *testing.T, via *member) *member {
	t.Helper()
	tok, _, err := via.node.IssueToken()
	if err != nil {
		t.Fatal(err)
	}
	m := newMember(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := Join(ctx, JoinConfig{DataDir: m.dir, Advertise: m.addr, Token: tok}); err != nil {
		t.Fatal(err)
	}
	// The token works once.
	if _, err := Join(ctx, JoinConfig{DataDir: t.TempDir(), Advertise: freeAddr(t), Token: tok}); !errors.Is(err, ErrJoin) {
		t.Fatalf("second use of a join token: err = %v, want ErrJoin", err)
	}
	m.open(t)
	addr, _ := JoinAddress(tok)
	if err := m.node.RequestVoter(ctx, addr); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestClusterEndToEnd: bootstrap, join two nodes over mutual TLS, commit on
// every node (followers forward), compare databases byte for byte, lose the
// leader, elect another, commit, restart the old leader with its data
// directory and watch it catch up (through a snapshot: the log behind it
// was compacted).
func TestClusterEndToEnd(t *testing.T) {
	ctx := context.Background()
	a := newMember(t)
	a.open(t)
	waitLeader(t, a)
	if a.node.id.caKey == nil {
		t.Fatal("the bootstrapping node has no CA key")
	}
	// State before the cluster existed (the store writes its keyring then)
	// must reach the joiners too: the join snapshot carries it.
	if _, err := a.db.Apply(tenant(9999)); err != nil {
		t.Fatal(err)
	}
	b := joinMember(t, a)
	c := joinMember(t, a)
	ms := []*member{a, b, c}
	waitLeader(t, ms...)

	st, err := b.node.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaders, voters := 0, 0
	for _, n := range st.Nodes {
		if n.State == "Leader" {
			leaders++
		}
		if n.Voter {
			voters++
		}
	}
	if len(st.Nodes) != 3 || leaders != 1 || voters != 3 || st.Leader == "" {
		t.Fatalf("status = %+v; want 3 voters, one leader", st)
	}

	// Commits from every node, followers forwarding to the leader.
	for i := range 90 {
		m := ms[i%3]
		res, err := m.node.Commit(ctx, tenant(i))
		if err != nil || res.ID != fmt.Sprintf("t%04d", i) {
			t.Fatalf("commit %d on %s: %+v, %v", i, m.node.ID(), res, err)
		}
	}
	// The Apply error comes back through a forward with its identity.
	for _, m := range ms {
		if _, err := m.node.Commit(ctx, tenant(1)); !errors.Is(err, meta.ErrExists) {
			t.Fatalf("duplicate tenant via %s: err = %v, want meta.ErrExists", m.node.ID(), err)
		}
	}
	// Read after the latest commit: a follower sees a write made on another.
	if _, err := c.node.Commit(ctx, tenant(500)); err != nil {
		t.Fatal(err)
	}
	if err := b.node.WaitCommitted(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Tenant("t0500"); err != nil {
		t.Fatalf("read after WaitCommitted on a follower: %v", err)
	}
	converged(t, ms...)

	// Lose the leader.
	old := waitLeader(t, ms...)
	old.node.Close()
	old.node = nil
	start := time.Now()
	var rest []*member
	for _, m := range ms {
		if m != old {
			rest = append(rest, m)
		}
	}
	nl := waitLeader(t, rest...)
	t.Logf("new leader %s after %v", nl.node.ID(), time.Since(start))
	// Enough entries for a snapshot and compaction past what old has. Right
	// after an election a forwarded commit may land while its answer is
	// lost, and its retry then finds the tenant there (ErrExists): the
	// duplicate-on-retry case retryable documents, which the outbox's
	// idempotency keys will close. The entry exists either way.
	for i := 1000; i < 1300; i++ {
		if _, err := rest[i%2].node.Commit(ctx, tenant(i)); err != nil && !errors.Is(err, meta.ErrExists) {
			t.Fatal(err)
		}
	}
	if err := nl.node.Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		t.Fatal(err)
	}
	// Restart the old leader with its data directory: no flags, no token.
	old.open(t)
	waitLeader(t, ms...)
	converged(t, ms...)
	if _, err := old.db.Tenant("t1299"); err != nil {
		t.Fatalf("restarted node did not catch up: %v", err)
	}
	for _, m := range ms {
		if err := m.db.Check(); err != nil {
			t.Fatal(err)
		}
	}

	// Remove a member; it disappears from the configuration.
	if err := a.node.Remove(ctx, c.node.ID()); err != nil {
		t.Fatal(err)
	}
	if err := a.node.Remove(ctx, "node-nobody"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("removing an unknown member: %v", err)
	}
	st, err = a.node.Status(ctx)
	if err != nil || len(st.Nodes) != 2 {
		t.Fatalf("after remove: %+v, %v", st, err)
	}
}

// TestMemberPortRefusesStrangers: a client without a cluster certificate
// gets nothing but the join protocol; a raft or RPC stream is dropped.
func TestMemberPortRefusesStrangers(t *testing.T) {
	a := newMember(t)
	a.open(t)
	waitLeader(t, a)
	// A node of another cluster has a valid certificate of another CA.
	other := newMember(t)
	other.open(t)
	for _, typ := range []byte{streamRPC, streamRaft} {
		c, err := dialMember(a.addr, other.node.id, typ, time.Second)
		if err != nil {
			continue // refused in the handshake: fine
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_ = writeFrame(c, []byte{opCommit})
		if _, err := readFrame(c); err == nil {
			t.Fatalf("stream %q from a foreign CA got an answer", typ)
		}
		c.Close()
	}
	// A token for another cluster is refused by the pin.
	tok, _, err := other.node.IssueToken()
	if err != nil {
		t.Fatal(err)
	}
	jt, _ := parseToken(tok)
	jt.addr = a.addr
	if _, err := Join(context.Background(), JoinConfig{DataDir: t.TempDir(), Advertise: freeAddr(t), Token: jt.String()}); !errors.Is(err, ErrJoin) {
		t.Fatalf("join with another cluster's fingerprint: %v", err)
	}
}
