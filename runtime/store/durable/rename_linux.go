package durable

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames from to to, failing with an error that is
// fs.ErrExist should to exist: the check and the rename are one step, so a
// file created at to just before is never unlinked under its writer.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A kernel or file system without the flag (or a seccomp filter
		// that hides the call): a hard link refuses an existing name too.
		return linkNoReplace(from, to)
	}
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: from, New: to, Err: err}
	}
	return nil
}
