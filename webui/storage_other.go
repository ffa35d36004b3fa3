//go:build !linux

package webui

import "errors"

// errStatfsUnsupported: usage is read with statfs, which this platform
// lacks.
var errStatfsUnsupported = errors.New("file system usage is not available on this platform")

func statfs(path string) (diskUsage, error) { return diskUsage{}, errStatfsUnsupported }
