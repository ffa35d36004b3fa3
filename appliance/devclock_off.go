//go:build !devclock

package appliance

import (
	"errors"
	"time"
)

// DevClockAvailable is false in a normal build: serve has no
// --dev-clock-file flag and the appliance always runs on the real clock
// (see devclock.go, built only with -tags devclock).
const DevClockAvailable = false

// DevClock is refused in a normal build.
func DevClock(string) (func() time.Time, error) {
	return nil, errors.New("the dev clock needs a binary built with -tags devclock")
}
