package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

func TestPackUnpackRoundTrip(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{
		"scim.yaml":         "kind: ScimProvisioning\n",
		"idp/entra.cer":     "MIIB...",
		".git/config":       "skipped",
		"sub/.hidden.yaml":  "skipped",
		"sub/deep/app.yaml": "kind: Application\n",
	}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := Pack(&buf, src); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Unpack(&buf, dst, 0); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		got, err := os.ReadFile(filepath.Join(dst, name))
		skipped := name == ".git/config" || name == "sub/.hidden.yaml"
		switch {
		case skipped && err == nil:
			t.Errorf("%s was packed, want it skipped", name)
		case !skipped && (err != nil || string(got) != body):
			t.Errorf("%s: got %q, %v; want %q", name, got, err, body)
		}
	}
}

func tarball(t testing.TB, hdrs ...*tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	gz.Close()
	return &buf
}

func TestUnpackRefusesUnsafeEntries(t *testing.T) {
	tests := []struct {
		name string
		hdr  *tar.Header
		want error
	}{
		{"parent escape", &tar.Header{Name: "../evil.yaml", Typeflag: tar.TypeReg, Size: 1}, nil},
		{"absolute", &tar.Header{Name: "/etc/passwd", Typeflag: tar.TypeReg, Size: 1}, nil},
		{"symlink", &tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, nil},
		{"too large", &tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: 4097}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := t.TempDir()
			err := Unpack(tarball(t, tt.hdr), dst, 4096)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dst), "evil.yaml")); err == nil {
				t.Fatal("file written outside dest")
			}
		})
	}
}

func TestUnpackStopsAtTheByteLimit(t *testing.T) {
	dst := t.TempDir()
	err := Unpack(tarball(t,
		&tar.Header{Name: "a.yaml", Typeflag: tar.TypeReg, Size: 3000},
		&tar.Header{Name: "b.yaml", Typeflag: tar.TypeReg, Size: 3000},
		&tar.Header{Name: "c.yaml", Typeflag: tar.TypeReg, Size: 10},
	), dst, 5000)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "larger than 5000 bytes (reached at b.yaml)") || !strings.Contains(err.Error(), "--max-spec-bytes") {
		t.Fatalf("err = %v, want ErrTooLarge naming the limit, the file and how to raise it", err)
	}
	for _, name := range []string{"b.yaml", "c.yaml"} {
		if _, err := os.Stat(filepath.Join(dst, name)); err == nil {
			t.Errorf("%s was written past the limit", name)
		}
	}
}

func TestUnpackDefaultLimitIsTheSpecDefault(t *testing.T) {
	err := Unpack(tarball(t, &tar.Header{Name: "a.yaml", Typeflag: tar.TypeReg, Size: 10}), t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if spec.DefaultMaxBytes != 64<<20 {
		t.Errorf("DefaultMaxBytes = %d", spec.DefaultMaxBytes)
	}
}

// TestUnpackStopsAStreamOfHeaders: archive/tar follows any number of
// GNU long-name records before a file, and a few compressed bytes make
// gigabytes of them; Unpack reads the stream no further than MaxFiles
// files and their headers can take, and says the bundle is too large.
func TestUnpackStopsAStreamOfHeaders(t *testing.T) {
	const record = 512 << 10 // a long name of half a MiB: archive/tar takes up to 1 MiB
	limit := int64(1<<10) + (MaxFiles+1)*headerRoom
	pr, pw := io.Pipe()
	var written atomic.Int64
	go func() {
		gz, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		hdr := longNameHeader(record)
		data := make([]byte, record)
		// Twice the bound: without it, Unpack reads all of this.
		for written.Load() < 2*limit {
			if _, err := gz.Write(hdr); err != nil {
				return
			}
			if _, err := gz.Write(data); err != nil {
				return
			}
			written.Add(int64(len(hdr) + len(data)))
		}
		gz.Close()
		pw.Close()
	}()
	err := Unpack(pr, t.TempDir(), 1<<10)
	pr.CloseWithError(errors.New("test done"))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if n := written.Load(); n > limit+2*(record+512)+(1<<20) {
		t.Errorf("read %d bytes of the stream, the bound is %d", n, limit)
	}
}

// longNameHeader is the header block of a GNU long-name record ('L') of
// size bytes, which tar.Writer does not write by itself.
func longNameHeader(size int) []byte {
	b := make([]byte, 512)
	copy(b, "././@LongLink")
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = 'L'
	copy(b[257:], "ustar  \x00")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// TestUnpackErrorsNameTheBundlesPath: a bundle that holds a file twice, or
// a file and a folder of one name, is refused, and the error (which the
// admin API answers to the client) names the file as the bundle does, not
// the folder on the server it was being unpacked into.
func TestUnpackErrorsNameTheBundlesPath(t *testing.T) {
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: 1} }
	for _, tc := range []struct {
		name string
		hdrs []*tar.Header
		want string
	}{
		{"a file twice", []*tar.Header{reg("spec/a.yaml"), reg("spec/a.yaml")}, "spec/a.yaml"},
		{"a file, then a folder of its name", []*tar.Header{reg("a"), reg("a/b.yaml")}, "a/b.yaml"},
		{"a folder, then a file of its name", []*tar.Header{reg("a/b.yaml"), reg("a")}, `"a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			err := Unpack(tarball(t, tc.hdrs...), dst, 4096)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), dst) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want it to name %s and not the folder %s", err, tc.want, dst)
			}
		})
	}
}

// TestPackSymlinkedRoot: a spec folder that is a symlink (a release
// switched with ln -sfn) loads as the folder it names, so it is packed as
// that folder, not as an empty bundle.
func TestPackSymlinkedRoot(t *testing.T) {
	real := t.TempDir()
	if err := os.WriteFile(filepath.Join(real, "apps.yaml"), []byte("kind: Application\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "current")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{link, link + string(filepath.Separator)} {
		var buf bytes.Buffer
		if err := Pack(&buf, root); err != nil {
			t.Fatal(err)
		}
		dst := t.TempDir()
		if err := Unpack(&buf, dst, 0); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(dst, "apps.yaml")); err != nil || string(got) != "kind: Application\n" {
			t.Errorf("Pack(%s): apps.yaml = %q, %v", root, got, err)
		}
	}
}

// TestPackTreatsLinksAsTheLoader: the daemon must load what the loader
// would load from the folder. A file linked from within the folder (a
// Kubernetes ConfigMap's "..data" links) is read by the loader, so it is
// packed as the file it names; a link to a folder and a YAML file linked
// from outside are refused by the loader, so Pack refuses them too rather
// than leaving them out and letting the daemon accept a spec the loader
// refuses. A non-YAML file linked from outside cannot be read by the
// loader (files are read through the folder's os.Root) and is left out.
func TestPackTreatsLinksAsTheLoader(t *testing.T) {
	outside := t.TempDir()
	for name, body := range map[string]string{"shared/apps.yaml": "kind: Application\n", "ca.pem": "outside"} {
		p := filepath.Join(outside, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		link func(root string) error
		want string // in Pack's error; "" packs
	}{
		{"a file linked from inside, as a ConfigMap", func(root string) error {
			if err := os.Symlink("..2026", filepath.Join(root, "..data")); err != nil {
				return err
			}
			if err := os.Symlink(filepath.Join("..data", "linked.yaml"), filepath.Join(root, "linked.yaml")); err != nil {
				return err
			}
			return os.Symlink(filepath.Join("..data", "idp.cer"), filepath.Join(root, "idp.cer"))
		}, ""},
		{"a folder linked from outside", func(root string) error {
			return os.Symlink(filepath.Join(outside, "shared"), filepath.Join(root, "shared"))
		}, "shared: a symlink to a folder"},
		{"a folder linked from inside", func(root string) error {
			return os.Symlink(filepath.Join(root, "..2026"), filepath.Join(root, "alias"))
		}, "alias: a symlink to a folder"},
		{"a YAML file linked from outside", func(root string) error {
			return os.Symlink(filepath.Join(outside, "shared", "apps.yaml"), filepath.Join(root, "shared.yaml"))
		}, "shared.yaml: a symlink to " + filepath.Join(outside, "shared", "apps.yaml") + ", outside the spec folder"},
		{"a dangling YAML link", func(root string) error {
			return os.Symlink(filepath.Join(outside, "gone.yaml"), filepath.Join(root, "gone.yaml"))
		}, "gone.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "..2026"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, body := range map[string]string{"..2026/linked.yaml": "kind: Linked\n", "..2026/idp.cer": "cert"} {
				if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// Left out either way: the loader cannot read it.
			if err := os.Symlink(filepath.Join(outside, "ca.pem"), filepath.Join(root, "ca.pem")); err != nil {
				t.Fatal(err)
			}
			if err := tc.link(root); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			err := Pack(&buf, root)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Pack: %v, want an error saying %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dst := t.TempDir()
			if err := Unpack(&buf, dst, 0); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]string{"linked.yaml": "kind: Linked\n", "idp.cer": "cert"} {
				got, err := os.Lstat(filepath.Join(dst, name))
				if err != nil || !got.Mode().IsRegular() {
					t.Fatalf("%s not unpacked as a file: %v", name, err)
				}
				if b, _ := os.ReadFile(filepath.Join(dst, name)); string(b) != want {
					t.Errorf("%s = %q, want %q", name, b, want)
				}
			}
			for _, name := range []string{"..data", "..2026", "ca.pem"} {
				if _, err := os.Lstat(filepath.Join(dst, name)); err == nil {
					t.Errorf("%s was packed", name)
				}
			}
		})
	}
}

// TestUnpackBoundsFolders: folders cost the daemon's disk as files do (a
// block and an inode each), and names compress to nothing, so a bundle of
// a few files with deep, distinct paths would create folders by the
// million. Unpack counts the folders it would create before creating
// them.
func TestUnpackBoundsFolders(t *testing.T) {
	const depth, limit = 10, 100
	var hdrs []*tar.Header
	for i := 0; i <= limit/depth; i++ {
		hdrs = append(hdrs, &tar.Header{
			Name:     fmt.Sprintf("d%d/", i) + strings.Repeat("a/", depth-1) + "f.yaml",
			Typeflag: tar.TypeReg, Size: 1,
		})
	}
	dst := t.TempDir()
	err := unpack(tarball(t, hdrs...), dst, 0, limit)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than 100 folders") {
		t.Fatalf("err = %v, want ErrTooLarge naming the folders", err)
	}
	var n int
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != dst {
			n++
		}
		return nil
	})
	if n > limit {
		t.Errorf("%d folders created, the bound is %d", n, limit)
	}
	// Folders shared by files count once.
	hdrs = hdrs[:0]
	for i := 0; i < 3*limit; i++ {
		hdrs = append(hdrs, &tar.Header{Name: fmt.Sprintf("apps/team/%d.yaml", i), Typeflag: tar.TypeReg, Size: 1})
	}
	if err := unpack(tarball(t, hdrs...), t.TempDir(), 0, 2); err != nil {
		t.Fatal(err)
	}
	if MaxFolders < 1000 {
		t.Errorf("MaxFolders = %d, too few for a spec repo", MaxFolders)
	}
}

// TestUnpackRefusesACorruptStream: the archive is only whole when the
// gzip stream ends with its checksum; archive/tar stops at the tar end
// marker, before gzip has checked anything, so a cut or altered upload
// would pass.
func TestUnpackRefusesACorruptStream(t *testing.T) {
	good := tarball(t, &tar.Header{Name: "a.yaml", Typeflag: tar.TypeReg, Size: 100}).Bytes()
	if err := Unpack(bytes.NewReader(good), t.TempDir(), 0); err != nil {
		t.Fatal(err)
	}
	corrupt := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	var trailing bytes.Buffer
	gz := gzip.NewWriter(&trailing)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "a.yaml", Typeflag: tar.TypeReg, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	gz.Write([]byte("more, after the archive's end"))
	gz.Close()
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"checksum altered", corrupt(func(b []byte) []byte { b[len(b)-8] ^= 0xff; return b })},
		{"length altered", corrupt(func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b })},
		{"gzip trailer cut", corrupt(func(b []byte) []byte { return b[:len(b)-8] })},
		{"cut in the middle", corrupt(func(b []byte) []byte { return b[:len(b)/2] })},
		{"not gzip", []byte("PK\x03\x04 a zip file")},
		{"data after the archive", trailing.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Unpack(bytes.NewReader(tc.raw), t.TempDir(), 0); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestUnpackEntries: what a hostile client may put in a header. Only
// regular files inside dest are written, with the daemon's permissions
// whatever the header says; names that are odd but local (backslashes,
// a drive letter, look-alike dots) are plain file names here, inside dest.
func TestUnpackEntries(t *testing.T) {
	reg := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: 1, Mode: 0o4777}
	}
	for _, tc := range []struct {
		name  string
		hdr   *tar.Header
		wrote string // the file written inside dest; "" refused
	}{
		{"parent in the middle", reg("a/../../evil.yaml"), ""},
		{"dot parent", reg("./../evil.yaml"), ""},
		{"parent alone", reg(".."), ""},
		{"dot alone", reg("."), ""},
		{"empty", reg(""), ""},
		{"hard link", &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../evil.yaml"}, ""},
		{"folder", &tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o777}, ""},
		{"fifo", &tar.Header{Name: "p", Typeflag: tar.TypeFifo}, ""},
		{"device", &tar.Header{Name: "c", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, ""},
		{"backslashes", reg(`..\..\evil.yaml`), `..\..\evil.yaml`},
		{"drive letter", reg(`C:/evil.yaml`), "C:/evil.yaml"},
		{"look-alike dots", reg("\u2024\u2024/evil.yaml"), "\u2024\u2024/evil.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "upload")
			if err := os.Mkdir(dst, 0o700); err != nil {
				t.Fatal(err)
			}
			err := Unpack(tarball(t, tc.hdr), dst, 0)
			if tc.wrote == "" {
				if err == nil {
					t.Fatal("accepted")
				}
				if strings.Contains(err.Error(), dst) {
					t.Errorf("error %q names the server's folder", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				fi, err := os.Lstat(filepath.Join(dst, filepath.FromSlash(tc.wrote)))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != 0o600 {
					t.Errorf("mode %v, want 0600", fi.Mode())
				}
			}
			entries, _ := os.ReadDir(parent)
			if len(entries) != 1 {
				t.Errorf("written next to dest: %v", entries)
			}
			filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() && p != dst {
					if fi, _ := d.Info(); fi.Mode().Perm() != 0o700 {
						t.Errorf("folder %s mode %v, want 0700", p, fi.Mode())
					}
				}
				return nil
			})
		})
	}
}

// FuzzUnpack: the daemon unpacks whatever a client sends. No input may
// panic, and whatever is accepted or refused, nothing is written next to
// dest, and dest holds only regular files and folders, within the limits.
func FuzzUnpack(f *testing.F) {
	src := f.TempDir()
	for name, body := range map[string]string{"a.yaml": "kind: A\n", "sub/b.yaml": "kind: B\n", "idp/c.cer": "cert"} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	var packed bytes.Buffer
	if err := Pack(&packed, src); err != nil {
		f.Fatal(err)
	}
	f.Add(packed.Bytes())
	f.Add(tarball(f, &tar.Header{Name: "../evil.yaml", Typeflag: tar.TypeReg, Size: 1}).Bytes())
	f.Add(tarball(f, &tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, &tar.Header{Name: "l/x", Typeflag: tar.TypeReg, Size: 1}).Bytes())
	f.Add(tarball(f, &tar.Header{Name: "a/b/c.yaml", Typeflag: tar.TypeReg, Size: 1}, &tar.Header{Name: "a/b", Typeflag: tar.TypeReg, Size: 1}).Bytes())
	const maxBytes, maxFolders = 4096, 16
	f.Fuzz(func(t *testing.T, raw []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "upload")
		if err := os.Mkdir(dst, 0o700); err != nil {
			t.Fatal(err)
		}
		unpack(bytes.NewReader(raw), dst, maxBytes, maxFolders)
		if entries, _ := os.ReadDir(parent); len(entries) != 1 {
			t.Fatalf("written next to dest: %v", entries)
		}
		var size int64
		var files, folders int
		filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			fi, err := d.Info()
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case p == dst:
			case fi.Mode().IsRegular() && fi.Mode().Perm() == 0o600:
				files++
				size += fi.Size()
			case fi.IsDir() && fi.Mode().Perm() == 0o700:
				folders++
			default:
				t.Fatalf("%s: mode %v", p, fi.Mode())
			}
			return nil
		})
		if size > maxBytes || files > MaxFiles || folders > maxFolders {
			t.Fatalf("%d bytes in %d files and %d folders, past the limits", size, files, folders)
		}
	})
}
