package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/callvault/callvault/capture/synth"
	"github.com/spf13/cobra"
)

// newDevCmd is the hidden "dev" group: tools for developers and load tests
// that an operator never needs, kept out of --help.
func newDevCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "dev",
		Short:  "Developer tools (test traffic, benchmarks)",
		Hidden: true,
	}
	cmd.AddCommand(newGenCallsCmd(stdout))
	return cmd
}

func newGenCallsCmd(stdout io.Writer) *cobra.Command {
	var (
		cfg    synth.Config
		out    string
		dtmf   bool
		digits string
	)
	cmd := &cobra.Command{
		Use:   "gencalls --out FILE.pcap",
		Short: "Write a pcap of N concurrent synthetic SIP/G.711 calls",
		Long: `Write a deterministic pcap (Ethernet) of N concurrent calls as a SPAN port on an SBC's
trunk side would see them: per call a SIP dialog over UDP 5060 (INVITE with SDP, 100, 180, 200 with
SDP, ACK, BYE, 200) between a phone (10.1.x.y) and the trunk (10.2.x.y), and G.711 µ-law RTP both
ways at 20 ms. The same flags always give the same file, so it can be imported with
"callvault import" and the recordings compared with what was sent.`,
		Example: `  callvault dev gencalls --calls 1000 --duration 60s --out trunk.pcap
  callvault dev gencalls --calls 5 --duration 10s --dtmf --loss 2 --jitter 10ms --out impaired.pcap`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if dtmf {
				// One digit every half second from the first second on.
				for i := range len(digits) {
					cfg.DTMF = append(cfg.DTMF, synth.Digit{Symbol: digits[i], At: time.Second + time.Duration(i)*500*time.Millisecond})
				}
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			start := time.Now()
			sum, err := synth.Write(f, cfg)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				_ = os.Remove(out)
				return err
			}
			fmt.Fprintf(stdout, "%s: %d calls, %d frames (%d SIP, %d RTP, %d lost), %.1f MB, capture time %s to %s; written in %s\n",
				out, len(sum.Calls), sum.Frames, sum.SIP, sum.RTP, sum.Lost, float64(sum.Bytes)/1e6,
				sum.First.Format(time.RFC3339Nano), sum.Last.Format(time.RFC3339Nano), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Calls, "calls", 10, "number of calls")
	f.DurationVar(&cfg.Duration, "duration", 60*time.Second, "talk time of each call (200 OK to BYE)")
	f.DurationVar(&cfg.Stagger, "stagger", 0, "time between two calls' INVITEs (0: duration/(2·calls), at most 1s)")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed for SSRCs, tags, audio and impairments")
	f.StringVar(&out, "out", "", "pcap file to write")
	f.BoolVar(&dtmf, "dtmf", false, "the caller presses --digits (RFC 4733), one every 500 ms from 1 s after the answer")
	f.StringVar(&digits, "digits", "1234#", "digits for --dtmf")
	f.Float64Var(&cfg.LossPct, "loss", 0, "percent of audio packets dropped")
	f.Float64Var(&cfg.ReorderPct, "reorder", 0, "percent of audio packets held back by --reorder-delay")
	f.DurationVar(&cfg.ReorderDelay, "reorder-delay", 50*time.Millisecond, "how long a reordered packet is held back")
	f.DurationVar(&cfg.Jitter, "jitter", 0, "each audio packet is delayed by up to this much")
	return cmd
}
