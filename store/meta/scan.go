package meta

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// RecordingsAfter returns up to n recordings (tombstones included) whose ID
// sorts after the given one ("" starts at the beginning), in ID order. It is
// for jobs that walk every recording in pages (key rotation, crash recovery,
// tiering): each page is its own read transaction, so the job can commit
// its own writes between pages. Holding one bbolt read transaction across
// writes would block the writer's remap and deadlock.
func (db *DB) RecordingsAfter(after string, n int) ([]Recording, error) {
	var start []byte
	if after != "" {
		u, err := parseRecID("after", after)
		if err != nil {
			return nil, err
		}
		start = u[:]
	}
	if n <= 0 {
		n = 500
	}
	var out []Recording
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bRec).Cursor()
		var k, v []byte
		if start == nil {
			k, v = c.First()
		} else {
			k, v = c.Seek(start)
			if k != nil && bytes.Equal(k, start) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(out) < n; k, v = c.Next() {
			var r Recording
			if err := json.Unmarshal(v, &r); err != nil {
				return storageError{fmt.Errorf("decode recording %x: %w", k, err)}
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
