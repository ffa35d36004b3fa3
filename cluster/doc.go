// Package cluster is the raft node of a Callvault cluster: the FSM that
// calls the metadata database's Apply, membership, the mutual-TLS transport
// between nodes, and forwarding writes to the leader.
//
// # Design
//
// One TCP port per node (cluster.addr) carries everything between nodes,
// always under TLS 1.3. The first byte of each connection says what it is:
//
//	'R' raft (hashicorp/raft's NetworkTransport over our StreamLayer)
//	'C' an RPC from another member: forward a Command, add or remove a
//	    member, ask the leader's commit index, a member's own status
//	'J' a join: a new node with a join token but no certificate yet
//	'F' one sealed recording file, as stored (encrypted), for a member
//	    that copies it or plays it (replicate.go)
//
// Raft and RPC connections must present a client certificate signed by the
// cluster CA; join connections need none, but the joiner pins the CA by the
// fingerprint inside its token, so it never sends the token to a stranger.
//
// The first node (empty data directory, no --join) creates the cluster CA
// (ECDSA P-256, <data>/cluster/ca.key, mode 0600), issues its own node
// certificate and bootstraps a one-voter raft configuration. An admin asks
// it for a join token (random, 10 minutes, single use, kept only as a
// SHA-256 in <data>/cluster/tokens.json). A joining node sends a CSR and the
// token on a 'J' connection, gets its certificate, the CA certificate and a
// snapshot of the metadata database, writes them into its empty data
// directory, and only then opens its store: its keyring, signing key and
// accounts are the cluster's, not fresh local ones. It then asks, over an
// authenticated 'C' connection, to be added as a voter. A restarted node
// has its certificate and raft state and simply starts.
//
// The FSM is thin (STYLE rule 15): committed entries go, a batch at a time
// (raft.BatchingFSM), to meta.DB.ApplyLog, one bbolt transaction per batch.
// ApplyLog stores the last applied raft index in the same transaction, so
// entries raft hands over again after a restart are skipped (raft restores
// nothing at start: NoSnapshotRestoreOnStart, the database is newer than
// any snapshot). Snapshot is a bbolt read transaction written with
// tx.WriteTo while applies continue; Restore replaces the database's
// contents in one write transaction, so the *meta.DB the rest of the
// appliance holds stays valid.
//
// Node implements store.Committer: on the leader a Command is raft.Apply'd;
// on a follower it is forwarded over a 'C' connection to the leader, which
// applies it and returns the Result or the error (meta's sentinel errors
// survive the trip, so errors.Is still works at the caller). Reads are
// local; WaitCommitted makes a read see every write committed before it
// (Barrier on the leader, the leader's commit index on a follower).
//
// Recording files are copied by pulling (replicate.go): every node walks
// the replicated metadata and fetches, over an 'F' stream, the sealed files
// it should hold (cluster.replicas holders per recording: its writer,
// meta.Recording.Node, plus the members rendezvous hashing ranks first),
// and commits meta.AddReplica once the store has verified the copy
// against the seal hash and renamed it into place. A node that was down
// or joined late catches up by the same walk; a copy cut off by a crash
// is pulled again (the store removes the partial file at start). The
// Replicator is also the store's remote source: a node asked to play a
// recording whose file it lacks fetches it the same way before serving.
//
// Without a quorum a node keeps recording (outbox.go): the Commands that
// describe recordings (create, seal, annotations, their audit entries) are
// wrapped in a meta.Once idempotency key before their first attempt; when
// no leader commits one within Config.QuorumWait it is fsynced into
// <data>/cluster/outbox.db and the caller gets meta.Result.Deferred. One
// goroutine commits the queue in order once a leader is known, and removes
// each entry only after its commit; the key makes a replay after a crash,
// or a forward retried after a leader died, apply once. The store keeps
// describing such recordings from what it created them with until the
// metadata arrives, and the appliance reruns the store's crash recovery
// when the outbox has drained. Admin Commands (accounts, settings, holds,
// deletions) are not deferred: without a quorum they fail.
package cluster
