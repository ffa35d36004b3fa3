//go:build !linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
)

// Live capture needs Linux AF_PACKET; elsewhere Live says so. Capture
// files still import everywhere (ImportFile).

// LiveConfig configures live capture (see afpacket_linux.go).
type LiveConfig struct {
	Interfaces    []string
	BPF           string
	Readers       int
	FanoutGroup   uint16
	RingBytes     int
	NoPromiscuous bool
}

// Errors of live capture.
var (
	// ErrLiveConfig: a LiveConfig that cannot work.
	ErrLiveConfig = errors.New("capture: live config")
	// ErrBPF: capture.bpf is not a valid `tcpdump -ddd` program.
	ErrBPF = errors.New("capture: bpf program")
)

// LiveSource is a running live capture; on this platform there is none.
type LiveSource struct{}

// LiveInterfaceStats counts what one interface's sockets saw.
type LiveInterfaceStats struct {
	Name          string
	Frames        atomic.Int64
	KernelPackets atomic.Int64
	KernelDrops   atomic.Int64
	ReadErrors    atomic.Int64
}

// Live fails: AF_PACKET exists only on Linux.
func Live(ctx context.Context, e *Engine, cfg LiveConfig) (*LiveSource, error) {
	return nil, fmt.Errorf("%w: live capture (capture.interfaces) needs Linux AF_PACKET; this is %s/%s (import capture files instead)",
		ErrSource, runtime.GOOS, runtime.GOARCH)
}

// Interfaces returns nothing.
func (s *LiveSource) Interfaces() []*LiveInterfaceStats { return nil }

// Close does nothing.
func (s *LiveSource) Close() error { return nil }
