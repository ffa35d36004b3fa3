package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/callvault/callvault/appliance"
	"github.com/callvault/callvault/store/bundle"
	"github.com/callvault/callvault/store/meta"
	"github.com/spf13/cobra"
)

func newExportCmd(stdout, stderr io.Writer) *cobra.Command {
	var out string
	var ids []string
	var preserved bool
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a signed export bundle of recordings for auditors",
		Long: `Write a zip with, for each recording, the audio as captured (decrypted), the same as a
stereo WAV, its metadata, notes, bookmarks and audit entries; a manifest with the SHA-256 of
every file, signed with the appliance's ed25519 key; the public key and its fingerprint.
'callvault verify bundle' (or openssl and sha256sum, see the bundle's README.txt) checks it
offline. Run it with the server stopped; every export is written to the audit log.`,
		Example: `  callvault export --data-dir /var/lib/callvault/data --out case-4711.zip --preserved
  callvault export --data-dir /var/lib/callvault/data --out one.zip --id 0198a6c1-....`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out FILE.zip is required")
			}
			if (len(ids) > 0) == preserved {
				return fmt.Errorf("choose the recordings: --preserved or --id ID (repeatable)")
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
			if preserved {
				q := meta.Query{Preserved: true, Scope: meta.Scope{All: true}, Limit: meta.MaxLimit, Ascending: true}
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
					return fmt.Errorf("no preserved recordings to export")
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
	return cmd
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
