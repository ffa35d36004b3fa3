package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ext4WithoutJournal names the block device under dir when dir is on an
// ext4 file system without a journal, and returns "" otherwise or when it
// cannot tell. Such a file system is worth a warning at Open: after a
// power cut it may need fsck before the recordings on it are readable
// again, and creating a file soon after many were deleted is slow, since
// the kernel will not reuse an inode freed in the last minute or more and
// steps over each such inode of the block group in turn (recently_deleted
// in fs/ext4/ialloc.c; issue 4 measured up to a millisecond of CPU a
// create on the build VM, whose root file system is such an ext4).
func ext4WithoutJournal(dir string) string {
	var fs unix.Statfs_t
	if unix.Statfs(dir, &fs) != nil || fs.Type != unix.EXT4_SUPER_MAGIC {
		return ""
	}
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return ""
	}
	return ext4NoJournalDevice("/sys", "/proc", unix.Major(st.Dev), unix.Minor(st.Dev))
}

// ext4NoJournalDevice is ext4WithoutJournal's look at sysfs and procfs
// (rooted at sys and proc) for the device major:minor. The ext4 driver
// lists each file system it mounted under /proc/fs/ext4/<device>, and jbd2
// each journal it runs under /proc/fs/jbd2/<device>-<inode>. A journal on
// a separate device is listed under that device's name, so this reports
// such a file system as journal-less; appliances do not use one.
func ext4NoJournalDevice(sys, proc string, major, minor uint32) string {
	uevent, err := os.ReadFile(filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", major, minor), "uevent"))
	if err != nil {
		return ""
	}
	var name string
	sc := bufio.NewScanner(bytes.NewReader(uevent))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("DEVNAME=")); ok {
			name = filepath.Base(string(v))
		}
	}
	if name == "" || name == "." || name == "/" {
		return ""
	}
	if _, err := os.Stat(filepath.Join(proc, "fs", "ext4", name)); err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(proc, "fs", "jbd2")); err != nil {
		return "" // no jbd2 in this kernel's procfs: cannot tell
	}
	if m, _ := filepath.Glob(filepath.Join(proc, "fs", "jbd2", name+"-*")); len(m) > 0 {
		return ""
	}
	return name
}
