//go:build linux

package capture

// Live capture from network interfaces (a SPAN port, a TAP, a veth in a
// test) through AF_PACKET with TPACKET_V3 ring buffers.
//
//	interface ──kernel──► PACKET_FANOUT group (hash of the flow, IPv4 defragmented)
//	                         ├─► socket 0: mmap'd TPACKET_V3 ring ──► goroutine 0: Reader.Handle
//	                         ├─► socket 1: ... ──► goroutine 1: Reader.Handle
//	                         └─► socket n-1 (one per core by default)
//
// Why this shape:
//   - TPACKET_V3 hands over whole blocks of frames, so a busy reader takes
//     hundreds of packets per wake-up instead of one syscall each, and
//     frames are read in place (ZeroCopyReadPacketData): the packet path
//     copies nothing and allocates nothing.
//   - The fanout group runs in hash mode: the kernel hashes each packet's
//     flow (the hash is symmetric, so both directions of a flow agree) and
//     always hands a flow to the same socket. A stream's packets therefore
//     reach one Reader in order, which is what the per-reader SPSC lanes of
//     a stream assume. The defrag flag makes the kernel reassemble IPv4
//     fragments before hashing (fragments carry no ports, so they would
//     hash apart from the rest of their flow); the Reader's own
//     defragmenter still handles IPv6 and whatever the kernel passed on.
//   - Each socket belongs to exactly one goroutine, which reads it, feeds
//     its own Reader, collects the socket's drop counters and finally
//     closes it: the mmap'd ring is never unmapped under a reader.
//
// BPF: compiling a tcpdump expression needs libpcap (cgo), which the
// appliance does without. capture.bpf therefore takes a program already
// compiled, in the text form `tcpdump -ddd EXPR` prints (see ParseBPF);
// with none, every frame is read and the decoder discards what is not
// IP (the decoder is cheaper than most filters would be).
//
// VLANs: the kernel strips the outer 802.1Q tag of received frames (VLAN
// offload) and reports it beside the frame; frames reach the Reader
// untagged, so calls are told apart by address and port, not by VLAN.
// afpacket boxes that tag into CaptureInfo.AncillaryData, one small
// allocation per tagged frame: the one exception to a packet path that
// allocates nothing, which only a ring reader of our own would remove.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/net/bpf"
)

// LiveConfig configures live capture. The appliance builds it from
// capture.interfaces and capture.bpf.
type LiveConfig struct {
	// Interfaces to capture on, by name (e.g. "eth1"). Required.
	Interfaces []string
	// BPF is a classic BPF program in `tcpdump -ddd` form (ParseBPF);
	// empty: no filter.
	BPF string
	// Readers per interface, each with its own socket and goroutine;
	// 0: one per CPU core (GOMAXPROCS).
	Readers int
	// FanoutGroup is the PACKET_FANOUT group id of the first interface
	// (the next ones use the following ids). Fanout groups are shared by
	// every process of the network namespace, so two captures must not
	// pick the same one; 0 derives an id from the process id and the
	// interface index.
	FanoutGroup uint16
	// RingBytes is the kernel ring size per socket; 0: 32 MiB. At 1 Mpps
	// of 200-byte frames that is about 0.15 s of slack for a stalled reader.
	RingBytes int
	// NoPromiscuous leaves the interface's promiscuous mode alone. A SPAN
	// port's NIC must be promiscuous to pass on frames that are not
	// addressed to it, so by default each socket asks for it (a
	// per-socket membership the kernel drops when the socket closes).
	NoPromiscuous bool
}

// Live-capture limits.
const (
	liveBlockSize    = 1 << 20 // TPACKET_V3 block: frames are packed into it back to back
	liveMinRing      = 2 * liveBlockSize
	liveDefaultRing  = 32 << 20
	liveMaxRing      = 1 << 30
	liveBlockTimeout = 10 * time.Millisecond // hand over a half-filled block after this
	livePollTimeout  = 100 * time.Millisecond
	// liveStatsEvery is how often (capture time) a reader folds its
	// socket's kernel counters into Stats.
	liveStatsEvery = int64(time.Second)
	// maxBPFInstructions is the kernel's BPF_MAXINSNS.
	maxBPFInstructions = 4096
)

// Errors of live capture and of ParseBPF (besides ErrSource, which wraps
// what the kernel refused).
var (
	// ErrLiveConfig: a LiveConfig that cannot work (no interface, too
	// many readers, a ring size out of range).
	ErrLiveConfig = errors.New("capture: live config")
	// ErrBPF: capture.bpf is not a valid `tcpdump -ddd` program.
	ErrBPF = errors.New("capture: bpf program")
)

// LiveSource is a running live capture. Close stops it.
type LiveSource struct {
	e       *Engine
	members []*liveMember
	ifaces  []*LiveInterfaceStats
	stop    atomic.Bool   // readers check it between reads (at least every poll timeout)
	closing chan struct{} // closed by Close, ends the ctx watcher
	wg      sync.WaitGroup
	once    sync.Once
}

// LiveInterfaceStats counts what one interface's sockets saw. The kernel
// counters are folded in about once a second and when capture stops.
type LiveInterfaceStats struct {
	Name string
	// Frames handed to Readers.
	Frames atomic.Int64
	// KernelPackets: frames the kernel passed to the sockets' filters and
	// rings, dropped ones included; KernelDrops: frames lost because a
	// ring was full (the reader fell behind).
	KernelPackets atomic.Int64
	KernelDrops   atomic.Int64
	// ReadErrors: failed reads of a socket (other than timeouts).
	ReadErrors atomic.Int64
}

// liveMember is one socket of a fanout group and the goroutine reading it.
type liveMember struct {
	tp     *afpacket.TPacket
	r      *Reader
	link   packet.LinkType
	stats  *LiveInterfaceStats
	engine *Stats
	// Cumulative kernel counters already added to Stats.
	seenPackets, seenDrops uint
	lastStats              int64
}

// Live opens every configured interface and starts reading it into e (an
// engine in live mode whose flusher runs: Config.Live and Start). It
// fails, having opened nothing, if any socket cannot be set up. ctx
// bounds the capture's life as Close does.
func Live(ctx context.Context, e *Engine, cfg LiveConfig) (*LiveSource, error) {
	if len(cfg.Interfaces) == 0 {
		return nil, fmt.Errorf("%w: no interface", ErrLiveConfig)
	}
	readers := cfg.Readers
	if readers <= 0 {
		readers = runtime.GOMAXPROCS(0)
	}
	if total := readers * len(cfg.Interfaces); total > maxLanes {
		// Reader ids wrap at maxLanes; two readers on one id would make a
		// stream's lane multi-producer.
		return nil, fmt.Errorf("%w: %d interfaces × %d readers = %d readers; at most %d", ErrLiveConfig,
			len(cfg.Interfaces), readers, total, maxLanes)
	}
	ring := cfg.RingBytes
	if ring == 0 {
		ring = liveDefaultRing
	}
	if ring < liveMinRing || ring > liveMaxRing {
		return nil, fmt.Errorf("%w: ring of %d bytes per socket; allowed %d to %d", ErrLiveConfig, ring, liveMinRing, liveMaxRing)
	}
	var filter []bpf.RawInstruction
	if strings.TrimSpace(cfg.BPF) != "" {
		var err error
		if filter, err = ParseBPF(cfg.BPF); err != nil {
			return nil, err
		}
	}
	s := &LiveSource{e: e, closing: make(chan struct{})}
	fail := func(err error) (*LiveSource, error) {
		for _, m := range s.members {
			m.tp.Close()
		}
		return nil, err
	}
	seen := make(map[string]bool)
	for i, name := range cfg.Interfaces {
		if seen[name] {
			return fail(fmt.Errorf("%w: interface %q listed twice", ErrLiveConfig, name))
		}
		seen[name] = true
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return fail(fmt.Errorf("%w: interface %q: %w", ErrSource, name, err))
		}
		link, err := linkTypeOf(name)
		if err != nil {
			return fail(err)
		}
		group := cfg.FanoutGroup + uint16(i)
		if cfg.FanoutGroup == 0 {
			group = fanoutGroup(os.Getpid(), ifc.Index)
		}
		st := &LiveInterfaceStats{Name: name}
		s.ifaces = append(s.ifaces, st)
		for j := 0; j < readers; j++ {
			tp, err := openSocket(name, ring, filter, !cfg.NoPromiscuous, readers > 1, group)
			if err != nil {
				return fail(fmt.Errorf("%w: interface %q socket %d of %d: %w", ErrSource, name, j+1, readers, err))
			}
			s.members = append(s.members, &liveMember{tp: tp, link: link, stats: st, engine: &e.stats})
		}
	}
	// Readers are made only once every socket is open, so a failed start
	// leaves the engine's reader count alone.
	for _, m := range s.members {
		m.r = e.NewReader()
	}
	for _, m := range s.members {
		s.wg.Add(1)
		go func(m *liveMember) {
			defer s.wg.Done()
			m.run(&s.stop)
		}(m)
	}
	if ctx.Done() != nil {
		// Stops the readers when ctx ends; Close ends it otherwise.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case <-ctx.Done():
				s.stop.Store(true)
			case <-s.closing:
			}
		}()
	}
	return s, nil
}

// openSocket makes one TPACKET_V3 socket on iface, filtered and joined to
// the fanout group. The filter goes on before the fanout join, so the
// group never sees this member unfiltered.
func openSocket(iface string, ring int, filter []bpf.RawInstruction, promisc, fanout bool, group uint16) (*afpacket.TPacket, error) {
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(iface),
		afpacket.TPacketVersion3,
		afpacket.OptFrameSize(afpacket.DefaultFrameSize),
		afpacket.OptBlockSize(liveBlockSize),
		afpacket.OptNumBlocks(ring/liveBlockSize),
		afpacket.OptBlockTimeout(liveBlockTimeout),
		afpacket.OptPollTimeout(livePollTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("open TPACKET_V3 socket (needs CAP_NET_RAW): %w", err)
	}
	if len(filter) > 0 {
		if err := tp.SetBPF(filter); err != nil {
			tp.Close()
			return nil, fmt.Errorf("%w: the kernel refused it: %w", ErrBPF, err)
		}
	}
	if promisc {
		if err := tp.SetPromiscuous(true); err != nil {
			tp.Close()
			return nil, fmt.Errorf("promiscuous mode: %w", err)
		}
	}
	if fanout {
		if err := tp.SetFanout(afpacket.FanoutHashWithDefrag, group); err != nil {
			tp.Close()
			return nil, fmt.Errorf("join fanout group %d (another process may use it with other settings): %w", group, err)
		}
	}
	// Counters start at zero from here: what the socket saw before the
	// filter and the group were in place is not this capture's.
	if _, _, err := tp.SocketStats(); err != nil {
		tp.Close()
		return nil, fmt.Errorf("socket statistics: %w", err)
	}
	return tp, nil
}

// fanoutGroup derives a fanout group id that another process on the same
// host is unlikely to use.
func fanoutGroup(pid, ifindex int) uint16 {
	h := fnv.New32a()
	var b [32]byte
	_, _ = h.Write(strconv.AppendInt(append(strconv.AppendInt(b[:0], int64(pid), 10), '/'), int64(ifindex), 10))
	g := uint16(h.Sum32())
	if g == 0 {
		g = 1
	}
	return g
}

// linkTypeOf maps the interface's ARPHRD type (/sys/class/net/NAME/type)
// to the link type of the frames a SOCK_RAW packet socket returns on it.
func linkTypeOf(name string) (packet.LinkType, error) {
	b, err := os.ReadFile("/sys/class/net/" + name + "/type")
	if err != nil {
		return 0, fmt.Errorf("%w: interface %q: link type: %w", ErrSource, name, err)
	}
	t, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%w: interface %q: link type %q: %w", ErrSource, name, b, err)
	}
	switch t {
	case 1, 772: // ARPHRD_ETHER, ARPHRD_LOOPBACK (which carries an Ethernet header)
		return packet.LinkEthernet, nil
	case 65534, 768, 769, 776, 778: // ARPHRD_NONE (tun), TUNNEL, TUNNEL6, SIT, IPGRE: bare IP
		return packet.LinkRaw, nil
	}
	return 0, fmt.Errorf("%w: interface %q: ARPHRD type %d is not supported (Ethernet and bare-IP devices are)", ErrSource, name, t)
}

// run reads the socket until stop is set, then folds in the last kernel
// counters and closes the socket (only this goroutine ever touches it).
func (m *liveMember) run(stop *atomic.Bool) {
	defer m.tp.Close()
	defer m.foldKernelStats()
	var errBackoff time.Duration
	for !stop.Load() {
		data, ci, err := m.tp.ZeroCopyReadPacketData()
		if err != nil {
			if errors.Is(err, afpacket.ErrTimeout) {
				m.maybeFoldKernelStats(time.Now().UnixNano())
				continue
			}
			// A socket error (the interface went down, ENETDOWN): count
			// it and retry with a growing pause rather than spin.
			m.stats.ReadErrors.Add(1)
			errBackoff = min(max(2*errBackoff, 10*time.Millisecond), time.Second)
			time.Sleep(errBackoff)
			continue
		}
		errBackoff = 0
		m.stats.Frames.Add(1)
		m.r.Handle(m.link, ci.Timestamp, data)
		m.maybeFoldKernelStats(ci.Timestamp.UnixNano())
	}
}

func (m *liveMember) maybeFoldKernelStats(now int64) {
	if now-m.lastStats < liveStatsEvery {
		return
	}
	m.lastStats = now
	m.foldKernelStats()
}

// foldKernelStats adds what the kernel counted since the last call to the
// interface's and the engine's counters. afpacket keeps the running sums
// (the kernel resets its counters on each read).
func (m *liveMember) foldKernelStats() {
	_, v3, err := m.tp.SocketStats()
	if err != nil {
		return
	}
	p, d := v3.Packets(), v3.Drops()
	dp, dd := int64(p-m.seenPackets), int64(d-m.seenDrops)
	m.seenPackets, m.seenDrops = p, d
	if dp != 0 {
		m.stats.KernelPackets.Add(dp)
		m.engine.KernelPackets.Add(dp)
	}
	if dd != 0 {
		m.stats.KernelDrops.Add(dd)
		m.engine.KernelDrops.Add(dd)
	}
}

// Interfaces returns the per-interface counters, in configuration order.
func (s *LiveSource) Interfaces() []*LiveInterfaceStats { return s.ifaces }

// Close stops every reader, waits for them and closes the sockets. The
// engine keeps running: close it after this (it seals open recordings).
func (s *LiveSource) Close() error {
	s.once.Do(func() {
		s.stop.Store(true)
		close(s.closing)
		s.wg.Wait()
	})
	return nil
}

// ParseBPF parses a classic BPF program in the text form `tcpdump -ddd
// EXPR` prints: the instruction count, then one instruction per line as
// four decimal numbers "code jt jf k". Commas may stand for newlines (the
// one-line form iptables' xt_bpf takes: `tcpdump -ddd EXPR | tr '\n' ,`).
// The program is checked the way the kernel will check it (sk_chk_filter:
// jumps stay inside, the last instruction returns), so a bad capture.bpf
// fails with a message that names the instruction.
//
//	tcpdump -ddd 'udp or (ip[6:2] & 0x1fff != 0)'
//	7
//	40 0 0 12
//	...
func ParseBPF(text string) ([]bpf.RawInstruction, error) {
	lines := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ',' || r == ';' || r == '\r' })
	// Drop blank entries (a trailing comma, blank lines).
	n := 0
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			lines[n] = l
			n++
		}
	}
	lines = lines[:n]
	if len(lines) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBPF)
	}
	count, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil {
		return nil, fmt.Errorf("%w: first line %q is not the instruction count (expected `tcpdump -ddd` output)", ErrBPF, clip(lines[0]))
	}
	if count < 1 || count > maxBPFInstructions {
		return nil, fmt.Errorf("%w: %d instructions; allowed 1 to %d", ErrBPF, count, maxBPFInstructions)
	}
	if got := len(lines) - 1; got != count {
		return nil, fmt.Errorf("%w: count says %d instructions, %d follow", ErrBPF, count, got)
	}
	prog := make([]bpf.RawInstruction, count)
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			return nil, fmt.Errorf("%w: instruction %d: %q has %d fields; want 4 (code jt jf k)", ErrBPF, i, clip(l), len(f))
		}
		var v [4]uint64
		limits := [4]int{16, 8, 8, 32}
		for j := range f {
			v[j], err = strconv.ParseUint(f[j], 10, limits[j])
			if err != nil {
				return nil, fmt.Errorf("%w: instruction %d: field %d %q is not a %d-bit number", ErrBPF, i, j+1, clip(f[j]), limits[j])
			}
		}
		prog[i] = bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}
	}
	for i, ins := range prog {
		const classJMP, opJA = 0x05, 0x00
		if ins.Op&0x07 != classJMP {
			continue
		}
		if ins.Op&0xf0 == opJA {
			if uint64(i)+1+uint64(ins.K) >= uint64(count) {
				return nil, fmt.Errorf("%w: instruction %d jumps %d ahead, past the end (%d instructions)", ErrBPF, i, ins.K, count)
			}
			continue
		}
		if far := max(int(ins.Jt), int(ins.Jf)); i+1+far >= count {
			return nil, fmt.Errorf("%w: instruction %d jumps %d ahead, past the end (%d instructions)", ErrBPF, i, far, count)
		}
	}
	if last := prog[count-1]; last.Op&0x07 != 0x06 { // BPF_RET
		return nil, fmt.Errorf("%w: last instruction (code %d) is not a return", ErrBPF, last.Op)
	}
	return prog, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
