// Package bundle packs a spec repo into a gzip-compressed tar stream, so the
// CLI can hand a local spec to a daemon for plan or apply, and unpacks such a
// stream safely on the daemon's side.
package bundle

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/idrecon/idrecon/spec"
)

// MaxFiles bounds the number of files Unpack accepts.
const MaxFiles = 20000

// MaxFolders bounds the number of folders Unpack creates.
const MaxFolders = MaxFiles

// ErrTooLarge is returned when a bundle has more than MaxFiles files, more
// than MaxFolders folders, or more bytes than Unpack's limit.
var ErrTooLarge = errors.New("bundle: too large")

// Pack writes the files below root that the spec loader may read to w, as
// spec.WalkFiles finds them (dot-files skipped, symlinks taken as the
// loader takes them), so the daemon loads from the bundle what the loader
// loads from the folder.
func Pack(w io.Writer, root string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err := spec.WalkFiles(context.Background(), root, func(p, rel string, yaml bool) error {
		return packFile(tw, p, rel, yaml)
	})
	if err != nil {
		return fmt.Errorf("bundle: pack %s: %w", root, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle: pack: %w", err)
	}
	return gz.Close()
}

// packFile writes the file at src to tw as rel. The size is taken from the
// opened file and exactly that much is copied, so a file changing while
// it is packed cannot make the header lie.
func packFile(tw *tar.Writer, src, rel string, yaml bool) error {
	// Non-blocking: a FIFO waits for a writer on open; its type is
	// checked below before anything is read.
	f, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		if yaml {
			return fmt.Errorf("%s: not a regular file", rel)
		}
		return nil
	}
	if err := tw.WriteHeader(&tar.Header{
		Name:     rel,
		Mode:     int64(info.Mode().Perm()),
		Size:     info.Size(),
		Typeflag: tar.TypeReg,
	}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, info.Size()); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// Unpack extracts a bundle into dest, which must exist. It accepts only
// regular files with relative paths that stay inside dest, at most MaxFiles
// of them in at most MaxFolders folders, and at most maxBytes in all (spec.DefaultMaxBytes when zero, the
// limit spec.Load applies to the unpacked folder). The sizes are checked in
// the headers, so nothing past the limit is written. The stream itself is
// read no further than those files and their headers can take (see
// headerRoom): archive/tar follows any number of long-name and PAX records
// before a file, which a few compressed bytes can make gigabytes of. The
// bundle is accepted only once the gzip stream has ended with a matching
// checksum, and with nothing but padding after the archive.
func Unpack(r io.Reader, dest string, maxBytes int64) error {
	return unpack(r, dest, maxBytes, MaxFolders)
}

func unpack(r io.Reader, dest string, maxBytes int64, maxFolders int) error {
	if maxBytes <= 0 {
		maxBytes = spec.DefaultMaxBytes
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("bundle: unpack: %w", err)
	}
	br := &boundedReader{r: gz, left: maxBytes + (MaxFiles+1)*headerRoom}
	tr := tar.NewReader(br)
	var files int
	var total int64
	folders := make(map[string]bool)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return drain(br)
		}
		if err != nil {
			return fmt.Errorf("bundle: unpack: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("bundle: unpack: %s: only regular files are allowed", h.Name)
		}
		name := path.Clean(h.Name)
		if !fs.ValidPath(name) || name == "." {
			return fmt.Errorf("bundle: unpack: %q: path leaves the bundle", h.Name)
		}
		files++
		total += h.Size
		if files > MaxFiles {
			return fmt.Errorf("%w: more than %d files", ErrTooLarge, MaxFiles)
		}
		if total > maxBytes {
			return fmt.Errorf("%w: %w", ErrTooLarge, spec.NewBytesLimitError(name, maxBytes))
		}
		// Folders are counted before any is made: names compress to
		// nothing, and each folder costs the disk a block and an inode.
		for dir := path.Dir(name); dir != "." && !folders[dir]; dir = path.Dir(dir) {
			if len(folders) >= maxFolders {
				return fmt.Errorf("%w: more than %d folders", ErrTooLarge, maxFolders)
			}
			folders[dir] = true
		}
		p := filepath.Join(dest, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return inBundle(name, err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return inBundle(name, err)
		}
		_, err = io.Copy(f, io.LimitReader(tr, h.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("bundle: unpack %s: %w", name, err)
		}
	}
}

// drain reads what follows the tar archive's end marker to the end of the
// gzip stream, which is where gzip checks its checksum and length: only
// zero padding may be there. archive/tar stops reading at the marker.
func drain(r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return errors.New("bundle: unpack: data after the archive's end")
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bundle: unpack: %w", err)
		}
	}
}

// inBundle is the error of creating the bundle's file name where it is
// unpacked, naming it as the bundle does: the path on this machine is no
// business of whoever sent the bundle.
func inBundle(name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("bundle: unpack: %q is in the bundle twice, or is a folder of it too", name)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("bundle: unpack: %q: a folder on its path is a file of the bundle too", name)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("bundle: unpack %q: %w", name, err)
}

// headerRoom is the tar stream a file may take beyond its content: its
// header block, the padding of its last block, and a PAX or long-name
// record for a long path.
const headerRoom = 4 << 10

// boundedReader reads at most left bytes of r, then fails with ErrTooLarge.
type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("%w: the archive's stream runs past what %d files and their headers take", ErrTooLarge, MaxFiles)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
