// Package meta keeps all Callvault metadata — tenants, groups, users, API
// tokens, settings and recordings with their search indexes — in one bbolt file.
//
// # Commands
//
// Every change is a Command encoded as [type byte][JSON payload] and applied
// by (*DB).Apply. On a single node Apply is called directly; in a cluster the
// same bytes go through the raft log and the FSM calls the same Apply on every
// node. Apply is therefore a pure function of (state, bytes): it reads no
// clock, draws no randomness and never iterates a map. Everything
// non-deterministic — IDs (UUIDv7), timestamps, password hashes, wrapped data
// keys — is decided by the caller before the command is built. The one value
// that needs a total order, a recording's reference number, is assigned
// inside Apply from a counter stored in the database.
//
// Dispatch is a 256-entry table keyed by the type byte (as consul's FSM does);
// an unknown byte is ErrUnknownCommand and the cluster wrapper decides whether
// that is fatal. Each command validates everything before its first write, so
// a rejected command leaves no trace, which lets ApplyBatch run many commands
// in one transaction and report a result per command.
//
// # Reads
//
// Reads are plain methods on DB that run in a bbolt read transaction and
// return copies, never slices into the memory map.
//
// # Invariants
//
// Check verifies that every index agrees with the primary records in both
// directions; tests run it after random command sequences and fuzzing runs it
// after arbitrary bytes. Dump writes every key and value in order, so two
// replicas can be compared byte for byte.
package meta
