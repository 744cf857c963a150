package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
