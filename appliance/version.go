package appliance

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Build identifies the binary. The Makefile sets Version and Date with
// -ldflags -X; the commit comes from the Go build info (vcs.revision).
type Build struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Date     string `json:"date"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
}

// ReadBuild fills in what the linker flags left empty from the binary's
// embedded build info.
func ReadBuild(version, date string) Build {
	b := Build{Version: version, Date: date, Go: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && info.Main.Version != "" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.time":
				if b.Date == "" {
					b.Date = s.Value
				}
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

func (b Build) String() string {
	dirty := ""
	if b.Modified {
		dirty = " (modified)"
	}
	return fmt.Sprintf("callvault %s\ncommit %s%s\nbuilt  %s\ngo     %s", b.Version, b.Commit, dirty, b.Date, b.Go)
}
