package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// clusterStatus is GET /api/v1/cluster (cluster.Status).
type clusterStatus struct {
	ID           string          `json:"id"`
	Leader       string          `json:"leader"`
	State        string          `json:"state"`
	Term         uint64          `json:"term"`
	CommitIndex  uint64          `json:"commit_index"`
	AppliedIndex uint64          `json:"applied_index"`
	Nodes        []clusterMember `json:"nodes"`
}

type clusterMember struct {
	ID          string        `json:"id"`
	Address     string        `json:"address"`
	State       string        `json:"state"`
	Voter       bool          `json:"voter"`
	LastContact string        `json:"last_contact"`
	Term        uint64        `json:"term"`
	Commit      uint64        `json:"commit_index"`
	Applied     uint64        `json:"applied_index"`
	Files       *clusterFiles `json:"files,omitempty"`
}

// clusterFiles is a member's view of recording file replication (cluster.FileStats).
type clusterFiles struct {
	Replicas        int    `json:"replicas"`
	Backlog         int64  `json:"backlog"`
	UnderReplicated int64  `json:"under_replicated"`
	Copied          uint64 `json:"copied"`
	Failed          uint64 `json:"failed"`
	Bytes           uint64 `json:"bytes"`
}

// newClusterCmd manages the cluster through a running member's API, as an
// admin (--user, password in CALLVAULT_PASSWORD, like `user --server`).
func newClusterCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Cluster membership: join tokens, status, removing a node (through a running member's API)",
		Long: `Form and watch a cluster. The first node is started with --cluster-addr on an empty data
directory and creates the cluster; every other node is started with --join and a token:

  callvault serve --data-dir D1 --http H1 --cluster-addr C1
  CALLVAULT_PASSWORD=... callvault cluster token --server http://H1
  callvault serve --data-dir D2 --http H2 --cluster-addr C2 --join http://H1 --join-token TOKEN

All nodes need the same master key (CALLVAULT_MASTER_KEY, the credential or the key file).`,
	}
	var server, user, caFile string
	addFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&server, "server", "", "a running member (http[s]://HOST:PORT)")
		c.Flags().StringVar(&user, "user", "admin", "the admin to sign in as (password in CALLVAULT_PASSWORD)")
		c.Flags().StringVar(&caFile, "cacert", "", "over HTTPS: the server's certificate or its CA (PEM)")
		_ = c.MarkFlagRequired("server")
	}
	client := func() (*apiUsers, error) { return newAPIUsers(server, user, caFile) }
	ctx := func(c *cobra.Command) (context.Context, context.CancelFunc) {
		return context.WithTimeout(c.Context(), 30*time.Second)
	}

	token := &cobra.Command{
		Use:     "token",
		Short:   "Print a single-use join token (valid 10 minutes); ask the node that created the cluster",
		Example: "  CALLVAULT_PASSWORD=... callvault cluster token --server http://10.0.0.1:8080",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			api, err := client()
			if err != nil {
				return err
			}
			cx, cancel := ctx(c)
			defer cancel()
			var res struct {
				Token   string    `json:"token"`
				Expires time.Time `json:"expires"`
			}
			if err := api.call(cx, http.MethodPost, "/api/v1/cluster/tokens", nil, &res, http.StatusCreated); err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, res.Token)
			return err
		},
	}
	addFlags(token)

	var asJSON bool
	status := &cobra.Command{
		Use:     "status",
		Short:   "Members, leader, term, commit and applied index, and the replication of recording files",
		Example: "  CALLVAULT_PASSWORD=... callvault cluster status --server http://10.0.0.1:8080 --json",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			api, err := client()
			if err != nil {
				return err
			}
			cx, cancel := ctx(c)
			defer cancel()
			var st clusterStatus
			if err := api.call(cx, http.MethodGet, "/api/v1/cluster", nil, &st, http.StatusOK); err != nil {
				return err
			}
			if asJSON {
				type node struct {
					ID          string        `json:"id"`
					Address     string        `json:"address"`
					State       string        `json:"state"`
					Voter       bool          `json:"voter"`
					LastContact string        `json:"last_contact"`
					Files       *clusterFiles `json:"files,omitempty"`
				}
				out := struct {
					Leader string `json:"leader"`
					Nodes  []node `json:"nodes"`
				}{Leader: st.Leader, Nodes: []node{}}
				for _, n := range st.Nodes {
					out.Nodes = append(out.Nodes, node{n.ID, n.Address, n.State, n.Voter, n.LastContact, n.Files})
				}
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			fmt.Fprintf(stdout, "leader %s, term %d (as seen by %s: %s, commit %d, applied %d)\n\n",
				orDash(st.Leader), st.Term, st.ID, st.State, st.CommitIndex, st.AppliedIndex)
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tADDRESS\tSTATE\tVOTER\tTERM\tCOMMIT\tAPPLIED\tLAST CONTACT\tFILES BACKLOG\tUNDER-REPLICATED\tCOPIED\tFAILED")
			var backlog, under int64
			replicas := 0
			for _, n := range st.Nodes {
				fb, fu, fc, ff := "-", "-", "-", "-"
				if f := n.Files; f != nil {
					fb, fu, fc, ff = fmt.Sprint(f.Backlog), fmt.Sprint(f.UnderReplicated), fmt.Sprint(f.Copied), fmt.Sprint(f.Failed)
					backlog += f.Backlog
					under = max(under, f.UnderReplicated)
					replicas = max(replicas, f.Replicas)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.Address, n.State, n.Voter, n.Term, n.Commit, n.Applied, orDash(n.LastContact), fb, fu, fc, ff)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "\nrecording files: %d copies each; %d copies still to make; %d recordings under-replicated\n", replicas, backlog, under)
			return err
		},
	}
	addFlags(status)
	status.Flags().BoolVar(&asJSON, "json", false, `print {"leader", "nodes": [{"id", "address", "state", "voter", "last_contact"}]}`)

	remove := &cobra.Command{
		Use:     "remove NODE",
		Short:   "Remove a node from the cluster",
		Example: "  CALLVAULT_PASSWORD=... callvault cluster remove node-3f2a9c01de --server http://10.0.0.1:8080",
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			api, err := client()
			if err != nil {
				return err
			}
			cx, cancel := ctx(c)
			defer cancel()
			if err := api.call(cx, http.MethodDelete, "/api/v1/cluster/nodes/"+url.PathEscape(args[0]), nil, nil, http.StatusNoContent); err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "removed %s\n", args[0])
			return err
		},
	}
	addFlags(remove)
	cmd.AddCommand(token, status, remove)
	return cmd
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
