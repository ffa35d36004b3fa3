// Package cluster is the raft node of a Callvault cluster: the FSM that
// calls store's Apply, membership, forwarding writes to the leader, and
// copying recording files between nodes.
package cluster
