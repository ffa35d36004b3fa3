package main

import (
	"fmt"
	"io"
	"os"

	"github.com/callvault/callvault/appliance"
	"github.com/spf13/cobra"
)

func newKeysCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the encryption keys of a data directory",
		Long: `Every recording has its own data key, wrapped by a key-encryption key (KEK) from the
keyring; the keyring is sealed by the master key, which lives outside the data directory.`,
		Example: "  callvault keys rotate --data-dir /var/lib/callvault/data",
	}
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Add a new key-encryption key and rewrap every recording's data key under it",
		Long: `Add a new key-encryption key to the keyring, make it the active one, and rewrap the data
key of every recording under it. Audio files are not rewritten. Run it with the server stopped
(it needs the data directory to itself); running it again finishes a rotation that was cut short.`,
		Example: "  callvault keys rotate --data-dir /var/lib/callvault/data\n  CALLVAULT_MASTER_KEY=... callvault keys rotate --config /etc/callvault/callvault.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := appliance.LoadConfig(cmd.Flags(), os.Environ())
			if err != nil {
				return err
			}
			st, err := appliance.OpenStore(cfg, os.Environ(), stderr)
			if err != nil {
				return err
			}
			res, err := st.RotateKeys(cmd.Context())
			if cerr := st.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("rotate keys (%d rewrapped before the error): %w", res.Rewrapped, err)
			}
			fmt.Fprintf(stdout, "active key term %d; rewrapped %d recording keys\n", res.Term, res.Rewrapped)
			return nil
		},
	}
	appliance.AddFlags(rotate.Flags())
	cmd.AddCommand(rotate)
	return cmd
}
