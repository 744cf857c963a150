package spec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadWithin runs Load in a goroutine and fails the test when it does not
// return before the deadline: a blocking open of a FIFO must fail the test,
// not hang it.
func loadWithin(t *testing.T, root string, opts LoadOptions) (*Set, error) {
	t.Helper()
	type result struct {
		set *Set
		err error
	}
	done := make(chan result, 1)
	go func() {
		set, err := Load(context.Background(), root, opts)
		done <- result{set, err}
	}()
	select {
	case r := <-done:
		return r.set, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("Load did not return within 10s (blocked on a file?)")
		return nil, nil
	}
}

func TestReferencedFilesMustBeRegularSmallAndOutsideTheDataDir(t *testing.T) {
	dataDir := t.TempDir()
	writeFile(t, filepath.Join(dataDir, "admin-token"), []byte("tok_0123456789_abcdefghijklmnopqrstuvwxyz-ABCDEF"))
	outside := t.TempDir()
	fifo := filepath.Join(outside, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	big := filepath.Join(outside, "big")
	writeFile(t, big, []byte(strings.Repeat("a", maxSecretFileSize+1)))
	link := filepath.Join(outside, "link")
	if err := os.Symlink(filepath.Join(dataDir, "admin-token"), link); err != nil {
		t.Fatal(err)
	}
	doc := func(valueFrom string) string {
		return strings.Replace(scimEnvDoc, "env: TOKEN", valueFrom, 1)
	}
	tests := []struct {
		name    string
		doc     string
		files   map[string]string
		fifo    string // a repo-relative FIFO to create
		wantErr string
	}{
		{name: "absolute FIFO", doc: doc("file: " + fifo), wantErr: "scim.yaml:10:15: spec.tokens[0].valueFrom.file: file " + `"` + fifo + `" is not a regular file`},
		{name: "FIFO in the repo", doc: doc("file: secrets/fifo"), fifo: "secrets/fifo", wantErr: `spec.tokens[0].valueFrom.file: file "secrets/fifo" is not a regular file`},
		{name: "directory", doc: doc("file: " + outside), wantErr: `is not a regular file`},
		{name: "character device", doc: doc("file: /dev/zero"), wantErr: `file "/dev/zero" is not a regular file`},
		{name: "oversized", doc: doc("file: " + big), wantErr: `file "` + big + `" is too large (more than 65536 bytes)`},
		{name: "inside the data dir", doc: doc("file: " + filepath.Join(dataDir, "admin-token")), wantErr: `is inside the daemon's data dir`},
		{name: "symlink into the data dir", doc: doc("file: " + link), wantErr: `file "` + link + `" is inside the daemon's data dir`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"scim.yaml": tt.doc}
			for k, v := range tt.files {
				files[k] = v
			}
			root := writeTree(t, files)
			if tt.fifo != "" {
				p := filepath.Join(root, filepath.FromSlash(tt.fifo))
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(p, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := loadWithin(t, root, LoadOptions{Getenv: getenvFrom(nil), Now: testNow, DataDir: dataDir})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A spec repo inside the data dir (push mode keeps the pushed spec there)
// may still read its own files.
func TestRepoInsideTheDataDirReadsItsOwnFiles(t *testing.T) {
	const good = "tok_0123456789_abcdefghijklmnopqrstuvwxyz-ABCDEF"
	dataDir := t.TempDir()
	root := filepath.Join(dataDir, "push", "current")
	writeFile(t, filepath.Join(root, "scim.yaml"), []byte(strings.Replace(scimEnvDoc, "env: TOKEN", "file: secrets/t", 1)))
	writeFile(t, filepath.Join(root, "secrets", "t"), []byte(good))
	set, err := loadWithin(t, root, LoadOptions{Getenv: getenvFrom(nil), Now: testNow, DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Scim().Tokens[0].SHA256; got != sum256(good) {
		t.Errorf("sha256 = %s", got)
	}
}

// Certificate files and IdP metadata files go through the same reader.
func TestOtherFileReferencesRefuseNonRegularFiles(t *testing.T) {
	tests := []struct {
		name, doc, special, want string
	}{
		{"certificate file is a FIFO", certDoc("c", "saml-idp-signing", "  file: certs/c.cer\n"), "certs/c.cer", `doc.yaml:7:9: spec.file: file "certs/c.cer" is not a regular file`},
		{"metadata file is a FIFO", strings.Replace(samlBase, "metadataURL: https://idp.example.com/metadata", "metadataFile: idp/md.xml", 1), "idp/md.xml", `doc.yaml:9:19: spec.idp.metadataFile: file "idp/md.xml" is not a regular file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{"doc.yaml": tt.doc})
			p := filepath.Join(root, filepath.FromSlash(tt.special))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skipf("no FIFOs here: %v", err)
			}
			_, err := loadWithin(t, root, LoadOptions{Getenv: getenvFrom(nil), Now: testNow})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
