// Command callvault is the Callvault call-recording appliance: one binary
// that serves the web UI and API, records calls and manages its store.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Set with -ldflags "-X main.version=... -X main.buildDate=..." by the Makefile.
var (
	version   string
	buildDate string
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signalContext(stderr)
	defer stop()
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "callvault:", err)
		return 1
	}
	return 0
}

// signalContext is cancelled by the first SIGINT or SIGTERM, which starts
// an orderly shutdown; a second one exits at once, for the operator who
// does not want to wait.
func signalContext(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			fmt.Fprintf(stderr, "callvault: %s: shutting down (send again to exit at once)\n", sig)
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-ch:
			fmt.Fprintf(stderr, "callvault: second %s: exiting now\n", sig)
			os.Exit(2)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "callvault",
		Short: "Callvault: on-premises call recording",
		Long: `Callvault records calls from mirrored SBC traffic, SIPREC and uploads, keeps them
encrypted at rest, and serves a web UI and an HTTP API to search, play and export them.`,
		Example: `  callvault serve                      # run on the built-in default (./callvault-data, http://127.0.0.1:8080)
  callvault serve --config /etc/callvault/callvault.yaml
  callvault version`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServeCmd(stderr), newVersionCmd(stdout), newConfigCmd(stdout), newKeysCmd(stdout, stderr), newImportCmd(stdout, stderr), newUserCmd(os.Stdin, stdout, stderr), newVerifyCmd(stdout, stderr), newExportCmd(stdout, stderr), newDevCmd(stdout), newClusterCmd(stdout))
	return root
}
