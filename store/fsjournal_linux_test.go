package store

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExt4NoJournalDevice runs the check against made-up sysfs and procfs
// trees: which device a major:minor is, whether the ext4 driver mounted
// it, and whether jbd2 runs a journal for it.
func TestExt4NoJournalDevice(t *testing.T) {
	for _, c := range []struct {
		name   string
		uevent string // of block device 254:16; "" for none
		ext4   bool   // /proc/fs/ext4/vdb exists
		jbd2   string // entry under /proc/fs/jbd2, "" for an empty directory, "-" for none at all
		want   string
	}{
		{"journal", "MAJOR=254\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\n", true, "vdb-8", ""},
		{"no journal", "MAJOR=254\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\n", true, "", "vdb"},
		{"another device's journal", "MAJOR=254\nMINOR=16\nDEVNAME=vdb\n", true, "vdb1-8", "vdb"},
		{"not mounted by ext4", "DEVNAME=vdb\n", false, "", ""},
		{"no jbd2 in procfs", "DEVNAME=vdb\n", true, "-", ""},
		{"no such device", "", true, "", ""},
		{"no DEVNAME", "MAJOR=254\nMINOR=16\n", true, "", ""},
		{"mapper device", "DEVNAME=dm-0\n", false, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			sys, proc := filepath.Join(root, "sys"), filepath.Join(root, "proc")
			if c.uevent != "" {
				writeTree(t, filepath.Join(sys, "dev", "block", "254:16", "uevent"), c.uevent)
			}
			if c.ext4 {
				writeTree(t, filepath.Join(proc, "fs", "ext4", "vdb", "options"), "rw\n")
			}
			switch c.jbd2 {
			case "-":
			case "":
				if err := os.MkdirAll(filepath.Join(proc, "fs", "jbd2"), 0o755); err != nil {
					t.Fatal(err)
				}
			default:
				writeTree(t, filepath.Join(proc, "fs", "jbd2", c.jbd2, "info"), "")
			}
			if got := ext4NoJournalDevice(sys, proc, 254, 16); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestOpenWarnsOfExt4WithoutJournal opens a store and checks its log says
// what the check says of the directory: on this build VM's journal-less
// root file system, the warning; elsewhere, nothing.
func TestOpenWarnsOfExt4WithoutJournal(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	st, err := Open(Config{DataDir: dir, Keys: KeySource{Env: testKey}, Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	dev := ext4WithoutJournal(filepath.Join(dir, "recordings"))
	warned := strings.Contains(log.String(), "without a journal")
	t.Logf("device %q, warned %v", dev, warned)
	if warned != (dev != "") || (dev != "" && !strings.Contains(log.String(), "device="+dev)) {
		t.Errorf("check says %q, log:\n%s", dev, log.String())
	}
}

func writeTree(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
