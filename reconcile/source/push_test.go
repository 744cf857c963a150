package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
