package source

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestFSTypeName(t *testing.T) {
	for magic, want := range map[int64]string{
		unix.NFS_SUPER_MAGIC:  "nfs",
		unix.CIFS_SUPER_MAGIC: "smb",
		unix.FUSE_SUPER_MAGIC: "fuse",
		unix.V9FS_MAGIC:       "9p",
		unix.EXT4_SUPER_MAGIC: "",
		unix.TMPFS_MAGIC:      "",
		unix.XFS_SUPER_MAGIC:  "",
	} {
		if got := fsTypeName(magic); got != want {
			t.Errorf("fsTypeName(%#x) = %q, want %q", magic, got, want)
		}
	}
}
