//go:build devclock

package appliance

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// DevClockAvailable reports whether this binary honours serve
// --dev-clock-file: only one built with -tags devclock does, so the
// end-to-end tests can move the appliance's clock (retention, expiry)
// without sleeping, and a production binary has no way to be told the
// time is other than it is.
const DevClockAvailable = true

// DevClock returns a clock that runs with the real one, shifted by the
// offset written in path (a Go duration, e.g. "2400h"; an empty or
// missing file is no shift). The file is read again whenever its
// modification time or size changes, so a test moves the clock by
// rewriting it.
func DevClock(path string) (func() time.Time, error) {
	c := &devClock{path: path}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c.now, nil
}

type devClock struct {
	path string

	mu     sync.Mutex
	mtime  time.Time
	size   int64
	offset time.Duration
}

func (c *devClock) now() time.Time {
	if err := c.load(); err != nil {
		// Keep the last good offset: a half-written file must not make
		// the clock jump back.
		fmt.Fprintln(os.Stderr, "dev clock:", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *devClock) load() error {
	fi, err := os.Stat(c.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	same := fi.ModTime().Equal(c.mtime) && fi.Size() == c.size
	c.mu.Unlock()
	if same {
		return nil
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return err
	}
	var off time.Duration
	if s := strings.TrimSpace(string(b)); s != "" {
		if off, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("%s: %w", c.path, err)
		}
	}
	c.mu.Lock()
	c.mtime, c.size, c.offset = fi.ModTime(), fi.Size(), off
	c.mu.Unlock()
	return nil
}
