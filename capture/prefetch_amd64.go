package capture

// prefetch4 asks the CPU to bring the cache lines of four addresses into
// its caches (PREFETCHT0) without waiting for them; see prefetch.go.
//
//go:noescape
func prefetch4(a, b, c, d uintptr)
