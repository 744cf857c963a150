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

func tarball(t *testing.T, hdrs ...*tar.Header) *bytes.Buffer {
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
