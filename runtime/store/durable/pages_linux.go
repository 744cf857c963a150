package durable

import (
	"os"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releasePages gives back the memory bbolt's mapping of the state file
// holds: reading the whole file at start-up makes every page resident in
// the daemon (as much again as the file, on top of the heap the state
// lives in), and each checkpoint adds the pages it walked. The pages are
// clean copies of the file: dropping them from the mapping
// (MADV_DONTNEED) only means the next read faults them in again. With
// dropCache, the page cache's copy goes too (POSIX_FADV_DONTNEED): after
// the load nothing reads most of the file again.
//
// The read transaction holds bbolt's mapping lock, so the mapping cannot
// be replaced while it is advised.
func (db *DB) releasePages(dropCache bool) {
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		size := tx.Size()
		page := int64(os.Getpagesize())
		size = (size + page - 1) / page * page
		if size <= 0 {
			return nil
		}
		// The address is bbolt's own mapping, handed to the kernel as a
		// number: Go never dereferences it here.
		addr := db.bolt.Info().Data
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, uintptr(size), unix.MADV_DONTNEED); errno != 0 {
			db.log.Debug("state file pages not released", "path", db.path, "err", errno)
			return nil
		}
		if dropCache {
			// The page cache is the file's, whichever descriptor asks.
			if f, err := os.Open(db.path); err == nil {
				_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
				f.Close()
			}
		}
		return nil
	})
}
