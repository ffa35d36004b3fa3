package test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// balancedClient uploads in a loop the way a client behind a load
// balancer with passive health checks would: it sends to its current
// node and, when an upload fails, moves on to the next node at once.
// Once it has been away from its home node for two seconds it tries home
// again, so a restarted node gets load back. It keeps the longest
// stretch of time from a failed upload to the next 201 (the time this
// client could not get a recording accepted).
type balancedClient struct {
	home     int
	mu       sync.Mutex
	ok       []accepted
	fails    int
	longest  time.Duration
	longestT time.Time // when that stretch began
}

func (b *balancedClient) run(ctx context.Context, c *clusterEnv, prefix string) {
	target := b.home
	var failStart, leftHome time.Time
	for i := 0; ctx.Err() == nil; i++ {
		if target != b.home && time.Since(leftHome) > 2*time.Second {
			target = b.home
		}
		n := c.nodes[target]
		callID := fmt.Sprintf("%s-%d-%d", prefix, b.home, i)
		sent := time.Now()
		code, id, err := c.upload(n, callID)
		now := time.Now()
		if err != nil || code != 201 {
			if ctx.Err() != nil {
				return // cancelled in flight: not a failure of the cluster
			}
			b.mu.Lock()
			b.fails++
			b.mu.Unlock()
			if failStart.IsZero() {
				failStart = sent
			}
			if target == b.home {
				leftHome = now
			}
			target = (target + 1) % len(c.nodes)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		b.mu.Lock()
		if !failStart.IsZero() {
			if d := now.Sub(failStart); d > b.longest {
				b.longest, b.longestT = d, failStart
			}
			failStart = time.Time{}
		}
		b.ok = append(b.ok, accepted{id: id, callID: callID, node: n, sent: sent, got: now})
		b.mu.Unlock()
	}
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	for _, x := range a {
		if !in[x] {
			return false
		}
	}
	return true
}

// outboxes says how many Commands wait in each node's durable outbox.
func (c *clusterEnv) outboxes() string {
	var parts []string
	for _, n := range c.nodes {
		v, err := metric(c, n, "callvault_cluster_outbox_queued")
		if err != nil {
			parts = append(parts, n.http+": ?")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %.0f", n.http, v))
	}
	return "outbox queues " + strings.Join(parts, ", ")
}

func (b *balancedClient) accepted() []accepted {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.ok)
}

// TestClusterRollingRestart restarts each of three nodes in turn (SIGTERM,
// a second down, started again with its data directory alone, then
// waited for until the cluster is stable and the node has every recording
// accepted so far) while three clients upload, one homed on each node,
// moving to another node when an upload fails. No client may go longer
// than 5 s (more than an election with the default 1 s timeouts) from a
// failed upload to an accepted one, and afterwards every upload that got
// a 201 is on all three nodes, metadata and file (same SHA-256).
func TestClusterRollingRestart(t *testing.T) {
	c := newClusterEnv(t)
	c.hc.Timeout = 10 * time.Second
	newThreeNodes(t, c)
	c.waitStable(30 * time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	clients := make([]*balancedClient, len(c.nodes))
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = &balancedClient{home: i}
		wg.Add(1)
		go func() {
			defer wg.Done()
			clients[i].run(ctx, c, "rolling")
		}()
	}
	stopClients := func() {
		cancel()
		wg.Wait()
	}
	defer stopClients()
	soFar := func() []string {
		var out []string
		for _, cl := range clients {
			out = append(out, ids(cl.accepted())...)
		}
		return out
	}
	time.Sleep(2 * time.Second)
	for i, n := range c.nodes {
		leader := c.waitStable(30 * time.Second)
		role := "follower"
		if leader == n {
			role = "leader"
		}
		took, err := n.stop(syscall.SIGTERM, 20*time.Second)
		if err != nil {
			t.Fatalf("node %d (%s) on SIGTERM: %v\n%s", i, n.http, err, tail(n.stderr.String(), 3000))
		}
		time.Sleep(time.Second) // down under load
		restarted := time.Now()
		c.restart(n)
		c.waitStable(30 * time.Second)
		stable := time.Since(restarted)
		// Caught up: after the latest commit, the restarted node lacks
		// no accepted upload that the leader has. (An upload can get a
		// 201 and still wait in its node's durable outbox, committed
		// nowhere yet; the check at the end waits for those.)
		want := soFar()
		var pending int
		for {
			l := c.waitStable(30 * time.Second)
			missL, errL := c.missingOn(l, want)
			miss, err := c.missingOn(n, want)
			if err == nil && errL == nil && subset(miss, missL) {
				pending = len(missL)
				break
			}
			if time.Since(restarted) > 60*time.Second {
				t.Fatalf("node %d did not catch up within 60 s: %d missing, the leader %d, %v %v; %s", i, len(miss), len(missL), err, errL, c.outboxes())
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("node %d (%s, was %s) stopped in %v; after its start the cluster was stable (3 voters, one leader) in %v and the node held all it should of the %d uploads accepted so far in %v (%d of them not yet committed anywhere; %s)",
			i, n.http, role, took.Round(time.Millisecond), stable.Round(time.Millisecond), len(want), time.Since(restarted).Round(time.Millisecond), pending, c.outboxes())
	}
	time.Sleep(time.Second)
	stopClients()

	var all []string
	var worst time.Duration
	for _, cl := range clients {
		got := cl.accepted()
		all = append(all, ids(got)...)
		worst = max(worst, cl.longest)
		at := "-"
		if !cl.longestT.IsZero() {
			at = cl.longestT.Format("15:04:05.000")
		}
		t.Logf("client homed on node %d: %d uploads accepted, %d failed attempts, longest stretch without an accepted upload %v (from %s)",
			cl.home, len(got), cl.fails, cl.longest.Round(time.Millisecond), at)
	}
	t.Logf("when the uploads stopped: %s", c.outboxes())
	ev, err := c.tryEverywhere(all, 90*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.outboxes())
	}
	took := ev.all
	t.Logf("ROLLING restart of 3 nodes under 3 clients: %d uploads with 201, all on all three nodes (files verified, %v after the last restart's checks); longest failure stretch of any client %v",
		len(all), took.Round(time.Millisecond), worst.Round(time.Millisecond))
	if worst > 5*time.Second {
		t.Errorf("a client saw uploads fail for %v, longer than an election (limit 5 s)", worst)
	}
	c.stopAll()
}
