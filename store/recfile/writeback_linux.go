package recfile

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE from <linux/fs.h>: start
// writeback of the dirty pages in the range, without waiting for it.
const syncFileRangeWrite = 0x2

// writeback asks the kernel to start writing ranges of a file to disk now,
// rather than when an fsync or the dirty page limits force it, so the disk
// works while the next chunks are sealed. It is only a hint: durability
// still comes from fsync, and errors are ignored (the fsync that follows
// reports any real I/O error).
type writeback struct {
	rc     syscall.RawConn
	do     func(fd uintptr) // made once, so start allocates nothing
	off, n int64
}

func newWriteback(f *os.File) *writeback {
	wb := &writeback{}
	rc, err := f.SyscallConn()
	if err != nil {
		return wb
	}
	wb.rc = rc
	wb.do = func(fd uintptr) { syscall.SyncFileRange(int(fd), wb.off, wb.n, syncFileRangeWrite) }
	return wb
}

// start starts writeback of [off, off+n).
func (wb *writeback) start(off, n int64) {
	if wb.rc == nil {
		return
	}
	wb.off, wb.n = off, n
	wb.rc.Control(wb.do) // through the RawConn, so a concurrent Close cannot reuse the fd under us
}
