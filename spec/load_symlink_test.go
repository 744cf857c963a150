package spec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestLoadRefusesLinksItWouldNotFollow: a link to a folder (not entered)
// and a YAML file linked from outside the spec folder (not read) are
// refused by name, by Load and FilesRevision alike, rather than their
// documents silently left out; a link within the folder, as a Kubernetes
// ConfigMap mounts its files, is read.
func TestLoadRefusesLinksItWouldNotFollow(t *testing.T) {
	app := "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: %s\nspec:\n  versions: [\"1.0\"]\n"
	outside := writeTree(t, map[string]string{"shared/apps.yaml": fmt.Sprintf(app, "shared")})
	for _, tc := range []struct {
		name string
		link func(root string) error
		want string // in the error; "" loads, with the Application "linked"
	}{
		{"a folder linked from outside", func(root string) error {
			return os.Symlink(filepath.Join(outside, "shared"), filepath.Join(root, "shared"))
		}, "shared: a symlink to a folder"},
		{"a folder linked from inside", func(root string) error {
			return os.Symlink(filepath.Join(root, "real"), filepath.Join(root, "alias"))
		}, "alias: a symlink to a folder"},
		{"a file linked from outside", func(root string) error {
			return os.Symlink(filepath.Join(outside, "shared", "apps.yaml"), filepath.Join(root, "shared.yaml"))
		}, "shared.yaml: a symlink to " + filepath.Join(outside, "shared", "apps.yaml") + ", outside the spec folder"},
		{"a file linked from inside, as a ConfigMap", func(root string) error {
			if err := os.Symlink("..2026", filepath.Join(root, "..data")); err != nil {
				return err
			}
			return os.Symlink(filepath.Join("..data", "linked.yaml"), filepath.Join(root, "linked.yaml"))
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{
				"real/apps.yaml":     fmt.Sprintf(app, "real"),
				"..2026/linked.yaml": fmt.Sprintf(app, "linked"),
			})
			if err := tc.link(root); err != nil {
				t.Fatal(err)
			}
			set, err := load(t, root, nil)
			_, ferr := FilesRevision(context.Background(), root)
			if tc.want == "" {
				if err != nil || ferr != nil || set.Get(KindApplication, "linked") == nil {
					t.Fatalf("Load: %v, FilesRevision: %v", err, ferr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || ferr == nil || !strings.Contains(ferr.Error(), tc.want) {
				t.Fatalf("Load: %v\nFilesRevision: %v\nwant both saying %q", err, ferr, tc.want)
			}
		})
	}
}
