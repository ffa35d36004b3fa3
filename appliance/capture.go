package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"text/tabwriter"
	"time"

	"github.com/callvault/callvault/capture"
)

// captureConfig builds capture's Config from capture.* keys (validated by
// Config.Validate, so parsing cannot fail here).
func captureConfig(cfg Config, live bool) capture.Config {
	c := capture.Config{
		DetectSIP:    cfg.Capture.DetectSIP,
		LocalNumbers: cfg.Capture.LocalNumbers,
		RTPTimeout:   cfg.Capture.RTPTimeout,
		HoldTimeout:  cfg.Capture.HoldTimeout,
		Live:         live,
	}
	c.Node, _ = os.Hostname()
	for _, p := range cfg.Capture.SIPPorts {
		c.SIPPorts = append(c.SIPPorts, uint16(p))
	}
	for _, n := range cfg.Capture.LocalNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			c.LocalNets = append(c.LocalNets, p.Masked())
		}
	}
	for _, a := range cfg.Capture.TrunkAddresses {
		if ip, err := netip.ParseAddr(a); err == nil {
			c.TrunkAddrs = append(c.TrunkAddrs, ip.Unmap())
		}
	}
	return c
}

// ImportResult is what `callvault import` reports.
type ImportResult struct {
	Files   []ImportedFile        `json:"files"`
	Calls   []capture.CallSummary `json:"calls"`
	Packets int64                 `json:"packets"`
	Seconds float64               `json:"seconds"`
}

// ImportedFile is one capture file's share.
type ImportedFile struct {
	Path   string `json:"path"`
	Frames int64  `json:"frames"`
	Error  string `json:"error,omitempty"`
}

// Import reconstructs the calls in capture files into the data directory's
// store, the way live capture would have recorded them.
func Import(ctx context.Context, cfg Config, environ []string, files []string, stdout, stderr io.Writer, asJSON bool) error {
	st, err := OpenStore(cfg, environ, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	log := NewLogger(cfg.Log, stderr)
	cc := captureConfig(cfg, false)
	cc.Log = log.With("subsystem", "capture")
	eng := capture.New(cc, capture.StoreSink(st))
	res := ImportResult{}
	start := time.Now()
	var failed int
	for _, f := range files {
		// One reader per file: each file is its own capture, with its own
		// TCP and fragment state.
		r := eng.NewReader()
		n, err := capture.ImportFile(ctx, r, f)
		imp := ImportedFile{Path: f, Frames: n}
		if err != nil {
			imp.Error = err.Error()
			failed++
			log.Error("import", "file", f, "err", err)
		}
		res.Files = append(res.Files, imp)
		res.Packets += n
	}
	eng.Close()
	res.Seconds = time.Since(start).Seconds()
	res.Calls = eng.Summaries()
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printImport(stdout, res, eng.Stats())
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files could not be imported", failed, len(files))
	}
	return nil
}

func printImport(w io.Writer, res ImportResult, s *capture.Stats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CALL-ID\tRECORDING\tREFERENCE\tSTREAMS\tCODEC\tPACKETS\tLOSS\tDURATION\tSTATUS")
	for _, c := range res.Calls {
		id := c.CallID
		if id == "" {
			id = "(no signalling)"
		}
		codec := ""
		for i, k := range c.Codecs {
			if i > 0 {
				codec += "/"
			}
			codec += k
		}
		if !c.Playable {
			codec += " (not playable)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%.2f%%\t%s\t%s\n", id, c.RecordingID, c.Reference, c.Streams, codec,
			c.Packets, c.LossPct, (time.Duration(c.DurationMs) * time.Millisecond).String(), c.Status)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d calls recorded from %d frames in %.2fs (%d SIP messages, %d RTP packets, %d decode errors)\n",
		len(res.Calls), res.Packets, res.Seconds, s.SIPMessages.Load(), s.RTPPackets.Load(), s.DecodeErrors.Load())
}
