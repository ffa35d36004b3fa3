package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callvault/callvault/capture"
	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/webui"
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
	// Node stays empty: the store stamps each recording with its own node
	// name (the member ID in a cluster, which file replication and crash
	// recovery go by; a host name would be wrong there).
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
	// Warning: imported, but not whole (the file ends inside a frame).
	Warning string `json:"warning,omitempty"`
}

// Import reconstructs the calls in capture files into the data directory's
// store, the way live capture would have recorded them.
func Import(ctx context.Context, cfg Config, environ []string, files []string, stdout, stderr io.Writer, asJSON bool) error {
	if id, err := os.ReadFile(filepath.Join(cfg.DataDir, "cluster", "node-id")); err == nil {
		// Committed here alone, the recordings would exist on this member
		// only and its metadata would part from the cluster's for good.
		return fmt.Errorf("%s is the data directory of cluster member %s: import through a running member instead (callvault import --server URL FILE...)", cfg.DataDir, id)
	}
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
		if errors.Is(err, capture.ErrTruncated) {
			imp.Warning = err.Error()
			log.Warn("import: the capture is cut short; everything before the cut is imported", "file", f, "frames", n)
		} else if err != nil {
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

// WriteImportResult prints what a running appliance answered to an
// imported capture (`callvault import --server`): JSON, or the table the
// offline import prints.
func WriteImportResult(w io.Writer, res ImportResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printCalls(w, res)
	printWarnings(w, res)
	_, err := fmt.Fprintf(w, "%d calls recorded from %d frames in %.2fs\n", len(res.Calls), res.Packets, res.Seconds)
	return err
}

// printWarnings lists the files imported but not whole.
func printWarnings(w io.Writer, res ImportResult) {
	for _, f := range res.Files {
		if f.Warning != "" {
			fmt.Fprintf(w, "warning: %s (%d frames imported)\n", f.Warning, f.Frames)
		}
	}
}

func printImport(w io.Writer, res ImportResult, s *capture.Stats) {
	printCalls(w, res)
	printWarnings(w, res)
	fmt.Fprintf(w, "%d calls recorded from %d frames in %.2fs (%d SIP messages, %d RTP packets, %d decode errors)\n",
		len(res.Calls), res.Packets, res.Seconds, s.SIPMessages.Load(), s.RTPPackets.Load(), s.DecodeErrors.Load())
}

func printCalls(w io.Writer, res ImportResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CALL-ID\tRECORDING\tREFERENCE\tSTREAMS\tCODEC\tPACKETS\tLOSS\tDURATION\tEND\tSTATUS\tNOTES")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%.2f%%\t%s\t%s\t%s\t%s\n", id, c.RecordingID, c.Reference, c.Streams, codec,
			c.Packets, c.LossPct, (time.Duration(c.DurationMs) * time.Millisecond).String(), c.EndReason, c.Status, callNotes(c))
	}
	tw.Flush()
}

// callNotes is what an admin should look at in a call's summary line:
// the flags that mean the recording is not the whole conversation.
func callNotes(c capture.CallSummary) string {
	var notes []string
	if !c.Answered {
		notes = append(notes, "not answered")
	}
	if c.NoMedia {
		notes = append(notes, "no media captured")
	}
	if c.OneWay {
		notes = append(notes, "one-way audio")
	}
	return strings.Join(notes, ", ")
}

// importer runs uploaded captures through a capture engine of their own
// over the serving appliance's store (webui.Importer): on a cluster member
// its recordings are committed through raft like live capture's.
type importer struct {
	cfg Config
	st  *store.Store
	log *slog.Logger
}

var _ webui.Importer = importer{}

func (im importer) Import(ctx context.Context, name string, r io.Reader) (any, int, error) {
	cc := captureConfig(im.cfg, false)
	cc.Log = im.log
	eng := capture.New(cc, capture.StoreSink(im.st))
	start := time.Now()
	n, err := capture.ImportStream(ctx, eng.NewReader(), name, r)
	// Closing seals every recording, even of a file cut short.
	eng.Close()
	res := ImportResult{Files: []ImportedFile{{Path: name, Frames: n}}, Packets: n, Seconds: time.Since(start).Seconds(), Calls: eng.Summaries()}
	if errors.Is(err, capture.ErrTruncated) {
		res.Files[0].Warning = err.Error()
		im.log.Warn("uploaded capture cut short; everything before the cut is imported", "name", name, "frames", n)
		err = nil
	}
	if err != nil {
		res.Files[0].Error = err.Error()
		im.log.Warn("import of an uploaded capture", "name", name, "frames", n, "calls", len(res.Calls), "err", err)
		if errors.Is(err, capture.ErrSource) && n == 0 {
			return nil, 0, fmt.Errorf("%w: %w", webui.ErrBadCapture, err)
		}
		if ctx.Err() != nil {
			return nil, len(res.Calls), err
		}
	}
	im.log.Info("capture imported", "name", name, "frames", n, "calls", len(res.Calls))
	return res, len(res.Calls), nil
}
