// Package test holds Callvault's end-to-end tests: they run the real
// binary against real sockets, files and peers. `make test` builds the
// binary first and passes its path in CALLVAULT_BIN; run alone, TestMain
// builds it.
package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

// defaultHTTP is the built-in listen address of `callvault serve`.
const defaultHTTP = "127.0.0.1:8080"

func TestMain(m *testing.M) {
	binary = os.Getenv("CALLVAULT_BIN")
	cleanup := func() {}
	if binary == "" {
		dir, err := os.MkdirTemp("", "callvault-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = func() { os.RemoveAll(dir) }
		binary = filepath.Join(dir, "callvault")
		cmd := exec.Command("go", "build", "-o", binary, "../cmd/callvault")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build callvault:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// freeAddr returns a 127.0.0.1 address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// The kernel may offer a port it offered before, once its
		// listener is closed: a cluster test's HTTP and raft addresses
		// must not coincide (the second bind would fail and the test
		// would talk to the wrong listener).
		handedOut.mu.Lock()
		seen := handedOut.addrs[addr]
		if !seen {
			handedOut.addrs[addr] = true
		}
		handedOut.mu.Unlock()
		if !seen {
			return addr
		}
	}
	t.Fatal("no port the kernel offered was new")
	return ""
}

// handedOut is every address freeAddr returned in this test process.
var handedOut = struct {
	mu    sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// syncBuffer is a goroutine-safe bytes.Buffer for a child's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is a running `callvault serve` process.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	done   chan error
}

// startServer runs `callvault serve` in dir with args and waits until
// /healthz answers.
func startServer(t *testing.T, dir string, env []string, args ...string) *server {
	t.Helper()
	return startServerArgs(t, dir, env, freeAddr(t), args...)
}

func startServerArgs(t *testing.T, dir string, env []string, addr string, args ...string) *server {
	t.Helper()
	full := append([]string{"serve"}, args...)
	if addr != defaultHTTP {
		// The built-in default is tested by passing no --http at all.
		full = append(full, "--http", addr)
	}
	return startBinary(t, binary, dir, env, addr, full...)
}

// startBinary runs bin with args (a serve command listening on addr) and
// returns once addr accepts connections; the process is killed at cleanup.
func startBinary(t *testing.T, bin, dir string, env []string, addr string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	s := &server{t: t, cmd: cmd, addr: addr, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	cmd.Stdout = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			// What the server said is the first thing to read when a
			// request to it failed.
			t.Logf("%s %v on %s, the end of its output:\n%s", filepath.Base(bin), args, addr, tail(s.stderr.String(), 4000))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			t.Fatalf("callvault serve exited early: %v\n%s", err, s.stderr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("callvault serve did not listen on %s:\n%s", addr, s.stderr)
	return nil
}

// stop sends sig and returns the exit error and how long the exit took.
func (s *server) stop(sig syscall.Signal, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = s.cmd.Process.Signal(sig)
	select {
	case err := <-s.done:
		return time.Since(start), err
	case <-time.After(limit):
		_ = s.cmd.Process.Kill()
		<-s.done
		return time.Since(start), fmt.Errorf("did not exit within %v", limit)
	}
}

// cleanEnv is the test process environment without CALLVAULT_* settings
// that would change what the child does.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CALLVAULT_") {
			out = append(out, kv)
		}
	}
	return out
}

// runCLI runs the binary to completion.
func runCLI(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

var passwordLine = regexp.MustCompile(`password: (\S+)`)

// firstLine returns the first line of r matching re, or "".
func firstMatch(r io.Reader, re *regexp.Regexp) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			return m[1]
		}
	}
	return ""
}
