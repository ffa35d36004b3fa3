package main

import (
	"io"
	"os"

	"github.com/callvault/callvault/appliance"
	"github.com/spf13/cobra"
)

func newImportCmd(stdout, stderr io.Writer) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Reconstruct the calls in pcap/pcapng capture files into recordings",
		Long: `Read capture files (pcap or pcapng, e.g. from tcpdump on a SPAN port), follow their SIP
dialogs and RTP streams exactly as live capture would, and store each call as an encrypted
recording in the data directory. Prints a summary per call: Call-ID, recording ID, streams,
codec, packets, loss and duration. The server must be stopped (the data directory is locked).`,
		Example: `  callvault import --data-dir /var/lib/callvault/data trunk-2026-11-21.pcap
  callvault import --json calls/*.pcapng > summary.json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			cfg, _, err := appliance.LoadConfig(cmd.Flags(), os.Environ())
			if err != nil {
				return err
			}
			return appliance.Import(cmd.Context(), cfg, os.Environ(), files, stdout, stderr, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	appliance.AddFlags(cmd.Flags())
	return cmd
}
