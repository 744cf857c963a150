// Package bundle packs a spec repo into a gzip-compressed tar stream, so the
// CLI can hand a local spec to a daemon for plan or apply, and unpacks such a
// stream safely on the daemon's side.
package bundle

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/idrecon/idrecon/spec"
)

// MaxFiles bounds the number of files Unpack accepts.
const MaxFiles = 20000

// ErrTooLarge is returned when a bundle has more than MaxFiles files or more
// bytes than Unpack's limit.
var ErrTooLarge = errors.New("bundle: too large")

// Pack writes every regular file below root (dot-files and dot-folders
// skipped, as the loader skips them) to w.
func Pack(w io.Writer, root string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{
			Name:     filepath.ToSlash(rel),
			Mode:     int64(info.Mode().Perm()),
			Size:     info.Size(),
			Typeflag: tar.TypeReg,
		}); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("bundle: pack %s: %w", root, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle: pack: %w", err)
	}
	return gz.Close()
}

// Unpack extracts a bundle into dest, which must exist. It accepts only
// regular files with relative paths that stay inside dest, at most MaxFiles
// of them and at most maxBytes in all (spec.DefaultMaxBytes when zero, the
// limit spec.Load applies to the unpacked folder). The sizes are checked in
// the headers, so nothing past the limit is written. The stream itself is
// read no further than those files and their headers can take (see
// headerRoom): archive/tar follows any number of long-name and PAX records
// before a file, which a few compressed bytes can make gigabytes of.
func Unpack(r io.Reader, dest string, maxBytes int64) error {
	if maxBytes <= 0 {
		maxBytes = spec.DefaultMaxBytes
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("bundle: unpack: %w", err)
	}
	tr := tar.NewReader(&boundedReader{r: gz, left: maxBytes + (MaxFiles+1)*headerRoom})
	var files int
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
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
