package meta

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention: how long recordings are kept. A policy is a number of days
// after a recording's start; it is set for the installation (tenant and
// group empty), for a tenant, or for one group, and the most specific one
// applies. CreateRecording computes the recording's DeleteAfter from it,
// inside Apply, so every replica computes the same date. A recording
// under legal hold is never due, whatever its date.

// SetRetention sets or removes a retention policy.
type SetRetention struct {
	Tenant string `json:"tenant"`
	Group  string `json:"group"` // empty: the tenant's (or, with Tenant empty, the installation's) default
	// Days after the start a recording may be deleted; 0 keeps recordings
	// until someone deletes them; -1 removes the policy, so the next less
	// specific one applies.
	Days int `json:"days"`
}

func (*SetRetention) commandType() CommandType { return TypeSetRetention }

// maxRetentionDays is 100 years: longer is a typo, not a policy.
const maxRetentionDays = 36525

func retentionKey(tenant, group string) []byte {
	return []byte("retention\x00" + tenant + "\x00" + group)
}

func (c *SetRetention) apply(t *txn) (Result, error) {
	if err := firstErr(checkKeyText("tenant", c.Tenant, maxIDLen), checkKeyText("group", c.Group, maxIDLen),
		checkRange("days", int64(c.Days), -1, maxRetentionDays)); err != nil {
		return Result{}, err
	}
	if c.Group != "" {
		var g Group
		if err := getJSON(t.b(bGroups), []byte(c.Group), &g); err != nil {
			return Result{}, fmt.Errorf("group %q: %w", c.Group, err)
		}
		if g.Tenant != c.Tenant {
			return Result{}, fmt.Errorf("%w: group %q belongs to tenant %q, not %q", ErrInvalid, c.Group, g.Tenant, c.Tenant)
		}
	}
	k := retentionKey(c.Tenant, c.Group)
	if c.Days < 0 {
		return Result{ID: string(k)}, t.del(bSettings, k)
	}
	return Result{ID: string(k)}, t.put(bSettings, k, []byte(strconv.Itoa(c.Days)))
}

// retentionDays finds the policy for a recording of tenant and group: the
// group's, else the tenant's, else the installation's. ok is false when
// none is set (keep until deleted by hand).
func retentionDays(tx *bolt.Tx, tenant, group string) (days int, ok bool) {
	var keys [][]byte
	if group != "" {
		keys = append(keys, retentionKey(tenant, group))
	}
	keys = append(keys, retentionKey(tenant, ""))
	if tenant != "" {
		keys = append(keys, retentionKey("", ""))
	}
	b := tx.Bucket(bSettings)
	for _, k := range keys {
		if v := b.Get(k); v != nil {
			if n, err := strconv.Atoi(string(v)); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

// deleteAfter is the date a recording starting at start may be deleted
// under the policy for tenant and group; zero when it is kept.
func deleteAfter(tx *bolt.Tx, tenant, group string, start time.Time) time.Time {
	if days, ok := retentionDays(tx, tenant, group); ok && days > 0 {
		return start.UTC().AddDate(0, 0, days)
	}
	return time.Time{}
}

// RetentionPolicy is one policy as set.
type RetentionPolicy struct {
	Tenant string `json:"tenant"`
	Group  string `json:"group"`
	Days   int    `json:"days"`
}

// RetentionPolicies lists the policies set, installation first.
func (db *DB) RetentionPolicies() ([]RetentionPolicy, error) {
	var out []RetentionPolicy
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bSettings).Cursor()
		prefix := []byte("retention\x00")
		for k, v := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			var p RetentionPolicy
			rest := string(k[len(prefix):])
			for i := 0; i < len(rest); i++ {
				if rest[i] == 0 {
					p.Tenant, p.Group = rest[:i], rest[i+1:]
					break
				}
			}
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return fmt.Errorf("%w: retention policy %q: %w", ErrCorrupt, k, err)
			}
			p.Days = n
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// RetentionFor is the policy that applies to a new recording of tenant
// and group, in days (ok false: none, kept until deleted).
func (db *DB) RetentionFor(tenant, group string) (days int, ok bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		days, ok = retentionDays(tx, tenant, group)
		return nil
	})
	return days, ok, err
}

// expiryValue is the idx_expiry value of a recording that may be deleted
// some day: the date in milliseconds, big endian, so the index runs in date
// order. A hold until a date moves it to that date if later; an indefinite
// hold, a recording being written and a deleted one have none.
func expiryValue(r *Recording) string {
	if r.DeleteAfter.IsZero() || r.Status == StatusDeleted || r.Status == StatusRecording {
		return ""
	}
	at := r.DeleteAfter
	if p := r.Preserved; p != nil {
		if p.Until.IsZero() {
			return ""
		}
		if p.Until.After(at) {
			at = p.Until
		}
	}
	return string(binary.BigEndian.AppendUint64(nil, uint64(at.UnixMilli())))
}

// Due lists up to limit recordings whose DeleteAfter is at or before now
// and that are not held or deleted, oldest date first.
func (db *DB) Due(now time.Time, limit int) ([]Recording, error) {
	var out []Recording
	err := db.bolt.View(func(tx *bolt.Tx) error {
		recB := tx.Bucket(bRec)
		c := tx.Bucket(bExpiry).Cursor()
		nowMs := uint64(now.UnixMilli())
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) != 8+1+skeyLen {
				return fmt.Errorf("%w: expiry index key of %d bytes", ErrCorrupt, len(k))
			}
			if binary.BigEndian.Uint64(k) > nowMs {
				break
			}
			var r Recording
			if err := getJSON(recB, k[9+8:], &r); err != nil {
				return fmt.Errorf("%w: expiry index entry %x: %w", ErrCorrupt, k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
