package webui

import (
	"sync"
	"time"
)

// throttle limits failed sign-ins per key (an account name, a client
// address) with a token bucket per key: a key starts with burst tokens, each
// failure takes one, and one comes back every refill. An empty bucket blocks
// the key until the next token, which is the Retry-After the client gets.
//
// Only failures cost tokens, so a user who types their password right is
// never slowed down by the limit; a success on an account refills its
// bucket. A full bucket is the same as no entry, which is what sweep drops,
// so the map holds only keys that failed recently. The map is bounded: when
// it is full, new keys share one overflow bucket, so an attacker with many
// addresses cannot grow memory, only throttle itself.
type throttle struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	burst   float64
	refill  time.Duration
	max     int
	now     func() time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

const overflowKey = "\x00overflow"

func newThrottle(burst int, refill time.Duration, maxKeys int, now func() time.Time) *throttle {
	return &throttle{buckets: make(map[string]*bucket), burst: float64(burst), refill: refill, max: maxKeys, now: now}
}

// level refills b up to now and returns it.
func (t *throttle) level(b *bucket, now time.Time) float64 {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(t.burst, b.tokens+float64(el)/float64(t.refill))
		b.at = now
	}
	return b.tokens
}

func (t *throttle) get(key string) *bucket {
	if b, ok := t.buckets[key]; ok {
		return b
	}
	if len(t.buckets) >= t.max {
		key = overflowKey
		if b, ok := t.buckets[key]; ok {
			return b
		}
	}
	b := &bucket{tokens: t.burst, at: t.now()}
	t.buckets[key] = b
	return b
}

// blocked returns how long key must wait before its next attempt (zero:
// it may try now).
func (t *throttle) blocked(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.buckets[key]
	if !ok {
		if len(t.buckets) < t.max {
			return 0
		}
		if b, ok = t.buckets[overflowKey]; !ok {
			return 0
		}
	}
	now := t.now()
	if lvl := t.level(b, now); lvl < 1 {
		return time.Duration((1 - lvl) * float64(t.refill))
	}
	return 0
}

// fail takes a token from key's bucket.
func (t *throttle) fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.get(key)
	t.level(b, t.now())
	b.tokens = max(0, b.tokens-1)
}

// reset forgets key (a successful sign-in of that account).
func (t *throttle) reset(key string) {
	t.mu.Lock()
	delete(t.buckets, key)
	t.mu.Unlock()
}

// sweep drops buckets that have refilled: they mean the same as none.
func (t *throttle) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for k, b := range t.buckets {
		if t.level(b, now) >= t.burst {
			delete(t.buckets, k)
		}
	}
}

func (t *throttle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buckets)
}
