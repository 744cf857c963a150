package spec

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestLoadSymlinkedRoot: a spec folder that is a symlink (a release
// switched with ln -sfn, as the README suggests) loads as the folder it
// names, with or without a trailing separator, and its files revision is
// that folder's.
func TestLoadSymlinkedRoot(t *testing.T) {
	real := writeTree(t, map[string]string{
		"apps.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: webgoat\nspec:\n  versions: [\"1.0\"]\n",
	})
	link := filepath.Join(t.TempDir(), "current")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	want, err := load(t, real, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{link, link + string(filepath.Separator)} {
		got, err := load(t, root, nil)
		if err != nil {
			t.Fatalf("Load(%s): %v", root, err)
		}
		if got.Get(KindApplication, "webgoat") == nil || got.Revision != want.Revision {
			t.Errorf("Load(%s): revision %s, want the folder's %s", root, got.Revision, want.Revision)
		}
		files, err := FilesRevision(context.Background(), root)
		if err != nil {
			t.Fatal(err)
		}
		if wantFiles, _ := FilesRevision(context.Background(), real); files != wantFiles {
			t.Errorf("FilesRevision(%s) = %s, want the folder's %s", root, files, wantFiles)
		}
	}
}
