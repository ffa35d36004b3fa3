package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/callvault/callvault/appliance"
	"github.com/callvault/callvault/store/bundle"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/webui"
	"github.com/spf13/cobra"
)

func newExportCmd(stdout, stderr io.Writer) *cobra.Command {
	var out, query, server, user, caFile string
	var ids []string
	var preserved bool
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a signed export bundle of recordings for auditors",
		Long: `Write a zip with, for each recording, the audio as captured (decrypted), the same as a
stereo WAV, its metadata, notes, bookmarks and audit entries, and for calls captured from the
network their SIP messages (as text and as a pcap); a manifest with the SHA-256 of every
file, signed with the appliance's ed25519 key; the public key and its fingerprint.
'callvault verify bundle' (or openssl and sha256sum, see the bundle's README.txt) checks it
offline. Every export is written to the audit log.

Choose the recordings with --id (repeatable), --preserved (all under legal hold) or --query
(the query string of GET /api/v1/recordings, e.g. "remoteNumber=+4930&from=2026-01-01T00:00:00Z";
without from or to it covers the last 7 days, as the API does).

Without --server it works on the data directory, with the server stopped. With --server it
asks a running appliance for an export job as --user (an auditor or admin; the password in
CALLVAULT_PASSWORD), shows its progress on stderr and downloads the bundle to --out.`,
		Example: `  callvault export --data-dir /var/lib/callvault/data --out case-4711.zip --preserved
  callvault export --data-dir /var/lib/callvault/data --out one.zip --id 0198a6c1-....
  callvault export --data-dir /var/lib/callvault/data --out bob.zip --query 'remoteNumber=%2B4930123&from=2026-01-01T00:00:00Z'
  CALLVAULT_PASSWORD=... callvault export --server https://recorder:8443 --cacert ca.pem --user auditor --preserved --out case.zip`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out FILE.zip is required")
			}
			chosen := 0
			for _, set := range []bool{len(ids) > 0, preserved, query != ""} {
				if set {
					chosen++
				}
			}
			if chosen != 1 {
				return fmt.Errorf("choose the recordings: --preserved, --query FILTERS or --id ID (repeatable), one of them")
			}
			if server != "" {
				return exportFromServer(c.Context(), stdout, stderr, server, user, caFile, out, exportBody{IDs: ids, Query: query, Preserved: preserved})
			}
			cfg, _, err := appliance.LoadConfig(c.Flags(), os.Environ())
			if err != nil {
				return err
			}
			st, err := appliance.OpenStore(cfg, os.Environ(), stderr)
			if err != nil {
				return err
			}
			defer st.Close()
			if preserved || query != "" {
				q := meta.Query{Preserved: true}
				if query != "" {
					if q, err = webui.ParseSearchQuery(query, time.Now()); err != nil {
						return fmt.Errorf("--query: %w", err)
					}
				}
				q.Scope, q.Limit, q.Cursor = meta.Scope{All: true}, meta.MaxLimit, ""
				for {
					page, err := st.Meta().Search(q)
					if err != nil {
						return err
					}
					for _, r := range page.Recordings {
						ids = append(ids, r.ID)
					}
					if page.Next == "" {
						break
					}
					q.Cursor = page.Next
				}
				if len(ids) == 0 {
					return fmt.Errorf("no recordings match: nothing to export")
				}
			}
			// Written beside the target and renamed: a failed export leaves no
			// half bundle that looks like a whole one.
			tmp, err := os.CreateTemp(filepath.Dir(out), ".callvault-export-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			by := "console:" + currentUser()
			m, err := st.Export(c.Context(), tmp, ids, by, "")
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s: %d recordings, %d files\nsigning key fingerprint %s\n", out, len(m.Recordings), len(m.Files), m.Fingerprint)
			return st.Close()
		},
	}
	appliance.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", "", "the bundle to write (zip)")
	cmd.Flags().StringSliceVar(&ids, "id", nil, "a recording ID (repeatable)")
	cmd.Flags().BoolVar(&preserved, "preserved", false, "every recording under legal hold")
	cmd.Flags().StringVar(&query, "query", "", "the recordings a search finds (GET /api/v1/recordings' query string)")
	cmd.Flags().StringVar(&server, "server", "", "export through this running server's API as a job (http[s]://HOST:PORT)")
	cmd.Flags().StringVar(&user, "user", "admin", "with --server: the auditor or admin to sign in as (password in CALLVAULT_PASSWORD)")
	cmd.Flags().StringVar(&caFile, "cacert", "", "with --server over HTTPS: the server's certificate or its CA (PEM)")
	return cmd
}

// exportBody is POST /api/v1/exports.
type exportBody struct {
	IDs       []string `json:"ids,omitempty"`
	Query     string   `json:"query,omitempty"`
	Preserved bool     `json:"preserved,omitempty"`
}

// exportJob is the API's job object (the fields the console shows).
type exportJob struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	Total       int    `json:"total"`
	Done        int    `json:"done"`
	Bytes       int64  `json:"bytes"`
	Error       string `json:"error"`
	Fingerprint string `json:"fingerprint"`
}

// exportFromServer runs an export job on a running appliance: post it,
// follow its progress, download the bundle beside out and rename it. An
// interrupt cancels the job on the server.
func exportFromServer(ctx context.Context, stdout, stderr io.Writer, server, user, caFile, out string, body exportBody) error {
	api, err := newAPIUsers(server, user, caFile)
	if err != nil {
		return err
	}
	var job exportJob
	if err := api.call(ctx, http.MethodPost, "/api/v1/exports", body, &job, http.StatusAccepted); err != nil {
		return err
	}
	path := "/api/v1/exports/" + url.PathEscape(job.ID)
	fmt.Fprintf(stderr, "export job %s: %d recordings queued\n", job.ID, job.Total)
	cancel := func() {
		// The caller gave up: the job must not run on for nobody.
		_ = api.call(context.Background(), http.MethodDelete, path, nil, nil, http.StatusNoContent)
	}
	last := ""
	for job.State == "queued" || job.State == "running" {
		select {
		case <-ctx.Done():
			cancel()
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if err := api.call(ctx, http.MethodGet, path, nil, &job, http.StatusOK); err != nil {
			if ctx.Err() != nil {
				cancel()
			}
			return err
		}
		if line := fmt.Sprintf("export job %s: %s, %d of %d recordings, %d bytes", job.ID, job.State, job.Done, job.Total, job.Bytes); line != last {
			fmt.Fprintln(stderr, line)
			last = line
		}
	}
	if job.State != "done" {
		return fmt.Errorf("export job %s %s: %s", job.ID, job.State, job.Error)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.base+path+"/download", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(api.user, api.password)
	dl := *api.client
	dl.Timeout = 0 // a bundle of many recordings takes as long as it takes; ctx ends it
	resp, err := dl.Do(req)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download: server: %s", resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".callvault-export-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, resp.Body)
	if err == nil && n != job.Bytes {
		err = fmt.Errorf("download: %d bytes, the job has %d", n, job.Bytes)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	// The server keeps the bundle for a day; it is downloaded now.
	_ = api.call(ctx, http.MethodDelete, path, nil, nil, http.StatusNoContent)
	fmt.Fprintf(stdout, "wrote %s: %d recordings, %d bytes\nsigning key fingerprint %s\n", out, job.Total, n, job.Fingerprint)
	return nil
}

func currentUser() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprint(os.Getuid())
}

func newVerifyBundleCmd(stdout io.Writer) *cobra.Command {
	var fingerprint string
	cmd := &cobra.Command{
		Use:   "bundle FILE.zip",
		Short: "Check an export bundle offline: every file's hash and the manifest's signature",
		Long: `Check an export bundle with nothing but the bundle: every file's size and SHA-256 against
the manifest, the manifest's ed25519 signature, and (with --fingerprint, as the appliance's
admin gave it to you) that the signing key is the appliance's. Exit status 0 only when all
holds; otherwise every problem is printed, naming its file.`,
		Example: "  callvault verify bundle case-4711.zip --fingerprint 3f1c...e9",
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			rep, err := bundle.Verify(f, fi.Size(), fingerprint)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "bundle %s: %d recordings, %d files checked\n", args[0], len(rep.Manifest.Recordings), rep.FilesOK)
			fmt.Fprintf(stdout, "signing key fingerprint %s", rep.Fingerprint)
			if rep.FingerprintChecked {
				fmt.Fprintln(stdout, " (matches --fingerprint)")
			} else {
				fmt.Fprintln(stdout, " (not compared: give --fingerprint to check it is the appliance's)")
			}
			for _, p := range rep.Problems {
				fmt.Fprintln(stdout, "FAIL "+p)
			}
			if !rep.OK() {
				return fmt.Errorf("bundle does not verify: %d problems", len(rep.Problems))
			}
			fmt.Fprintln(stdout, "OK: every file is the one the appliance signed")
			return nil
		},
	}
	cmd.Flags().StringVar(&fingerprint, "fingerprint", "", "the appliance's signing key fingerprint (SHA-256, hex)")
	return cmd
}
