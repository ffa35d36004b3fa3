package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/callvault/callvault/appliance"
	"github.com/callvault/callvault/store"
	"github.com/spf13/cobra"
)

func newVerifyCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "verify",
		Short:   "Check the audit log's chain, or an export bundle, offline",
		Example: "  callvault verify audit --data-dir /var/lib/callvault/data\n  callvault verify bundle case-4711.zip --fingerprint 3f1c...e9",
	}
	var asJSON bool
	audit := &cobra.Command{
		Use:   "audit",
		Short: "Recompute the audit log's hash chain and check its signed checkpoints",
		Long: `Recompute every audit entry's hash from the first one, check that each links to the one
before, and check every signed checkpoint against the appliance's signing key. Prints the
first broken entry and exits with status 1 if anything is wrong; exits 0 only when the whole
chain holds. Run it with the server stopped (it needs the data directory to itself).`,
		Example: "  callvault verify audit --data-dir /var/lib/callvault/data\n  callvault verify audit --config /etc/callvault/callvault.yaml --json",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, _, err := appliance.LoadConfig(c.Flags(), os.Environ())
			if err != nil {
				return err
			}
			st, err := appliance.OpenStore(cfg, os.Environ(), stderr)
			if err != nil {
				return err
			}
			v, err := st.Meta().VerifyAudit()
			pub := st.PublicKey()
			if cerr := st.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			own := hex.EncodeToString(pub)
			foreign := 0
			for _, k := range v.Keys {
				if k != own {
					foreign++
				}
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"entries": v.Entries, "lastHash": v.Last, "checkpoints": v.Checkpoints,
					"lastCheckpoint": v.LastCheckpoint, "brokenAt": v.Broken, "problem": v.Problem,
					"fingerprint": store.Fingerprint(pub), "foreignKeys": foreign}); err != nil {
					return err
				}
			} else if v.Broken == 0 {
				fmt.Fprintf(stdout, "audit chain holds: %d entries, %d signed checkpoints (the newest at entry %d)\nsigning key fingerprint %s\n",
					v.Entries, v.Checkpoints, v.LastCheckpoint, store.Fingerprint(pub))
			}
			switch {
			case v.Broken != 0:
				return fmt.Errorf("audit chain broken at entry %d: %s", v.Broken, v.Problem)
			case foreign > 0:
				return fmt.Errorf("%d checkpoint keys are not this appliance's signing key", foreign)
			}
			return nil
		},
	}
	appliance.AddFlags(audit.Flags())
	audit.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.AddCommand(audit, newVerifyBundleCmd(stdout))
	return cmd
}
