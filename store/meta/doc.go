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
// # Recordings and indexes
//
// A recording is stored as JSON under its 16-byte UUID. Every index sorts by
// the same 24-byte sort key, skey = start time in ms (big endian) ‖ ID, so a
// walk of any index is already in time order; using the start time rather
// than the UUIDv7 alone keeps uploads of old calls in their place. Buckets:
//
//	rec        id → JSON                      (the truth)
//	rec_time   skey → summary                 (compact binary for post-filters)
//	idx_ref    reference → skey               (unique)
//	idx_*      value 0x00 skey → ""           (call IDs, user, group, local and
//	           remote number, remote-name words, note words, and "attributes":
//	           preserved, bookmark types, category, rating, non-complete status)
//
// The index entries of a recording are a pure function of it
// (indexEntries); a command computes the entries before and after its change
// and writes only the difference, and Check recomputes them all.
//
// Deleting a recording is crypto-shredding: the wrapped data key is dropped
// in the same transaction, personal fields (numbers, names, notes,
// transcript) are removed with their index entries, and a tombstone keeps
// the ID, reference, start, tenant, group, user, file path and seal hash
// for the audit trail.
//
// # Search
//
// Search turns the query into a filter that checks every condition against
// the summary (plus point lookups for call IDs and note words), then lists
// plans: one per indexed condition, most selective first (ID, reference,
// call ID, note words, user, name/number prefixes, attributes, group,
// scope), and always last the walk of rec_time. The best two index plans
// and the time walk run in lockstep, a step at a time, and the first to fill
// the page (or exhaust its range) wins. Each plan post-filters with the full
// query, so the result never depends on which plan wins: a huge index
// simply loses the race to the time walk. Prefix conditions (numbers, name
// prefixes) are ordered by value, not time, so their plan collects up to
// 20,000 sort keys and sorts them, and gives up beyond that. Multi-group
// scopes merge the per-group runs. The cursor is the last sort key returned.
//
// # Invariants
//
// Check verifies that every index agrees with the primary records in both
// directions; tests run it after random command sequences and fuzzing runs it
// after arbitrary bytes. Dump writes every key and value in order, so two
// replicas can be compared byte for byte.
package meta
