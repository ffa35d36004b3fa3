package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/callvault/callvault/appliance"
	"github.com/spf13/cobra"
)

func newImportCmd(stdout, stderr io.Writer) *cobra.Command {
	var asJSON bool
	var server, user, caFile string
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Reconstruct the calls in pcap/pcapng capture files into recordings",
		Long: `Read capture files (pcap or pcapng, e.g. from tcpdump on a SPAN port), follow their SIP
dialogs and RTP streams exactly as live capture would, and store each call as an encrypted
recording in the data directory. Prints a summary per call: Call-ID, recording ID, streams,
codec, packets, loss, duration, how the call ended, and notes (not answered, no media
captured, one-way audio).

Files are read in the order given. Files that follow on in time (tcpdump -G or -C
rotations) are one capture: a call that spans them is one recording. A file whose clock is
more than an hour after, or a minute before, the previous one is another capture: calls
still open at the end of the previous one end there ("capture gap"). With --server each
file is imported on its own.

Without --server the data directory is opened directly, so the server must be stopped (the
directory is locked). With --server the files are sent to a running appliance (as an
installation admin: --user, password in CALLVAULT_PASSWORD), which imports them into its own
store; a cluster member's data directory can only be imported into that way.`,
		Example: `  callvault import --data-dir /var/lib/callvault/data trunk-2026-11-21.pcap
  callvault import --json calls/*.pcapng > summary.json
  CALLVAULT_PASSWORD=... callvault import --server https://10.0.0.1:8443 --cacert ca.pem trunk.pcap`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if server != "" {
				return importThrough(cmd.Context(), server, user, caFile, files, stdout, asJSON)
			}
			cfg, _, err := appliance.LoadConfig(cmd.Flags(), os.Environ())
			if err != nil {
				return err
			}
			return appliance.Import(cmd.Context(), cfg, os.Environ(), files, stdout, stderr, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().StringVar(&server, "server", "", "import through a running appliance (http[s]://HOST:PORT) instead of opening --data-dir")
	cmd.Flags().StringVar(&user, "user", "admin", "with --server: the installation admin to sign in as (password in CALLVAULT_PASSWORD)")
	cmd.Flags().StringVar(&caFile, "cacert", "", "with --server over HTTPS: the server's certificate or its CA (PEM)")
	appliance.AddFlags(cmd.Flags())
	return cmd
}

// importThrough sends each capture file to a running appliance
// (POST /api/v1/imports, the file as the body, streamed) and prints what
// it answered.
func importThrough(ctx context.Context, server, user, caFile string, files []string, stdout io.Writer, asJSON bool) error {
	api, err := newAPIUsers(server, user, caFile)
	if err != nil {
		return err
	}
	// A capture of a busy trunk takes minutes to import: no overall timeout.
	client := *api.client
	client.Timeout = 0
	all := appliance.ImportResult{}
	var failed int
	for _, path := range files {
		res, err := postCapture(ctx, &client, api, path)
		if err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "import %s: %v\n", path, err)
			all.Files = append(all.Files, appliance.ImportedFile{Path: path, Error: err.Error()})
			continue
		}
		for _, f := range res.Files {
			f.Path = path
			if f.Error != "" {
				failed++
			}
			all.Files = append(all.Files, f)
		}
		all.Calls = append(all.Calls, res.Calls...)
		all.Packets += res.Packets
		all.Seconds += res.Seconds
	}
	if err := appliance.WriteImportResult(stdout, all, asJSON); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files could not be imported", failed, len(files))
	}
	return nil
}

func postCapture(ctx context.Context, client *http.Client, api *apiUsers, path string) (appliance.ImportResult, error) {
	var res appliance.ImportResult
	f, err := os.Open(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.base+"/api/v1/imports?name="+url.QueryEscape(filepath.Base(path)), f)
	if err != nil {
		return res, err
	}
	if fi, err := f.Stat(); err == nil {
		req.ContentLength = fi.Size()
	}
	req.SetBasicAuth(api.user, api.password)
	req.Header.Set("Content-Type", "application/vnd.tcpdump.pcap")
	resp, err := client.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusCreated {
		var m struct{ Message string }
		if json.Unmarshal(raw, &m) == nil && m.Message != "" {
			return res, fmt.Errorf("server: %s (%s)", m.Message, resp.Status)
		}
		return res, fmt.Errorf("server: %s", resp.Status)
	}
	return res, json.Unmarshal(raw, &res)
}
