package meta

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// Retention: how long recordings are kept. A policy is a number of days
// after a recording's start; it is set for the installation (tenant and
// group empty), for a tenant, or for one group, and the most specific one
// applies. CreateRecording computes the recording's DeleteAfter from it,
// inside Apply, so every replica computes the same date. A recording
// under legal hold is never due, whatever its date.
//
// A changed policy applies to recordings created from then on. On request
// (RecomputeRetention) it is applied to existing recordings too, in
// batches, so a tenant of millions never needs one huge transaction; a
// preserved recording's date is only ever moved later.

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

// RecomputeRetention applies the retention policies now in force to the
// existing recordings of Tenant (of one Group when set): each one's
// DeleteAfter becomes what CreateRecording would compute today, except
// that a preserved recording's date never moves earlier. It walks at most
// Limit recordings (1..recomputeMaxBatch) in ID order after After, and its
// Result.ID is the ID to pass as After next, "" when done; Result.Reference
// counts the recordings it changed, in decimal.
type RecomputeRetention struct {
	Tenant string `json:"tenant"`
	Group  string `json:"group,omitempty"`
	After  string `json:"after,omitempty"`
	Limit  int    `json:"limit"`
}

func (*RecomputeRetention) commandType() CommandType { return TypeRecomputeRetention }

// recomputeMaxBatch bounds one RecomputeRetention's transaction.
const recomputeMaxBatch = 10_000

func (c *RecomputeRetention) apply(t *txn) (Result, error) {
	if err := firstErr(checkKeyText("tenant", c.Tenant, maxIDLen), checkKeyText("group", c.Group, maxIDLen),
		checkRange("limit", int64(c.Limit), 1, recomputeMaxBatch)); err != nil {
		return Result{}, err
	}
	cur := t.tx.Bucket(bRec).Cursor()
	k, v := cur.First()
	if c.After != "" {
		u, err := parseRecID("after", c.After)
		if err != nil {
			return Result{}, err
		}
		k, v = cur.Seek(u[:])
		if bytes.Equal(k, u[:]) {
			k, v = cur.Next()
		}
	}
	// Collect first, change after: storeRecording writes to the bucket the
	// cursor walks.
	var due []string
	var last []byte
	for n := 0; k != nil && n < c.Limit; k, v = cur.Next() {
		n++
		last = k
		var r Recording
		if err := json.Unmarshal(v, &r); err != nil {
			return Result{}, fmt.Errorf("%w: recording %x: %w", ErrCorrupt, k, err)
		}
		if r.Status == StatusDeleted || r.Tenant != c.Tenant || c.Group != "" && r.Group != c.Group {
			continue
		}
		if da := c.newDate(t.tx, &r); !da.Equal(r.DeleteAfter) {
			due = append(due, r.ID)
		}
	}
	for _, id := range due {
		if _, err := t.modify(id, func(r *Recording) error { r.DeleteAfter = c.newDate(t.tx, r); return nil }); err != nil {
			return Result{}, err
		}
	}
	next := ""
	if k != nil {
		next = uuid.UUID(last).String()
	}
	return Result{ID: next, Reference: strconv.Itoa(len(due))}, nil
}

// newDate is r's delete-after date under today's policies: never earlier
// than its current one when it is preserved (a hold only grows; an
// indefinite hold keeps its recording out of every purge anyway).
func (c *RecomputeRetention) newDate(tx *bolt.Tx, r *Recording) time.Time {
	da := deleteAfter(tx, r.Tenant, r.Group, r.Start)
	if r.Preserved != nil {
		if r.DeleteAfter.IsZero() {
			return r.DeleteAfter // kept until released: nothing is longer
		}
		if !da.IsZero() && da.Before(r.DeleteAfter) {
			return r.DeleteAfter
		}
	}
	return da
}
