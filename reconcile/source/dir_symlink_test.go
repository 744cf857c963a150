package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// release writes a folder holding one Application named name.
func release(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf("apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: %s\nspec:\n  versions: [\"1.0\"]\n", name)
	if err := os.WriteFile(filepath.Join(dir, "apps", "app.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

// switchLink points link at target the way `ln -sfn` does: a new link
// renamed over the old one.
func switchLink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".tmp"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func loadApp(t *testing.T, dir string) (*spec.Set, string) {
	t.Helper()
	set, err := spec.Load(context.Background(), dir, spec.LoadOptions{})
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	for _, d := range set.Docs {
		if d.Kind == spec.KindApplication {
			return set, d.Metadata.Name
		}
	}
	t.Fatalf("load %s: no Application: the folder was read as empty", dir)
	return nil, ""
}

// TestDirFetchSymlinkedRoot: a spec folder given as a symlink loads,
// through Dir.Fetch, the documents of the folder it names.
func TestDirFetchSymlinkedRoot(t *testing.T) {
	base := t.TempDir()
	v1 := filepath.Join(base, "releases", "v1")
	release(t, v1, "one")
	link := filepath.Join(base, "spec")
	if err := os.Symlink(v1, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, link + string(filepath.Separator)} {
		rev, err := Dir{Path: p}.Fetch(context.Background())
		if err != nil {
			t.Fatalf("Fetch(%s): %v", p, err)
		}
		if _, name := loadApp(t, rev.Dir); name != "one" {
			t.Fatalf("Fetch(%s) then load: Application %q, want \"one\"", p, name)
		}
	}
}

// TestDirFetchPinsSymlinkedRelease: the revision Fetch returns is the
// release the link named then. A switch while the loader reads it must
// not mix the two releases (the walk, each file open and the os.Root the
// loader opens would each resolve the link again), so a load after the
// switch still reads the fetched release, whole.
func TestDirFetchPinsSymlinkedRelease(t *testing.T) {
	v2, link := twoReleases(t)
	rev, err := Dir{Path: link}.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	switchLink(t, v2, link)
	if _, name := loadApp(t, rev.Dir); name != "one" {
		t.Fatalf("revision fetched at v1 loaded Application %q after the switch, want \"one\"", name)
	}
}

// TestDirFetchAfterWatchedSwitch: an `ln -sfn` switch of a watched spec
// link notifies, and the Fetch that follows returns the new release,
// whose content revision the loader computes.
func TestDirFetchAfterWatchedSwitch(t *testing.T) {
	v2, link := twoReleases(t)
	src := Dir{Path: link}
	rev1, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	set1, _ := loadApp(t, rev1.Dir)
	want, _ := loadApp(t, v2)

	fired := startWatchOn(t, link, nil)
	switchLink(t, v2, link)
	waitFired(t, fired, "the switch of the spec link")

	rev2, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	set2, name := loadApp(t, rev2.Dir)
	if name != "two" || set2.Revision != want.Revision {
		t.Fatalf("after the switch: Application %q revision %s, want \"two\" at %s", name, set2.Revision, want.Revision)
	}
	if set2.Revision == set1.Revision {
		t.Fatalf("revision unchanged by the switch: %s", set2.Revision)
	}
	files2, err := spec.FilesRevision(context.Background(), rev2.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if wantFiles, _ := spec.FilesRevision(context.Background(), v2); files2 != wantFiles {
		t.Fatalf("FilesRevision after the switch = %s, want v2's %s", files2, wantFiles)
	}
}

// TestWatchSwitchAboveRoot: the spec folder sits inside a release reached
// through a link higher up ("current/spec", with current switched by
// `ln -sfn`, the layout of Capistrano-style deploys). The switch itself
// notifies, the Fetch that follows returns the new release, and saves in
// the new release notify.
func TestWatchSwitchAboveRoot(t *testing.T) {
	base := t.TempDir()
	v1, v2 := filepath.Join(base, "releases", "v1"), filepath.Join(base, "releases", "v2")
	release(t, filepath.Join(v1, "spec"), "one")
	release(t, filepath.Join(v2, "spec"), "two")
	current := filepath.Join(base, "current")
	if err := os.Symlink(v1, current); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(current, "spec")
	fired := startWatchOn(t, root, nil)

	switchLink(t, v2, current)
	waitFired(t, fired, "the switch of a link above the spec folder")
	rev, err := Dir{Path: root}.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, name := loadApp(t, rev.Dir); name != "two" {
		t.Fatalf("Fetch after the switch loaded Application %q, want \"two\"", name)
	}

	if err := os.WriteFile(filepath.Join(v2, "spec", "apps", "more.yaml"), []byte("# x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFired(t, fired, "a save in a sub-folder of the new release")
}

// twoReleases makes two releases of a spec folder, v1 with the Application
// "one" and v2 with "two", and a link naming v1; it returns v2 and the
// link.
func twoReleases(t *testing.T) (v2, link string) {
	t.Helper()
	base := t.TempDir()
	v1, v2 := filepath.Join(base, "releases", "v1"), filepath.Join(base, "releases", "v2")
	release(t, v1, "one")
	release(t, v2, "two")
	link = filepath.Join(base, "spec")
	if err := os.Symlink(v1, link); err != nil {
		t.Fatal(err)
	}
	return v2, link
}
