package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/callvault/callvault/appliance"
	"github.com/spf13/cobra"
)

func newServeCmd(stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the appliance: web UI, API, recording and storage",
		Long: `Run the appliance until SIGINT or SIGTERM. With no configuration it keeps its data in
./callvault-data and serves http://127.0.0.1:8080. On an empty data directory it creates
the first admin account, with the password from CALLVAULT_ADMIN_PASSWORD or a random one
printed once on stderr.`,
		Example: `  callvault serve
  callvault serve --data-dir /var/lib/callvault --http 0.0.0.0:8080
  CALLVAULT_LOG_LEVEL=debug callvault serve --config ./callvault.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, file, err := appliance.LoadConfig(cmd.Flags(), os.Environ())
			if err != nil {
				return err
			}
			o := appliance.Options{
				Config:     cfg,
				ConfigFile: file,
				Build:      appliance.ReadBuild(version, buildDate),
				Stderr:     stderr,
				Environ:    os.Environ(),
			}
			if appliance.DevClockAvailable {
				if path, _ := cmd.Flags().GetString("dev-clock-file"); path != "" {
					if o.Now, err = appliance.DevClock(path); err != nil {
						return err
					}
					fmt.Fprintln(stderr, "WARNING: test build: the clock is shifted by", path)
				}
			}
			return appliance.Serve(cmd.Context(), o)
		},
	}
	appliance.AddFlags(cmd.Flags())
	// The cluster (issue 8): see `callvault cluster --help`.
	cmd.Flags().String("cluster-addr", "", "cluster port, mutual TLS between nodes (config key cluster.addr; empty: a single node)")
	cmd.Flags().String("join", "", "on an empty data directory: join the cluster of this member (http[s]://HOST:PORT) with --join-token")
	cmd.Flags().String("join-token", "", "the token from `callvault cluster token`")
	if appliance.DevClockAvailable {
		// Test builds only (-tags devclock): the end-to-end tests move the clock.
		cmd.Flags().String("dev-clock-file", "", "TEST BUILD ONLY: shift the clock by the Go duration in this file (reread when it changes)")
	}
	return cmd
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print version, commit and build date",
		Example: "  callvault version\n  callvault version --json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			b := appliance.ReadBuild(version, buildDate)
			if asJSON {
				return json.NewEncoder(stdout).Encode(b)
			}
			_, err := fmt.Fprintln(stdout, b)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newConfigCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "config",
		Short:   "Inspect the configuration",
		Example: "  callvault config print --config /etc/callvault/callvault.yaml",
	}
	print := &cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration (defaults, file, CALLVAULT_* and flags) with secrets masked",
		Example: `  callvault config print
  callvault config print --config /etc/callvault/callvault.yaml --http 0.0.0.0:8443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, file, err := appliance.LoadConfig(cmd.Flags(), os.Environ())
			if err != nil {
				return err
			}
			out, err := cfg.Print()
			if err != nil {
				return err
			}
			if file != "" {
				fmt.Fprintf(stdout, "# from %s\n", file)
			} else {
				fmt.Fprintln(stdout, "# built-in defaults (no config file)")
			}
			_, err = stdout.Write(out)
			return err
		},
	}
	appliance.AddFlags(print.Flags())
	cmd.AddCommand(print)
	return cmd
}
