//go:build !amd64

package capture

// prefetch4 is a no-op where there is no prefetch instruction wired up;
// see prefetch.go.
func prefetch4(a, b, c, d uintptr) {}
