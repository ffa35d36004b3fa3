package test

import (
	"bytes"
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bigULawWAV is a mono 8 kHz G.711 μ-law WAV of n bytes of audio (a tone,
// so the file does not compress), about n/8000 seconds long.
func bigULawWAV(n int) []byte {
	b := make([]byte, 0, 58+n)
	b = append(b, "RIFF"...)
	b = bin.LittleEndian.AppendUint32(b, uint32(50+n))
	b = append(b, "WAVEfmt "...)
	b = bin.LittleEndian.AppendUint32(b, 18)
	b = bin.LittleEndian.AppendUint16(b, 7) // μ-law
	b = bin.LittleEndian.AppendUint16(b, 1)
	b = bin.LittleEndian.AppendUint32(b, 8000)
	b = bin.LittleEndian.AppendUint32(b, 8000)
	b = bin.LittleEndian.AppendUint16(b, 1)
	b = bin.LittleEndian.AppendUint16(b, 8)
	b = bin.LittleEndian.AppendUint16(b, 0)
	b = append(b, "fact"...)
	b = bin.LittleEndian.AppendUint32(b, 4)
	b = bin.LittleEndian.AppendUint32(b, uint32(n))
	b = append(b, "data"...)
	b = bin.LittleEndian.AppendUint32(b, uint32(n))
	var x uint32 = 12345
	for i := 0; i < n; i++ {
		x = x*1664525 + 1013904223
		b = append(b, byte(x>>24))
	}
	return b
}

// newThreeNodes starts a bootstrapped node and joins two more.
func newThreeNodes(t *testing.T, c *clusterEnv) {
	t.Helper()
	for range 3 {
		c.nodes = append(c.nodes, &clusterNode{dir: t.TempDir(), http: freeAddr(t), raft: freeAddr(t)})
	}
	c.start(c.nodes[0])
	for _, n := range c.nodes[1:] {
		tok := strings.TrimSpace(c.cli("cluster", "token", "--server", "http://"+c.nodes[0].http))
		c.start(n, "--join", "http://"+c.nodes[0].http, "--join-token", tok)
	}
	deadline := time.Now().Add(30 * time.Second) // -race in CI is slow to settle
	for {
		st := c.status(c.nodes[0])
		voters := 0
		for _, n := range st.Nodes {
			if n.Voter && (n.State == "Leader" || n.State == "Follower") {
				voters++
			}
		}
		if voters == 3 && st.Leader != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no three-voter cluster: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// partials lists the half-received copies in n's incoming directory.
func partials(n *clusterNode) []string {
	m, _ := filepath.Glob(filepath.Join(n.dir, "recordings", ".incoming", "*.part"))
	return m
}

// TestClusterFileKilledMidCopy: a 50 MB upload on node A; node B is
// killed with SIGKILL while it receives the file (its partial copy seen in
// recordings/.incoming). Until then and after, B never has a file under
// the recording's name that differs from A's; after B restarts, the
// partial is gone, the copy completes and hashes like A's, and B plays
// the same audio as A.
func TestClusterFileKilledMidCopy(t *testing.T) {
	c := newClusterEnv(t)
	c.hc.Timeout = 2 * time.Minute
	newThreeNodes(t, c)
	a, b := c.nodes[0], c.nodes[1]

	// Watch B: kill it at the first sight of a partial copy with data in it.
	var (
		mu       sync.Mutex
		killedAt int64 = -1
		badFile  string
	)
	stop := make(chan struct{})
	watched := make(chan struct{})
	id := ""
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, p := range partials(b) {
				if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
					_ = b.cmd.Process.Signal(syscall.SIGKILL)
					mu.Lock()
					killedAt = fi.Size()
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			cur := id
			mu.Unlock()
			if cur != "" {
				if h := fileHash(t, b, cur); h != "" && h != fileHash(t, a, cur) {
					mu.Lock()
					badFile = h
					mu.Unlock()
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	wav := bigULawWAV(50 << 20)
	code, got, err := c.uploadWAV(a, "big-upload", wav)
	if err != nil || code != 201 {
		t.Fatalf("50 MB upload: %d %v\n%s", code, err, a.stderr)
	}
	mu.Lock()
	id = got
	mu.Unlock()
	select {
	case <-watched:
	case <-time.After(60 * time.Second):
		close(stop)
		<-watched
		t.Fatalf("never saw B receive the file; B's log:\n%s", b.stderr)
	}
	<-b.done
	mu.Lock()
	cut := killedAt
	mu.Unlock()
	if cut < 0 {
		t.Fatal("B was not killed")
	}
	if m, _ := filepath.Glob(filepath.Join(a.dir, "recordings", "*", "*", "*", id+".cvr")); len(m) == 1 {
		if fi, err := os.Stat(m[0]); err != nil || cut >= fi.Size() {
			t.Fatalf("B was not killed mid-copy: %d bytes received of %v", cut, fi)
		}
	}
	left := partials(b)
	t.Logf("B killed with %d bytes of the copy received; partial files left: %d; file under its name on B: %q", cut, len(left), fileHash(t, b, id))
	if h := fileHash(t, b, id); h != "" && h != fileHash(t, a, id) {
		t.Fatalf("a killed copy left a file under the recording's name that differs from the original")
	}

	c.start(b)
	start := time.Now()
	c.waitFileEverywhere(id, 60*time.Second)
	t.Logf("after restart B completed the copy in %v", time.Since(start).Round(time.Millisecond))
	if p := partials(b); len(p) != 0 {
		t.Fatalf("partial copies left after restart: %v", p)
	}
	mu.Lock()
	bad := badFile
	mu.Unlock()
	if bad != "" {
		t.Fatalf("B had a file under the recording's name that differs from A's: %s", bad)
	}
	if wa, wb := c.audio(a, id), c.audio(b, id); len(wa) == 0 || string(wa) != string(wb) {
		t.Fatalf("audio on B (%d bytes) differs from A (%d bytes)", len(wb), len(wa))
	}
	for _, n := range c.nodes {
		if _, err := n.stop(syscall.SIGTERM, 20*time.Second); err != nil {
			t.Errorf("stop %s: %v", n.http, err)
		}
	}
}

// TestClusterCatchUp measures how long a node that joins late takes to
// hold the files of N recordings made before it joined (metadata comes
// with the join's snapshot; files are pulled). N is CALLVAULT_CATCHUP_N,
// default 300. CALLVAULT_CATCHUP_WAV_BYTES, if set, uploads a generated
// μ-law WAV with that many bytes of audio instead of the 88 KB test file
// (a faster way to make 100,000 recordings), and
// CALLVAULT_CATCHUP_UPLOADERS sets the number of uploaders (default 4).
func TestClusterCatchUp(t *testing.T) {
	n := envInt(t, "CALLVAULT_CATCHUP_N", 300)
	uploaders := envInt(t, "CALLVAULT_CATCHUP_UPLOADERS", 4)
	c := newClusterEnv(t)
	if os.Getenv("CALLVAULT_CATCHUP_WAV_BYTES") != "" {
		c.wav = bigULawWAV(envInt(t, "CALLVAULT_CATCHUP_WAV_BYTES", 8000))
	}
	c.hc.Timeout = time.Minute
	a := &clusterNode{dir: t.TempDir(), http: freeAddr(t), raft: freeAddr(t)}
	b := &clusterNode{dir: t.TempDir(), http: freeAddr(t), raft: freeAddr(t)}
	c.nodes = []*clusterNode{a}
	c.start(a)
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make(chan error, n)
	next := make(chan int)
	for range uploaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				code, id, err := c.upload(a, fmt.Sprintf("catchup-%d", i))
				if err != nil || code != 201 {
					errs <- fmt.Errorf("upload %d: %d %v", i, code, err)
					continue
				}
				ids[i] = id
			}
		}()
	}
	t0 := time.Now()
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d uploads on A in %v (%d uploaders, %d-byte WAV)", n, time.Since(t0).Round(time.Millisecond), uploaders, len(c.wav))

	// Where each file lies (relative to recordings/), found once: the
	// wait below must not cost more than the copying it measures.
	rel := map[string]string{}
	root := filepath.Join(a.dir, "recordings")
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".cvr") {
			r, _ := filepath.Rel(root, p)
			rel[strings.TrimSuffix(d.Name(), ".cvr")] = r
		}
		return nil
	})
	tok := strings.TrimSpace(c.cli("cluster", "token", "--server", "http://"+a.http))
	joinStart := time.Now()
	c.start(b, "--join", "http://"+a.http, "--join-token", tok)
	c.nodes = append(c.nodes, b)
	deadline := time.Now().Add(10*time.Minute + time.Duration(n)*20*time.Millisecond)
	for _, id := range ids {
		if rel[id] == "" {
			t.Fatalf("no file of %s on A", id)
		}
		for {
			if _, err := os.Stat(filepath.Join(b.dir, "recordings", rel[id])); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("B did not catch up on files\n%s", b.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	took := time.Since(joinStart)
	for _, id := range ids {
		x, _ := os.ReadFile(filepath.Join(a.dir, "recordings", rel[id]))
		y, _ := os.ReadFile(filepath.Join(b.dir, "recordings", rel[id]))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Fatalf("copy of %s differs", id)
		}
	}
	// cluster status (API and CLI) shows the replication state: nothing
	// left to copy, nothing under-replicated, B's copies counted.
	var st struct {
		Nodes []struct {
			ID    string `json:"id"`
			Files *struct {
				Replicas        int   `json:"replicas"`
				Backlog         int64 `json:"backlog"`
				UnderReplicated int64 `json:"under_replicated"`
				Copied          int64 `json:"copied"`
			} `json:"files"`
		} `json:"nodes"`
	}
	deadline = time.Now().Add(time.Minute + time.Duration(n)*time.Millisecond)
	for {
		out := c.cli("cluster", "status", "--server", "http://"+b.http, "--json")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		done, copied := len(st.Nodes) == 2, int64(0)
		for _, nd := range st.Nodes {
			if nd.Files == nil || nd.Files.Backlog != 0 || nd.Files.UnderReplicated != 0 || nd.Files.Replicas != 2 {
				done = false
			} else {
				copied += nd.Files.Copied
			}
		}
		if done && copied >= int64(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the files replicated: %s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("cluster status:\n%s", c.cli("cluster", "status", "--server", "http://"+a.http))
	t.Logf("CATCHUP N=%d recordings (%d bytes each upload): joined node held every file, verified, %v after its start (%.0f files/s)",
		n, len(c.wav), took.Round(time.Millisecond), float64(n)/took.Seconds())
	for _, nd := range c.nodes {
		if _, err := nd.stop(syscall.SIGTERM, 20*time.Second); err != nil {
			t.Errorf("stop %s: %v", nd.http, err)
		}
	}
}
