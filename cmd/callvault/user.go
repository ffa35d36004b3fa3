package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callvault/callvault/appliance"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/webui"
	"github.com/spf13/cobra"
)

// newUserCmd is the console's account management. It opens the data
// directory itself, so it works while the server is stopped; while the
// server runs, the data directory is locked (the error names the server's
// process) and accounts are managed through the API or the admin pages.
func newUserCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, list, change the password of, disable and enable accounts",
		Long: `Manage accounts from the console: on the data directory with the server stopped, or through
the API of a running server with --server (as an admin: --user, password in CALLVAULT_PASSWORD).

The new password comes from CALLVAULT_NEW_PASSWORD, or from the first line of standard input with
--password-stdin; with neither, a random password is made and printed once.`,
		Example: `  callvault user add alice --role user --group sales --data-dir /var/lib/callvault/data
  CALLVAULT_PASSWORD=... callvault user add bob --role auditor --server https://recorder:8443 --cacert /etc/callvault/tls/cert.pem
  echo 'correct horse battery staple' | callvault user passwd alice --password-stdin
  callvault user list --json`,
	}
	var tenant, server, adminUser, caFile string
	var passwordStdin bool
	common := func(c *cobra.Command, withPassword bool) {
		appliance.AddFlags(c.Flags())
		c.Flags().StringVar(&tenant, "tenant", "", "the account's tenant (empty: the default tenant; with --server: the admin's)")
		c.Flags().StringVar(&server, "server", "", "manage accounts through this running server's API (http[s]://HOST:PORT)")
		c.Flags().StringVar(&adminUser, "user", "admin", "with --server: the admin to sign in as (password in CALLVAULT_PASSWORD)")
		c.Flags().StringVar(&caFile, "cacert", "", "with --server over HTTPS: the server's certificate or its CA (PEM)")
		if withPassword {
			c.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
		}
	}
	password := func() (string, bool, error) {
		if pw, ok := os.LookupEnv("CALLVAULT_NEW_PASSWORD"); ok && pw != "" {
			return pw, false, nil
		}
		if passwordStdin {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return "", false, fmt.Errorf("read password from standard input: %w", err)
			}
			return strings.TrimRight(line, "\r\n"), false, nil
		}
		pw, err := webui.RandomPassword(20)
		return pw, true, err
	}
	open := func(c *cobra.Command, run func(accountAdmin) error) error {
		if server != "" {
			api, err := newAPIUsers(server, adminUser, caFile)
			if err != nil {
				return err
			}
			return run(api)
		}
		cfg, _, err := appliance.LoadConfig(c.Flags(), os.Environ())
		if err != nil {
			return err
		}
		st, err := appliance.OpenStore(cfg, os.Environ(), stderr)
		if err != nil {
			return fmt.Errorf("%w\n(while the server runs, use --server URL with --user and CALLVAULT_PASSWORD)", err)
		}
		err = run(appliance.NewUsers(st))
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		return err
	}

	var role, name, allow string
	var groups, supervises []string
	add := &cobra.Command{
		Use:   "add USERNAME",
		Short: "Create an account",
		Long: `Create an account. Roles: admin (everything in the tenant), supervisor (the recordings of
the groups they supervise), user (their own recordings), record-only (is recorded, sees nothing),
auditor (reads and exports preserved recordings and the audit log). Permissions default by role;
--allow sets them exactly: ` + "play, download, delete, preserve, notes, bulk-download, upload, or none.",
		Example: `  callvault user add alice --role user --group sales
  callvault user add bob --role supervisor --group sales --supervises sales --allow play,download,notes,preserve
  CALLVAULT_NEW_PASSWORD='s3cret-enough-pass' callvault user add carol --role auditor`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := appliance.ParseRole(role)
			if err != nil {
				return err
			}
			n := appliance.NewUser{Username: args[0], Tenant: tenant, DisplayName: name, Role: r, Groups: groups, Supervises: supervises}
			if allow != "" {
				p, err := appliance.ParsePermissions(allow)
				if err != nil {
					return err
				}
				n.Permissions = &p
			}
			pw, made, err := password()
			if err != nil {
				return err
			}
			// A password made up here is printed for someone else to hand
			// over: the user replaces it at the first sign-in.
			n.Password, n.MustChangePassword = pw, made
			return open(c, func(u accountAdmin) error {
				user, err := u.Add(c.Context(), n)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "created %s %q (id %s, permissions %s)\n", user.Role, user.Username, user.ID, appliance.PermissionList(user.Permissions))
				if made {
					fmt.Fprintf(stdout, "password: %s\nThis password is shown only now.\n", pw)
				}
				return nil
			})
		},
	}
	common(add, true)
	add.Flags().StringVar(&role, "role", "user", "admin, supervisor, user, record-only or auditor")
	add.Flags().StringVar(&name, "name", "", "display name")
	add.Flags().StringSliceVar(&groups, "group", nil, "recording group the user belongs to (repeatable)")
	add.Flags().StringSliceVar(&supervises, "supervises", nil, "group a supervisor supervises (repeatable)")
	add.Flags().StringVar(&allow, "allow", "", "permissions, comma-separated (default: by role)")

	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the accounts of a tenant",
		Example: "  callvault user list\n  callvault user list --tenant acme --json",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return open(c, func(u accountAdmin) error {
				us, err := u.List(tenant)
				if err != nil {
					return err
				}
				if asJSON {
					out := make([]userJSON, len(us))
					for i, u := range us {
						out[i] = userJSON{ID: u.ID, Tenant: u.Tenant, Username: u.Username, DisplayName: u.DisplayName, Role: u.Role,
							Groups: u.Groups, SupervisedGroups: u.SupervisedGroups, Permissions: u.Permissions, Disabled: u.Disabled, Created: u.Created,
							MustChangePassword: u.MustChangePassword}
					}
					enc := json.NewEncoder(stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(out)
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tROLE\tGROUPS\tSUPERVISES\tPERMISSIONS\tSTATUS")
				for _, user := range us {
					status := "enabled"
					if user.Disabled {
						status = "disabled"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", user.Username, user.Role, dash(user.Groups), dash(user.SupervisedGroups),
						appliance.PermissionList(user.Permissions), status)
				}
				return tw.Flush()
			})
		},
	}
	common(list, false)
	list.Flags().BoolVar(&asJSON, "json", false, "print as JSON")

	passwd := &cobra.Command{
		Use:     "passwd USERNAME",
		Short:   "Set an account's password",
		Example: "  echo 'correct horse battery staple' | callvault user passwd alice --password-stdin\n  callvault user passwd admin   # prints a new random password",
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			pw, made, err := password()
			if err != nil {
				return err
			}
			return open(c, func(u accountAdmin) error {
				if err := u.SetPassword(c.Context(), tenant, args[0], pw); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "password of %q changed\n", args[0])
				if made {
					fmt.Fprintf(stdout, "password: %s\nThis password is shown only now.\n", pw)
				}
				return nil
			})
		},
	}
	common(passwd, true)

	toggle := func(use, short string, disabled bool) *cobra.Command {
		c := &cobra.Command{
			Use:     use + " USERNAME",
			Short:   short,
			Example: "  callvault user " + use + " alice",
			Args:    cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return open(c, func(u accountAdmin) error {
					if err := u.SetDisabled(c.Context(), tenant, args[0], disabled); err != nil {
						return err
					}
					fmt.Fprintf(stdout, "%q %sd\n", args[0], use)
					return nil
				})
			},
		}
		common(c, false)
		return c
	}
	cmd.AddCommand(add, list, passwd,
		toggle("disable", "Disable an account: it can no longer sign in or use its tokens; its recordings stay", true),
		toggle("enable", "Enable a disabled account", false))
	return cmd
}

// userJSON is an account as `user list --json` prints it: no password hash.
type userJSON struct {
	ID               string           `json:"id"`
	Tenant           string           `json:"tenant"`
	Username         string           `json:"username"`
	DisplayName      string           `json:"displayName"`
	Role             meta.Role        `json:"role"`
	Groups           []string         `json:"groups"`
	SupervisedGroups []string         `json:"supervisedGroups"`
	Permissions      meta.Permissions `json:"permissions"`
	Disabled         bool             `json:"disabled"`
	Created          time.Time        `json:"created"`
	// MustChangePassword: the password was made up or set by an admin and
	// is replaced at the next sign-in.
	MustChangePassword bool `json:"mustChangePassword"`
}

func dash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}
