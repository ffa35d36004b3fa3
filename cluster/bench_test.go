package cluster

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/google/uuid"
)

// recordingCmd is a realistic CreateRecording (an upload's metadata).
func recordingCmd(b testing.TB, i int64) []byte {
	id, err := uuid.NewV7()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Unix(1_760_000_000+i, 0).UTC()
	cmd, err := meta.Encode(&meta.CreateRecording{Recording: meta.Recording{
		ID: id.String(), PBXCallID: fmt.Sprintf("pbx-%d", i), Start: start, Duration: 120_000,
		Direction: meta.DirIncoming, Source: meta.SourceUpload, Technology: "upload", Node: "node-bench",
		Codecs: []string{"PCMU"}, Channels: 1, Size: 960_000,
		LocalParty:  meta.LocalParty{User: "u1", Username: "agent1", Number: "+49 30 1234 100"},
		RemoteParty: meta.RemoteParty{Number: fmt.Sprintf("+41 44 %07d", i%10_000_000)},
		Tenant:      "", Status: meta.StatusComplete, Tier: meta.TierHot,
		File: meta.FileInfo{Path: fmt.Sprintf("2026/01/01/%s.cvr", id), Format: meta.FormatWAV,
			WrappedDEK: []byte("wrapped-dek-0123456789abcdef0123456789abcdef"), KeyTerm: 1},
	}})
	if err != nil {
		b.Fatal(err)
	}
	return cmd
}

// BenchmarkCommit: recordings committed per second by 64 concurrent
// writers (raft batches what they send at once into one log append and
// one bbolt transaction), on one node and on a three-node loopback cluster
// (writers on every node, followers forwarding), in the same run;
// nodes=3 reports its rate as a ratio of nodes=1's.
func BenchmarkCommit(b *testing.B) {
	var single float64
	for _, size := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			ms := make([]*member, size)
			for i := range ms {
				ms[i] = benchMember(b)
			}
			ms[0].open(b)
			waitLeader(b, ms[:1]...)
			for _, m := range ms[1:] {
				tok, _, err := ms[0].node.IssueToken()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Join(context.Background(), JoinConfig{DataDir: m.dir, Advertise: m.addr, Token: tok}); err != nil {
					b.Fatal(err)
				}
				m.open(b)
				if err := m.node.RequestVoter(context.Background(), ms[0].addr); err != nil {
					b.Fatal(err)
				}
			}
			waitLeader(b, ms...)
			var seq, next atomic.Int64
			b.ReportAllocs()
			// 64 writers by default (32 × GOMAXPROCS 2); CALLVAULT_BENCH_WRITERS
			// sets another count (rounded to a multiple of GOMAXPROCS): more
			// concurrent uploads, larger raft batches.
			b.SetParallelism(benchWriters() / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				m := ms[int(next.Add(1))%size]
				for pb.Next() {
					if _, err := m.node.Commit(context.Background(), recordingCmd(b, seq.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "recordings/s")
			if size == 1 {
				single = rate
			} else if single > 0 {
				b.ReportMetric(rate/single, "ratio_vs_1node")
			}
			// How well the queues gathered (batch.go): commands per raft
			// entry on the leader, per RPC from the followers.
			var applies, forwards float64
			for _, m := range ms {
				a, f := m.node.batches.perSend()
				applies, forwards = max(applies, a), max(forwards, f)
			}
			b.ReportMetric(applies, "cmds/entry")
			if size > 1 {
				b.ReportMetric(forwards, "cmds/forward")
			}
			b.StopTimer()
			for _, m := range ms {
				m.stop()
			}
		})
	}
}

func benchMember(b *testing.B) *member {
	ln := freeAddr(b)
	return &member{dir: b.TempDir(), addr: ln}
}

func benchWriters() int {
	if n, err := strconv.Atoi(os.Getenv("CALLVAULT_BENCH_WRITERS")); err == nil && n >= runtime.GOMAXPROCS(0) {
		return n
	}
	return 64
}
