package meta

import bolt "go.etcd.io/bbolt"

// Recordings arrive in the next commit; until then no recording command is registered.
func registerRecordingHandlers(h *[256]handler) {}

func checkRecordings(tx *bolt.Tx) error { return nil }
