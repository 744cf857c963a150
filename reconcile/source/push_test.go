package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPush: a pushed spec is served until the next push, survives a new
// Push on the same data dir, and Restore puts back the one it replaced.
func TestPush(t *testing.T) {
	dataDir := t.TempDir()
	p, err := NewPush(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Fetch(context.Background()); !errors.Is(err, ErrNothingPushed) {
		t.Fatalf("before the first push: %v", err)
	}
	upload := func(content string) string {
		t.Helper()
		dir, err := os.MkdirTemp(p.UploadDir(), "upload-")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "spec.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	served := func(p *Push) string {
		t.Helper()
		rev, err := p.Fetch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rev.ID != "" {
			t.Errorf("revision ID %q, want none: the loader computes it", rev.ID)
		}
		b, err := os.ReadFile(filepath.Join(rev.Dir, "spec.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	if err := p.Replace(upload("one")); err != nil {
		t.Fatal(err)
	}
	if err := p.Replace(upload("two")); err != nil {
		t.Fatal(err)
	}
	if got := served(p); got != "two" {
		t.Fatalf("served %q after the second push", got)
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	if got := served(p); got != "one" {
		t.Fatalf("served %q after Restore, want the previous push", got)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pushed.refused")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Restore left the refused spec: %v", err)
	}

	restarted, err := NewPush(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := served(restarted); got != "one" {
		t.Fatalf("served %q after a restart", got)
	}
	if want := filepath.Join(dataDir, "pushed"); restarted.String() != "pushed specs (idrecon apply), kept in "+want {
		t.Errorf("String() = %q", restarted.String())
	}
}

// TestPushRestoreFirst: a refused first push leaves nothing pushed.
func TestPushRestoreFirst(t *testing.T) {
	p, err := NewPush(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(p.UploadDir(), "upload-")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Replace(dir); err != nil {
		t.Fatal(err)
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Fetch(context.Background()); !errors.Is(err, ErrNothingPushed) {
		t.Fatalf("after restoring the first push: %v", err)
	}
}

// TestPushRecoversInterruptedReplace: a daemon stopped between the renames
// of Replace or Restore left the spec it served in pushed.old and none in
// pushed; on restart that spec is served again, not "nothing pushed", and
// what Restore set aside is gone.
func TestPushRecoversInterruptedReplace(t *testing.T) {
	tests := []struct {
		name string
		dirs map[string]string // folder in the data dir → its spec.yaml
		want string            // served, "" for nothing pushed
	}{
		{"stopped in Replace", map[string]string{"pushed.old": "one"}, "one"},
		{"stopped in Restore", map[string]string{"pushed.old": "one", "pushed.refused": "two"}, "one"},
		{"Restore's leftover", map[string]string{"pushed": "one", "pushed.refused": "two"}, "one"},
		{"a push and its predecessor", map[string]string{"pushed": "two", "pushed.old": "one"}, "two"},
		{"first push refused", map[string]string{"pushed.refused": "one"}, ""},
		{"nothing", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			for name, content := range tt.dirs {
				dir := filepath.Join(dataDir, name)
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "spec.yaml"), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			p, err := NewPush(dataDir)
			if err != nil {
				t.Fatal(err)
			}
			rev, err := p.Fetch(context.Background())
			if tt.want == "" {
				if !errors.Is(err, ErrNothingPushed) {
					t.Fatalf("Fetch: %v, want nothing pushed", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if b, err := os.ReadFile(filepath.Join(rev.Dir, "spec.yaml")); err != nil || string(b) != tt.want {
					t.Fatalf("served %q, %v; want %q", b, err, tt.want)
				}
			}
			if _, err := os.Stat(filepath.Join(dataDir, "pushed.refused")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused spec is still there: %v", err)
			}
		})
	}
}

// TestPushIsDurable: before Replace reports a push done, every file and
// folder of it is synced, and so is the folder whose names the renames
// changed (Restore's too): a power loss after the answer must not bring
// back an empty or half-written spec as the one pushed.
func TestPushIsDurable(t *testing.T) {
	var synced []string
	orig := syncPath
	syncPath = func(name string) error { synced = append(synced, name); return orig(name) }
	t.Cleanup(func() { syncPath = orig })

	dataDir := t.TempDir()
	p, err := NewPush(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(p.UploadDir(), "upload-")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.yaml", "sub/b.yaml"} {
		name := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Replace(dir); err != nil {
		t.Fatal(err)
	}
	want := []string{dir, filepath.Join(dir, "a.yaml"), filepath.Join(dir, "sub"), filepath.Join(dir, "sub", "b.yaml"), p.UploadDir()}
	if !slices.Equal(synced, want) {
		t.Fatalf("Replace synced\n%q\nwant\n%q", synced, want)
	}
	synced = nil
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(synced, p.UploadDir()) {
		t.Fatalf("Restore synced %q, not the folder of its renames", synced)
	}
}
