//go:build linux

package capture_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/capture"
	"github.com/callvault/callvault/capture/packet"
	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/meta"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// liveCall is a real call (SIP over UDP, two-way PCMA, RFC 2833 digits),
// shared with capture/rtp's tests.
const liveCall = "rtp/testdata/SIP_DTMF2.pcap"

// bpfSIP is `tcpdump -ddd 'udp port 5060' | tr '\n' ,` (tcpdump 4.99 on
// Linux), as capture.bpf would carry it on one line.
const bpfSIP = "20,40 0 0 12,21 0 6 34525,48 0 0 20,21 0 15 17,40 0 0 54,21 12 0 5060,40 0 0 56,21 10 11 5060," +
	"21 0 10 2048,48 0 0 23,21 0 8 17,40 0 0 20,69 6 0 8191,177 0 0 14,72 0 0 14,21 2 0 5060,72 0 0 16,21 0 1 5060," +
	"6 0 0 262144,6 0 0 0,"

const liveMasterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func TestParseBPF(t *testing.T) {
	udp := "12\n40 0 0 12\n21 0 2 2048\n48 0 0 23\n21 6 7 17\n21 0 6 34525\n48 0 0 20\n21 3 0 17\n" +
		"21 0 3 44\n48 0 0 54\n21 0 1 17\n6 0 0 262144\n6 0 0 0\n"
	prog, err := capture.ParseBPF(udp)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) != 12 || prog[0] != (bpf.RawInstruction{Op: 40, K: 12}) || prog[3] != (bpf.RawInstruction{Op: 21, Jt: 6, Jf: 7, K: 17}) ||
		prog[10] != (bpf.RawInstruction{Op: 6, K: 262144}) {
		t.Fatalf("parsed %v", prog)
	}
	// The one-line form gives the same program.
	oneLine, err := capture.ParseBPF(strings.ReplaceAll(strings.TrimSpace(udp), "\n", ","))
	if err != nil || fmt.Sprint(oneLine) != fmt.Sprint(prog) {
		t.Fatalf("one-line form: %v %v", oneLine, err)
	}
	// It means what tcpdump meant: run it on real frames with x/net/bpf's
	// interpreter (the kernel runs the same classic BPF).
	if _, err := capture.ParseBPF(bpfSIP); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, text, want string
	}{
		{"empty", " \n,", "empty"},
		{"no count", "40 0 0 12\n6 0 0 0", "not the instruction count"},
		{"count mismatch", "3\n40 0 0 12\n6 0 0 0", "count says 3 instructions, 2 follow"},
		{"zero count", "0", "0 instructions"},
		{"too many", "5000", "5000 instructions"},
		{"three fields", "1\n6 0 0", "has 3 fields"},
		{"jt too big", "2\n21 256 0 1\n6 0 0 0", "field 2 \"256\" is not a 8-bit number"},
		{"negative", "1\n6 0 0 -1", "field 4"},
		{"code too big", "1\n70000 0 0 0", "field 1"},
		{"jump past end", "2\n21 1 0 17\n6 0 0 0", "instruction 0 jumps 1 ahead"},
		{"ja past end", "2\n5 0 0 7\n6 0 0 0", "instruction 0 jumps 7 ahead"},
		{"no return", "1\n40 0 0 12", "is not a return"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := capture.ParseBPF(c.text)
			if !errors.Is(err, capture.ErrBPF) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseBPF(%q) = %v; want ErrBPF with %q", c.text, err, c.want)
			}
		})
	}
}

// TestBPFSIPMeansUDP5060 runs the committed filter on the frames of a real
// call with x/net/bpf's interpreter and checks it keeps exactly the SIP
// frames, so the filter constant is what its comment says.
func TestBPFSIPMeansUDP5060(t *testing.T) {
	prog, err := capture.ParseBPF(bpfSIP)
	if err != nil {
		t.Fatal(err)
	}
	insns := make([]bpf.Instruction, len(prog))
	for i, r := range prog {
		insns[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	frames := readFrames(t, liveCall)
	want := sipFrames(t, frames)
	var got int
	for _, f := range frames {
		n, err := vm.Run(f)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			got++
		}
	}
	if got != want || want == 0 {
		t.Fatalf("filter kept %d frames; %d are UDP port 5060", got, want)
	}
}

func FuzzParseBPF(f *testing.F) {
	f.Add(bpfSIP)
	f.Add("12\n40 0 0 12\n21 0 2 2048\n48 0 0 23\n21 6 7 17\n21 0 6 34525\n48 0 0 20\n21 3 0 17\n21 0 3 44\n48 0 0 54\n21 0 1 17\n6 0 0 262144\n6 0 0 0\n")
	f.Add("1\n6 0 0 65535")
	f.Add("2\n5 0 0 0\n6 0 0 0")
	f.Add("3;40 0 0 12;21 0 1 2048;6 0 0 0")
	f.Add("4294967297\n6 0 0 0")
	f.Fuzz(func(t *testing.T, text string) {
		prog, err := capture.ParseBPF(text)
		if err != nil {
			if !errors.Is(err, capture.ErrBPF) {
				t.Fatalf("error not ErrBPF: %v", err)
			}
			return
		}
		if len(prog) == 0 || len(prog) > 4096 || prog[len(prog)-1].Op&7 != 6 {
			t.Fatalf("accepted a program the kernel would refuse: %v", prog)
		}
		// Printing it back the way tcpdump does parses to the same program.
		var b strings.Builder
		fmt.Fprintf(&b, "%d\n", len(prog))
		for _, in := range prog {
			fmt.Fprintf(&b, "%d %d %d %d\n", in.Op, in.Jt, in.Jf, in.K)
		}
		again, err := capture.ParseBPF(b.String())
		if err != nil || fmt.Sprint(again) != fmt.Sprint(prog) {
			t.Fatalf("round trip: %v, %v != %v", err, again, prog)
		}
	})
}

func TestLiveConfigErrors(t *testing.T) {
	e := capture.New(capture.Config{Live: true}, nil)
	for _, c := range []struct {
		name string
		cfg  capture.LiveConfig
		want error
		msg  string
	}{
		{"no interface", capture.LiveConfig{}, capture.ErrLiveConfig, "no interface"},
		{"too many readers", capture.LiveConfig{Interfaces: []string{"lo"}, Readers: 17}, capture.ErrLiveConfig, "17 readers; at most 16"},
		{"small ring", capture.LiveConfig{Interfaces: []string{"lo"}, RingBytes: 4096}, capture.ErrLiveConfig, "ring of 4096 bytes"},
		{"bad bpf", capture.LiveConfig{Interfaces: []string{"lo"}, BPF: "1\n40 0 0 12"}, capture.ErrBPF, "not a return"},
		{"twice", capture.LiveConfig{Interfaces: []string{"lo", "lo"}, Readers: 1}, capture.ErrLiveConfig, "listed twice"},
		{"no such interface", capture.LiveConfig{Interfaces: []string{"cv-none-xyz"}}, capture.ErrSource, "cv-none-xyz"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := capture.Live(context.Background(), e, c.cfg)
			if s != nil {
				s.Close()
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Live = %v; want %v with %q", err, c.want, c.msg)
			}
		})
	}
}

// TestLiveVeth captures a real call sent through a veth pair and checks
// that live capture sees every frame and records what importing the same
// file records; then that a BPF filter keeps only SIP. Needs root (it
// creates interfaces); skips saying so otherwise.
func TestLiveVeth(t *testing.T) {
	tx, rx := liveVeth(t)
	frames := readFrames(t, liveCall)

	// What the import path makes of the file is the reference.
	_, imp := liveStore(t)
	ie := capture.New(capture.Config{}, capture.StoreSink(imp))
	if _, err := capture.ImportFile(context.Background(), ie.NewReader(), liveCall); err != nil {
		t.Fatal(err)
	}
	ie.Close()
	want := ie.Summaries()

	t.Run("call", func(t *testing.T) {
		_, st := liveStore(t)
		// This test checks that live capture records what import records.
		// Deep rings keep it independent of flusher stalls on store I/O
		// (commits and fsyncs while recordings are created), which under
		// -race on a busy CI machine can outlast 64 slots: that limit is
		// measured by TestLiveCaptureRate, not asserted here.
		e := capture.New(capture.Config{Live: true, RingSlots: 1024}, capture.StoreSink(st))
		e.Start()
		src, err := capture.Live(context.Background(), e, capture.LiveConfig{Interfaces: []string{rx}, Readers: 2, RingBytes: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		// 2,000 frames/s: a 64-slot ring per stream drained every 20 ms
		// has room to spare.
		sendFrames(t, tx, frames, 20)
		ifs := src.Interfaces()[0]
		waitFor(t, "every frame read", func() bool { return ifs.Frames.Load() >= int64(len(frames)) })
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
		e.Close()
		s := e.Stats()
		if got := ifs.Frames.Load(); got != int64(len(frames)) {
			t.Errorf("read %d frames; sent %d", got, len(frames))
		}
		if s.Packets.Load() != int64(len(frames)) || s.KernelPackets.Load() != int64(len(frames)) || s.KernelDrops.Load() != 0 || s.RingDrops.Load() != 0 {
			t.Errorf("engine saw %d packets, kernel counted %d with %d drops, %d ring drops; sent %d",
				s.Packets.Load(), s.KernelPackets.Load(), s.KernelDrops.Load(), s.RingDrops.Load(), len(frames))
		}
		if ifs.KernelPackets.Load() != s.KernelPackets.Load() || ifs.KernelDrops.Load() != 0 {
			t.Errorf("interface counters %d/%d differ from the engine's", ifs.KernelPackets.Load(), ifs.KernelDrops.Load())
		}
		got := e.Summaries()
		if len(got) != len(want) || len(want) == 0 {
			t.Fatalf("live recorded %d calls, import %d:\nlive %+v\nimport %+v", len(got), len(want), got, want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.CallID != w.CallID || g.Packets != w.Packets || g.Streams != w.Streams || g.Answered != w.Answered ||
				fmt.Sprint(g.Codecs) != fmt.Sprint(w.Codecs) || g.Bookmarks != w.Bookmarks {
				t.Errorf("call %d: live %+v\nimport %+v", i, g, w)
			}
		}
		recs := liveRecordings(t, st)
		if len(recs) != len(want) {
			t.Fatalf("%d recordings in the store; %d calls", len(recs), len(want))
		}
		for _, r := range recs {
			if r.Status != meta.StatusComplete {
				t.Errorf("recording %s: status %v", r.ID, r.Status)
			}
		}
	})

	t.Run("bpf", func(t *testing.T) {
		_, st := liveStore(t)
		e := capture.New(capture.Config{Live: true}, capture.StoreSink(st))
		e.Start()
		src, err := capture.Live(context.Background(), e, capture.LiveConfig{Interfaces: []string{rx}, Readers: 1, BPF: bpfSIP, RingBytes: 2 << 20})
		if err != nil {
			t.Fatal(err)
		}
		sip := sipFrames(t, frames)
		sendFrames(t, tx, frames, 100)
		ifs := src.Interfaces()[0]
		// The kernel counts only frames the filter passed; wait for the
		// last SIP frame, then a little for anything that should not come.
		waitFor(t, "every SIP frame read", func() bool { return ifs.Frames.Load() >= int64(sip) })
		time.Sleep(50 * time.Millisecond)
		src.Close()
		e.Close()
		if got := ifs.Frames.Load(); got != int64(sip) {
			t.Errorf("filter passed %d frames; %d are SIP", got, sip)
		}
		wantSIP := ie.Stats().SIPMessages.Load()
		if s := e.Stats(); s.SIPMessages.Load() != wantSIP || s.RTPPackets.Load() != 0 {
			t.Errorf("SIP messages %d (want %d), RTP packets %d (want 0)", s.SIPMessages.Load(), wantSIP, s.RTPPackets.Load())
		}
	})

	t.Run("ctx", func(t *testing.T) {
		// Cancelling the context stops the readers; Close then returns at once.
		e := capture.New(capture.Config{Live: true}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		before := runtime.NumGoroutine()
		src, err := capture.Live(ctx, e, capture.LiveConfig{Interfaces: []string{rx}, Readers: 2, RingBytes: 2 << 20})
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		done := make(chan struct{})
		go func() { src.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatal("Close did not return within 2s of the context ending")
		}
		waitFor(t, "reader goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
	})
}

// TestLiveNoAllocs proves the live read path (socket → Reader.Handle →
// ring push) allocates nothing per packet once a stream exists. The
// flusher is not started, so the only goroutines working are the reader
// and this sender; a full ring drops (counted) without allocating.
func TestLiveNoAllocs(t *testing.T) {
	tx, rx := liveVeth(t)
	e := capture.New(capture.Config{Live: true, RingSlots: 4096}, nil)
	src, err := capture.Live(context.Background(), e, capture.LiveConfig{Interfaces: []string{rx}, Readers: 1, RingBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fd := rawSender(t, tx)
	frame := make([]byte, 14+20+8+12+160)
	var seq uint16
	send := func() {
		seq++
		rtpFrame(frame, seq)
		if _, err := unix.Write(fd, frame); err != nil {
			t.Fatal(err)
		}
	}
	// Enough consistent packets make the flow a stream (RTP without
	// signalling); from then on packets go straight to its ring.
	for range 32 {
		send()
	}
	ifs := src.Interfaces()[0]
	waitFor(t, "warm-up frames read", func() bool { return ifs.Frames.Load() >= 32 })
	if e.Stats().OrphanStreams.Load() != 1 {
		t.Fatalf("no stream was made from the warm-up packets: %+v", e.Stats().OrphanStreams.Load())
	}
	const perRun = 1000
	runs := 0
	allocs := testing.AllocsPerRun(3, func() {
		runs++
		for range perRun {
			send()
		}
		want := int64(32 + runs*perRun)
		for ifs.Frames.Load() < want {
			runtime.Gosched()
		}
	})
	if ifs.KernelDrops.Load() != 0 {
		t.Logf("kernel drops: %d", ifs.KernelDrops.Load())
	}
	if got := e.Stats().RTPPackets.Load(); got < 32+perRun {
		t.Fatalf("only %d RTP packets reached a stream", got)
	}
	// AllocsPerRun counts every goroutine's allocations; allow a few for
	// the runtime (the poller, a GC cycle), not one per packet.
	if allocs > perRun/100 {
		t.Fatalf("%.0f allocations per %d packets: the packet path allocates (find where with "+
			"go test -run TestLiveNoAllocs -memprofile mem.out -memprofilerate 1 ./capture/ && go tool pprof -sample_index=alloc_objects -top mem.out)", allocs, perRun)
	}
	t.Logf("%.0f allocations per %d packets", allocs, perRun)
}

// rtpFrame writes an Ethernet/IPv4/UDP/RTP frame of one PCMA stream.
func rtpFrame(b []byte, seq uint16) {
	copy(b[0:6], []byte{0x02, 0, 0, 0, 0, 2})
	copy(b[6:12], []byte{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)-14))
	binary.BigEndian.PutUint32(ip[4:], 0)
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], []byte{10, 9, 0, 1})
	copy(ip[16:20], []byte{10, 9, 0, 2})
	binary.BigEndian.PutUint16(ip[10:], 0)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 40002)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(b)-34))
	binary.BigEndian.PutUint16(udp[6:], 0)
	rtp := b[42:54]
	rtp[0], rtp[1] = 0x80, 8
	binary.BigEndian.PutUint16(rtp[2:], seq)
	binary.BigEndian.PutUint32(rtp[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(rtp[8:], 0x11223344)
	for i := 54; i < len(b); i++ {
		b[i] = 0xd5
	}
}

// liveVeth makes a veth pair with unique names and returns (sending end,
// capturing end). It skips, saying why, where interfaces cannot be made.
func liveVeth(t *testing.T) (tx, rx string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("live capture tests create a veth pair: they need root (CAP_NET_ADMIN, CAP_NET_RAW); running as uid " + strconv.Itoa(os.Geteuid()))
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	base := "cvl" + hex.EncodeToString(r[:])
	tx, rx = base+"t", base+"r"
	if out, err := exec.Command("ip", "link", "add", tx, "type", "veth", "peer", "name", rx).CombinedOutput(); err != nil {
		t.Skipf("cannot create a veth pair (ip link add): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", tx).Run() })
	for _, name := range []string{tx, rx} {
		// No IPv6 on the pair: router solicitations and MLD reports would
		// be frames the test did not send.
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0o644)
		if out, err := exec.Command("ip", "link", "set", name, "up").CombinedOutput(); err != nil {
			t.Fatalf("ip link set %s up: %v: %s", name, err, out)
		}
	}
	return tx, rx
}

// rawSender opens a packet socket bound to iface for writing frames.
func rawSender(t *testing.T, iface string) int {
	t.Helper()
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // protocol 0: send only
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
		t.Fatal(err)
	}
	return fd
}

// sendFrames writes frames to iface in bursts of burst frames every
// 10 ms. Pacing keeps the receiving side's backlog queue
// (net.core.netdev_max_backlog, 1000 by default) from overflowing, a drop
// capture could not see, and, for calls, keeps each stream within what its
// ring holds between two flusher passes, as real-time media would.
func sendFrames(t *testing.T, iface string, frames [][]byte, burst int) {
	t.Helper()
	fd := rawSender(t, iface)
	for i, f := range frames {
		if _, err := unix.Write(fd, f); err != nil {
			t.Fatalf("send frame %d: %v", i, err)
		}
		if i%burst == burst-1 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func readFrames(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		out = append(out, data)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no frames", path)
	}
	return out
}

// sipFrames counts frames that are UDP to or from port 5060.
func sipFrames(t *testing.T, frames [][]byte) int {
	t.Helper()
	var d packet.Decoder
	var p packet.Packet
	n := 0
	for _, f := range frames {
		if d.Decode(packet.LinkEthernet, time.Unix(1, 0), f, &p) == nil && p.Protocol == packet.ProtoUDP && (p.SrcPort == 5060 || p.DstPort == 5060) {
			n++
		}
	}
	return n
}

func liveStore(t *testing.T) (string, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(store.Config{DataDir: dir, Keys: store.KeySource{Env: liveMasterKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return dir, st
}

func liveRecordings(t *testing.T, st *store.Store) []meta.Recording {
	t.Helper()
	page, err := st.Meta().Search(meta.Query{Scope: meta.Scope{All: true}, Limit: 500, Ascending: true})
	if err != nil {
		t.Fatal(err)
	}
	return page.Recordings
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 5s waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
