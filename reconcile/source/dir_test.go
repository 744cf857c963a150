package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDirFetch(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "f.yaml")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)

	rev, err := Dir{Path: "."}.Fetch(context.Background())
	if err != nil || rev.ID != "" || rev.Dir != root {
		t.Fatalf("Fetch(.) = %+v, %v; want {\"\" %s}", rev, err, root)
	}
	if _, err := (Dir{Path: "f.yaml"}).Fetch(context.Background()); !errors.Is(err, ErrNotDir) {
		t.Fatalf("file: err = %v, want ErrNotDir", err)
	}
	if _, err := (Dir{Path: "missing"}).Fetch(context.Background()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: err = %v, want not-exist", err)
	}
	if s := (Dir{Path: "specs"}).String(); s != "specs" {
		t.Fatalf("String() = %q", s)
	}
}
